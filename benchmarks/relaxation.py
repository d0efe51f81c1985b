"""ADMM's relaxation alpha (SPEC 2b: fixed or learned in [1, 1.9]) at a U-TGV model's own maps.

On seeded synthetic test images (the evaluation's seed range; never the held-out slices) at R = 4,
for each noise level: a U-TGV model's own maps, penalty and schedule, solved at its T with alpha
from 1 (no relaxation) to SPEC 2b's upper end, and a U-TV model beside them. The rows have
``benchmarks/penalty_ratio.py``'s layout (``tables.py penalty-ratio`` renders them): PSNR, SSIM, and
SSIM over background (target below 2% of its maximum) and object.

Usage: ``python benchmarks/relaxation.py [--utgv utgv-mri] [--utv utv-mri] [--images 6]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

from tgv_deploy.evaluation.cases import corrupt, ground_truth_images
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.machine import provenance
from tgv_deploy.metrics import BACKGROUND_FRACTION, psnr, ssim_by_region
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.registry import resolve_model

ALPHAS = (1.0, 1.5, 1.7, 1.9)
SIGMAS = (0.02, 0.05, 0.1)  # as benchmarks/penalty_ratio.py


def _scores(target: np.ndarray, x: torch.Tensor) -> np.ndarray:
    image = torch.sqrt(x[0].square().sum(0)).numpy()
    return np.array([psnr(target, image), *ssim_by_region(target, image)])


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utgv", default="utgv-mri")
    parser.add_argument("--utv", default="utv-mri")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--out", default="benchmarks/results/relaxation.json")
    args = parser.parse_args()
    paths = {"U-TGV": str(resolve_model(args.utgv)), "U-TV": str(resolve_model(args.utv))}
    utgv, utv = (load_checkpoint(paths[name]).build().eval() for name in ("U-TGV", "U-TV"))
    if utgv.config.kind != "utgv" or utgv.config.solver != "admm" or utv.config.kind != "utv":
        raise SystemExit("--utgv must be an ADMM U-TGV model and --utv a U-TV model")
    trained = utgv.config.alpha
    images = ground_truth_images([], args.images, (128, 128))
    rows = []
    for sigma in SIGMAS:
        totals: dict[tuple[str, int], np.ndarray] = {}
        for case in corrupt(images, 4, sigma):
            f, mask, _ = case.model_inputs()
            key = ("U-TV", utv.config.iterations)
            totals[key] = totals.get(key, 0) + _scores(case.target, utv(f, mask)[0])
            for alpha in ALPHAS:
                utgv.config = dataclasses.replace(utgv.config, alpha=alpha)
                key = (f"alpha {alpha:g}" + (" (trained)" if alpha == trained else ""), utgv.config.iterations)
                totals[key] = totals.get(key, 0) + _scores(case.target, utgv(f, mask)[0])
        for (label, iterations), total in totals.items():
            mean = total / len(images)
            rows.append({"sigma": sigma, "solver": label, "iterations": iterations, "psnr": float(mean[0]), "ssim": float(mean[1]),
                         "ssim_background": float(mean[2]), "ssim_object": float(mean[3])})
            print(f"sigma {sigma} {label} T={iterations}: {mean[0]:.2f} dB, SSIM {mean[1]:.3f} "
                  f"(background {mean[2]:.3f}, object {mean[3]:.3f})", file=sys.stderr, flush=True)
    payload = {"provenance": provenance(paths), "images": args.images, "acceleration": 4, "background_below": BACKGROUND_FRACTION,
               "trained_alpha": trained, "rows": rows}
    atomic_write_bytes(Path(args.out), (json.dumps(payload, indent=1) + "\n").encode())
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
