"""Fourier symbols of the periodic TGV operators and the constants of ADMM's exact (x, v) step.

Numpy only, shared by the torch solver and the ONNX exporter (SPEC section 2b). Everything is in
the *uncentred* DFT order of ``numpy.fft.fft2(x, norm="ortho")`` applied to the image as stored:
periodic differences commute with circular shifts, so the (x, v) step may use any DFT basis as
long as the data, the mask and these constants use the same one; the plain DFT needs no shifts.

Per frequency, with ``a_i = exp(2 pi i k_i / N_i) - 1`` the symbol of ``D_i+`` (``D_i-`` has
``-conj(a_i)``), the normal equations of SPEC 2b are the 3 x 3 Hermitian system::

    [ m + rho |a|^2     -rho a^H          ] [X]   [ M f + rho G ]          G = F(grad^T w1)
    [ -rho a            rho (I + E^* E)   ] [V] = [ rho R       ]          R = F(-w1 + E^* w2)

(with the ``E v`` constraint penalised at ``kappa rho``, ``penalty_ratio``: ``I + kappa E^* E`` and
``R = F(-w1 + kappa E^* w2)``; everything below holds with ``Q`` so changed)

Eliminating ``V`` through the data-independent 2 x 2 block ``Q = I + E^* E`` (``P = Q^-1``,
``h = P a``, ``s = |a|^2 - a^H P a``) leaves one division by the only data-dependent entry::

    X = (M f + rho G + rho h^H R) / (m + rho s)        V = P R + h X

``s`` is 0 at the zero frequency only (there ``Q = I`` and ``a = 0``), so the mask must sample the
k-space centre; elsewhere ``E^* E`` is positive definite and ``s > 0``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


def difference_symbol(n: int) -> np.ndarray:
    """``(n,)`` complex symbol of the periodic forward difference, uncentred DFT order."""
    return np.exp(2j * np.pi * np.arange(n) / n) - 1.0


@dataclass(frozen=True)
class TGVStepConstants:
    """Per-frequency constants of the exact (x, v) step, each ``(H, W)``, uncentred order.

    ``a0``, ``a1``: symbols of ``D_0+``, ``D_1+``; ``p11``, ``p22`` (real), ``p12`` (complex,
    ``p21 = conj(p12)``): entries of ``P = (I + E^* E)^-1``; ``h0``, ``h1``: ``h = P a``;
    ``s``: the Schur complement per unit rho, ``|a|^2 - a^H P a`` (real, >= 0).
    """

    a0: np.ndarray
    a1: np.ndarray
    p11: np.ndarray
    p22: np.ndarray
    p12: np.ndarray
    h0: np.ndarray
    h1: np.ndarray
    s: np.ndarray


def checked_penalty_ratio(value: object) -> float:
    """``value`` as the ``E v`` constraint's penalty over rho: a positive number, else a one-line ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"penalty_ratio must be a positive number, got {value!r}")
    return float(value)


@functools.lru_cache(maxsize=16)
def tgv_step_constants(height: int, width: int, penalty_ratio: float = 1.0) -> TGVStepConstants:
    """The constants of :class:`TGVStepConstants` for an ``height x width`` image (float64/complex128).

    ``penalty_ratio`` ``kappa``: the ``E v`` constraint's penalty is ``kappa rho`` (1: SPEC 2b's
    single rho); then ``Q = I + kappa E^* E`` and the right-hand side is ``R = F(-w1 + kappa E^* w2)``.
    """
    penalty_ratio = checked_penalty_ratio(penalty_ratio)
    a0 = np.broadcast_to(difference_symbol(height)[:, None], (height, width))
    a1 = np.broadcast_to(difference_symbol(width)[None, :], (height, width))
    b0, b1 = -np.conj(a0), -np.conj(a1)  # symbols of D-
    # E^* E under the symmetric-tensor inner product (xy counted twice):
    # E V = (b0 V1, b1 V2, (b1 V1 + b0 V2) / 2),  E^* w = (conj(b0) w_xx + conj(b1) w_xy, conj(b1) w_yy + conj(b0) w_xy)
    q11 = 1.0 + penalty_ratio * (np.abs(b0) ** 2 + 0.5 * np.abs(b1) ** 2)
    q22 = 1.0 + penalty_ratio * (np.abs(b1) ** 2 + 0.5 * np.abs(b0) ** 2)
    q12 = penalty_ratio * 0.5 * np.conj(b1) * b0
    det = q11 * q22 - np.abs(q12) ** 2
    p11, p22, p12 = q22 / det, q11 / det, -q12 / det
    h0 = p11 * a0 + p12 * a1
    h1 = np.conj(p12) * a0 + p22 * a1
    s = np.abs(a0) ** 2 + np.abs(a1) ** 2 - (np.conj(a0) * h0 + np.conj(a1) * h1).real
    s = np.maximum(s, 0.0)  # round-off at the zero frequency, where it is exactly 0
    s[0, 0] = 0.0
    return TGVStepConstants(a0=a0, a1=a1, p11=p11, p22=p22, p12=p12, h0=h0, h1=h1, s=s)


@functools.lru_cache(maxsize=16)
def tv_step_denominator(height: int, width: int) -> np.ndarray:
    """``|a|^2 = |a0|^2 + |a1|^2`` ``(H, W)``: the TV step is ``X = (M f + rho G) / (m + rho |a|^2)``."""
    c = tgv_step_constants(height, width)
    return np.abs(c.a0) ** 2 + np.abs(c.a1) ** 2
