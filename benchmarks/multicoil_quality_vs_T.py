"""Quality against T, multi-coil next to single-coil: where each stops gaining from more iterations.

A bundled model's maps (U-TGV by default, ``--model utv-mri`` for U-TV), solved by the model itself (PyTorch) at T = 32 ... 256, on slices of the
training generator with seeds of their own (``synthetic_image_v3``, the seed range of
``map_scale.py --images-from v3``; never the held-out slices), R = 4 and 8, sigma = 0.05: 8 coils
(8% calibration lines, ESPIRiT maps, as ``evaluate`` makes them) and single-coil. The default T was
chosen on the single-coil curve (``quality_speed.py``); coil splitting converges more slowly per
iteration, so the multi-coil curve may keep rising after it. An iteration's cost is the same at
every T, so the time per slice grows in proportion to T (``multicoil_latency.py`` times T = 64).

Usage: ``python benchmarks/multicoil_quality_vs_T.py [--model utgv-mri] [--images 4] [--out benchmarks/results/multicoil/quality_vs_T.json]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from tgv_deploy.evaluation.cases import corrupt, corrupt_multicoil
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.machine import provenance
from tgv_deploy.metrics import psnr, ssim
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.registry import resolve_model

from map_scale import v3_images  # map_scale.py's training-generator test slices (a sibling script)

ITERATIONS = (32, 64, 96, 128, 256)
ACCELERATIONS = (4, 8)
SIGMA = 0.05
COILS, CENTER_FRACTION = 8, 0.08


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="utgv-mri", help="a bundled name or a checkpoint")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--out", default="benchmarks/results/multicoil/quality_vs_T.json")
    args = parser.parse_args()
    path = resolve_model(args.model)
    model = load_checkpoint(path).build().eval()
    images = v3_images(args.images)
    rows = []
    with torch.no_grad():
        for coils in (COILS, 1):
            for acceleration in ACCELERATIONS:
                cases = (corrupt_multicoil(images, coils, acceleration, CENTER_FRACTION, SIGMA) if coils > 1
                         else corrupt(images, acceleration, SIGMA))
                for iterations in ITERATIONS:
                    scores = []
                    for case in cases:
                        f, mask, coil_maps = case.model_inputs()
                        x, _ = model(f, mask, iterations=iterations, coil_maps=coil_maps)
                        image = torch.sqrt(x[0].square().sum(0)).numpy()
                        scores.append((psnr(case.target, image), ssim(case.target, image)))
                    psnr_mean, ssim_mean = np.mean(scores, axis=0)
                    rows.append({"coils": coils, "acceleration": acceleration, "sigma": SIGMA, "T": iterations,
                                 "psnr": float(psnr_mean), "ssim": float(ssim_mean)})
                    print(f"{coils} coil(s), R {acceleration}, T {iterations}: {psnr_mean:.2f} dB / {ssim_mean:.3f}",
                          file=sys.stderr, flush=True)
    payload = {"provenance": provenance({args.model: str(path)}), "images": args.images, "iterations": ITERATIONS, "rows": rows}
    atomic_write_bytes(Path(args.out), (json.dumps(payload, indent=1) + "\n").encode())
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
