"""Readout oversampling removal (numpy only).

The readout is the row axis H (axis -2 of a ``(..., H, W)`` k-space), as in the rest of the
package. The k-space is centred (SPEC 1): ``F = fftshift o fft(norm="ortho") o ifftshift``, so image
row ``p`` of an ``n``-row image sits at position ``p - n // 2`` from the centre. Removing
oversampling is: centred inverse 1D DFT along the readout, keep the central ``rows`` image rows
(those at positions ``-rows // 2 .. rows - rows // 2 - 1``), centred forward 1D DFT. Both DFTs are
orthonormal, so the k-space of an image that is zero outside the kept rows is returned exactly,
and white noise keeps its per-sample variance.
"""

from __future__ import annotations

import numpy as np


def _centred_fft_1d(x: np.ndarray, axis: int, inverse: bool) -> np.ndarray:
    transform = np.fft.ifft if inverse else np.fft.fft
    return np.fft.fftshift(transform(np.fft.ifftshift(x, axes=axis), axis=axis, norm="ortho"), axes=axis)


def crop_start(size: int, rows: int) -> int:
    """First kept index when cropping the centre ``rows`` of ``size`` in the centred convention."""
    return size // 2 - rows // 2


def remove_readout_oversampling(kspace: np.ndarray, rows: int) -> np.ndarray:
    """Crop the readout of ``kspace (..., H, W)`` to ``rows`` in image space: returns ``(..., rows, W)``.

    ``rows = H // 2`` for the usual 2x oversampling. Unsampled (all-zero) phase-encode lines stay
    zero, because the transform acts along each line. complex64 input stays complex64.
    """
    kspace = np.asarray(kspace)
    if kspace.ndim < 2:
        raise ValueError(f"k-space must be (..., H, W), got shape {kspace.shape}")
    height = kspace.shape[-2]
    if not 1 <= rows <= height:
        raise ValueError(f"cannot crop a readout of {height} samples to {rows}")
    if rows == height:
        return kspace
    dtype = np.result_type(kspace.dtype, np.complex64)
    image = _centred_fft_1d(kspace, axis=-2, inverse=True)
    start = crop_start(height, rows)
    cropped = image[..., start : start + rows, :]
    return _centred_fft_1d(cropped, axis=-2, inverse=False).astype(dtype, copy=False)
