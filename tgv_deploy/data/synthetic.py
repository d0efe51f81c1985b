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
        ry, rx = rng.uniform(0.02, 0.12, 2)
        e = _ellipse(yy, xx, cy + rng.normal(0, 0.12), cx + rng.normal(0, 0.12), ry, rx, rng.uniform(0, np.pi))
        image[(e < 1) & inside] = rng.uniform(0.0, 1.0)
    image[rim] = rng.uniform(0.5, 1.0) + 0.1 * _smooth_field(rng, (height, width), 0.05)[rim]
    # fine structures and texture
    image += 0.25 * _vessels(rng, (height, width), int(rng.integers(0, 8))) * inside
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


def _band_field(rng: np.random.Generator, shape: tuple[int, int], low: float, high: float) -> np.ndarray:
    """Unit-std random field keeping spatial frequencies between ``low`` and ``high`` cycles/pixel."""
    h, w = shape
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    radius = np.hypot(fy, fx)
    spectrum = np.fft.fft2(rng.standard_normal(shape)) * np.exp(-((radius - (low + high) / 2) ** 2) / (2 * ((high - low) / 2) ** 2))
    field = np.fft.ifft2(spectrum).real
    return field / (field.std() + 1e-12)


def brain_like_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A folded, brain-like complex64 ``(H, W)`` image with magnitude in [0, 1].

    Tissue classes in a random contrast order (T1-, T2- or PD-like): a folded cortical ribbon
    (level band of a band-pass field), white matter inside it, CSF in sulci and ventricles, a
    thin bright rim, small bright spots; the object fills a random fraction of the field of view.
    """
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    yy, xx = yy / height, xx / width
    cy, cx = rng.uniform(0.42, 0.58, 2)
    ry, rx = rng.uniform(0.18, 0.46), rng.uniform(0.15, 0.42)
    radius = _ellipse(yy, xx, cy, cx, ry, rx, rng.uniform(-0.3, 0.3)) + 0.05 * _smooth_field(rng, (height, width), 0.015)
    inside = radius < 1.0
    wm, gm, csf = rng.permutation([rng.uniform(0.55, 0.9), rng.uniform(0.3, 0.6), rng.uniform(0.05, 0.35)])
    folds = _band_field(rng, (height, width), rng.uniform(0.02, 0.04), rng.uniform(0.06, 0.12))
    depth = np.clip(1.0 - radius, 0, 1)  # 0 at the surface, 1 in the centre
    ribbon = inside & (folds + 2.5 * (depth - rng.uniform(0.25, 0.45)) < rng.uniform(0.3, 0.9))
    image = np.where(inside, wm, 0.0)
    image = np.where(ribbon, gm, image)
    sulci = inside & ribbon & (np.abs(folds) < rng.uniform(0.08, 0.25)) & (depth < 0.5)
    image = np.where(sulci, csf, image)
    for _ in range(rng.integers(1, 4)):  # ventricles
        e = _ellipse(yy, xx, cy + rng.normal(0, 0.05), cx + rng.normal(0, 0.05), ry * rng.uniform(0.1, 0.3), rx * rng.uniform(0.05, 0.15), rng.uniform(0, np.pi))
        image[(e < 1) & inside] = csf
    rim = inside & (radius > rng.uniform(0.88, 0.95))
    image[rim] = rng.uniform(0.4, 1.0)
    image += rng.uniform(0.0, 0.05) * _band_field(rng, (height, width), 0.15, 0.35) * inside  # fine texture
    image += 0.3 * _vessels(rng, (height, width), int(rng.integers(0, 5))) * inside
    for _ in range(rng.integers(0, 15)):  # bright spots that may set the image maximum
        dy, dx = rng.integers(2, height - 2), rng.integers(2, width - 2)
        if inside[dy, dx]:
            image[dy - 1 : dy + 1, dx - 1 : dx + 1] = rng.uniform(0.8, 2.0)
    image = np.clip(image * np.exp(rng.uniform(0.05, 0.3) * _smooth_field(rng, (height, width), 0.01)), 0, None)
    image /= image.max() + 1e-12
    phase = rng.uniform(0.2, 1.5) * _smooth_field(rng, (height, width), 0.01) + rng.normal(0, 0.8) * (xx - 0.5)
    return (image * np.exp(1j * phase)).astype(np.complex64)


def synthetic_image_v2(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Version 2 of the training distribution: half brain-like folded images, half version-1 images."""
    return brain_like_image(rng, height, width) if rng.random() < 0.5 else synthetic_image(rng, height, width)


#: Width (standard deviation, pixels) of the acquisition's point-spread function in version 3, drawn
#: per image: 0 keeps the sharpest edges a digital phantom has, 0.6 is as smooth as thick-slice or
#: T2*-blurred data (benchmarks/README.md, "The noise level").
PSF_WIDTH_RANGE = (0.0, 0.6)


def synthetic_image_v3(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Version 3: the version-2 generator run on a 2H x 2W grid, then "acquired" as an MR scanner does.

    The scanner measures the central ``H x W`` of the object's k-space, not pixel samples of it, and
    its point-spread function is wider than the ideal sinc (partial volume across the slice, T2*
    decay, filters). Version 2 drawn at the matrix size has hard pixel edges whose spectrum reaches
    the edge of k-space with several times the power of real MR images, so there high-frequency
    signal passes for noise at low noise levels (the k-space noise estimate of noise-gain models
    reads the signal instead). Here the object is drawn at ``2H x 2W``, cropped in k-space to
    ``H x W`` and apodised by a Gaussian whose width is drawn from :data:`PSF_WIDTH_RANGE`. Version
    2's sizes in pixels (vessels, dots, texture bands, field cutoffs) come out half as large against
    the field of view, and its finest texture lies outside the kept band: a distribution of its own,
    not version 2 at a higher resolution.
    """
    fine = synthetic_image_v2(rng, 2 * height, 2 * width)
    spectrum = np.fft.fftshift(np.fft.fft2(fine))
    top, left = height // 2 + height % 2, width // 2 + width % 2  # keeps the zero frequency at index (H//2, W//2)
    spectrum = spectrum[top : top + height, left : left + width]
    psf_width = rng.uniform(*PSF_WIDTH_RANGE)
    fy, fx = np.fft.fftshift(np.fft.fftfreq(height))[:, None], np.fft.fftshift(np.fft.fftfreq(width))[None, :]
    spectrum = spectrum * np.exp(-2 * np.pi**2 * psf_width**2 * (fy**2 + fx**2))
    image = np.fft.ifft2(np.fft.ifftshift(spectrum))
    return (image / (np.abs(image).max() + 1e-12)).astype(np.complex64)


GENERATORS = {1: synthetic_image, 2: synthetic_image_v2, 3: synthetic_image_v3}
