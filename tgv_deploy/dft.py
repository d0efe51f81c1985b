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


def real_form(matrix: np.ndarray) -> np.ndarray:
    """Real form ``[[Re A, -Im A], [Im A, Re A]]`` of complex ``A (..., m, n)``: ``(..., 2m, 2n)``.

    Left-multiplying the stacked ``[x_re; x_im]`` by it equals complex ``A @ x``; its transpose
    (over the last two axes) is the real form of ``A^H``.
    """
    return np.block([[matrix.real, -matrix.imag], [matrix.imag, matrix.real]])


@functools.lru_cache(maxsize=32)
def real_dft_block(n: int) -> np.ndarray:
    """Float64 ``(2n, 2n)`` real form of the centred DFT matrix ``C`` (see :func:`real_form`)."""
    return real_form(centred_dft_matrix(n))


def fft2c(image: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2D DFT over the last two axes (numpy, complex)."""
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def ifft2c(kspace: np.ndarray) -> np.ndarray:
    """Inverse of :func:`fft2c`."""
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def dft_factors(n: int) -> tuple[int, int] | None:
    """``(n1, n2)`` with ``n = n1 * n2``, ``n1`` even and both at least 4, ``n1`` nearest ``sqrt(n)``;
    ``None`` when there is none (odd sizes, primes, twice a prime): those keep the dense DFT."""
    candidates = [(abs(n1 - n**0.5), n1) for n1 in range(4, n // 4 + 1, 2) if n % n1 == 0]
    if not candidates:
        return None
    n1 = min(candidates)[1]
    return n1, n // n1


@functools.lru_cache(maxsize=32)
def factorised_dft(n: int, n1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-stage (Cooley-Tukey) form of :func:`centred_dft_matrix` for ``n = n1 * n2``, ``n1`` even.

    With the input reshaped to ``(n1, n2)`` (row-major, so no reordering), stage one is one
    ``(n1, n1)`` matrix ``a`` applied along the first axis, stage two one ``(n2, n2)`` matrix
    ``m[k1]`` per row ``k1`` along the second; the twiddle factors live inside ``m``, so neither
    stage needs an element-wise multiply. The result ``z[k1, k2] = (C x)[order[k1 * n2 + k2]]``.
    The centring folds in because ``n1`` is even: ifftshift moves the input by ``n / 2``, a whole
    number of ``n2``-blocks, which only reorders the columns of ``a``.

    Returns ``a (n1, n1)``, ``m (n1, n2, n2)`` (complex128) and ``order (n,)`` (int64).
    """
    if n % n1 or n1 % 2:
        raise ValueError(f"need an even n1 dividing n, got n={n}, n1={n1}")
    n2 = n // n1
    k1 = np.arange(n1)
    fft_index_1 = (k1 + n1 // 2) % n1  # ifftshift: image row block i is FFT input block (i + n1/2) mod n1
    a = np.exp(-2j * np.pi * np.outer(k1, fft_index_1) / n1)
    j2 = np.arange(n2)
    m = np.exp(-2j * np.pi * (k1[:, None, None] * j2[None, None, :] / n + j2[None, :, None] * j2[None, None, :] / n2)) / np.sqrt(n)
    fft_index = k1[:, None] + n1 * j2[None, :]  # z[k1, k2] holds FFT output k1 + n1 k2 ...
    order = ((fft_index + n // 2) % n).reshape(-1)  # ... which fftshift puts at this centred index
    return a, m, order


@functools.lru_cache(maxsize=32)
def factorised_plain_dft(n: int, n1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-stage (Cooley-Tukey) form of the plain orthonormal DFT ``exp(-2 pi i k j / n) / sqrt(n)``.

    As :func:`factorised_dft`, without the centring: the input reshaped to ``(n1, n2)`` (row-major)
    gets ``a (n1, n1)`` along the first axis, then ``m[k1] (n2, n2)`` along the second per row
    ``k1`` (twiddles inside ``m``), and ``z[k1, k2] = (F x)[order[k1 * n2 + k2]]``. Where the
    frequency order does not matter (ADMM's per-frequency step) the output is used as it comes.
    """
    if n % n1:
        raise ValueError(f"need n1 dividing n, got n={n}, n1={n1}")
    n2 = n // n1
    k1 = np.arange(n1)
    a = np.exp(-2j * np.pi * np.outer(k1, k1) / n1)
    j2 = np.arange(n2)
    m = np.exp(-2j * np.pi * (k1[:, None, None] * j2[None, None, :] / n + j2[None, :, None] * j2[None, None, :] / n2)) / np.sqrt(n)
    order = (k1[:, None] + n1 * j2[None, :]).reshape(-1)
    return a, m, order
