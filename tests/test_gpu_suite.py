"""The GPU suite's harness, run on the CPU: a GPU session is rare and short, so the script must
already work when one comes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_suite.py"


def _suite(*args, cwd):
    return subprocess.run([sys.executable, str(SUITE), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_cpu_harness_check_writes_rows_parity_and_reasons(tmp_path, mri_checkpoint):
    out = tmp_path / "gpu.json"
    result = _suite("--device", "cpu", "--model", mri_checkpoint, "--iterations", 3, "--size", 24, "--runs", 2, "--warmup", 1,
                    "--compile-timeout", 1, "--build-sweep", "--json", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and "not a GPU result" in report["note"]
    rows = {r["backend"]: r for r in report["results"]}
    assert list(rows)[:2] == ["torch eager (FFT)", "onnxruntime (CPU)"]
    eager, ort = rows["torch eager (FFT)"], rows["onnxruntime (CPU)"]
    # every row's speedup is the eager p50 over its own (eager's own is 1 by construction)
    assert ort["speedup_vs_eager"] == pytest.approx(eager["p50_ms"] / ort["p50_ms"])
    assert all(r["p50_ms"] <= r["p90_ms"] for r in rows.values())
    assert rows["onnxruntime (CPU)"]["parity_rel_l2"] < 1e-5 and rows["onnxruntime (CPU)"]["p50_ms"] > 0
    skipped = report["skipped"]
    assert skipped["torch CUDA graph"] == "needs a CUDA device"
    assert "--compile-timeout 1 s" in skipped["torch.compile"]  # an overrunning compile is cut off, the suite goes on
    assert skipped["tensorrt fp32"] and skipped["engine build sweep"]  # TensorRT absent here: reasons, not crashes
    assert not list(tmp_path.glob(".gpu.json*"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_run_without_a_gpu_is_refused(tmp_path):
    result = _suite("--json", tmp_path / "gpu.json", cwd=tmp_path)
    assert result.returncode == 2 and "no CUDA GPU" in result.stderr
    assert not (tmp_path / "gpu.json").exists()
