"""Training slices and their on-the-fly corruption (undersampling and noise) for MRI and denoising."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from tgv_deploy.coils.maps import estimate_maps
from tgv_deploy.data.coil_sim import simulate_coil_maps
from tgv_deploy.dft import fft2c, ifft2c
from tgv_deploy.data.fastmri import read_fastmri
from tgv_deploy.data.masks import default_center_fraction, make_mask
from tgv_deploy.data.noise import add_image_noise, add_kspace_noise
from tgv_deploy.data.synthetic import GENERATORS
from tgv_deploy.errors import InputError
from tgv_deploy.metrics import BACKGROUND_FRACTION


def _normalise(image: np.ndarray) -> np.ndarray:
    peak = np.abs(image).max()
    return (image / peak if peak > 0 else image).astype(np.complex64)


def masked_background(image: np.ndarray) -> np.ndarray:
    """``image (H, W)`` with exact zeros outside the object, as masked or processed MR images have it:
    where its magnitude, averaged over 5 x 5 pixels, is below the evaluation's background split
    (:data:`tgv_deploy.metrics.BACKGROUND_FRACTION` of its maximum); the averaging keeps dark
    pixels inside the object."""
    magnitude = np.abs(image)
    kernel = np.ones(5) / 5
    smooth = np.apply_along_axis(np.convolve, 1, magnitude, kernel, mode="same")
    smooth = np.apply_along_axis(np.convolve, 0, smooth, kernel, mode="same")
    return np.where(smooth < BACKGROUND_FRACTION * magnitude.max(), 0, image).astype(image.dtype)


class SyntheticSlices:
    """Ground-truth complex images ``(H, W)`` with max magnitude 1, generated from ``(seed, index)``."""

    def __init__(self, height: int, width: int, seed: int, version: int = 2, real_fraction: float = 0.0,
                 masked_fraction: float = 0.0):
        if version not in GENERATORS:
            raise InputError(f"synthetic_version must be one of {sorted(GENERATORS)}, got {version}")
        self.height, self.width, self.seed = height, width, seed
        self.generate = GENERATORS[version]
        self.real_fraction, self.masked_fraction = real_fraction, masked_fraction

    def __call__(self, index: int) -> np.ndarray:
        image = self.generate(np.random.default_rng([self.seed, index]), self.height, self.width)
        # separate streams, so the images themselves do not depend on real_fraction or masked_fraction
        if self.real_fraction and np.random.default_rng([self.seed, index, 1]).random() < self.real_fraction:
            image = np.abs(image).astype(np.complex64)
        if self.masked_fraction and np.random.default_rng([self.seed, index, 2]).random() < self.masked_fraction:
            image = masked_background(image)
        return image


class FileSlices:
    """Fully sampled single-coil fastMRI files: each slice's ``F^H k`` centre-cropped to ``(H, W)``."""

    def __init__(self, directory: str | Path, height: int, width: int):
        files = sorted(Path(directory).glob("*.h5"))
        if not files:
            raise InputError(f"no .h5 files in training data directory {directory}")
        self.images = []
        for path in files:
            volume = read_fastmri(path)
            if volume.multicoil:
                raise InputError(f"{path}: multi-coil training data is not supported yet")
            if volume.mask is not None:
                raise InputError(f"{path}: training needs fully sampled k-space, this file has a mask")
            for kspace in volume.kspace:
                image = ifft2c(kspace)
                h, w = image.shape
                if h < height or w < width:
                    raise InputError(f"{path}: slices are {h}x{w}, smaller than the training size {height}x{width}")
                top, left = (h - height) // 2, (w - width) // 2
                self.images.append(_normalise(image[top : top + height, left : left + width]))

    def __call__(self, index: int) -> np.ndarray:
        return self.images[index % len(self.images)]


