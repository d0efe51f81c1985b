"""How well a model's maps are calibrated: its maps times a factor, across noise levels.

Each model's maps (as it predicts them) are multiplied by factors ``0.35 ... 1.4`` and solved with
the model's own ADMM at its default T, on seeded synthetic test images (the evaluation's seed
range, 128 x 128, equispaced masks) at R = 4 and 8 and sigma 0.02 ... 0.15. A calibrated model is
best near factor 1 at every noise level; a model that cannot tell the noise level is best below 1
at low noise and above 1 at high noise. This is how the noise prior and noise-aware models were
motivated (docs/conventions.md, "Models"); synthetic data only, never the held-out slices.

``--images-from v3`` replaces the evaluation's synthetic test images by the training generator's
(``synthetic_image_v3``, MR-like texture) from a seed range of its own: the best factor depends on
the kind of image as well as on R.

With ``--coils N`` the cases are multi-coil (N simulated coils, 8% calibration lines, ESPIRiT maps
from them, as ``evaluate`` makes them) and the factor multiplies the models' multi-coil maps, solved
by the model's coil-splitting ADMM: how the multi-coil map gain was found to depend on R
(benchmarks/README.md, "The multi-coil gain follows the acceleration").

Usage: ``python benchmarks/map_scale.py --model stage4=runs/utgv-mri-admm/model.pt --model utgv-mri
[--coils 8] [--images-from test|v3] [--out benchmarks/results/map_scale.json]`` (``label=checkpoint`` or a bundled name)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from tgv_deploy.data.synthetic import synthetic_image_v3
from tgv_deploy.evaluation.cases import corrupt, corrupt_multicoil, ground_truth_images
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.machine import provenance
from tgv_deploy.metrics import psnr, ssim
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.registry import resolve_model
from tgv_deploy.solvers.admm import admm_tgv_channels, admm_tv_channels
from tgv_deploy.solvers.admm_sense import admm_tgv_sense_channels, admm_tv_sense_channels

FACTORS = (0.35, 0.5, 0.7, 1.0, 1.4)
SIGMAS = (0.02, 0.05, 0.1, 0.15)
ACCELERATIONS = (4, 8)
CENTER_FRACTION = 0.08  # multi-coil cases, as in the multi-coil evaluation
V3_SEED = 58_000  # neither a training nor a test seed range, nor another study's


def v3_images(count: int) -> list[tuple[str, np.ndarray]]:
    """``count`` 128 x 128 slices of the training generator from this study's seed range."""
    return [(f"synthetic-v3:{i}", synthetic_image_v3(np.random.default_rng([V3_SEED, i]), 128, 128)) for i in range(count)]


def _solve(model, f, mask, coil_maps, maps):
    """The model's own ADMM (single- or multi-coil) with the given maps, at its default T; ``f`` is
    a case's k-space, zero where the mask does not sample. Multi-coil cases run at the model's
    multi-coil default T (files recorded before it existed: its one T, 64)."""
    config = model.config
    args = (config.default_iterations(coil_maps is not None), model.rho(), config.alpha)
    if coil_maps is None:
        if config.kind == "utgv":
            return admm_tgv_channels(f, maps[:, 0], maps[:, 1], mask, *args, penalty_ratio=config.penalty_ratio,
                                     rho_factors=model.rho_factors(args[0]))[0]
        return admm_tv_channels(f, maps[:, 0], mask, *args)
    if config.kind == "utgv":
        return admm_tgv_sense_channels(f, coil_maps, mask, maps[:, 0], maps[:, 1], *args, model.rho_coil(),
                                       penalty_ratio=config.penalty_ratio)[0]
    return admm_tv_sense_channels(f, coil_maps, mask, maps[:, 0], *args, model.rho_coil())


@torch.no_grad()
def scores(model, cases) -> dict[float, tuple[float, float]]:
    """Mean (PSNR, SSIM) over ``cases`` per map factor."""
    totals = {factor: np.zeros(2) for factor in FACTORS}
    for case in cases:
        f, mask, coil_maps = case.model_inputs()  # the cases' k-space is already masked (add_kspace_noise)
        _, maps = model(f, mask, coil_maps=coil_maps)
        for factor in FACTORS:
            x = _solve(model, f, mask, coil_maps, factor * maps)
            image = torch.sqrt(x[0].square().sum(0)).numpy()
            totals[factor] += (psnr(case.target, image), ssim(case.target, image))
    return {factor: (float(t[0] / len(cases)), float(t[1] / len(cases))) for factor, t in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="label=checkpoint, or a bundled name (repeatable)")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--coils", type=int, default=1, help="1: single-coil cases; N > 1: N simulated coils")
    parser.add_argument("--images-from", choices=("test", "v3"), default="test",
                        help="the evaluation's synthetic test images, or the training generator's (own seeds)")
    parser.add_argument("--out", help="default benchmarks/results/map_scale.json, multi-coil benchmarks/results/multicoil/map_scale.json")
    args = parser.parse_args()
    out = args.out or ("benchmarks/results/map_scale.json" if args.coils == 1 else "benchmarks/results/multicoil/map_scale.json")
    models = dict(m.split("=", 1) if "=" in m else (m, m) for m in args.model)
    paths = {label: str(resolve_model(path)) for label, path in models.items()}
    if args.images_from == "test":
        images = ground_truth_images([], args.images, (128, 128))
    else:
        images = v3_images(args.images)
    rows = []
    for label, path in paths.items():
        model = load_checkpoint(path).build().eval()
        for sigma in SIGMAS:
            for acceleration in ACCELERATIONS:
                cases = (corrupt(images, acceleration, sigma) if args.coils == 1
                         else corrupt_multicoil(images, args.coils, acceleration, CENTER_FRACTION, sigma))
                result = scores(model, cases)
                best = max(result, key=lambda factor: result[factor][0])
                rows.append({"model": label, "sigma": sigma, "acceleration": acceleration, "best_factor": best,
                             "iterations": model.config.default_iterations(args.coils > 1),
                             "psnr": {str(k): v[0] for k, v in result.items()}, "ssim": {str(k): v[1] for k, v in result.items()}})
                print(f"{label} sigma {sigma} R {acceleration}: best factor {best} "
                      + " ".join(f"{k}: {v[0]:.2f}" for k, v in result.items()), file=sys.stderr, flush=True)
    payload = {"provenance": provenance(paths), "images": args.images, "coils": args.coils, "images_from": args.images_from, "factors": FACTORS, "rows": rows}
    atomic_write_bytes(Path(out), (json.dumps(payload, indent=1) + "\n").encode())
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
