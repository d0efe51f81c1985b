"""Image-quality metrics on magnitude images (SPEC section 4), numpy only.

PSNR uses ``data_range = target.max()`` (fastMRI). SSIM follows scikit-image's
``structural_similarity`` defaults used by fastMRI: 7x7 uniform window, K1 = 0.01, K2 = 0.03,
sample covariance, mean over the pixels whose window lies inside the image.
"""

from __future__ import annotations

import numpy as np


def _check_pair(target: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    target = np.abs(np.asarray(target)).astype(np.float64)
    estimate = np.abs(np.asarray(estimate)).astype(np.float64)
    if target.shape != estimate.shape or target.ndim != 2:
        raise ValueError(f"metrics need two (H, W) images of one shape, got {target.shape} and {estimate.shape}")
    return target, estimate


def psnr(target: np.ndarray, estimate: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB of magnitude images ``(H, W)``."""
    target, estimate = _check_pair(target, estimate)
    data_range = float(target.max()) if data_range is None else float(data_range)
    mse = float(np.mean((target - estimate) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


def _box_mean(image: np.ndarray, size: int) -> np.ndarray:
    """Mean over every ``size x size`` window lying inside ``image`` (valid mode)."""
    padded = np.pad(np.cumsum(np.cumsum(image, axis=0), axis=1), ((1, 0), (1, 0)))
    total = padded[size:, size:] - padded[:-size, size:] - padded[size:, :-size] + padded[:-size, :-size]
    return total / size**2


def ssim(
    target: np.ndarray,
    estimate: np.ndarray,
    data_range: float | None = None,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
) -> float:
    """Structural similarity of magnitude images ``(H, W)`` (scikit-image conventions)."""
    return float(ssim_map(target, estimate, data_range, win_size, k1, k2).mean())


def ssim_map(
    target: np.ndarray,
    estimate: np.ndarray,
    data_range: float | None = None,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
) -> np.ndarray:
    """The local SSIM of every window inside the image, ``(H - win_size + 1, W - win_size + 1)``:
    entry ``(i, j)`` is the window centred on pixel ``(i + win_size // 2, j + win_size // 2)``;
    :func:`ssim` is its mean."""
    target, estimate = _check_pair(target, estimate)
    if min(target.shape) < win_size:
        raise ValueError(f"SSIM needs images of at least {win_size}x{win_size}, got {target.shape}")
    data_range = float(target.max()) if data_range is None else float(data_range)
    n = win_size**2
    cov_norm = n / (n - 1)
    ux, uy = _box_mean(target, win_size), _box_mean(estimate, win_size)
    uxx, uyy = _box_mean(target * target, win_size), _box_mean(estimate * estimate, win_size)
    uxy = _box_mean(target * estimate, win_size)
    vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))


#: Where a target is below this fraction of its maximum, its windows count as background.
BACKGROUND_FRACTION = 0.02


def ssim_by_region(target: np.ndarray, estimate: np.ndarray, win_size: int = 7,
                   background_below: float = BACKGROUND_FRACTION) -> tuple[float, float, float]:
    """SSIM and its means over the windows centred on background pixels (target below
    ``background_below`` of its maximum) and on the rest, the object. Background windows of a
    clean target reward a flat estimate; the object's, its structure (why a reconstruction's SSIM moves)."""
    local = ssim_map(target, estimate, win_size=win_size)
    margin = win_size // 2
    background = (np.asarray(target) < background_below * np.max(target))[margin:margin + local.shape[0], margin:margin + local.shape[1]]
    return float(local.mean()), float(local[background].mean()), float(local[~background].mean())


METRICS = {"psnr": psnr, "ssim": ssim}
