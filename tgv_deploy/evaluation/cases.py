"""Evaluation cases: ground-truth slices and how they are corrupted (undersampled and noisy, or noisy).

Test images come from fully sampled fastMRI files (ground truth ``F^H k``), from already
undersampled fastMRI files with a ``mask`` and a ``reconstruction_esc`` target, or from a seeded
synthetic test set that training never uses (a separate seed range).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tgv_deploy.data.fastmri import read_fastmri
from tgv_deploy.data.masks import default_center_fraction, make_mask
from tgv_deploy.data.noise import add_image_noise, add_kspace_noise
from tgv_deploy.data.synthetic import synthetic_image
from tgv_deploy.dft import fft2c, ifft2c
from tgv_deploy.errors import InputError

TEST_SEED = 990_000  # synthetic test images: far from any training or validation seed


@dataclass
class Case:
    """One test slice: undersampled k-space ``(H, W)`` (multi-coil ``(C, H, W)`` with coil ``maps``
    ``(C, H, W)``), mask ``(W,)``, magnitude target ``(h, w)``."""

    name: str
    kspace: np.ndarray
    mask: np.ndarray | None
    target: np.ndarray
    setting: str
    maps: np.ndarray | None = None

    def model_inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The case as the models take it (float32): k-space ``(1, 2, H, W)`` (multi-coil
        ``(1, C, 2, H, W)``), mask ``(1, 1, 1, W)``, coil maps ``(1, C, 2, H, W)`` or None."""
        if self.mask is None:
            raise ValueError(f"MRI case {self.name} has no mask")
        as_channels = lambda z: torch.from_numpy(np.stack((z.real, z.imag), axis=z.ndim - 2)[None].astype(np.float32))  # noqa: E731
        maps = None if self.maps is None else as_channels(self.maps)
        return as_channels(self.kspace), torch.from_numpy(self.mask.astype(np.float32)).reshape(1, 1, 1, -1), maps


def _crop(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = image.shape
    th, tw = shape
    top, left = (h - th) // 2, (w - tw) // 2
    return image[top : top + th, left : left + tw]


def ground_truth_images(files: list[Path], synthetic: int, size: tuple[int, int],
                        max_slices: int | None = None) -> list[tuple[str, np.ndarray]]:
    """Truths of fully sampled files (the first ``max_slices`` slices of each, all by default) and synthetic images."""
    images = []
    for path in files:
        volume = read_fastmri(path)
        if volume.mask is not None:
            continue  # already undersampled: handled by undersampled_cases
        if volume.multicoil:
            raise InputError(f"{path}: multi-coil evaluation is not supported yet")
        for s, k in enumerate(volume.kspace[:max_slices]):
            image = ifft2c(k)
            images.append((f"{path.name}:{s}", image / np.abs(image).max()))
    for i in range(synthetic):
        images.append((f"synthetic:{i}", synthetic_image(np.random.default_rng([TEST_SEED, i]), *size)))
    return images


def held_out_file_name(stem: str, acceleration: float, sigma: float) -> str:
    """Name of a held-out file undersampled by ``benchmarks/heldout.py --undersample R,SIGMA``
    (``stem`` ``"*"`` gives the glob of all of one setting's files)."""
    return f"{stem}_R{acceleration:g}_sigma{sigma:g}.h5"


def undersampled_cases(files: list[Path]) -> list[Case]:
    cases = []
    for path in files:
        volume = read_fastmri(path)
        if volume.mask is None:
            continue
        if volume.target is None:
            raise InputError(f"{path}: an undersampled file needs a 'reconstruction_esc' target for evaluation")
        for s, k in enumerate(volume.kspace):
            cases.append(Case(f"{path.name}:{s}", k, volume.mask[s], volume.target[s], "file"))
    return cases


def corrupt(images, acceleration: float, sigma: float, seed: int = 0) -> list[Case]:
    cases = []
    mask_fn = make_mask("equispaced", default_center_fraction(acceleration), acceleration)
    for i, (name, image) in enumerate(images):
        rng = np.random.default_rng([seed, i])
        mask = mask_fn(image.shape[-1], seed=int(rng.integers(2**31)))
        k = add_kspace_noise(fft2c(image), mask, sigma, rng)
        cases.append(Case(name, k, mask, np.abs(image).astype(np.float32), f"R={acceleration:g}, sigma={sigma:g}"))
    return cases


def corrupt_multicoil(images, coils: int, acceleration: float, center_fraction: float, sigma: float,
                      seed: int = 0) -> list[Case]:
    """Multi-coil cases from single-coil truths: simulated smooth coil maps
    (:func:`~tgv_deploy.data.coil_sim.simulate_coil_maps`), an equispaced mask with
    ``center_fraction`` calibration lines, noise as in SPEC 4 (one level for all coils, as after
    pre-whitening). The solvers get ESPIRiT maps estimated from the noisy calibration lines (extended
    to unit norm), never the simulated ones; the target is the truth's magnitude."""
    from tgv_deploy.coils.maps import estimate_maps
    from tgv_deploy.data.coil_sim import simulate_coil_maps

    cases = []
    mask_fn = make_mask("equispaced", center_fraction, acceleration)
    for i, (name, image) in enumerate(images):
        rng = np.random.default_rng([seed, coils, i])
        height, width = image.shape
        truth_maps = simulate_coil_maps(rng, coils, height, width)
        mask = mask_fn(width, seed=int(rng.integers(2**31)))
        k = add_kspace_noise(fft2c(truth_maps * image[None]), mask, sigma, rng)
        maps = estimate_maps(k, mask, method="espirit", outside="extend").maps
        setting = f"{coils} coils, R={acceleration:g}, sigma={sigma:g}"
        cases.append(Case(name, k, mask, np.abs(image).astype(np.float32), setting, maps))
    return cases


def corrupt_images(images, sigma: float, seed: int = 0) -> list[Case]:
    """Denoising cases: real images with Gaussian noise (``kspace`` holds the noisy image, no mask)."""
    cases = []
    for i, (name, image) in enumerate(images):
        target = np.abs(image).astype(np.float32)
        noisy = add_image_noise(target, sigma, np.random.default_rng([seed, i]))
        cases.append(Case(name, noisy, None, target, f"denoise, sigma={sigma:g}"))
    return cases


def _pad_target(target: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The baselines score full-size images; a cropped target is zero-padded back (the zero border
    then costs every method alike, and only a centre-cropped fastMRI target is ever smaller)."""
    if target.shape == tuple(shape):
        return target
    padded = np.zeros(shape, dtype=target.dtype)
    h, w = shape
    th, tw = target.shape
    padded[(h - th) // 2 : (h - th) // 2 + th, (w - tw) // 2 : (w - tw) // 2 + tw] = target
    return padded

