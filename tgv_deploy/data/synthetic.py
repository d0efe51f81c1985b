"""Synthetic MR-like training images: piecewise smooth anatomy, not flat ellipses.

Each image is built from: an elliptical "head" support on a dark background; irregular tissue
regions (thresholded smooth random fields) with intensity ramps; smooth bias fields; fine
structures (thin curved vessels and small dots); band-limited texture; a random smooth complex
phase; random contrast. Everything draws from one ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cutoff: float) -> np.ndarray:
    """Zero-mean, unit-std random field low-pass filtered at ``cutoff`` cycles per pixel."""
    h, w = shape
    noise = rng.standard_normal(shape)
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    spectrum = np.fft.fft2(noise) * np.exp(-(fy**2 + fx**2) / (2 * cutoff**2))
    field = np.fft.ifft2(spectrum).real
    return (field - field.mean()) / (field.std() + 1e-12)


def _ellipse(yy, xx, cy, cx, ry, rx, angle):
    c, s = np.cos(angle), np.sin(angle)
    u = ((xx - cx) * c + (yy - cy) * s) / rx
    v = (-(xx - cx) * s + (yy - cy) * c) / ry
    return u**2 + v**2


def _vessels(rng: np.random.Generator, shape: tuple[int, int], count: int) -> np.ndarray:
    """Thin curved lines (random smooth walks), 1-2 pixels wide, intensities in [-1, 1]."""
    h, w = shape
    out = np.zeros(shape)
    for _ in range(count):
        y, x = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        heading = rng.uniform(0, 2 * np.pi)
        turn = rng.normal(0, 0.08)
        value = rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 1.0)
        width = rng.choice([0, 1])
        for _ in range(int(rng.uniform(0.2, 0.8) * max(h, w))):
            heading += turn + rng.normal(0, 0.05)
            y, x = y + np.sin(heading), x + np.cos(heading)
            iy, ix = int(round(y)), int(round(x))
            if not (1 <= iy < h - 1 and 1 <= ix < w - 1):
                break
            out[iy - width : iy + 1 + width, ix - width : ix + 1 + width] = value
    return out


def synthetic_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One complex64 ``(H, W)`` image with magnitude in [0, 1]."""
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    yy, xx = yy / height, xx / width
    # head-like support with a bright rim (skull/fat) and a dark background
    cy, cx = rng.uniform(0.45, 0.55, 2)
    ry, rx = rng.uniform(0.32, 0.46, 2)
    angle = rng.uniform(-0.4, 0.4)
    boundary_wobble = 0.06 * _smooth_field(rng, (height, width), 0.02)
    radius = _ellipse(yy, xx, cy, cx, ry, rx, angle) + boundary_wobble
    inside = radius < 1.0
    rim = (radius >= 0.82) & inside
    image = np.zeros((height, width))
    image[inside] = rng.uniform(0.3, 0.6)
    # irregular tissue classes: thresholded smooth fields, each with its own ramp
    for _ in range(rng.integers(2, 6)):
        field = _smooth_field(rng, (height, width), rng.uniform(0.015, 0.06))
        region = (field > rng.uniform(-0.3, 1.2)) & inside & ~rim
        ramp = rng.normal(0, 0.25) * (xx - cx) + rng.normal(0, 0.25) * (yy - cy)
        image[region] = rng.uniform(0.05, 1.0) + ramp[region]
    # a few smooth ellipses (ventricles, lesions)
    for _ in range(rng.integers(0, 4)):
        e = _ellipse(yy, xx, cy + rng.normal(0, 0.12), cx + rng.normal(0, 0.12), *rng.uniform(0.02, 0.12, 2), rng.uniform(0, np.pi))
        image[(e < 1) & inside] = rng.uniform(0.0, 1.0)
    image[rim] = rng.uniform(0.5, 1.0) + 0.1 * _smooth_field(rng, (height, width), 0.05)[rim]
    # fine structures and texture
    image += 0.25 * _vessels(rng, (height, width), rng.integers(0, 8)) * inside
    for _ in range(rng.integers(0, 12)):
        dy, dx = rng.integers(2, height - 2), rng.integers(2, width - 2)
        if inside[dy, dx]:
            r = rng.integers(1, 3)
            image[dy - r + 1 : dy + r, dx - r + 1 : dx + r] += rng.uniform(-0.4, 0.4)
    texture = _smooth_field(rng, (height, width), rng.uniform(0.1, 0.3))
    image += rng.uniform(0.0, 0.06) * texture * inside
    # smooth multiplicative bias field and random contrast (gamma)
    bias = np.exp(rng.uniform(0.05, 0.35) * _smooth_field(rng, (height, width), 0.01))
    image = np.clip(image * bias, 0, None)
    image = image ** rng.uniform(0.7, 1.4)
    image /= image.max() + 1e-12
    # smooth phase: low-order field plus a linear term
    phase = rng.uniform(0.3, 2.0) * _smooth_field(rng, (height, width), 0.01) + rng.normal(0, 1.0) * (xx - 0.5)
    return (image * np.exp(1j * phase)).astype(np.complex64)
