"""Torch-free multi-coil preprocessing: whitening, oversampling removal, coil compression, coil maps."""

from __future__ import annotations

import numpy as np
import pytest

from tgv_deploy.coils import noise_covariance, remove_readout_oversampling, svd_compression, whiten, whitening_matrix
from tgv_deploy.data.coil_sim import simulate_coil_maps
from tgv_deploy.dft import fft2c


def _complex_normal(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Circular complex Gaussian with unit variance E|z|^2 = 1."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


# --- whitening -------------------------------------------------------------------------------


def _correlated_noise(rng: np.random.Generator, coils: int, samples: int, mixing: np.ndarray) -> np.ndarray:
    return mixing @ _complex_normal(rng, coils, samples)


def test_whitening_makes_independent_noise_white():
    rng = np.random.default_rng(1)
    coils, samples = 8, 20_000
    # Strong, unequal correlation: channel gains 0.5..3 and off-diagonal mixing.
    mixing = np.diag(np.linspace(0.5, 3.0, coils)) + 0.4 * _complex_normal(rng, coils, coils)
    calibration = _correlated_noise(rng, coils, samples, mixing)
    matrix = whitening_matrix(noise_covariance(calibration))
    # Exact on the scans it was computed from (Cholesky identity, float64 rounding only).
    assert np.abs(noise_covariance(whiten(calibration, matrix)) - np.eye(coils)).max() < 1e-12
    # On independent noise: each entry of a sample covariance of N unit-variance samples has
    # standard deviation 1/sqrt(N); the estimated W adds about as much again. 6 sqrt(2)/sqrt(N)
    # bounds the largest of the 64 entries with a wide margin (about 0.06 here).
    fresh = _correlated_noise(rng, coils, samples, mixing)
    tolerance = 6 * np.sqrt(2) / np.sqrt(samples)
    assert np.abs(noise_covariance(fresh) - np.eye(coils)).max() > 50 * tolerance  # the test can fail
    assert np.abs(noise_covariance(whiten(fresh, matrix)) - np.eye(coils)).max() < tolerance


def test_whitening_keeps_dtype_and_rejects_singular_covariance():
    rng = np.random.default_rng(2)
    data = _complex_normal(rng, 4, 3, 5).astype(np.complex64)
    matrix = whitening_matrix(np.diag([1.0, 2.0, 3.0, 4.0]))
    out = whiten(data, matrix)
    assert out.dtype == np.complex64 and out.shape == data.shape
    np.testing.assert_allclose(out[3], data[3] / 2, rtol=1e-6)
    noise = _complex_normal(rng, 3, 100)
    with pytest.raises(ValueError, match="positive definite"):
        whitening_matrix(noise_covariance(np.stack([noise[0], noise[0], noise[1]])))


# --- readout oversampling --------------------------------------------------------------------


@pytest.mark.parametrize("rows,oversampled", [(16, 32), (15, 30), (15, 31), (9, 9)])
def test_oversampling_removal_returns_the_cropped_image_kspace(rows, oversampled):
    rng = np.random.default_rng(3)
    width = 7
    image = _complex_normal(rng, 3, rows, width)
    padded = np.zeros((3, oversampled, width), dtype=complex)
    start = oversampled // 2 - rows // 2  # centred placement: row p sits at p - n // 2
    padded[:, start : start + rows] = image
    result = remove_readout_oversampling(fft2c(padded), rows)
    # Orthonormal DFTs and an exact crop: float64 rounding only.
    np.testing.assert_allclose(result, fft2c(image), atol=1e-12 * np.abs(fft2c(image)).max())


def test_oversampling_removal_keeps_unsampled_lines_zero_and_complex64():
    rng = np.random.default_rng(4)
    kspace = _complex_normal(rng, 2, 32, 10).astype(np.complex64)
    kspace[..., ::3] = 0
    out = remove_readout_oversampling(kspace, 16)
    assert out.shape == (2, 16, 10) and out.dtype == np.complex64
    assert not np.any(out[..., ::3])
    with pytest.raises(ValueError, match="crop"):
        remove_readout_oversampling(kspace, 33)


# --- coil compression ------------------------------------------------------------------------


def test_compression_of_rank_deficient_data_is_lossless():
    rng = np.random.default_rng(5)
    coils, rank = 8, 3
    data = (_complex_normal(rng, coils, rank) @ _complex_normal(rng, rank, 40 * 30)).reshape(coils, 40, 30)
    compression = svd_compression(data, rank)
    assert compression.matrix.shape == (rank, coils)
    np.testing.assert_allclose(compression.matrix @ compression.matrix.conj().T, np.eye(rank), atol=1e-12)
    assert compression.energy_retained == pytest.approx(1.0, abs=1e-12)
    compressed = compression.apply(data)
    assert compressed.shape == (rank, 40, 30)
    restored = np.tensordot(compression.matrix.conj().T, compressed, axes=(1, 0))
    assert np.linalg.norm(restored - data) / np.linalg.norm(data) < 1e-12


def test_compression_energy_matches_what_is_lost():
    rng = np.random.default_rng(6)
    data = np.diag([4.0, 2.0, 1.0, 0.5]) @ _complex_normal(rng, 4, 5000)
    compression = svd_compression(data, 2)
    compressed = compression.apply(data)
    kept = np.linalg.norm(compressed) ** 2 / np.linalg.norm(data) ** 2
    assert compression.energy_retained == pytest.approx(kept, rel=1e-10)
    # Nearly independent channels of variance 16, 4, 1, 0.25: the top two keep ~20/21.25 (sampling: 5%).
    assert compression.energy_retained == pytest.approx(20 / 21.25, rel=0.05)
    assert svd_compression(data.astype(np.complex64), 2).apply(data.astype(np.complex64)).dtype == np.complex64


# --- coil simulator --------------------------------------------------------------------------


def test_coil_simulator_is_seeded_normalised_and_smooth():
    maps = simulate_coil_maps(np.random.default_rng(7), 8, 64, 48)
    again = simulate_coil_maps(np.random.default_rng(7), 8, 64, 48)
    other = simulate_coil_maps(np.random.default_rng(8), 8, 64, 48)
    assert maps.shape == (8, 64, 48)
    np.testing.assert_array_equal(maps, again)
    assert np.abs(maps - other).max() > 0.1
    np.testing.assert_allclose(np.sum(np.abs(maps) ** 2, axis=0), 1.0, atol=1e-12)
    # Smooth: neighbouring pixels differ by a few percent of the map's scale at most.
    assert np.abs(np.diff(maps, axis=1)).max() < 0.1 and np.abs(np.diff(maps, axis=2)).max() < 0.1
    # Coils see different parts of the image: each coil's magnitude varies by > 2x over the FOV.
    magnitude = np.abs(maps)
    assert np.all(magnitude.max(axis=(1, 2)) > 2 * magnitude.min(axis=(1, 2)))
