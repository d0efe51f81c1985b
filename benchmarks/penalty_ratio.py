"""Where U-TGV's SSIM goes at T = 64: the penalty of the ``E v`` constraint (``penalty_ratio``).

On seeded synthetic test images (the evaluation's seed range; never the held-out slices) at
R = 4, for each noise level: a U-TGV model's own maps solved by ADMM with the ``E v`` constraint
penalised at ``kappa rho`` (``kappa = 1`` is SPEC 2b) at T = 64 and 256, and with ``kappa = 1`` at
T = 1024 (nearly converged: every ``kappa`` has the same minimiser); a U-TV model at T = 64 beside
them. Scores: PSNR, SSIM, and SSIM split into background (target below 2% of its maximum) and
object. The SSIM map is the metric's own (7 x 7 box, sample covariance).

Usage: ``python benchmarks/penalty_ratio.py [--utgv utgv-mri] [--utv utv-mri] [--images 6]``
"""

from __future__ import annotations

import argparse
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
from tgv_deploy.solvers.admm import admm_tgv_channels

RATIOS = (1.0, 4.0, 16.0, 64.0, 256.0)
SIGMAS = (0.02, 0.05, 0.1)


def _scores(target: np.ndarray, x: torch.Tensor) -> np.ndarray:
    image = torch.sqrt(x[0].square().sum(0)).numpy()
    return np.array([psnr(target, image), *ssim_by_region(target, image)])


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utgv", default="utgv-mri")
    parser.add_argument("--utv", default="utv-mri")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--out", default="benchmarks/results/penalty_ratio.json")
    args = parser.parse_args()
    paths = {"U-TGV": str(resolve_model(args.utgv)), "U-TV": str(resolve_model(args.utv))}
    utgv, utv = (load_checkpoint(paths[name]).build().eval() for name in ("U-TGV", "U-TV"))
    if utgv.config.kind != "utgv" or utgv.config.solver != "admm" or utv.config.kind != "utv" or utgv.config.rho_schedule:
        raise SystemExit("--utgv must be an ADMM U-TGV model with one rho (no learned schedule) and --utv a U-TV model")
    images = ground_truth_images([], args.images, (128, 128))
    settings = [(f"kappa {k:g}", k, t) for t in (64, 256) for k in RATIOS] + [("kappa 1", 1.0, 1024)]
    rows = []
    for sigma in SIGMAS:
        totals: dict[tuple[str, int], np.ndarray] = {}
        for case in corrupt(images, 4, sigma):
            f, mask, _ = case.model_inputs()
            x, _ = utv(f, mask)
            key = ("U-TV", utv.config.iterations)
            totals[key] = totals.get(key, 0) + _scores(case.target, x)
            _, maps = utgv(f, mask)
            for label, ratio, iterations in settings:
                x, _ = admm_tgv_channels(f * mask, maps[:, 0], maps[:, 1], mask, iterations, utgv.rho(), utgv.config.alpha,
                                         penalty_ratio=ratio)
                totals[(label, iterations)] = totals.get((label, iterations), 0) + _scores(case.target, x)
        for (label, iterations), total in totals.items():
            mean = total / len(images)
            rows.append({"sigma": sigma, "solver": label, "iterations": iterations, "psnr": float(mean[0]), "ssim": float(mean[1]),
                         "ssim_background": float(mean[2]), "ssim_object": float(mean[3])})
            print(f"sigma {sigma} {label} T={iterations}: {mean[0]:.2f} dB, SSIM {mean[1]:.3f} "
                  f"(background {mean[2]:.3f}, object {mean[3]:.3f})", file=sys.stderr, flush=True)
    payload = {"provenance": provenance(paths), "images": args.images, "acceleration": 4, "background_below": BACKGROUND_FRACTION,
               "rows": rows}
    atomic_write_bytes(Path(args.out), (json.dumps(payload, indent=1) + "\n").encode())
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
