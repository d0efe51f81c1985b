"""Coil sensitivity maps from the fully sampled k-space centre: ESPIRiT and Walsh (numpy only).

Conventions (SPEC 1, 1b): coil k-space ``(C, H, W)`` is centred (``F = fftshift o fft2(norm="ortho")
o ifftshift``), H is the readout (rows), W the phase encode (columns), and a line mask is ``(W,)``.
Maps ``S (C, H, W)`` are normalised so that ``sum_c |S_c|^2 = 1`` where there is signal, so the
coil-combined image ``sum_c conj(S_c) x_c`` has the magnitude of the root-sum-of-squares image.

ESPIRiT (Uecker et al., MRM 71:990, 2014), as implemented here:

1. Calibration matrix ``A``: one row per ``k x k`` window of the calibration region, holding that
   window's samples of every coil (``C k^2`` columns).
2. Its right singular vectors with singular value above ``threshold * s_max`` span the signal
   subspace; ``P = V V^H`` projects every window onto it.
3. Averaging ``w = w P`` over the ``k^2`` positions a sample takes inside a window gives one
   k-space convolution per coil pair, ``y_i[q] = sum_j sum_d K_ij[d] y_j[q + d]``; in image space it is
   the per-pixel ``C x C`` matrix ``G(r) = sum_d K[d] e^{-2 pi i d.r / N}`` (Hermitian, eigenvalues in
   [0, 1]). Coil images ``x_c = S_c x`` satisfy ``G S = S``: the maps are the eigenvectors of
   eigenvalue 1. ``G`` is a trigonometric polynomial of degree ``k - 1``, evaluated here with two
   small separable DFT matrix products instead of ``C^2`` full-size FFTs.
4. The top eigenvector per pixel comes from a vectorised power iteration started from one
   constant vector (the virtual body coil), so its phase is continuous across the image; the
   Rayleigh quotient is the eigenvalue. Pixels whose eigenvalue is below ``crop`` are outside the
   object (ESPIRiT's eigenvalue crop).

Outside the object there are two choices (SPEC 1b): ``"crop"`` sets the maps to 0 there;
``"extend"`` keeps the unit-norm eigenvector everywhere, so ``sum_c |S_c|^2 = 1`` on the whole image
(what a coil-splitting ADMM needs for its closed-form steps). In both, the maps have unit norm at
every pixel they do not zero.

Phase: eigenvectors are defined up to a phase per pixel. ``phase="virtual"`` (default) makes the
virtual body coil ``w^H S`` real and positive, with ``w`` the principal component of the
calibration data across coils; since that virtual coil sees the whole object with a smooth phase,
the combined image's phase is smooth. ``phase="first"`` references coil 0 instead (as sigpy's
``EspiritCalib`` and BART do); the combined image then carries coil 0's phase, which is noisy
where coil 0 sees little.

Walsh adaptive combine (Walsh et al., MRM 43:682, 2000) is the cheaper option: the maps are the top
eigenvectors of the local coil covariance of low-resolution coil images (the calibration region,
tapered, zero-filled), averaged over a square window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from tgv_deploy.dft import ifft2c

Outside = Literal["crop", "extend"]
PhaseReference = Literal["virtual", "first"]
MapMethod = Literal["espirit", "walsh"]
OUTSIDE_CHOICES: tuple[str, ...] = ("crop", "extend")
PHASE_CHOICES: tuple[str, ...] = ("virtual", "first")
MAP_METHODS: tuple[str, ...] = ("espirit", "walsh")
#: How far above 1 ``sum_c |S_c|^2`` may be (float32 round-off of unit-norm maps) before maps are refused
MAP_NORM_TOLERANCE = 1e-3
ESPIRIT_KERNEL = 6
#: The narrowest calibration region (lines) ESPIRiT estimates maps from: below it the subspace says nothing.
MIN_CALIBRATION_LINES = 3


@dataclass(frozen=True)
class CoilMaps:
    """Estimated maps ``maps (C, H, W)`` complex64 with their per-pixel confidence.

    ``weight (H, W)`` float32 is ESPIRiT's top eigenvalue (about 1 on the object), or for Walsh the
    local energy of the low-resolution coil images over its maximum; ``support (H, W)`` bool marks the
    pixels where the maps are not zeroed (all of them for ``outside="extend"``).
    """

    maps: np.ndarray
    weight: np.ndarray
    support: np.ndarray
    method: str
    outside: str


def centre_lines(mask: np.ndarray) -> tuple[int, int]:
    """``(start, stop)`` of the contiguous run of sampled lines of ``mask (W,)`` holding line ``W // 2``.

    These are the autocalibration (ACS) lines of a fastMRI-style mask. Raises ``ValueError`` when
    the centre line is not sampled.
    """
    sampled = np.asarray(mask).reshape(-1) != 0
    width = sampled.size
    centre = width // 2
    if width == 0 or not sampled[centre]:
        raise ValueError("the k-space centre line is not sampled: no calibration region for coil maps")
    start, stop = centre, centre + 1
    while start > 0 and sampled[start - 1]:
        start -= 1
    while stop < width and sampled[stop]:
        stop += 1
    return start, stop


def calibration_region(
    kspace: np.ndarray, mask: np.ndarray | None = None, rows: int | None = 64
) -> tuple[np.ndarray, tuple[int, int]]:
    """Fully sampled centre of ``kspace (C, H, W)``: returns ``calib (C, h, w)`` and its row/column start.

    Columns: the ACS run of :func:`centre_lines` (``mask`` defaults to the lines holding any
    non-zero sample). Rows: the central ``min(H, rows)`` readout samples (``rows=None``: all of
    them); the whole readout is measured, but beyond a few dozen samples it only slows the SVD.
    """
    kspace = np.asarray(kspace)
    if kspace.ndim != 3:
        raise ValueError(f"k-space must be (C, H, W), got shape {kspace.shape}")
    _, height, width = kspace.shape
    if mask is None:
        mask = np.any(kspace != 0, axis=(0, 1))
    mask = np.asarray(mask).reshape(-1)
    if mask.size != width:
        raise ValueError(f"mask has {mask.size} lines, k-space has {width}")
    start, stop = centre_lines(mask)
    keep = height if rows is None else min(height, rows)
    row_start = height // 2 - keep // 2
    return kspace[:, row_start : row_start + keep, start:stop], (row_start, start)


def _check_choices(outside: str, phase: str) -> None:
    if outside not in OUTSIDE_CHOICES:
        raise ValueError(f"outside must be one of {OUTSIDE_CHOICES}, got {outside!r}")
    if phase not in PHASE_CHOICES:
        raise ValueError(f"phase must be one of {PHASE_CHOICES}, got {phase!r}")


def _virtual_coil(calib: np.ndarray) -> np.ndarray:
    """Principal component ``w (C,)`` of the calibration samples across coils (unit norm)."""
    samples = calib.reshape(calib.shape[0], -1).astype(np.complex128)
    _, vectors = np.linalg.eigh(samples @ samples.conj().T)
    return vectors[:, -1]


def _reference_phase(maps: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    """Rotate ``maps (N, C)`` per pixel so that ``reference^H S`` (or coil 0) is real and positive."""
    combined = maps[:, 0] if reference is None else maps @ reference.conj()
    magnitude = np.abs(combined)
    rotation = np.where(magnitude > 0, combined.conj() / np.where(magnitude > 0, magnitude, 1), 1)
    return maps * rotation[:, None]


#: ESPIRiT's power iteration drops a pixel once one step moves its unit vector by less than this
#: (max component; an absolute level for the complex64 matrices both callers pass): about ten
#: float32 roundings, so the maps stay those of the full count to their complex64 storage.
POWER_ITERATION_TOLERANCE = 1e-6

#: Iterations every pixel runs before any is checked: by then most pixels on the object have met the
#: tolerance.
_FULL_ITERATIONS = 8


def _power_step(matrices: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """One normalised power step: ``matrices (N, C, C)``, ``vectors (N, C, 1)``."""
    vectors = matrices @ vectors
    norm = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norm > 0, norm, 1)


def _top_eigenvectors(matrices: np.ndarray, start: np.ndarray, iterations: int,
                      tolerance: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Power iteration for Hermitian PSD ``matrices (N, C, C)`` from ``start (C,)``.

    Returns unit vectors ``(N, C)`` and Rayleigh quotients ``(N,)``. One start for all pixels keeps
    the vectors' phase continuous where the matrices vary smoothly. With ``tolerance > 0``, after
    ``_FULL_ITERATIONS`` the iteration narrows to the pixels still moving whenever fewer than half
    of those it runs moved by ``tolerance`` or more in the last step (one copy each time): a
    dropped pixel keeps the vector of its last step, whose change was below ``tolerance``; the
    others go on to ``iterations``. (As for the full count, a pixel whose top eigenvector is nearly
    orthogonal to ``start`` can look settled before it is; the shared start is the virtual coil.)
    """
    vectors = np.broadcast_to(start, matrices.shape[:2]).astype(matrices.dtype)[..., None]
    full = iterations if tolerance <= 0 else min(iterations, _FULL_ITERATIONS)
    for _ in range(full):
        vectors = _power_step(matrices, vectors)
    active: np.ndarray | None = None  # None: every pixel
    subset = matrices
    for _ in range(iterations - full):
        current = vectors if active is None else vectors[active]
        moved = _power_step(subset, current)
        going = np.abs(moved - current).max(axis=(1, 2)) >= tolerance
        if active is None:
            vectors = moved
        else:
            vectors[active] = moved
        if not going.any():
            break
        if going.mean() < 0.5:
            active = np.flatnonzero(going) if active is None else active[going]
            subset = subset[going]
    vectors = vectors[..., 0]
    eigenvalues = np.einsum("nc,nc->n", vectors.conj(), (matrices @ vectors[..., None])[..., 0]).real
    return vectors, eigenvalues


