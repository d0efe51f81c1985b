"""Noise pre-whitening of receive channels from noise scans (numpy only).

With noise samples ``n (C, N)`` the channel covariance is ``Psi = n n^H / N`` (noise scans have
zero mean, so no mean is removed: a DC offset in them is a receiver fault that whitening must not
hide). With the lower Cholesky factor ``Psi = L L^H`` the pre-whitening matrix is ``W = L^{-1}``:
``W Psi W^H = I``, so whitened noise is uncorrelated with unit variance per channel and the
least-squares data term of SPEC 1 becomes the maximum-likelihood one.

Not applied: the usual rescaling by the ratio of noise-scan and imaging dwell times (receiver
bandwidths). It multiplies ``W`` by one scalar, so it changes the noise level seen by the
reconstruction (and so the best regularisation weight) but not the channel decorrelation; the
package normalises each image's intensity before the network anyway (SPEC 2b, "Scale").
"""

from __future__ import annotations

import numpy as np


def noise_covariance(noise: np.ndarray) -> np.ndarray:
    """Channel covariance ``(C, C)`` complex128 of noise samples ``noise (C, N)`` (or ``(C, ...)``).

    ``Psi[i, j] = mean_n noise[i, n] conj(noise[j, n])``; Hermitian positive semi-definite.
    """
    noise = np.asarray(noise)
    if noise.ndim < 2:
        raise ValueError(f"noise must be (coils, samples), got shape {noise.shape}")
    samples = noise.reshape(noise.shape[0], -1).astype(np.complex128)
    if samples.shape[1] < samples.shape[0]:
        raise ValueError(
            f"need at least as many noise samples as coils, got {samples.shape[1]} for {samples.shape[0]} coils"
        )
    return samples @ samples.conj().T / samples.shape[1]


def whitening_matrix(covariance: np.ndarray) -> np.ndarray:
    """Pre-whitening matrix ``W = L^{-1}`` ``(C, C)`` complex128 for ``covariance = L L^H``.

    ``W`` is lower triangular, so whitened channel c mixes only channels 0..c (channel order is
    kept, channel 0 is a scaled copy of itself).
    """
    covariance = np.asarray(covariance, dtype=np.complex128)
    if covariance.ndim != 2 or covariance.shape[0] != covariance.shape[1]:
        raise ValueError(f"covariance must be square (C, C), got shape {covariance.shape}")
    try:
        lower = np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:
        raise ValueError("noise covariance is not positive definite (a dead or duplicated channel?)") from None
    identity = np.eye(covariance.shape[0], dtype=np.complex128)
    # Triangular solve via the generic solver: C is small (<= 64), and numpy has no trsm.
    return np.linalg.solve(lower, identity)


def whiten(data: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply ``matrix (C', C)`` over the coil axis of ``data (C, ...)``: returns ``(C', ...)``.

    The result keeps ``data``'s complex precision (complex64 stays complex64).
    """
    data = np.asarray(data)
    if data.shape[0] != matrix.shape[1]:
        raise ValueError(f"data has {data.shape[0]} coils, matrix expects {matrix.shape[1]}")
    out = np.tensordot(matrix.astype(np.result_type(data.dtype, np.complex64)), data, axes=(1, 0))
    return out.astype(np.result_type(data.dtype, np.complex64), copy=False)
