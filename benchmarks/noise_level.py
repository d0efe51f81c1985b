"""The k-space noise estimate of noise-aware models (``tgv_deploy.models.noise_level``) against the truth.

For seeded synthetic images (generator versions 2 and 3) and the fully sampled held-out real slices
(``benchmarks/heldout.py``): the estimate on the noise-free, fully sampled k-space of the
peak-normalised image (the signal floor: what the estimate reads when there is no noise); under the
SPEC 4 noise model at sigma 0.005 ... 0.2 with equispaced, random and Gaussian masks at R = 4
and 8, the estimate divided by the true per-component standard deviation (median, 10th and 90th
percentile); and per held-out file the noise per pixel of the normalised zero-filled image at
R = 4, sigma = 0.05 (what the same sigma means on different slices).

Usage: ``python benchmarks/noise_level.py benchmarks/data/*.h5 [--out benchmarks/results/noise_level.json]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from tgv_deploy.data.fastmri import read_fastmri
from tgv_deploy.data.masks import default_center_fraction, make_mask
from tgv_deploy.data.noise import add_kspace_noise, kspace_noise_std
from tgv_deploy.data.synthetic import GENERATORS
from tgv_deploy.dft import fft2c, ifft2c
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.machine import provenance
from tgv_deploy.models.noise_level import kspace_noise_std as estimate_noise_std

SIGMAS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
SEED = 57_000  # neither a training nor a test seed range


def _estimate(kspace: np.ndarray, mask: np.ndarray) -> float:
    f = torch.from_numpy(np.stack((kspace.real, kspace.imag))[None].astype(np.float64))
    return float(estimate_noise_std(f, torch.from_numpy(mask.astype(np.float64)).reshape(1, 1, 1, -1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--synthetic", type=int, default=27)
    parser.add_argument("--out", default="benchmarks/results/noise_level.json")
    args = parser.parse_args()
    real = [(f"{path.name}:{s}", ifft2c(k)) for path in args.files for s, k in enumerate(read_fastmri(path).kspace)]
    sources = {f"synthetic v{version}": [(f"synthetic:{i}", GENERATORS[version](np.random.default_rng([SEED, i]), 128, 128))
                                         for i in range(args.synthetic)] for version in (2, 3)}
    sources["held-out real"] = real
    floors = []
    for source, images in sources.items():
        values = [_estimate(fft2c(image / np.abs(image).max()), np.ones(image.shape[-1], dtype=bool)) for _, image in images]
        floors.append({"source": source, "images": len(images), "median": float(np.median(values)),
                       "p10": float(np.percentile(values, 10)), "p90": float(np.percentile(values, 90))})
    rows = []
    for source, images in sources.items():
        for sigma in SIGMAS:
            ratios = []
            for i, (_, image) in enumerate(images):
                rng = np.random.default_rng([SEED, 1, i])
                acceleration, kind = (4, 8)[i % 2], ("equispaced", "random", "gaussian")[i % 3]
                mask = make_mask(kind, default_center_fraction(acceleration), acceleration)(image.shape[-1], seed=i)
                clean = fft2c(image)
                ratios.append(_estimate(add_kspace_noise(clean, mask, sigma, rng), mask) / kspace_noise_std(clean, mask, sigma))
            rows.append({"source": source, "sigma": sigma, "images": len(images), "median": float(np.median(ratios)),
                         "p10": float(np.percentile(ratios, 10)), "p90": float(np.percentile(ratios, 90))})
            print(f"{source} sigma {sigma}: estimate / truth median {rows[-1]['median']:.2f}", file=sys.stderr, flush=True)
    mask = make_mask("equispaced", default_center_fraction(4), 4)
    per_slice = []
    for name, image in real:
        m = mask(image.shape[-1], seed=0)
        clean = fft2c(image)
        zero_filled_peak = np.abs(ifft2c(clean * m)).max()
        per_slice.append({"slice": name, "image_noise_per_pixel": float(kspace_noise_std(clean, m, 0.05) * np.sqrt(m.mean()) / zero_filled_peak)})
    payload = {"provenance": provenance(), "signal_floor": floors, "estimate_over_truth": rows, "image_noise_at_R4_sigma0.05": per_slice}
    atomic_write_bytes(Path(args.out), (json.dumps(payload, indent=1) + "\n").encode())
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
