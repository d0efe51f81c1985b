"""Torch-free multi-coil preprocessing: whitening, oversampling removal, coil compression, coil maps."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tgv_deploy.coils import noise_covariance, remove_readout_oversampling, svd_compression, whiten, whitening_matrix
from tgv_deploy.coils.maps import calibration_region, centre_lines, espirit_maps, estimate_maps
from tgv_deploy.data.coil_sim import simulate_coil_maps
from tgv_deploy.data.synthetic import brain_like_image
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


# --- coil maps -------------------------------------------------------------------------------


def _multicoil_phantom(height: int, width: int, coils: int, seed: int, noise: float = 0.0):
    """Phantom image, true normalised maps, centred coil k-space, an R ~ 3 line mask with 20 ACS lines."""
    rng = np.random.default_rng(seed)
    image = brain_like_image(rng, height, width).astype(np.complex128)
    truth = simulate_coil_maps(rng, coils, height, width)
    kspace = fft2c(truth * image)
    if noise:
        kspace = kspace + noise * np.sqrt(np.mean(np.abs(kspace) ** 2)) * _complex_normal(rng, *kspace.shape)
    mask = np.zeros(width)
    mask[::3] = 1
    mask[width // 2 - 10 : width // 2 + 10] = 1
    obj = np.abs(image) > 0.1 * np.abs(image).max()
    return image, truth, kspace * mask, mask, obj


def _direction_error(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``1 - |<S_est, S_true>|`` per pixel: 0 when equal up to a phase (both unit norm over coils)."""
    return 1 - np.abs(np.sum(estimate.conj() * truth, axis=0))


def _phase_referenced(maps: np.ndarray) -> np.ndarray:
    return maps * np.exp(-1j * np.angle(maps[0]))


# Measured (seeded cases below): ESPIRiT direction error <= 1.4e-4 inside the object and combined
# magnitude error <= 8e-5 of the maximum; Walsh 2.5e-3 and 1.2e-3 (its low-resolution window
# blurs the maps near strong edges). The tolerances leave ~4x headroom and are still far below a
# wrong map (a mirrored or shifted map gives errors of order 0.1 to 1).
ESPIRIT_TOLERANCE = {"direction": 5e-4, "combined": 5e-4, "referenced": 0.03}
WALSH_TOLERANCE = {"direction": 1e-2, "combined": 5e-3, "referenced": 0.15}


@pytest.mark.parametrize(
    "height,width,coils,noise", [(64, 64, 4, 0.0), (63, 47, 8, 0.0), (80, 72, 16, 0.0), (96, 96, 8, 0.05)]
)
@pytest.mark.parametrize("method", ["espirit", "walsh"])
def test_maps_reproduce_simulated_coils(height, width, coils, noise, method):
    image, truth, kspace, mask, obj = _multicoil_phantom(height, width, coils, seed=coils + height, noise=noise)
    tolerance = ESPIRIT_TOLERANCE if method == "espirit" else WALSH_TOLERANCE
    result = estimate_maps(kspace, mask, method=method)
    maps = result.maps.astype(np.complex128)
    assert result.maps.shape == (coils, height, width) and result.maps.dtype == np.complex64
    assert result.support[obj].mean() > 0.99
    assert _direction_error(maps, truth)[obj].max() < tolerance["direction"]
    # Normalisation: unit norm on the support, zero outside (crop).
    power = np.sum(np.abs(maps) ** 2, axis=0)
    np.testing.assert_allclose(power[result.support], 1.0, atol=1e-5)
    assert not np.any(power[~result.support])
    # Coil combination sum_c conj(S_c) x_c with x_c = S_c^true x recovers |x|.
    combined = np.sum(maps.conj() * truth * image, axis=0)
    assert np.abs(np.abs(combined) - np.abs(image))[obj].max() < tolerance["combined"] * np.abs(image).max()
    # Up to one common phase: referenced to coil 0 the maps equal the truth.
    referenced = estimate_maps(kspace, mask, method=method, phase="first").maps
    assert np.abs(referenced - _phase_referenced(truth))[:, obj].max() < tolerance["referenced"]


@pytest.mark.parametrize("method", ["espirit", "walsh"])
def test_virtual_coil_reference_gives_a_smooth_combined_phase(method):
    image, truth, kspace, mask, obj = _multicoil_phantom(64, 56, 8, seed=11)
    maps = estimate_maps(kspace, mask, method=method).maps.astype(np.complex128)
    ratio = np.sum(maps.conj() * truth, axis=0)  # combined image / true image: e^{i phase(r)}
    jumps = [np.abs(np.angle(ratio[1:] * ratio[:-1].conj()))[obj[1:] & obj[:-1]],
             np.abs(np.angle(ratio[:, 1:] * ratio[:, :-1].conj()))[obj[:, 1:] & obj[:, :-1]]]
    # Measured <= 0.025 rad between neighbours; a per-pixel arbitrary phase would jump by ~pi.
    assert max(j.max() for j in jumps) < 0.1


