"""Quality against milliseconds per slice: learned U-TGV with ADMM (SPEC 2b) and with PDHG (SPEC 2) across T.

Quality: mean PSNR / SSIM of the models (PyTorch, which the exported graphs match to 1e-5) on the
held-out real MR slices (``benchmarks/heldout.py --undersample 4,0.05``) and on seeded synthetic
slices (R = 4, sigma = 0.05), at every T. Speed: each (model, T) exported at ``--size`` (320 x 320
by default) and timed in ONNX Runtime in one interleaved run (:func:`tgv_deploy.bench.bench`),
p50 per slice. Writes ``quality_speed.json`` (with provenance), ``quality_speed.md`` and
``quality_speed.png`` (PSNR against ms per slice, one line per scheme).

Usage: ``python benchmarks/quality_speed.py --model admm=utgv-mri:16,32,64,128 --model pdhg=utgv-mri-pdhg:64,128,256,512``
(``label=checkpoint:T,T,...``; ``--quality-only`` skips the timing). Denoising models are scored
on seeded synthetic noisy images (sigma 0.05) instead (``--quality-only``: their graphs are not
timed at the MRI size).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from tgv_deploy.bench import bench
from tgv_deploy.data.fastmri import read_fastmri
from tgv_deploy.data.synthetic import synthetic_image
from tgv_deploy.evaluation.cases import TEST_SEED, corrupt, corrupt_images, held_out_file_name
from tgv_deploy.export.exporter import ExportConfig, build_graph, write_export
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.machine import provenance
from tgv_deploy.metrics import psnr, ssim
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.registry import resolve_model


def denoise_slices(synthetic: int) -> dict[str, list[tuple[np.ndarray, None, np.ndarray]]]:
    """Denoising models: {"synthetic": [(noisy image (H, W), None, target (H, W)), ...]} (sigma 0.05, 128 x 128)."""
    images = [(f"synthetic:{i}", synthetic_image(np.random.default_rng([TEST_SEED, i]), 128, 128)) for i in range(synthetic)]
    return {"synthetic": [(c.kspace, None, c.target) for c in corrupt_images(images, 0.05)]}


def test_slices(data: Path, synthetic: int) -> dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """{"held-out": [(k-space (H, W), mask (W,), target (H, W)), ...], "synthetic": [...]}."""
    held_out = []
    for path in sorted(data.glob(held_out_file_name("*", 4, 0.05))):  # R = 4 only: R = 8 copies may sit beside them
        volume = read_fastmri(path)
        held_out += [(volume.kspace[s], volume.mask[s], volume.target[s]) for s in range(volume.num_slices)]
    images = [(f"synthetic:{i}", synthetic_image(np.random.default_rng([TEST_SEED, i]), 256, 256)) for i in range(synthetic)]
    return {"held-out": held_out, "synthetic": [(c.kspace, c.mask, c.target) for c in corrupt(images, 4.0, 0.05, seed=1)]}


@torch.no_grad()
def quality(model, slices, iterations: int) -> tuple[float, float]:
    scores = []
    for kspace, mask, target in slices:
        if mask is None:  # denoising: a real noisy image
            x, _ = model(torch.from_numpy(np.asarray(kspace, dtype=np.float32))[None, None], iterations=iterations)
        else:
            f = torch.from_numpy(np.stack((kspace.real, kspace.imag))[None].astype(np.float32))
            x, _ = model(f, torch.from_numpy(mask.astype(np.float32)).reshape(1, 1, 1, -1), iterations=iterations)
        image = torch.sqrt(x[0].square().sum(0)).numpy()
        scores.append((psnr(target, image), ssim(target, image)))
    return float(np.mean([s[0] for s in scores])), float(np.mean([s[1] for s in scores]))


def plot(rows: list[dict], path: Path, size: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label in dict.fromkeys(r["label"] for r in rows):
        mine = [r for r in rows if r["label"] == label and r.get("p50_ms") and "held-out" in r]
        ax.plot([r["p50_ms"] for r in mine], [r["held-out"][0] for r in mine], "o-", label=label)
        for r in mine:
            ax.annotate(f"T={r['T']}", (r["p50_ms"], r["held-out"][0]), textcoords="offset points", xytext=(4, -10), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"ms per slice, ONNX Runtime CPU, {size} x {size} (p50)")
    ax.set_ylabel("PSNR on held-out real MR (dB)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, metavar="LABEL=CHECKPOINT:T,T,...")
    parser.add_argument("--data", type=Path, default=Path("benchmarks/data/undersampled"))
    parser.add_argument("--synthetic", type=int, default=4)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quality-only", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quality_speed"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    specs, rows, files = [], [], {}
    for text in args.model:
        label, rest = text.split("=", 1)
        name, ts = rest.rsplit(":", 1)
        files[label] = str(resolve_model(name))
        specs.append((label, name, [int(t) for t in ts.split(",")]))
    mri_slices = denoising = None
    for label, name, ts in specs:
        ckpt = load_checkpoint(resolve_model(name))
        model = ckpt.build()
        if ckpt.config.task == "denoise":
            slices = denoising = denoising or denoise_slices(args.synthetic + 2)
        else:
            slices = mri_slices = mri_slices or test_slices(args.data, args.synthetic)
        for t in ts:
            scores = {group: quality(model, s, t) for group, s in slices.items()}
            rows.append({"label": label, "model": name, "solver": ckpt.config.solver, "T": t, **scores})
            print(f"{label} T={t}: " + ", ".join(f"{g} {p:.2f} dB / {q:.4f}" for g, (p, q) in scores.items()), file=sys.stderr, flush=True)
    if not args.quality_only:
        with tempfile.TemporaryDirectory() as tmp:
            graphs = []
            for row in rows:
                ckpt = load_checkpoint(resolve_model(row["model"]))
                out = Path(tmp) / f"{row['label']}_T{row['T']}.onnx"
                config = ExportConfig(iterations=row["T"], height=args.size, width=args.size, verify=False)
                write_export(build_graph(ckpt, config), out)
                graphs.append(str(out))
                print(f"exported {out.name}", file=sys.stderr, flush=True)
            timed = bench(graphs, runs=args.runs, warmup=1, progress=lambda m: print(m, file=sys.stderr, flush=True))
            for row, result in zip(rows, timed):
                row["p50_ms"], row["p90_ms"] = result.p50_ms, result.p90_ms
    lines = ["| scheme | T | held-out PSNR / SSIM | synthetic PSNR / SSIM | ms per slice (p50) |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        ms = f"{r['p50_ms']:.0f}" if r.get("p50_ms") else "-"
        held = f"{r['held-out'][0]:.2f} / {r['held-out'][1]:.4f}" if "held-out" in r else "-"
        lines.append(f"| {r['label']} | {r['T']} | {held} | {r['synthetic'][0]:.2f} / {r['synthetic'][1]:.4f} | {ms} |")
    table = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    record = {**provenance(files), "size": args.size, "runs": args.runs,
              "held_out_slices": len(mri_slices["held-out"]) if mri_slices else 0,
              "synthetic_slices": len(mri_slices["synthetic"]) if mri_slices else 0,
              "synthetic_denoising_images": len(denoising["synthetic"]) if denoising else 0, "rows": rows}
    atomic_write_bytes(args.out / "quality_speed.json", json.dumps(record, indent=1).encode())
    atomic_write_bytes(args.out / "quality_speed.md", table.encode())
    if not args.quality_only:
        plot(rows, args.out / "quality_speed.png", args.size)
    print(table)


if __name__ == "__main__":
    main()