def _finish(vectors: np.ndarray, weight: np.ndarray, support: np.ndarray, shape: tuple[int, int],
            reference: np.ndarray | None, method: str, outside: str) -> CoilMaps:
    coils = vectors.shape[1]
    vectors = _reference_phase(vectors, reference)
    if outside == "crop":
        vectors = vectors * support.reshape(-1, 1)
    else:
        support = np.ones_like(support)
    maps = np.ascontiguousarray(vectors.T.reshape(coils, *shape)).astype(np.complex64)
    return CoilMaps(maps, weight.reshape(shape).astype(np.float32), support.reshape(shape), method, outside)


def espirit_kernel(calib: np.ndarray, kernel: int = 6, threshold: float = 0.02) -> np.ndarray:
    """ESPIRiT's k-space operator ``K (C, C, 2k-1, 2k-1)`` complex128 from ``calib (C, h, w)``.

    ``K[i, j, k-1+d0, k-1+d1]`` is the weight of ``y_j[q + d]`` in the projection's estimate of
    ``y_i[q]`` (module docstring, step 3).
    """
    calib = np.asarray(calib, dtype=np.complex128)
    coils, height, width = calib.shape
    if kernel < 1 or height < kernel or width < kernel:
        raise ValueError(f"calibration region {height} x {width} is smaller than the {kernel} x {kernel} kernel")
    windows = np.lib.stride_tricks.sliding_window_view(calib, (kernel, kernel), axis=(1, 2))
    matrix = windows.transpose(1, 2, 0, 3, 4).reshape(-1, coils * kernel * kernel)
    # Right singular vectors from the Gram matrix (C k^2 columns, usually far fewer than rows).
    eigenvalues, vectors = np.linalg.eigh(matrix.conj().T @ matrix)
    singular = np.sqrt(np.clip(eigenvalues, 0, None))
    signal = vectors[:, singular > threshold * singular.max()]
    # Row windows w satisfy w = w V V^H; written for column vectors the operator is conj(V) V^T.
    q = (signal.conj() @ signal.T).reshape(coils, kernel, kernel, coils, kernel, kernel)
    size = 2 * kernel - 1
    result = np.zeros((coils, coils, size, size), dtype=np.complex128)
    for t0 in range(kernel):
        for t1 in range(kernel):
            # Offset d = t' - t goes to index k - 1 + d.
            result[:, :, kernel - 1 - t0 : 2 * kernel - 1 - t0, kernel - 1 - t1 : 2 * kernel - 1 - t1] += q[:, t0, t1]
    return result / kernel**2


