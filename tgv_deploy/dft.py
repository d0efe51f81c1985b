"""Constant matrices of the centred orthonormal DFT (numpy only, shared by torch code and exporters).

Convention (fastMRI): ``F x = fftshift(fft(ifftshift(x), norm="ortho"))``.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=32)
def centred_dft_matrix(n: int) -> np.ndarray:
    """Complex128 ``(n, n)`` matrix ``C`` of the centred orthonormal 1D DFT: ``C @ x`` transforms ``x``."""
    eye = np.eye(n)
    return np.fft.fftshift(np.fft.fft(np.fft.ifftshift(eye, axes=0), axis=0, norm="ortho"), axes=0)


@functools.lru_cache(maxsize=32)
def real_dft_block(n: int) -> np.ndarray:
    """Float64 ``(2n, 2n)`` real form ``[[Re C, -Im C], [Im C, Re C]]`` of ``C``.

    Left-multiplying the stacked ``[x_re; x_im]`` by it equals complex ``C @ x``; its transpose
    is the real form of ``C^H``.
    """
    c = centred_dft_matrix(n)
    return np.block([[c.real, -c.imag], [c.imag, c.real]])


def fft2c(image: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2D DFT over the last two axes (numpy, complex)."""
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def ifft2c(kspace: np.ndarray) -> np.ndarray:
    """Inverse of :func:`fft2c`."""
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
