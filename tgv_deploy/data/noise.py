"""The paper's noise model for k-space and a Gaussian model for denoising, each with its own generator."""

from __future__ import annotations

import numpy as np


def kspace_noise_std(kspace: np.ndarray, mask: np.ndarray, sigma: float) -> float:
    """Per-component noise standard deviation: ``sigma`` times the standard deviation of the real and
    imaginary parts of the sampled k-space values (pooled)."""
    sampled = np.broadcast_to(mask, kspace.shape) > 0
    values = kspace[sampled]
    if values.size == 0:
        return 0.0
    return float(sigma * np.concatenate((values.real, values.imag)).std())


def add_kspace_noise(kspace: np.ndarray, mask: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Complex Gaussian noise at the sampled locations only; returns the masked noisy k-space ``(..., H, W)``."""
    std = kspace_noise_std(kspace, mask, sigma)
    noise = std * (rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape))
    return (np.broadcast_to(mask, kspace.shape) * (kspace + noise)).astype(np.complex64)


def add_image_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Real Gaussian noise of standard deviation ``sigma * max |image|`` (denoising)."""
    return (image + sigma * np.abs(image).max() * rng.standard_normal(image.shape)).astype(np.float32)
