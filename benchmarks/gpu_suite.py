"""GPU benchmark suite: parity and latency of every available backend on one CUDA device.

    python benchmarks/gpu_suite.py [--model utgv-mri] [--iterations 256] [--size 320] [--batch 1]
                                   [--runs 20] [--warmup 3] [--compile-timeout 240] [--skip NAME ...]
                                   [--build-sweep] [--json benchmarks/results/gpu.json]

Rows: torch eager (native FFT), torch with CUDA-graph replay of the fixed-T model, torch.compile,
ONNX Runtime CUDA (with and without CUDA graphs), ONNX Runtime's TensorRT provider and TensorRT
(fp32, TF32 off). A backend that is not installed or fails is skipped with its reason; the suite
needs only PyTorch with CUDA. Parity is the relative L2 error of the image against torch eager
in float32 on the same input. Timings use CUDA events around each call; after every backend's
warm-up the runs are interleaved across backends (round-robin) so that clock and thermal drift
affect all rows alike, and the median is reported.

torch.compile runs in a child process under ``--compile-timeout``: compiling 256 unrolled
iterations can take minutes, and a compile that overruns must not take the suite down with it.
Its row is timed in that process (not interleaved) against an eager run of its own.

``--device cpu`` runs the same harness on the CPU (ONNX Runtime's CPU provider instead of the
CUDA ones, wall-clock timers): a check of the suite itself, never a GPU result.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tgv_deploy.machine import machine_description
from tgv_deploy.data.examples import example_inputs
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.registry import resolve_model


@dataclass
class Candidate:
    name: str
    run: Callable[[], object]  # one timed call
    image: Callable[[], torch.Tensor]  # the output of the last call, as a tensor on the device
    times_ms: list[float]


def timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
    """Milliseconds of one call: CUDA events on a GPU, the wall clock on the CPU."""
    if device.type == "cuda":
        def cuda_ms(fn):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        return cuda_ms

    def wall_ms(fn):
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3
    return wall_ms


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def load(args, device: torch.device):
    ckpt = load_checkpoint(resolve_model(args.model))
    model = ckpt.build().to(device).eval()
    inputs = example_inputs(ckpt.config.task, args.batch, args.size, args.size)
    names = ["kspace", "mask"] if ckpt.config.task == "mri" else ["noisy"]
    tensors = [torch.from_numpy(inputs[k]).to(device) for k in names]
    return ckpt, model, inputs, tensors


def compile_worker(args) -> int:
    """Child process: eager reference, torch.compile, timing; one JSON line on stdout."""
    device = torch.device(args.device)
    _, model, _, tensors = load(args, device)
    T = args.iterations
    with torch.no_grad():
        reference = model(*tensors, iterations=T)[0].float()
        compiled = torch.compile(model, dynamic=False)
        start = time.perf_counter()
        compiled(*tensors, iterations=T)
        if device.type == "cuda":
            torch.cuda.synchronize()
        compile_s = time.perf_counter() - start
        out = {}
        fn = lambda: out.__setitem__("image", compiled(*tensors, iterations=T)[0])  # noqa: E731
        for _ in range(args.warmup):
            fn()
        measure = timer(device)
        times = [measure(fn) for _ in range(args.runs)]
        err = float((out["image"].float() - reference).norm() / reference.norm())
    print(json.dumps({"times_ms": times, "parity_rel_l2": err, "compile_s": compile_s}))
    return 0


def compiled_row(args) -> dict:
    command = [sys.executable, __file__, "--compile-worker", "--model", args.model, "--iterations", str(args.iterations),
               "--size", str(args.size), "--batch", str(args.batch), "--runs", str(args.runs), "--warmup", str(args.warmup),
               "--device", args.device]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.compile_timeout)
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"compiling did not finish within --compile-timeout {args.compile_timeout:g} s") from None
    if done.returncode != 0:
        tail = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise RuntimeError(tail[-1] if tail else f"worker exited with {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def torch_candidates(model, tensors, T: int, device: torch.device, skipped: dict[str, str]) -> list[Candidate]:
    out: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def eager():
        out["eager"] = model(*tensors, iterations=T)[0]

    found = [Candidate("torch eager (FFT)", eager, lambda: out["eager"], [])]
    if device.type != "cuda":
        skipped["torch CUDA graph"] = "needs a CUDA device"
        return found
    try:
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):  # warm-up on a side stream: allocations and FFT plans happen outside the capture
                eager()
        torch.cuda.current_stream().wait_stream(stream)
        with torch.cuda.graph(graph), torch.no_grad():
            static = model(*tensors, iterations=T)[0]
        found.append(Candidate("torch CUDA graph", graph.replay, lambda: static, []))
    except Exception as exc:  # noqa: BLE001 - reported in the JSON, never hidden
        skipped["torch CUDA graph"] = first_line(exc)
    return found


def exported_candidates(ckpt, args, inputs, onnx_path: Path, device: torch.device, skipped: dict[str, str]) -> list[Candidate]:
    try:  # the exporter needs onnx, which a GPU host with only PyTorch may lack: then a reason, not a crash
        from tgv_deploy.export.exporter import ExportConfig, build_graph, write_export

        start = time.perf_counter()
        write_export(build_graph(ckpt, ExportConfig(iterations=args.iterations, height=args.size, width=args.size,
                                                    batch=args.batch, verify=False)), onnx_path)
        print(f"exported T={args.iterations} in {time.perf_counter() - start:.1f} s", flush=True)
    except Exception as exc:  # noqa: BLE001
        skipped["export"] = first_line(exc)
        return []
    from tgv_deploy.runtime import Session

    def session_candidate(name: str, make: Callable[[], Session]) -> Candidate | None:
        try:
            session = make()
        except Exception as exc:  # noqa: BLE001
            skipped[name] = first_line(exc)
            return None
        out: dict[str, np.ndarray] = {}
        return Candidate(name, lambda: out.__setitem__("image", session.run(inputs)["image"]),
                         lambda: torch.from_numpy(out["image"]).to(device), [])

    if device.type == "cuda":
        makers = {
            "onnxruntime-cuda": lambda: Session(onnx_path, backend="onnxruntime-cuda"),
            "onnxruntime-cuda + CUDA graphs": lambda: Session(onnx_path, backend="onnxruntime-cuda", cuda_graphs=True),
            "onnxruntime-tensorrt": lambda: Session(onnx_path, backend="onnxruntime-tensorrt"),
        }
    else:
        makers = {"onnxruntime (CPU)": lambda: Session(onnx_path, backend="onnxruntime")}
    found = [c for name, make in makers.items() if name not in args.skip and (c := session_candidate(name, make))]

    def tensorrt() -> Session:
        from tgv_deploy.export.trt_build import BuildConfig, build_engine

        plan = onnx_path.with_suffix(".plan")
        start = time.perf_counter()
        build_engine(onnx_path, plan, BuildConfig(precision="fp32"), say=print)
        print(f"built the TensorRT engine in {time.perf_counter() - start:.1f} s", flush=True)
        return Session(plan)

    if "tensorrt fp32" not in args.skip and (engine := session_candidate("tensorrt fp32", tensorrt)):
        found.append(engine)
    return found


def build_sweep(ckpt, args, directory: Path) -> list[dict] | str:
    """TensorRT engine build time (fp32) against T at the suite's size; a reason if it cannot run."""
    try:
        from tgv_deploy.export.exporter import ExportConfig, build_graph, write_export
        from tgv_deploy.export.trt_build import BuildConfig, build_engine

        rows = []
        for T in (32, 64, 128, 256):
            onnx_path = directory / f"sweep_{T}.onnx"
            write_export(build_graph(ckpt, ExportConfig(iterations=T, height=args.size, width=args.size, batch=args.batch,
                                                        verify=False)), onnx_path)
            start = time.perf_counter()
            build_engine(onnx_path, onnx_path.with_suffix(".plan"), BuildConfig(precision="fp32"), say=print)
            rows.append({"T": T, "build_s": time.perf_counter() - start})
            print(f"engine T={T}: {rows[-1]['build_s']:.1f} s", flush=True)
        return rows
    except Exception as exc:  # noqa: BLE001
        return first_line(exc)


