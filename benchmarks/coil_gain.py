"""The initial multi-coil map gain (``tgv_deploy.models.utgv.DEFAULT_COIL_GAIN``), chosen on synthetic data.

The bundled U-TGV's maps, multiplied by a gain, solved with coil-splitting ADMM at the model's multi-coil default T
on synthetic slices (``synthetic_image_v2``, a seed range of their own, 256 x 256) with 8
simulated coils, ESPIRiT maps from the calibration lines, R = 4 and 8, sigma = 0.05. Writes PSNR
and SSIM per gain; the gain with the best median PSNR over both R starts every model's learned
``log_coil_gain``.

Usage: ``python benchmarks/coil_gain.py [--out benchmarks/results/multicoil/coil_gain.json]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from tgv_deploy.data.synthetic import synthetic_image_v2
from tgv_deploy.evaluation.cases import corrupt_multicoil
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.machine import provenance
from tgv_deploy.metrics import psnr, ssim
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.models.utgv import image_scale
from tgv_deploy.operators.sense import SenseOp
from tgv_deploy.registry import resolve_model
from tgv_deploy.solvers.admm_sense import admm_tgv_sense_channels

GAINS = (0.125, 0.25, 0.5, 1.0)
SEED = 55_000  # neither a training nor a test seed range


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/multicoil/coil_gain.json")
    parser.add_argument("--slices", type=int, default=4)
    args = parser.parse_args()
    model = load_checkpoint(resolve_model("utgv-mri")).build().eval()
    images = [(f"synthetic:{i}", synthetic_image_v2(np.random.default_rng([SEED, i]), 256, 256)) for i in range(args.slices)]
    iterations = model.config.default_iterations(multicoil=True)
    rows = []
    for acceleration in (4, 8):
        for case in corrupt_multicoil(images, 8, acceleration, 0.08, 0.05):
            f, mask, coil_maps = case.model_inputs()
            scale = image_scale(SenseOp(coil_maps, mask).adjoint(f * mask[:, None]))
            with torch.no_grad():
                f_n = f * mask[:, None] / scale.reshape(1, 1, 1, 1, 1)
                maps = model.noise_scaled(model.unet(SenseOp(coil_maps, mask).adjoint(f_n)), f_n, mask)
                for gain in GAINS:
                    x, _ = admm_tgv_sense_channels(f / scale.reshape(1, 1, 1, 1, 1), coil_maps, mask, gain * maps[:, 0],
                                                   gain * maps[:, 1], iterations, model.rho(), model.config.alpha,
                                                   model.rho_coil(), penalty_ratio=model.config.penalty_ratio)
                    image = torch.sqrt(x[0].square().sum(0)).numpy() * float(scale)
                    rows.append({"case": case.name, "acceleration": acceleration, "gain": gain,
                                 "psnr": psnr(case.target, image), "ssim": ssim(case.target, image)})
            print(f"R={acceleration} {case.name}: " + ", ".join(f"{r['gain']:g}: {r['psnr']:.2f}" for r in rows[-len(GAINS):]),
                  file=sys.stderr, flush=True)
    medians = {g: float(np.median([r["psnr"] for r in rows if r["gain"] == g])) for g in GAINS}
    payload = {"provenance": provenance({"utgv-mri": str(resolve_model("utgv-mri"))}), "iterations": iterations, "rows": rows,
               "median_psnr_by_gain": medians, "best_gain": max(medians, key=lambda g: medians[g])}
    atomic_write_bytes(Path(args.out), (json.dumps(payload, indent=1) + "\n").encode())
    print(f"median PSNR by gain {medians}; best {payload['best_gain']}", file=sys.stderr)


if __name__ == "__main__":
    main()
