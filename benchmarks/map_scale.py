"""How well a model's maps are calibrated: its maps times a factor, across noise levels.

Each model's maps (as it predicts them) are multiplied by factors ``0.35 ... 1.4`` and solved with
the model's own ADMM at its default T, on seeded synthetic test images (the evaluation's seed
range, 128 x 128, equispaced masks) at R = 4 and 8 and sigma 0.02 ... 0.15. A calibrated model is
best near factor 1 at every noise level; a model that cannot tell the noise level is best below 1
at low noise and above 1 at high noise. This is how the noise prior and noise-aware models were
motivated (docs/conventions.md, "Models"); synthetic data only, never the held-out slices.

Usage: ``python benchmarks/map_scale.py --model stage4=runs/utgv-mri-admm/model.pt --model utgv-mri
[--out benchmarks/results/map_scale.json]`` (``label=checkpoint`` or a bundled name)
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
from tgv_deploy.metrics import psnr, ssim
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.registry import resolve_model
from tgv_deploy.solvers.admm import admm_tgv_channels, admm_tv_channels

FACTORS = (0.35, 0.5, 0.7, 1.0, 1.4)
SIGMAS = (0.02, 0.05, 0.1, 0.15)
ACCELERATIONS = (4, 8)


@torch.no_grad()
def scores(model, cases) -> dict[float, tuple[float, float]]:
    """Mean (PSNR, SSIM) over ``cases`` per map factor."""
    totals = {factor: np.zeros(2) for factor in FACTORS}
    for case in cases:
        f, mask, _ = case.model_inputs()
        _, maps = model(f, mask)
        for factor in FACTORS:
            if model.config.kind == "utgv":
                x, _ = admm_tgv_channels(f * mask, factor * maps[:, 0], factor * maps[:, 1], mask, model.config.iterations,
                                         model.rho(), model.config.alpha, penalty_ratio=model.config.penalty_ratio)
            else:
                x = admm_tv_channels(f * mask, factor * maps[:, 0], mask, model.config.iterations, model.rho(), model.config.alpha)
            image = torch.sqrt(x[0].square().sum(0)).numpy()
            totals[factor] += (psnr(case.target, image), ssim(case.target, image))
    return {factor: (float(t[0] / len(cases)), float(t[1] / len(cases))) for factor, t in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="label=checkpoint, or a bundled name (repeatable)")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--out", default="benchmarks/results/map_scale.json")
    args = parser.parse_args()
    models = dict(m.split("=", 1) if "=" in m else (m, m) for m in args.model)
    paths = {label: str(resolve_model(path)) for label, path in models.items()}
    images = ground_truth_images([], args.images, (128, 128))
    rows = []
    for label, path in paths.items():
        model = load_checkpoint(path).build().eval()
        for sigma in SIGMAS:
            for acceleration in ACCELERATIONS:
                result = scores(model, corrupt(images, acceleration, sigma))
                best = max(result, key=lambda factor: result[factor][0])
                rows.append({"model": label, "sigma": sigma, "acceleration": acceleration, "best_factor": best,
                             "psnr": {str(k): v[0] for k, v in result.items()}, "ssim": {str(k): v[1] for k, v in result.items()}})
                print(f"{label} sigma {sigma} R {acceleration}: best factor {best} "
                      + " ".join(f"{k}: {v[0]:.2f}" for k, v in result.items()), file=sys.stderr, flush=True)
    payload = {"provenance": provenance(paths), "images": args.images, "factors": FACTORS, "rows": rows}
    atomic_write_bytes(Path(args.out), (json.dumps(payload, indent=1) + "\n").encode())
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
