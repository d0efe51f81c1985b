import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from tgv_deploy.baselines import CHECK_EVERY, TOLERANCE, Convergence, best_scalar_tgv, best_scalar_tv
from tgv_deploy.layout import complex_to_channels
from tgv_deploy.metrics import psnr, ssim, ssim_by_region, ssim_map
from tgv_deploy.operators import CentredDFT


def _phantom(h=24, w=24):
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    image = 0.3 + 0.7 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.1) + 0.3 * xx * (yy > 0.3)
    return image


@pytest.mark.parametrize("seed", [0, 1])
def test_metrics_match_scikit_image(seed):
    rng = np.random.default_rng(seed)
    target = _phantom(20, 23)
    estimate = np.abs(target + 0.1 * rng.standard_normal(target.shape))  # metrics act on magnitudes
    assert psnr(target, estimate) == pytest.approx(peak_signal_noise_ratio(target, estimate, data_range=target.max()))
    expected = structural_similarity(target, estimate, data_range=target.max(), win_size=7)
    assert ssim(target, estimate) == pytest.approx(expected, rel=1e-10)
    complex_estimate = estimate * np.exp(1j * 0.4)
    assert ssim(target, complex_estimate) == pytest.approx(expected, rel=1e-10)
    # the local map is scikit-image's full map inside the 3-pixel border it leaves out of the mean
    _, full = structural_similarity(target, estimate, data_range=target.max(), win_size=7, full=True)
    np.testing.assert_allclose(ssim_map(target, estimate), full[3:-3, 3:-3], rtol=1e-10)


def test_metrics_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))


def test_scalar_searches_beat_their_grid_and_the_noisy_input():
    rng = np.random.default_rng(3)
    target = _phantom()
    noisy = target + 0.1 * rng.standard_normal(target.shape)
    f = torch.from_numpy(noisy)[None, None]
    tv = best_scalar_tv(f, target, max_iterations=1500, lambda_grid=np.linspace(-3, 0, 4), rounds=2, points=3)
    tgv = best_scalar_tgv(
        f, target, max_iterations=1500, lambda1_grid=np.linspace(-3, 0, 4), ratio_grid=np.log10([1.0, 4.0]), rounds=1, points=3
    )
    noisy_psnr = psnr(target, noisy)
    assert tv.score > noisy_psnr + 3 and tgv.score > noisy_psnr + 3
    assert tv.evaluations == 4 + 3 + 3 and tgv.evaluations == 8 + 9
    assert tv.score == pytest.approx(psnr(target, tv.image[0].numpy()))
    # refinement can only improve on the coarse grid's best point
    coarse = best_scalar_tv(f, target, max_iterations=1500, lambda_grid=np.linspace(-3, 0, 4), rounds=0)
    assert tv.score >= coarse.score
    assert set(tgv.params) == {"lambda0", "lambda1"} and tgv.params["lambda1"] > 0


def test_scalar_search_mri_ssim():
    target = _phantom(16, 16)
    k = CentredDFT("fft")(complex_to_channels(torch.from_numpy(target.astype(complex))[None]))
    mask = torch.zeros(1, 1, 1, 16, dtype=torch.float64)
    mask[..., ::2] = 1
    mask[..., 6:10] = 1
    result = best_scalar_tgv(
        k * mask, target, mask=mask, max_iterations=1500, criterion="ssim",
        lambda1_grid=np.linspace(-3, -1, 3), ratio_grid=np.log10([2.0]), rounds=1, points=3,
    )
    zero_filled = CentredDFT("fft").adjoint(k * mask)
    zf = ssim(target, torch.sqrt(zero_filled.square().sum(1))[0].numpy())
    assert result.score > zf and result.criterion == "ssim"
    with pytest.raises(ValueError, match="criterion"):
        best_scalar_tv(k * mask, target, mask=mask, criterion="mse")


def test_baselines_run_to_convergence():
    """The chosen scalar TV is the converged minimiser: more iterations would not change it."""
    from tgv_deploy.solvers import admm_tv

    rng = np.random.default_rng(4)
    target = _phantom()
    noisy = target + 0.1 * rng.standard_normal(target.shape)
    result = best_scalar_tv(torch.from_numpy(noisy)[None, None], target, lambda_grid=np.linspace(-2, -1, 2), rounds=0)
    assert 0 < result.iterations < 3000 and result.iterations % CHECK_EVERY == 0
    converged = admm_tv(noisy[None], result.params["lambda"], iterations=3000)[0]
    # stopping at a change below TOLERANCE per CHECK_EVERY iterations leaves the image within a
    # small multiple of it of the minimiser (ADMM converges linearly here)
    assert np.linalg.norm(result.image[0].numpy() - converged) / np.linalg.norm(converged) < 20 * TOLERANCE


def test_convergence_callback_stops_on_a_still_image_only():
    stop = Convergence()
    x = torch.ones(2, 1, 4, 4)
    assert [stop(k, x + (k < 30) * k) for k in range(CHECK_EVERY * 3)].count(True) >= 1
    moving = Convergence()
    assert not any(moving(k, x * (1 + k)) for k in range(CHECK_EVERY * 3))


def test_ssim_by_region_splits_the_windows_by_the_targets_background():
    target = np.zeros((32, 32))
    target[8:24, 8:24] = 1.0
    estimate = target.copy()
    estimate[:, :4] = 0.05  # a haze over the background only
    total, background, object_ = ssim_by_region(target, estimate)
    assert total == pytest.approx(ssim(target, estimate))
    assert object_ == pytest.approx(1.0) and background < 0.99
    local = ssim_map(target, estimate)
    centres = target[3:29, 3:29] < 0.02
    assert background == pytest.approx(local[centres].mean())
