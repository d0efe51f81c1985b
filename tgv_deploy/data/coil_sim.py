"""Smooth synthetic coil sensitivity maps for tests and training (numpy only, no global RNG).

Each coil is modelled as a long straight conductor parallel to the slice normal, placed on a
ring outside the field of view. Its 2D Biot-Savart field is tangential with magnitude ``1/r``;
the receive sensitivity (B1-, ``B_x - i B_y``) is then ``e^{i phi_c} / conj(z - z_c)`` up to a
constant, with ``z = x + i y`` the pixel position and ``z_c`` the conductor's. The maps are
smooth and complex with phase that varies across the image, as real array coils are, and they
are analytic everywhere inside the field of view because every conductor lies outside it.
"""

from __future__ import annotations

import numpy as np


def simulate_coil_maps(
    rng: np.random.Generator,
    coils: int,
    height: int,
    width: int,
    radius: float = 1.6,
    jitter: float = 0.1,
    normalise: bool = True,
) -> np.ndarray:
    """Coil maps ``(coils, height, width)`` complex128.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness (conductor angles, distances and phase offsets).
    coils : int
        Number of coils C, at least 1.
    height, width : int
        Image size H x W (H rows, the readout axis; W columns, phase encode).
    radius : float
        Ring radius in units of half the larger image side (the image spans [-1, 1] along its
        larger side). Conductors are kept at least 5% beyond the farthest pixel (the corners, at
        up to sqrt(2)), so no pixel comes near the ``1/r`` singularity.
    jitter : float
        Relative random perturbation of each conductor's angle (in units of the spacing) and radius.
    normalise : bool
        When true, divide by ``sqrt(sum_c |S_c|^2)`` so the maps satisfy SPEC 1b's normalisation
        everywhere (the form ESPIRiT estimates, and the form the coil-splitting solver needs).

    Returns
    -------
    numpy.ndarray
        ``(C, H, W)`` complex128 maps, smooth in magnitude and phase.
    """
    if coils < 1 or height < 1 or width < 1:
        raise ValueError(f"need coils, height, width >= 1, got {coils}, {height}, {width}")
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    scale = max(height, width) / 2.0
    yy = (np.arange(height) - height // 2)[:, None] / scale
    xx = (np.arange(width) - width // 2)[None, :] / scale
    z = xx + 1j * yy
    angles = 2 * np.pi * (np.arange(coils) + jitter * rng.uniform(-0.5, 0.5, coils)) / coils
    radii = radius * (1 + jitter * rng.uniform(-0.5, 0.5, coils))
    radii = np.maximum(radii, 1.05 * np.abs(z).max())
    offsets = rng.uniform(-np.pi, np.pi, coils)
    centres = radii * np.exp(1j * angles)
    maps = np.exp(1j * offsets)[:, None, None] / np.conj(z[None] - centres[:, None, None])
    # Scale so the nearest-to-centre amplitude is O(1), whatever the radius.
    maps = maps * radii.mean()
    if normalise:
        maps = maps / np.sqrt(np.sum(np.abs(maps) ** 2, axis=0, keepdims=True))
    return maps
