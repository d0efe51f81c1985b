"""Latency per slice against the number of coils, preprocessing included (SPEC 1b), and the `mrd` pipe.

One synthetic slice per coil count (smooth simulated coil maps, R = 4 equispaced with 8%
calibration lines, sigma = 0.05) goes through :class:`tgv_deploy.runtime.multicoil.MultiCoilPipeline`
(ESPIRiT maps, extended) with the bundled U-TGV at its default T (multi-coil data at their own), in PyTorch (the checkpoint) and
in ONNX Runtime (graphs exported here for each coil count; the single-coil graph for C = 1).
Configurations: C = 1, 4, 8, 16 uncompressed, and 16 coils SVD-compressed to 8 and to 4. Runs
are interleaved (one run of every configuration per round), the median per configuration is
reported with its preprocessing / model split, and the ratio to the single-coil ONNX Runtime row.

The `mrd` pipe: ``python -m mrd.tools.phantom -m N -c 8 | tgv-deploy mrd-undersample | tgv-deploy mrd MODEL``,
wall time of the whole pipe over the slices it returns (one repetition, so model load and the
phantom's own generation are included; the per-slice figure is an upper bound).

Usage (from the repository root, on a quiet machine)::

    python benchmarks/multicoil_latency.py [--size 256] [--rounds 5] [--out benchmarks/results/multicoil]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tgv_deploy.data.coil_sim import simulate_coil_maps
from tgv_deploy.data.masks import make_mask
from tgv_deploy.data.multicoil import Geometry, MultiCoilSlice
from tgv_deploy.data.noise import add_kspace_noise
from tgv_deploy.data.synthetic import synthetic_image
from tgv_deploy.dft import fft2c
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.machine import provenance
from tgv_deploy.registry import resolve_model
from tgv_deploy.runtime import Reconstructor, Session
from tgv_deploy.runtime.multicoil import MultiCoilPipeline

MODEL = "utgv-mri"
CONFIGS = [(1, None), (4, None), (8, None), (16, None), (16, 8), (16, 4)]  # (coils in the data, compressed to)


def make_slice(coils: int, size: int) -> MultiCoilSlice:
    rng = np.random.default_rng([7, coils])
    image = synthetic_image(rng, size, size)
    maps = simulate_coil_maps(rng, coils, size, size) if coils > 1 else np.ones((1, size, size))
    mask = make_mask("equispaced", 0.08, 4)(size, seed=3)
    kspace = add_kspace_noise(fft2c(maps * image[None]), mask, 0.05, rng)
    geometry = Geometry((size, size, 1), (size, size, 1), (220.0, 220.0, 5.0), (220.0, 220.0, 5.0))
    return MultiCoilSlice(kspace.astype(np.complex64), mask.astype(np.float32), geometry, source=f"synthetic {coils} coils")


def export_graphs(size: int, work: Path, say) -> dict[int, Path]:
    graphs = {}
    for coils in sorted({c if k is None else k for c, k in CONFIGS}):
        out = work / f"utgv-mri-c{coils}.onnx"
        command = [sys.executable, "-m", "tgv_deploy", "export", MODEL, "--height", str(size), "--width", str(size), "-o", str(out)]
        if coils > 1:
            command += ["--coils", str(coils)]
        say(f"exporting the {coils}-coil graph")
        subprocess.run(command, check=True, capture_output=True)
        graphs[coils] = out
    return graphs


def pipe_time(size: int, model: str, say) -> dict:
    phantom = [sys.executable, "-m", "mrd.tools.phantom", "-m", str(size), "-c", "8"]
    undersample = [sys.executable, "-m", "tgv_deploy", "mrd-undersample", "--acceleration", "4", "--center-fraction", "0.08"]
    recon = [sys.executable, "-m", "tgv_deploy", "mrd", model]
    say(f"timing the mrd pipe with {model}")
    start = time.perf_counter()
    first = subprocess.Popen(phantom, stdout=subprocess.PIPE)
    second = subprocess.Popen(undersample, stdin=first.stdout, stdout=subprocess.PIPE)
    third = subprocess.Popen(recon, stdin=second.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert first.stdout is not None and second.stdout is not None
    first.stdout.close()
    second.stdout.close()
    output, errors = third.communicate()
    seconds = time.perf_counter() - start
    if third.returncode:
        raise RuntimeError(errors.decode()[-2000:])
    import io

    import mrd

    reader = mrd.BinaryMrdReader(io.BytesIO(output))
    reader.read_header()
    images = sum(1 for item in reader.read_data() if isinstance(item, mrd.StreamItem.ImageFloat))
    # the command as a user types it: no interpreter or temporary paths of this machine in the record
    readable = " | ".join(" ".join(c[2:] if c[:2] == [sys.executable, "-m"] else c) for c in (phantom, undersample, recon))
    readable = readable.replace("tgv_deploy ", "tgv-deploy ").replace(model, Path(model).name)
    return {"command": readable, "seconds": seconds, "images": images,
            "seconds_per_image": seconds / max(images, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/multicoil")
    args = parser.parse_args()
    say = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    slices = {c: make_slice(c, args.size) for c in {c for c, _ in CONFIGS}}
    with tempfile.TemporaryDirectory() as tmp:
        graphs = export_graphs(args.size, Path(tmp), say)
        sessions = {("torch", 0): Session(MODEL)}
        for coils, path in graphs.items():
            sessions[("onnxruntime", coils)] = Session(path)
        rows = []
        for backend in ("onnxruntime", "torch"):
            for coils, compressed in CONFIGS:
                key = (backend, 0 if backend == "torch" else (compressed or coils))
                pipeline = MultiCoilPipeline(Reconstructor(sessions[key]), coils=compressed)
                rows.append({"backend": backend, "coils": coils, "compressed_to": compressed, "pipeline": pipeline,
                             "sample": slices[coils], "total": [], "preprocess": [], "model": []})
        for row in rows:  # warm-up
            row["pipeline"].reconstruct(row["sample"])
        for round_index in range(args.rounds):
            say(f"round {round_index + 1}/{args.rounds}")
            for row in rows:
                start = time.perf_counter()
                result = row["pipeline"].reconstruct(row["sample"])
                row["total"].append(time.perf_counter() - start)
                row["preprocess"].append(result.preprocess_s)
                row["model"].append(result.model_s)
                row["iterations"] = result.iterations
        pipe = pipe_time(args.size, str(graphs[8]), say)
    baseline = statistics.median(next(r for r in rows if r["backend"] == "onnxruntime" and r["coils"] == 1)["total"])
    records = [{"backend": r["backend"], "coils": r["coils"], "compressed_to": r["compressed_to"], "iterations": r["iterations"],
                "median_ms": 1000 * statistics.median(r["total"]), "preprocess_ms": 1000 * statistics.median(r["preprocess"]),
                "model_ms": 1000 * statistics.median(r["model"]), "ratio_to_single_coil_ort": statistics.median(r["total"]) / baseline,
                "runs_ms": [1000 * t for t in r["total"]]} for r in rows]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"provenance": provenance({MODEL: str(resolve_model(MODEL))}), "size": args.size, "rounds": args.rounds,
               "rows": records,
               "mrd_pipe": {**pipe, "model": "utgv-mri exported for 8 coils (ONNX Runtime)"}}
    atomic_write_bytes(out / "latency.json", (json.dumps(payload, indent=1) + "\n").encode())
    for record in records:
        say(f"{record['backend']:12s} C={record['coils']:2d} -> {record['compressed_to'] or '-'}: {record['median_ms']:.0f} ms "
            f"(preprocessing {record['preprocess_ms']:.0f} ms), x{record['ratio_to_single_coil_ort']:.2f}")
    say(f"mrd pipe: {pipe['images']} images in {pipe['seconds']:.1f} s")


if __name__ == "__main__":
    main()
