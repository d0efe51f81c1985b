"""SVD coil compression to C' virtual coils (numpy only).

With the coil data as a matrix ``X (C, N)`` (all samples of the calibration region, or of all
the data) and its SVD ``X = U s V^H``, the compression matrix is ``A = U[:, :C']^H (C', C)``:
virtual coil ``k`` is the ``k``-th principal component across channels. ``A`` has orthonormal
rows, so whitened noise stays white (``A A^H = I``), and the fraction of the signal energy kept is
``sum_{k < C'} s_k^2 / sum_k s_k^2``. Compress after whitening (SPEC 1b) so that the components
rank signal, not correlated noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Compression:
    """A coil compression: ``matrix (C', C)`` complex128 and the energy fraction it keeps.

    ``singular_values (C,)`` are those of the data it was computed from, in decreasing order.
    """

    matrix: np.ndarray
    energy_retained: float
    singular_values: np.ndarray

    @property
    def virtual_coils(self) -> int:
        return int(self.matrix.shape[0])

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Compress ``data (C, ...)`` to ``(C', ...)``, keeping its complex precision."""
        data = np.asarray(data)
        if data.shape[0] != self.matrix.shape[1]:
            raise ValueError(f"data has {data.shape[0]} coils, the compression expects {self.matrix.shape[1]}")
        dtype = np.result_type(data.dtype, np.complex64)
        return np.tensordot(self.matrix.astype(dtype), data, axes=(1, 0)).astype(dtype, copy=False)


def svd_compression(data: np.ndarray, coils: int) -> Compression:
    """Compression matrix to ``coils`` virtual coils from ``data (C, ...)`` (any trailing shape).

    Pass the calibration region (fast, and what scanners do) or all the data. ``coils`` must be in
    ``1..C``; ``coils = C`` is a unitary rotation (lossless).
    """
    data = np.asarray(data)
    if data.ndim < 2:
        raise ValueError(f"data must be (coils, ...), got shape {data.shape}")
    channels = data.shape[0]
    if not 1 <= coils <= channels:
        raise ValueError(f"virtual coils must be in 1..{channels}, got {coils}")
    matrix = data.reshape(channels, -1).astype(np.complex128)
    # Left singular vectors from the C x C Gram matrix: N can be large, C is small.
    gram = matrix @ matrix.conj().T
    eigenvalues, vectors = np.linalg.eigh(gram)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = np.clip(eigenvalues[order], 0.0, None)
    vectors = vectors[:, order]
    total = float(eigenvalues.sum())
    energy = float(eigenvalues[:coils].sum() / total) if total > 0 else 1.0
    return Compression(vectors[:, :coils].conj().T, energy, np.sqrt(eigenvalues))
