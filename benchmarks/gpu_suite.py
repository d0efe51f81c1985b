"""GPU benchmark suite: parity and latency of every available backend on one CUDA device.

    python benchmarks/gpu_suite.py [--model utgv-mri] [--iterations 256] [--size 320] [--batch 1]
                                   [--runs 20] [--json benchmarks/results/gpu.json]

Rows: torch eager (native FFT), torch with CUDA-graph replay of the fixed-T model, torch.compile,
ONNX Runtime CUDA and TensorRT (fp32, TF32 off). A backend that is not installed is skipped with
its reason; the suite needs only PyTorch with CUDA and finishes in minutes. Parity is the
relative L2 error of the image against torch eager in float32 on the same input. Timings use
CUDA events around each call, after warm-up, interleaved across backends; median reported.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tgv_deploy.bench import machine_description
from tgv_deploy.data.examples import example_inputs
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.registry import resolve_model


def cuda_time(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description="GPU parity and latency suite")
    parser.add_argument("--model", default="utgv-mri")
    parser.add_argument("--iterations", type=int, default=256)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", default="benchmarks/results/gpu.json")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("error: no CUDA GPU: the GPU suite needs one", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device("cuda")
    ckpt = load_checkpoint(resolve_model(args.model))
    model = ckpt.build().to(device)
    T, n, b = args.iterations, args.size, args.batch
    inputs = example_inputs(ckpt.config.task, b, n, n)
    names = ["kspace", "mask"] if ckpt.config.task == "mri" else ["noisy"]
    tensors = [torch.from_numpy(inputs[k]).to(device) for k in names]
    rows, skipped = [], {}

    @torch.no_grad()
    def eager():
        return model(*tensors, iterations=T)[0]

    reference = eager().float()

    def record(name, fn, output):
        times = cuda_time(fn, args.runs, args.warmup)
        err = float((output().float() - reference).norm() / reference.norm())
        rows.append({"backend": name, "p50_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
                     "per_slice_ms": float(np.median(times)) / b, "parity_rel_l2": err})
        print(f"{name:28s} p50 {rows[-1]['p50_ms']:9.2f} ms  parity {err:.2e}", flush=True)

    record("torch eager (FFT)", eager, eager)

    # CUDA graph replay of the whole fixed-T model (static input buffers)
    try:
        static_out = None
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.no_grad():
            for _ in range(2):
                eager()
        torch.cuda.current_stream().wait_stream(stream)
        with torch.cuda.graph(graph), torch.no_grad():
            static_out = model(*tensors, iterations=T)[0]
        record("torch CUDA graph", graph.replay, lambda: static_out)
    except Exception as exc:  # noqa: BLE001 - report, do not hide
        skipped["torch CUDA graph"] = f"{type(exc).__name__}: {exc}"

    try:
        compiled = torch.compile(model, mode="max-autotune-no-cudagraphs", dynamic=False)
        start = time.perf_counter()
        with torch.no_grad():
            compiled(*tensors, iterations=T)
        compile_s = time.perf_counter() - start
        fn = lambda: compiled(*tensors, iterations=T)[0]  # noqa: E731
        with torch.no_grad():
            record("torch.compile", fn, fn)
        rows[-1]["compile_s"] = compile_s
    except Exception as exc:  # noqa: BLE001
        skipped["torch.compile"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        try:
            from tgv_deploy.export.exporter import ExportConfig, build_graph, write_export

            start = time.perf_counter()
            write_export(build_graph(ckpt, ExportConfig(iterations=T, height=n, width=n, batch=b, verify=False)), onnx_path)
            print(f"exported T={T} in {time.perf_counter() - start:.1f} s", flush=True)
        except Exception as exc:  # noqa: BLE001
            skipped["export"] = f"{type(exc).__name__}: {exc}"
        for backend in ("onnxruntime-cuda", "onnxruntime-tensorrt"):
            try:
                from tgv_deploy.runtime import Session

                session = Session(onnx_path, backend=backend)
                out = {}
                fn = lambda s=session: out.__setitem__("image", s.run(inputs)["image"])  # noqa: E731
                record(backend, fn, lambda: torch.from_numpy(out["image"]).to(device))
            except Exception as exc:  # noqa: BLE001
                skipped[backend] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        try:
            from tgv_deploy.export.trt_build import BuildConfig, build_engine
            from tgv_deploy.runtime import Session

            plan = Path(tmp) / "model.plan"
            build_engine(onnx_path, plan, BuildConfig(precision="fp32"), say=print)
            session = Session(plan)
            out = {}
            fn = lambda: out.__setitem__("image", session.run(inputs)["image"])  # noqa: E731
            record("tensorrt fp32", fn, lambda: torch.from_numpy(out["image"]).to(device))
        except Exception as exc:  # noqa: BLE001
            skipped["tensorrt fp32"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    eager_ms = rows[0]["p50_ms"]
    for row in rows:
        row["speedup_vs_eager"] = eager_ms / row["p50_ms"]
    report = {
        "machine": {**machine_description(), "gpu": torch.cuda.get_device_name(0),
                    "capability": ".".join(map(str, torch.cuda.get_device_capability(0))), "cuda": torch.version.cuda},
        "command": "python " + " ".join(sys.argv), "model": args.model, "iterations": T, "size": n, "batch": b,
        "results": rows, "skipped": skipped,
    }
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