def main() -> int:
    parser = argparse.ArgumentParser(description="GPU parity and latency suite")
    parser.add_argument("--model", default="utgv-mri")
    parser.add_argument("--iterations", type=int, default=256)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile-timeout", type=float, default=240.0, help="seconds allowed for the torch.compile row")
    parser.add_argument("--skip", nargs="*", default=[], help="row names to leave out (e.g. torch.compile)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: check the harness itself")
    parser.add_argument("--build-sweep", action="store_true", help="also time TensorRT engine builds at T = 32..256")
    parser.add_argument("--json", default="benchmarks/results/gpu.json")
    parser.add_argument("--compile-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA GPU: the GPU suite needs one (--device cpu only checks the harness)", file=sys.stderr)
        return 2
    if args.compile_worker:
        return compile_worker(args)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)
    ckpt, model, inputs, tensors = load(args, device)
    T, b = args.iterations, args.batch
    skipped = {name: "left out by --skip" for name in args.skip}
    measure = timer(device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        candidates = [c for c in torch_candidates(model, tensors, T, device, skipped) if c.name not in args.skip]
        candidates += exported_candidates(ckpt, args, inputs, Path(tmp) / "model.onnx", device, skipped)
        for c in candidates:
            for _ in range(args.warmup):
                c.run()
        for r in range(args.runs):
            for c in candidates:
                c.times_ms.append(measure(c.run))
            print(f"run {r + 1}/{args.runs}", flush=True)
        if args.build_sweep:
            sweep = build_sweep(ckpt, args, Path(tmp))
            if isinstance(sweep, str):
                skipped["engine build sweep"] = sweep
        reference = candidates[0].image().float()  # torch eager
        for c in candidates:
            err = float((c.image().float() - reference).norm() / reference.norm())
            rows.append({"backend": c.name, "p50_ms": float(np.median(c.times_ms)), "p90_ms": float(np.percentile(c.times_ms, 90)),
                         "per_slice_ms": float(np.median(c.times_ms)) / b, "parity_rel_l2": err})
    if "torch.compile" not in args.skip:
        try:
            result = compiled_row(args)
            times = result["times_ms"]
            rows.append({"backend": "torch.compile", "p50_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
                         "per_slice_ms": float(np.median(times)) / b, "parity_rel_l2": result["parity_rel_l2"],
                         "compile_s": result["compile_s"], "note": "timed in its own process, not interleaved"})
        except Exception as exc:  # noqa: BLE001
            skipped["torch.compile"] = first_line(exc)
    eager_ms = rows[0]["p50_ms"]
    for row in rows:
        row["speedup_vs_eager"] = eager_ms / row["p50_ms"]
        print(f"{row['backend']:32s} p50 {row['p50_ms']:9.2f} ms  x{row['speedup_vs_eager']:.2f}  parity {row['parity_rel_l2']:.2e}")
    machine = machine_description()
    if device.type == "cuda":
        machine.update(gpu=torch.cuda.get_device_name(0), capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                       cuda=torch.version.cuda)
    report = {
        "machine": machine, "device": args.device,
        "note": "" if device.type == "cuda" else "CPU harness check, not a GPU result",
        "command": "python benchmarks/gpu_suite.py " + " ".join(sys.argv[1:]), "model": args.model, "iterations": T,
        "size": args.size, "batch": b, "results": rows, "skipped": skipped,
    }
    if args.build_sweep and not isinstance(sweep, str):
        report["engine_build"] = sweep
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, json.dumps(report, indent=2).encode())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
