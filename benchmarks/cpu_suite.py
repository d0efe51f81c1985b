"""CPU benchmark harness: export time and graph size against T, latency sweeps, and the matmul floor.

    python benchmarks/cpu_suite.py [--model utgv-mri-pdhg] [--quick] [--out benchmarks/results/cpu]

Written for PDHG graphs (its DFT-path profile reads the ``pdhg/`` nodes); the default is the
bundled PDHG model.

Writes ``cpu.json``, ``cpu.md`` and ``cpu_latency.png`` with the machine description and the exact
command. Latency rows compare ONNX Runtime with torch eager (native FFT) in one process,
interleaved (see ``tgv_deploy.bench``). The floor: the FLOPs of one iteration's DFT matrix
products (as exported: two-stage rows where H factorises) against this machine's measured matmul rate, and the bytes of its element-wise work
against the measured memory bandwidth.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tgv_deploy.bench import bench, rows_to_markdown
from tgv_deploy.dft import dft_factors
from tgv_deploy.export.exporter import ExportConfig, build_graph, write_export
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.machine import machine_description
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.registry import resolve_model


def measure_matmul_gflops(n: int, batch: int, repeats: int = 20) -> float:
    """float32 batched (2n x 2n) @ (2n x n) products through ONNX Runtime, as the DFT runs them."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    left = numpy_helper.from_array(np.random.default_rng(0).standard_normal((2 * n, 2 * n)).astype(np.float32), "L")
    graph = helper.make_graph([helper.make_node("MatMul", ["L", "x"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 2 * n, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 2 * n, n])], [left])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((batch, 2 * n, n)).astype(np.float32)
    for _ in range(3):
        session.run(None, {"x": x})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {"x": x})
        times.append(time.perf_counter() - start)
    flops = 2 * batch * (2 * n) ** 2 * n
    return flops / np.median(times) / 1e9


