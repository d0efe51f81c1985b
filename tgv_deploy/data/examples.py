"""Deterministic example inputs in contract layout, for parity checks and benchmarks (torch-free)."""

from __future__ import annotations

import numpy as np


def example_inputs(task: str, batch: int, height: int, width: int, seed: int = 0, coils: int = 0,
                   max_lines: int | None = None) -> dict[str, np.ndarray]:
    """A realistic test input: a smooth phantom with edges, its k-space, a line mask and noise;
    ``coils > 0``: multi-coil k-space and simulated ``coil_maps`` ``(B, C, 2, H, W)``; ``max_lines``:
    the mask samples at most that many lines (a PDHG graph's limit), the outermost dropped first."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width] / max(height, width)
    frames = []
    for b in range(batch):
        cy, cx = 0.5 + 0.1 * rng.standard_normal(2)
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < 0.12).astype(float)
        image = 0.2 + 0.6 * disc + 0.3 * xx * (yy > 0.4) + 0.2 * ((yy - cy) ** 2 + (xx - cx) ** 2 < 0.02)
        frames.append(image * np.exp(1j * (1.5 * xx - yy + b)))
    images = np.stack(frames)
    if task == "denoise":
        noisy = np.abs(images) + 0.05 * rng.standard_normal(images.shape)
        return {"noisy": noisy[:, None].astype(np.float32)}
    maps = None
    if coils:
        from tgv_deploy.data.coil_sim import simulate_coil_maps

        maps = np.stack([simulate_coil_maps(rng, coils, height, width) for _ in range(batch)])
        images = maps * images[:, None]
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(images, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    k = k + 0.05 * np.abs(k).std() * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape))
    mask = np.zeros((batch, 1, 1, width), dtype=np.float32)
    mask[..., ::4] = 1
    centre = max(1, round(0.08 * width))
    start = width // 2 - centre // 2  # the block always holds the centre column W // 2 (ADMM needs it)
    mask[..., start : start + centre] = 1
    if max_lines is not None:
        sampled = np.flatnonzero(mask[0, 0, 0])
        outermost_first = sampled[np.argsort(-np.abs(sampled - width // 2), kind="stable")]
        mask[..., outermost_first[: max(0, sampled.size - max_lines)]] = 0
    if maps is not None:
        kspace = np.stack((k.real, k.imag), axis=2) * mask[:, None]
        coil_maps = np.stack((maps.real, maps.imag), axis=2)
        return {"kspace": kspace.astype(np.float32), "coil_maps": coil_maps.astype(np.float32), "mask": mask}
    kspace = np.stack((k.real, k.imag), axis=1) * mask
    return {"kspace": kspace.astype(np.float32), "mask": mask}
