"""Would a per-iteration penalty schedule (SPEC 2b allows one) converge faster than the one learned rho?

A U-TGV model's own maps on seeded synthetic test images (the evaluation's seed range, 128 x 128,
R = 4, sigma = 0.05), solved by SPEC 2b's ADMM at T = 64 with the penalty changing geometrically
from ``rho_start`` to ``rho_end`` over the iterations (``rho_t = rho_start^(1 - t/(T-1))
rho_end^(t/(T-1))``), and with a penalty alternating between two values every ``period``
iterations. When rho changes, the scaled duals are rescaled by ``rho_old / rho_new``, so the
unscaled duals (what ADMM's convergence rests on) carry over. Scores: relative distance of x to the
minimiser (the same problem by ADMM with the ``E v`` penalty 64 rho, 1500 iterations: every penalty
has the same minimiser), PSNR and SSIM of the magnitude. A constant schedule equal to the model's
rho is the learned iteration itself. The schedules run as ``admm_tgv_channels``' ``rho_factors``
(a test pins them to ADMM with unscaled duals).

Usage: ``python benchmarks/rho_schedule.py [--model utgv-mri] [--images 6]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import torch

from tgv_deploy.evaluation.cases import corrupt, ground_truth_images
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.machine import provenance
from tgv_deploy.metrics import psnr, ssim
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.registry import resolve_model
from tgv_deploy.solvers.admm import admm_tgv_channels

T = 64
GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
ALTERNATING = ((0.5, 8.0), (1.0, 16.0))
PERIODS = (1, 4, 8)
REFERENCE_ITERATIONS = 1500
REFERENCE_PENALTY_RATIO = 64.0


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="utgv-mri")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--out", default="benchmarks/results/convergence/rho_schedule.json")
    args = parser.parse_args()
    path = str(resolve_model(args.model))
    model = load_checkpoint(path).build().eval()
    if model.config.kind != "utgv" or model.config.solver != "admm" or model.config.task != "mri" or model.config.penalty_ratio != 1.0 \
            or model.config.rho_schedule:
        raise SystemExit("--model must be an ADMM U-TGV MRI model with SPEC 2b's single constant penalty (penalty_ratio 1, no schedule)")
    rho, alpha = float(model.rho()), model.config.alpha
    problems = []
    for case in corrupt(ground_truth_images([], args.images, (128, 128)), 4, 0.05):
        f, mask, _ = case.model_inputs()
        _, maps = model(f, mask)
        reference, _ = admm_tgv_channels(f * mask, maps[:, 0], maps[:, 1], mask, REFERENCE_ITERATIONS, rho, alpha,
                                         penalty_ratio=REFERENCE_PENALTY_RATIO)
        problems.append((case, f * mask, maps, mask, reference))
    schedules = {"learned rho (constant)": [rho] * T}
    for start, end in itertools.product(GRID, GRID):
        schedules[f"geometric {start:g} -> {end:g}"] = [float(start ** (1 - t / (T - 1)) * end ** (t / (T - 1))) for t in range(T)]
    for (low, high), period in itertools.product(ALTERNATING, PERIODS):
        schedules[f"alternating {low:g} / {high:g}, period {period}"] = [low if (t // period) % 2 == 0 else high for t in range(T)]
    rows = []
    for label, rhos in schedules.items():
        scores = []
        for case, f, maps, mask, reference in problems:
            x, _ = admm_tgv_channels(f, maps[:, 0], maps[:, 1], mask, T, 1.0, alpha, rho_factors=rhos)
            image = torch.sqrt(x[0].square().sum(0)).numpy()
            scores.append((float((x - reference).norm() / reference.norm()), psnr(case.target, image), ssim(case.target, image)))
        distance, mean_psnr, mean_ssim = np.mean(scores, axis=0)
        rows.append({"schedule": label, "rho_start": rhos[0], "rho_end": rhos[-1], "distance": float(distance),
                     "psnr": float(mean_psnr), "ssim": float(mean_ssim)})
        print(f"{label}: distance {distance:.4f}, {mean_psnr:.2f} dB, SSIM {mean_ssim:.4f}", file=sys.stderr, flush=True)
    payload = {"provenance": provenance({"U-TGV": path}), "iterations": T, "alpha": alpha, "learned_rho": rho,
               "images": args.images, "acceleration": 4, "sigma": 0.05, "rows": rows}
    atomic_write_bytes(Path(args.out), (json.dumps(payload, indent=1) + "\n").encode())
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
