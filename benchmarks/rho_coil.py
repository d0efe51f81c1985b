"""The coil-splitting penalty a fresh ADMM MRI model starts from (``tgv_deploy.models.utgv.INITIAL_RHO_COIL``).

The bundled U-TGV and U-TV models, their own maps and learned rho, solved by coil-splitting ADMM
at the model's T with ``rho_coil`` on a grid, on synthetic slices (``synthetic_image_v3``, a seed
range of their own, 192 x 192) with 8 simulated coils, ESPIRiT maps from 8% calibration lines,
R = 4 and 8, sigma = 0.05; and at T = 1024 (nearly converged: every ``rho_coil`` has the same
minimiser) as the ceiling. Writes PSNR and SSIM per case; the grid value with the best mean PSNR
over both models and both R is the start value.

Usage: ``python benchmarks/rho_coil.py [--utgv utgv-mri] [--utv utv-mri] [--slices 4]``
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from tgv_deploy.data.synthetic import synthetic_image_v3
from tgv_deploy.evaluation.cases import corrupt_multicoil
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.machine import provenance
from tgv_deploy.metrics import psnr, ssim
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.registry import resolve_model

GRID = (0.015, 0.03, 0.06, 0.125, 0.25)
CONVERGED = 1024
SEED = 56_000  # neither a training nor a test seed range


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utgv", default="utgv-mri")
    parser.add_argument("--utv", default="utv-mri")
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--out", default="benchmarks/results/multicoil/rho_coil.json")
    args = parser.parse_args()
    paths = {"U-TGV": str(resolve_model(args.utgv)), "U-TV": str(resolve_model(args.utv))}
    models = {name: load_checkpoint(path).build().eval() for name, path in paths.items()}
    if any(m.config.solver != "admm" or m.config.task != "mri" for m in models.values()):
        raise SystemExit("--utgv and --utv must be ADMM MRI models")
    images = [(f"synthetic:{i}", synthetic_image_v3(np.random.default_rng([SEED, i]), 192, 192)) for i in range(args.slices)]
    settings = [(rc, None) for rc in GRID] + [(GRID[-1], CONVERGED)]
    rows = []
    for acceleration in (4, 8):
        for case in corrupt_multicoil(images, 8, acceleration, 0.08, 0.05):
            f, mask, coil_maps = case.model_inputs()
            f = f * mask[:, None]
            for name, model in models.items():
                scores = []
                for rho_coil, iterations in settings:
                    model.log_rho_coil.fill_(math.log(rho_coil))
                    x, _ = model(f, mask, iterations, coil_maps=coil_maps)
                    image = torch.sqrt(x[0].square().sum(0)).numpy()
                    rows.append({"case": case.name, "acceleration": acceleration, "model": name, "rho_coil": rho_coil,
                                 "iterations": iterations or model.config.default_iterations(multicoil=True),
                                 "psnr": psnr(case.target, image), "ssim": ssim(case.target, image)})
                    scores.append(f"{rho_coil:g}{'' if iterations is None else f' T={iterations}'}: {rows[-1]['psnr']:.2f}")
                print(f"R={acceleration} {case.name} {name}: " + ", ".join(scores), file=sys.stderr, flush=True)
    at_t = [r for r in rows if r["iterations"] != CONVERGED]
    means = {rc: float(np.mean([r["psnr"] for r in at_t if r["rho_coil"] == rc])) for rc in GRID}
    ceiling = float(np.mean([r["psnr"] for r in rows if r["iterations"] == CONVERGED]))
    payload = {"provenance": provenance(paths), "coils": 8, "sigma": 0.05, "center_fraction": 0.08, "size": [192, 192],
               "rows": rows, "mean_psnr_by_rho_coil": means, "mean_psnr_converged": ceiling,
               "best_rho_coil": max(means, key=lambda rc: means[rc])}
    atomic_write_bytes(Path(args.out), (json.dumps(payload, indent=1) + "\n").encode())
    print(f"mean PSNR by rho_coil {means}; T = {CONVERGED}: {ceiling:.2f}; best {payload['best_rho_coil']}", file=sys.stderr)


if __name__ == "__main__":
    main()