def _image_space_matrices(kernel_op: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``G (H * W, C, C)`` complex64: ``G(r) = sum_d K[d] exp(-2 pi i d.r / N)`` at each pixel, centred positions."""
    coils, _, size, _ = kernel_op.shape
    half = size // 2
    offsets = np.arange(size) - half
    height, width = shape
    rows = (np.arange(height) - height // 2)[:, None]
    cols = (np.arange(width) - width // 2)[:, None]
    # complex64 from here on: the maps are stored in complex64, and it halves the cost of the
    # per-pixel power iteration, which dominates the run time.
    phase_rows = np.exp(-2j * np.pi * rows * offsets[None, :] / height).astype(np.complex64)  # (H, 2k-1)
    phase_cols = np.exp(-2j * np.pi * cols * offsets[None, :] / width).astype(np.complex64)  # (W, 2k-1)
    partial = np.einsum("ad,ijde->aije", phase_rows, kernel_op.astype(np.complex64))  # (H, C, C, 2k-1)
    # Contract the column offsets last, straight into the per-pixel layout (H, W, C*C): no
    # transposed copy of the large array.
    per_pixel = phase_cols[None] @ partial.reshape(height, coils * coils, size).transpose(0, 2, 1)
    return per_pixel.reshape(-1, coils, coils)


def espirit_maps(
    calib: np.ndarray,
    shape: tuple[int, int],
    kernel: int = 6,
    threshold: float = 0.02,
    crop: float = 0.95,
    outside: Outside = "crop",
    phase: PhaseReference = "virtual",
    iterations: int = 20,
) -> CoilMaps:
    """ESPIRiT maps ``(C, H, W)`` for an image of ``shape = (H, W)`` from ``calib (C, h, w)``.

    Parameters
    ----------
    calib : numpy.ndarray
        Fully sampled calibration k-space ``(C, h, w)``, e.g. from :func:`calibration_region`.
    shape : tuple of int
        Image size ``(H, W)`` of the reconstruction.
    kernel : int
        Window size k (k x k) of the calibration matrix.
    threshold : float
        Singular values above ``threshold * s_max`` span the signal subspace.
    crop : float
        Pixels whose top eigenvalue is at most ``crop`` are outside the object.
    outside : {"crop", "extend"}
        Maps there are 0 (``crop``) or the unit eigenvector (``extend``, ``sum |S|^2 = 1`` everywhere).
    phase : {"virtual", "first"}
        Phase reference: the virtual body coil or coil 0.
    iterations : int
        Power iterations per pixel, at most: pixels whose step moves them by less than
        ``POWER_ITERATION_TOLERANCE`` are dropped from the iteration (:func:`_top_eigenvectors`).
        The eigenvalue gap is large (the second eigenvalue is far below 1): measured on simulated 8- and 16-coil data, 10 iterations reach float32 accuracy
        on the object and 20 everywhere (the extended maps included).
    """
    _check_choices(outside, phase)
    calib = np.asarray(calib)
    if calib.ndim != 3:
        raise ValueError(f"calibration k-space must be (C, h, w), got shape {calib.shape}")
    height, width = shape
    kernel_op = espirit_kernel(calib, kernel, threshold)
    matrices = _image_space_matrices(kernel_op, (height, width))
    virtual = _virtual_coil(calib)
    vectors, eigenvalues = _top_eigenvectors(matrices, virtual, iterations, POWER_ITERATION_TOLERANCE)
    return _finish(vectors, eigenvalues, eigenvalues > crop, (height, width),
                   virtual if phase == "virtual" else None, "espirit", outside)


def _box_mean(array: np.ndarray, size: int) -> np.ndarray:
    """Mean of ``array (..., H, W)`` over a ``size x size`` box (edge-replicated borders), via cumulative sums."""
    before, after = size // 2, size - 1 - size // 2
    for axis in (-2, -1):
        pad = [(0, 0)] * array.ndim
        pad[axis] = (before + 1, after)  # one extra leading sample, zeroed below, makes the sums start at 0
        padded = np.pad(array, pad, mode="edge")
        leading = [slice(None)] * array.ndim
        leading[axis] = slice(0, 1)
        padded[tuple(leading)] = 0
        cumulative = np.cumsum(padded, axis=axis)
        upper, lower = [slice(None)] * array.ndim, [slice(None)] * array.ndim
        upper[axis], lower[axis] = slice(size, None), slice(None, -size)
        array = (cumulative[tuple(upper)] - cumulative[tuple(lower)]) / size
    return array


def walsh_maps(
    kspace: np.ndarray,
    mask: np.ndarray | None = None,
    window: int = 7,
    crop: float = 0.05,
    outside: Outside = "crop",
    phase: PhaseReference = "virtual",
    rows: int | None = None,
    iterations: int = 20,
) -> CoilMaps:
    """Walsh adaptive-combine maps ``(C, H, W)`` from the calibration region of ``kspace (C, H, W)``.

    The region (see :func:`calibration_region`) is tapered with a separable Hann window (less
    ringing), zero-filled to ``H x W`` and transformed to low-resolution coil images ``z``; the
    local covariance ``R(r) = mean over a window x window box of z z^H`` has the map as its top
    eigenvector. ``crop``: pixels whose local energy ``sqrt(trace R)`` is below ``crop`` times its
    maximum are outside the object.
    """
    _check_choices(outside, phase)
    kspace = np.asarray(kspace)
    calib, (row_start, col_start) = calibration_region(kspace, mask, rows)
    coils, height, width = kspace.shape
    h, w = calib.shape[1:]
    taper = np.hanning(h + 2)[1:-1, None] * np.hanning(w + 2)[None, 1:-1]
    lowres_k = np.zeros((coils, height, width), dtype=np.complex128)
    lowres_k[:, row_start : row_start + h, col_start : col_start + w] = calib * taper
    images = ifft2c(lowres_k).astype(np.complex64)  # (C, H, W)
    # Hermitian: box-filter the upper triangle only, then mirror.
    first, second = np.triu_indices(coils)
    pairs = _box_mean(images[first] * images[second].conj(), window)  # (P, H, W)
    covariance = np.empty((height * width, coils, coils), dtype=np.complex64)
    flat = pairs.reshape(len(first), -1).T
    covariance[:, first, second] = flat
    covariance[:, second, first] = flat.conj()
    virtual = _virtual_coil(calib)
    vectors, _ = _top_eigenvectors(covariance, virtual, iterations)
    # Support from the local energy sqrt(trace R): the box average dilates it by half a window, so
    # thin bright structures that the low-resolution image smears out still get maps.
    energy = np.sqrt(np.clip(np.einsum("ncc->n", covariance).real, 0, None))
    weight = energy / energy.max() if energy.max() > 0 else energy
    return _finish(vectors, weight, weight > crop, (height, width),
                   virtual if phase == "virtual" else None, "walsh", outside)


def estimate_maps(
    kspace: np.ndarray,
    mask: np.ndarray | None = None,
    method: MapMethod = "espirit",
    outside: Outside = "crop",
    phase: PhaseReference = "virtual",
    rows: int | None = 64,
) -> CoilMaps:
    """Coil maps of ``kspace (C, H, W)`` from its fully sampled centre (``mask (W,)``, default: non-zero lines)."""
    if method not in MAP_METHODS:
        raise ValueError(f"coil-map method must be one of {MAP_METHODS}, got {method!r}")
    if method == "walsh":
        return walsh_maps(kspace, mask, outside=outside, phase=phase, rows=rows)
    calib, _ = calibration_region(kspace, mask, rows)
    # A calibration region narrower than ESPIRiT's usual 6 x 6 window (8% of a 64-line matrix is 5
    # lines) gets a window as wide as the region, down to MIN_CALIBRATION_LINES.
    kernel = min(ESPIRIT_KERNEL, *calib.shape[-2:])
    if kernel < MIN_CALIBRATION_LINES:
        raise ValueError(f"calibration region {calib.shape[-2]} x {calib.shape[-1]} is too small for coil maps "
                         f"({MIN_CALIBRATION_LINES} lines at least)")
    return espirit_maps(calib, kspace.shape[-2:], kernel=kernel, outside=outside, phase=phase)
