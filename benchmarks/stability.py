"""Stability under load: resident memory over many consecutive runs in one Session.

    python benchmarks/stability.py [--model utgv-mri] [--runs 1000] [--size 128] [--iterations 32]

Exports the model (small matrix and T keep the run to minutes), runs it ``--runs`` times in one
ONNX Runtime session and records resident memory after warm-up and at the end; the requirement
is growth under 5%. Also checks that every output is bitwise identical (determinism on CPU).
Writes ``benchmarks/results/stability.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tgv_deploy.machine import provenance, resident_mb
from tgv_deploy.data.examples import example_inputs
from tgv_deploy.io_utils import atomic_write_bytes


def main() -> int:
    parser = argparse.ArgumentParser(description="Session stability benchmark")
    parser.add_argument("--model", default="utgv-mri")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=32)
    parser.add_argument("--json", default="benchmarks/results/stability.json")
    args = parser.parse_args()
    from tgv_deploy.export.exporter import ExportConfig, build_graph, write_export
    from tgv_deploy.models.checkpoint import load_checkpoint
    from tgv_deploy.registry import resolve_model
    from tgv_deploy.runtime import Session

    ckpt = load_checkpoint(resolve_model(args.model))
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = write_export(build_graph(ckpt, ExportConfig(iterations=args.iterations, height=args.size, width=args.size)), Path(tmp) / "m.onnx")
        session = Session(path)
        inputs = example_inputs(ckpt.config.task, 1, args.size, args.size)
        reference = session.run(inputs)["image"]
        for _ in range(args.warmup):
            session.run(inputs)
        warm = resident_mb()
        samples, identical = [], True
        start = time.perf_counter()
        for i in range(args.runs):
            out = session.run(inputs)["image"]
            identical &= bool(np.array_equal(out, reference))
            if i % 100 == 99:
                samples.append({"run": i + 1, "rss_mb": resident_mb()})
                print(f"run {i + 1}/{args.runs}: RSS {samples[-1]['rss_mb']:.1f} MB", flush=True)
        seconds = time.perf_counter() - start
    growth = (resident_mb() - warm) / warm
    report = {**provenance({args.model: str(resolve_model(args.model))}), "model": args.model, "runs": args.runs,
              "size": args.size, "iterations": args.iterations, "rss_after_warmup_mb": warm, "samples": samples,
              "rss_growth_fraction": growth, "bitwise_identical": identical, "seconds": seconds,
              "passed": bool(growth < 0.05 and identical)}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.json, json.dumps(report, indent=2).encode())
    print(f"{'PASSED' if report['passed'] else 'FAILED'} | RSS growth {100 * growth:.2f}% after {args.runs} runs | "
          f"bitwise identical: {identical} | wrote {args.json}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