def test_extended_maps_have_unit_norm_everywhere_and_match_the_cropped_ones():
    _, _, kspace, mask, _ = _multicoil_phantom(48, 40, 6, seed=3)
    cropped = estimate_maps(kspace, mask, outside="crop")
    extended = estimate_maps(kspace, mask, outside="extend")
    assert extended.support.all() and not cropped.support.all()
    np.testing.assert_allclose(np.sum(np.abs(extended.maps) ** 2, axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(extended.maps[:, cropped.support], cropped.maps[:, cropped.support])


def test_power_iteration_stops_pixels_only_where_nothing_is_left_to_change(monkeypatch):
    """ESPIRiT's early stop per pixel gives the maps of the full iteration count to their complex64
    storage, on a case where stopping every pixel after the first checks would not (1.5e-2 off)."""
    import tgv_deploy.coils.maps as maps_module

    _, _, kspace, mask, _ = _multicoil_phantom(80, 72, 8, seed=1, noise=0.05)
    steps: list[int] = []
    power_step = maps_module._power_step

    def counted(matrices, vectors):
        steps.append(matrices.shape[0])
        return power_step(matrices, vectors)

    monkeypatch.setattr(maps_module, "_power_step", counted)
    early = estimate_maps(kspace, mask, outside="extend")
    early_steps, steps[:] = sum(steps), []
    monkeypatch.setattr(maps_module, "POWER_ITERATION_TOLERANCE", 0.0)  # every pixel runs all iterations
    full = estimate_maps(kspace, mask, outside="extend")
    assert np.abs(early.maps - full.maps).max() < 2e-6
    assert np.abs(early.weight - full.weight).max() < 2e-6
    np.testing.assert_array_equal(early.support, full.support)
    assert early_steps < 0.8 * sum(steps) == 0.8 * 20 * 80 * 72  # pixel-steps: the stop happens
    monkeypatch.setattr(maps_module, "_FULL_ITERATIONS", 20 - 11)  # had every pixel stopped at the first check ...
    monkeypatch.setattr(maps_module, "POWER_ITERATION_TOLERANCE", 1.0)
    assert np.abs(estimate_maps(kspace, mask, outside="extend").maps - full.maps).max() > 1e-3  # ... the maps would differ


def test_espirit_matches_sigpy():
    sigpy_app = pytest.importorskip("sigpy.mri.app", reason="sigpy (dev extra) is not installed or does not import")
    height, width, coils, calib = 72, 64, 8, 24
    rng = np.random.default_rng(12)
    image = brain_like_image(rng, height, width)
    kspace = fft2c(simulate_coil_maps(rng, coils, height, width) * image).astype(np.complex64)
    app = sigpy_app.EspiritCalib(kspace, calib_width=calib, show_pbar=False, output_eigenvalue=True)
    oracle, oracle_eig = app.run()
    r0, c0 = height // 2 - calib // 2, width // 2 - calib // 2  # sigpy's centred crop
    ours = espirit_maps(kspace[:, r0 : r0 + calib, c0 : c0 + calib], (height, width), phase="first")  # sigpy's defaults
    oracle_support = np.any(oracle != 0, axis=0)
    # Pixels whose eigenvalue sits within float32 noise of the 0.95 crop may fall either way.
    assert (ours.support == oracle_support).mean() > 0.999
    both = ours.support & oracle_support
    # Both run float32 power iterations; measured max difference 3e-7.
    assert np.abs(ours.maps - oracle)[:, both].max() < 1e-5
    assert np.abs(ours.weight - oracle_eig.reshape(height, width))[both].max() < 1e-5


def test_calibration_region_needs_a_sampled_centre():
    mask = np.zeros(16)
    mask[5:7] = 1
    with pytest.raises(ValueError, match="centre line"):
        centre_lines(mask)
    mask[7:11] = 1
    assert centre_lines(mask) == (5, 11)
    kspace = np.ones((2, 100, 16), dtype=np.complex64) * mask
    calib, start = calibration_region(kspace, rows=64)
    assert calib.shape == (2, 64, 6) and start == (18, 5)


def test_preprocessing_modules_do_not_import_torch():
    """The runtime's preprocessing must work where torch is not installed: block it and import."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # any 'import torch' now raises ImportError
        import tgv_deploy.coils, tgv_deploy.coils.maps, tgv_deploy.data.coil_sim, tgv_deploy.data.multicoil
        loaded = {m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}
        assert "torch" not in loaded, loaded
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
