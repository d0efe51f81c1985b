"""Which ONNX Runtime session options the runtime uses, and why: a same-run comparison.

    python benchmarks/ort_options.py MODEL.onnx CHECKPOINT [--runs 7] [--out benchmarks/results/ort_options]

For each combination of graph optimisation level (ORT_ENABLE_ALL, which adds the NCHWc layout
transform, or ORT_ENABLE_EXTENDED) and thread spinning (off; on; on but stopped at the end of each
run), times the exported model and, straight after each of its runs, the PyTorch reference of the
same checkpoint, interleaved over all combinations. A pool that keeps spinning after a run steals
the cores from whatever runs next, which the torch column shows. Writes ``ort_options.json`` and
``ort_options.md`` with the machine and the command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tgv_deploy.machine import machine_description
from tgv_deploy.data.examples import example_inputs
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.onnx_graph import load_verified
from tgv_deploy.runtime.session import Session

SPINNING = {"off": ("0", "0"), "on": ("1", "0"), "on, stopped after each run": ("1", "1")}
LEVELS = {"ALL (NCHWc)": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "EXTENDED": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}


def session(model_bytes: bytes, level, spin: str, stop: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = level
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.force_spinning_stop", stop)
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an exported .onnx")
    parser.add_argument("checkpoint", help="the checkpoint (or bundled name) it was exported from")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ort_options"))
    args = parser.parse_args()
    model, contract = load_verified(args.model)
    reference = Session(args.checkpoint, backend="torch", iterations=contract.iterations)
    inputs = example_inputs(contract.task, 1, contract.height, contract.width)
    configs = {(lv, sp): session(model.SerializeToString(), LEVELS[lv], *SPINNING[sp]) for lv in LEVELS for sp in SPINNING}
    for s in configs.values():
        s.run(None, inputs)
    reference.run(inputs)
    ort_ms = {k: [] for k in configs}
    torch_ms = {k: [] for k in configs}
    for r in range(args.runs):
        for key, s in configs.items():
            start = time.perf_counter()
            s.run(None, inputs)
            middle = time.perf_counter()
            reference.run(inputs)
            ort_ms[key].append((middle - start) * 1e3)
            torch_ms[key].append((time.perf_counter() - middle) * 1e3)
        print(f"run {r + 1}/{args.runs}", file=sys.stderr)
    rows = [{"level": lv, "spinning": sp, "ort_p50_ms": float(np.median(ort_ms[(lv, sp)])),
             "torch_after_p50_ms": float(np.median(torch_ms[(lv, sp)]))} for lv, sp in configs]
    command = "python " + " ".join(sys.argv)
    result = {"machine": machine_description(), "command": command, "model": str(args.model), "T": contract.iterations,
              "size": [contract.height, contract.width], "results": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "ort_options.json", (json.dumps(result, indent=2) + "\n").encode())
    lines = [f"`{command}` (T = {contract.iterations}, {contract.height} x {contract.width}, {args.runs} interleaved runs)", "",
             "| optimisation level | spinning | ONNX Runtime p50 ms | torch run right after, p50 ms |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['level']} | {r['spinning']} | {r['ort_p50_ms']:.1f} | {r['torch_after_p50_ms']:.1f} |" for r in rows]
    atomic_write_bytes(args.out / "ort_options.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