@dataclass(frozen=True)
class Corruption:
    """How one training sample is corrupted: fixed values or ranges drawn per sample."""

    task: str
    accelerations: tuple[int, int]
    sigma_range: tuple[float, float]
    mask_types: tuple[str, ...]
    target_noise: tuple[float, float] = (0.0, 0.0)
    #: MRI: share of batches that are multi-coil, and their coil count ~ U{lo..hi} (one per batch).
    multicoil_fraction: float = 0.0
    coils: tuple[int, int] = (8, 8)
    sigma_prior: str = "uniform"  # or "log-uniform" (training.config.DataConfig)
    coil_maps: str = "true"  # or "espirit" (training.config.DataConfig)
    multicoil_center_fraction: tuple[float, float] = (0.0, 0.0)  # (0, 0): fastMRI's pair for R

    def draw_sigma(self, rng: np.random.Generator) -> float:
        if self.sigma_prior == "log-uniform":
            return float(np.exp(rng.uniform(*np.log(self.sigma_range))))
        return float(rng.uniform(*self.sigma_range))

    def batch_coils(self, rng: np.random.Generator) -> int:
        """Coils of the next batch: 1, or a multi-coil count (drawn only when asked for, so
        single-coil configs keep their random streams)."""
        if self.task != "mri" or self.multicoil_fraction <= 0 or rng.random() >= self.multicoil_fraction:
            return 1
        return int(rng.integers(self.coils[0], self.coils[1] + 1))

    def sample(self, image: np.ndarray, rng: np.random.Generator,
               coils: int = 1) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
        """Returns ``(f, mask, target, coil maps)`` in model layout: MRI ``(2, H, W)``, ``(1, 1, W)``,
        ``(2, H, W)``, ``None``; multi-coil MRI (``coils > 1``: simulated smooth maps, normalised)
        ``f`` and maps ``(C, 2, H, W)``; denoising ``(1, H, W)``, ``None``, ``(1, H, W)``, ``None``."""
        sigma = self.draw_sigma(rng)
        if self.task == "denoise":
            target = np.abs(image).astype(np.float32)
            return add_image_noise(target, sigma, rng)[None], None, target[None], None
        if self.target_noise[1] > 0:  # drawn only when asked, so other configs keep their random streams
            level = rng.uniform(*self.target_noise) * np.abs(image).max() / np.sqrt(2.0)
            image = (image + level * (rng.standard_normal(image.shape) + 1j * rng.standard_normal(image.shape))).astype(np.complex64)
        acceleration = int(rng.integers(self.accelerations[0], self.accelerations[1] + 1))
        kind = self.mask_types[int(rng.integers(len(self.mask_types)))]
        centre = default_center_fraction(acceleration)
        if coils > 1 and self.multicoil_center_fraction[1] > 0:  # drawn only when asked, so other configs keep their streams
            centre = float(rng.uniform(*self.multicoil_center_fraction))
        mask = make_mask(kind, centre, acceleration)(image.shape[-1], seed=int(rng.integers(2**31)))
        channels = lambda z, axis=0: np.stack((z.real, z.imag), axis=axis).astype(np.float32)  # noqa: E731
        if coils > 1:
            maps = simulate_coil_maps(rng, coils, *image.shape)
            kspace = add_kspace_noise(fft2c(maps * image[None]), mask, sigma, rng)
            if self.coil_maps == "espirit":  # as the runtime does (tgv_deploy.runtime.multicoil.MultiCoilPipeline's defaults)
                maps = estimate_maps(kspace, mask, method="espirit", outside="extend").maps
            return channels(kspace, 1), mask[None, None], channels(image), channels(maps, 1)
        kspace = add_kspace_noise(fft2c(image), mask, sigma, rng)
        return channels(kspace), mask[None, None], channels(image), None


class Batch(NamedTuple):
    """``f (B, C, H, W)`` (multi-coil ``(B, C, 2, H, W)``), ``mask (B, 1, 1, W) | None``,
    ``target (B, C, H, W)``, ``coil_maps (B, C, 2, H, W) | None``."""

    f: torch.Tensor
    mask: torch.Tensor | None
    target: torch.Tensor
    coil_maps: torch.Tensor | None = None


def make_batch(source, corruption: Corruption, indices: list[int], rng: np.random.Generator, device: str = "cpu",
               coils: int = 1) -> Batch:
    """Stack corrupted samples (all with ``coils`` coils) into one :class:`Batch`."""
    samples = [corruption.sample(source(i), rng, coils) for i in indices]
    f = torch.from_numpy(np.stack([s[0] for s in samples])).to(device)
    masks = [s[1] for s in samples if s[1] is not None]  # MRI samples all have one, denoising none
    mask = torch.from_numpy(np.stack(masks)).to(device) if masks else None
    target = torch.from_numpy(np.stack([s[2] for s in samples])).to(device)
    maps = [s[3] for s in samples if s[3] is not None]
    coil_maps = torch.from_numpy(np.stack(maps)).to(device) if maps else None
    return Batch(f, mask, target, coil_maps)