def measure_bandwidth_gbs(megabytes: int = 256) -> float:
    a = np.ones(megabytes * 1024 * 1024 // 4, dtype=np.float32)
    b = np.empty_like(a)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        np.copyto(b, a)
        times.append(time.perf_counter() - start)
    return 2 * a.nbytes / np.median(times) / 1e9


def dft_flops_per_iteration(height: int, width: int, batch: int, lines: int) -> float:
    """Matrix-product FLOPs of one iteration's two 2D DFTs on ``lines`` = K sampled lines, as the
    default export writes them: a column product (2, H, W) @ (W, 2K) (8 K H W) and a row transform,
    dense (2H, 2H) @ (2H, K) (8 K H^2) or in two stages for H = n1 n2 (8 K H (n1 + n2))."""
    factors = dft_factors(height)
    row_taps = sum(factors) if factors else height
    return 2 * 8 * lines * height * (width + row_taps) * batch


def dft_path_ms(onnx_path: Path, task: str, height: int, width: int, batch: int, runs: int = 3) -> float:
    """Kernel time per run of the loop's DFT nodes (named ``pdhg/dft*``/``pdhg/idft*``), from
    ONNX Runtime's profiler with the runtime's session options (profiling adds a little)."""
    import onnxruntime as ort

    from tgv_deploy.data.examples import example_inputs
    from tgv_deploy.runtime.session import session_options

    options = session_options(ort)
    options.enable_profiling = True
    options.profile_file_prefix = str(onnx_path.with_suffix(""))
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    inputs = example_inputs(task, batch, height, width)
    feeds = {i.name: inputs[i.name] for i in session.get_inputs()}
    for _ in range(runs + 1):  # the first run warms up and is left out below
        session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    second_run = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run")[1]
    micros = sum(e["dur"] for e in events if e.get("cat") == "Node" and e["ts"] >= second_run
                 and e["name"].endswith("_kernel_time") and e["name"].startswith(("pdhg/dft", "pdhg/idft")))
    return micros / runs / 1e3


def training_step_ms(ckpt, iterations: int, size: int, batch: int, checkpoint_every: int | None, steps: int = 3) -> dict[str, float]:
    """Median wall time of one training step (corrupted synthetic batch, forward, PSNR loss,
    backward, AdamW) at ``iterations``, and the activation memory autograd keeps for backward
    (distinct storages saved by the forward pass: what activation checkpointing trades away)."""
    import torch

    from tgv_deploy.training.data import Corruption, SyntheticSlices, make_batch
    from tgv_deploy.training.trainer import reconstruction_loss

    model = ckpt.build().train()
    model.checkpoint_every = checkpoint_every
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    source = SyntheticSlices(size, size, seed=0)
    task = ckpt.config.task
    corruption = Corruption(task, (4, 8), (0.0, 0.2), ("equispaced",) if task == "mri" else ())
    rng = np.random.default_rng(0)
    times, saved = [], {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    for step in range(steps + 1):  # the first step warms up
        f, mask, target, _ = make_batch(source, corruption, list(range(step * batch, (step + 1) * batch)), rng)
        saved.clear()
        start = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            x, _ = model(f, mask, iterations=iterations) if task == "mri" else model(f, iterations=iterations)
            loss = reconstruction_loss(x, target, "psnr")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return {"step_ms": float(np.median(times[1:])) * 1e3, "saved_activations_mb": sum(saved.values()) / 2**20}


def main() -> int:
    parser = argparse.ArgumentParser(description="CPU benchmark harness")
    parser.add_argument("--model", default="utgv-mri-pdhg")
    parser.add_argument("--quick", action="store_true", help="Fewer sizes and runs (minutes, not tens of minutes).")
    parser.add_argument("--out", default="benchmarks/results/cpu", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint(resolve_model(args.model))
    report: dict[str, object] = {"machine": machine_description(), "command": "python " + " ".join(sys.argv), "model": args.model}

    exports = []
    with tempfile.TemporaryDirectory() as tmp:
        for T in (32, 64, 128, 256):
            start = time.perf_counter()
            result = build_graph(ckpt, ExportConfig(iterations=T, height=320, width=320, verify=True))
            path, _ = write_export(result, Path(tmp) / f"m{T}.onnx")
            seconds = time.perf_counter() - start
            exports.append({"T": T, "size": "320x320", "seconds_with_verification": round(seconds, 2), "nodes": len(result.model.graph.node),
                            "nodes_per_iteration": result.nodes_per_iteration, "bytes": path.stat().st_size, "parity": result.parity})
            print(f"export T={T}: {seconds:.1f} s, {len(result.model.graph.node)} nodes", flush=True)
        report["export"] = exports

        sizes = [(256, 256), (320, 320)] if args.quick else [(256, 256), (320, 320), (368, 640)]
        iterations = [64, 256] if args.quick else [32, 64, 128, 256]
        batches = [1] if args.quick else [1, 4]
        runs = 3 if args.quick else 5
        latency = []
        for h, w in sizes:
            for T in iterations:
                for b in batches:
                    onnx_path = Path(tmp) / f"lat_{h}_{w}_{T}_{b}.onnx"
                    write_export(build_graph(ckpt, ExportConfig(iterations=T, height=h, width=w, batch=b, verify=False)), onnx_path)
                    rows = bench([str(resolve_model(args.model)), str(onnx_path)], iterations=T, height=h, width=w, batch=b, runs=runs, warmup=1)
                    for row in rows:
                        latency.append(row.__dict__ | {"model": Path(row.model).name})
                    if T == min(iterations) and b == 1 and ckpt.config.task == "mri":
                        latency[-1]["dft_path_ms"] = dft_path_ms(onnx_path, ckpt.config.task, h, w, b)
                    print(rows_to_markdown(rows).splitlines()[-1], flush=True)
        report["latency"] = latency

    training = []
    for T in ((16, 32, 64) if args.quick else (16, 32, 64, 128)):
        for every in (None, 8):
            timing = training_step_ms(ckpt, T, 128, 4, every)
            training.append({"T": T, "size": "128x128", "batch": 4, "activation_checkpointing": every, **timing})
            print(f"training step T={T} checkpointing={every}: {timing['step_ms']:.0f} ms", flush=True)
    report["training"] = training

    gflops = {n: measure_matmul_gflops(n, 1) for n in (256, 320)}
    bandwidth = measure_bandwidth_gbs()
    floor = []
    for row in latency:
        if row["backend"] != "onnxruntime":
            continue
        n = row["height"]
        if n not in gflops:
            continue
        lines = -(-row["width"] // 2)  # the export default --max-lines
        dft_ms = dft_flops_per_iteration(row["height"], row["width"], row["batch"], lines) / (gflops[n] * 1e9) * 1e3 * row["iterations"]
        floor.append({"height": row["height"], "width": row["width"], "T": row["iterations"], "batch": row["batch"],
                      "measured_ms": row["p50_ms"], "dft_matmul_floor_ms": dft_ms, "fraction_of_floor": dft_ms / row["p50_ms"],
                      "dft_path_ms": row.get("dft_path_ms"),
                      "dft_path_over_floor": row["dft_path_ms"] / dft_ms if row.get("dft_path_ms") else None})
    report["floor"] = {"matmul_gflops": gflops, "bandwidth_gbs": bandwidth, "rows": floor}
    atomic_write_bytes(args.out / "cpu.json", json.dumps(report, indent=2).encode())
    md = [f"# CPU benchmarks\n\nCommand: `{report['command']}`\n\nMachine: `{json.dumps(report['machine'])}`\n",
          "## Export (320 x 320, including the ONNX Runtime parity check)\n",
          "| T | seconds | nodes | nodes/iteration | MB | parity |", "| --- | --- | --- | --- | --- | --- |"]
    md += [f"| {e['T']} | {e['seconds_with_verification']} | {e['nodes']} | {e['nodes_per_iteration']} | {e['bytes'] / 1e6:.1f} | {e['parity']:.1e} |" for e in exports]
    md += ["\n## Latency (p50, interleaved; ratio = p50 / torch eager p50 of the same run)\n",
           "| model | backend | T | H x W | batch | p50 ms | p90 ms | slices/s | vs torch |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    md += [f"| {r['model']} | {r['backend']} | {r['iterations']} | {r['height']}x{r['width']} | {r['batch']} | {r['p50_ms']:.0f} | {r['p90_ms']:.0f} | "
           f"{r['throughput']:.2f} | {r['ratio_to_torch']:.2f} |" for r in latency]
    md += ["\n## Training step (128 x 128, batch 4, PSNR loss, AdamW; torch threads as configured)\n",
           "| T | activation checkpointing | step ms | activations kept for backward, MB |", "| --- | --- | --- | --- |"]
    md += [f"| {t['T']} | {'every ' + str(t['activation_checkpointing']) if t['activation_checkpointing'] else 'off'} | "
           f"{t['step_ms']:.0f} | {t['saved_activations_mb']:.0f} |" for t in training]
    md += [f"\n## Floor\n\nMatmul rate (ONNX Runtime, float32, a (2n x 2n) @ (2n x n) product): "
           f"{', '.join(f'{n}: {g:.1f} GFLOP/s' for n, g in gflops.items())}; copy bandwidth {bandwidth:.1f} GB/s. "
           "The DFT floor counts only the matrix products of the sampled-line DFT (K = W/2) at that rate; the DFT path is "
           "the profiled kernel time of the loop's DFT nodes (products, combine Convs, reshapes, transposes).\n",
           "| H x W | T | batch | measured ms | DFT matmul floor ms | floor / measured | DFT path ms | DFT path / floor |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    md += [f"| {f['height']}x{f['width']} | {f['T']} | {f['batch']} | {f['measured_ms']:.0f} | {f['dft_matmul_floor_ms']:.0f} | {f['fraction_of_floor']:.2f} | "
           + (f"{f['dft_path_ms']:.0f} | {f['dft_path_over_floor']:.2f} |" if f["dft_path_ms"] else "- | - |") for f in floor]
    atomic_write_bytes(args.out / "cpu.md", ("\n".join(md) + "\n").encode())
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for (h, w) in sizes:
            for backend in ("torch", "onnxruntime"):
                pts = sorted((r["iterations"], r["p50_ms"]) for r in latency if r["backend"] == backend and r["height"] == h and r["batch"] == 1)
                if pts:
                    ax.plot(*zip(*pts), "o-", label=f"{backend} {h}x{w}")
        ax.set_xlabel("T")
        ax.set_ylabel("p50 latency (ms), batch 1")
        ax.legend(fontsize=8)
        fig.savefig(args.out / "cpu_latency.png", dpi=110, bbox_inches="tight")
    except ImportError:
        pass
    print(f"wrote {args.out}/cpu.json and cpu.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
