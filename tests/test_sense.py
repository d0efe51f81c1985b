"""The SENSE operator: adjointness, agreement with the single-coil operator, both DFT implementations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import assert_adjoint, randn
from tgv_deploy.coils.maps import estimate_maps
from tgv_deploy.data.coil_sim import simulate_coil_maps
from tgv_deploy.data.synthetic import brain_like_image
from tgv_deploy.dft import fft2c, ifft2c
from tgv_deploy.operators.fourier import DFT_IMPLS, MaskedFourierOp
from tgv_deploy.operators.sense import SenseOp


def _channels(z: np.ndarray) -> torch.Tensor:
    """Complex ``(..., H, W)`` to real ``(1, ..., 2, H, W)``."""
    return torch.from_numpy(np.stack((z.real, z.imag), axis=-3))[None]


def _line_mask(batch: int, width: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    mask = (torch.rand(batch, 1, 1, width, generator=generator) < 0.4).double()
    mask[..., width // 2] = 1
    return mask


@pytest.mark.parametrize("impl", DFT_IMPLS)
@pytest.mark.parametrize("batch,coils,height,width", [(2, 3, 8, 6), (1, 4, 7, 9), (2, 1, 5, 5)])
def test_sense_adjoint(impl, batch, coils, height, width):
    maps = randn(batch, coils, 2, height, width, seed=1)
    op = SenseOp(maps, _line_mask(batch, width, seed=2), impl=impl)
    assert_adjoint(op, randn(batch, 2, height, width, seed=3), randn(batch, coils, 2, height, width, seed=4))


@pytest.mark.parametrize("impl", DFT_IMPLS)
def test_sense_adjoint_with_a_full_mask(impl):
    op = SenseOp(randn(1, 2, 2, 6, 7, seed=5), torch.ones(1, 1, 6, 7, dtype=torch.float64), impl=impl)
    assert_adjoint(op, randn(1, 2, 6, 7, seed=6), randn(1, 2, 2, 6, 7, seed=7))


@pytest.mark.parametrize("impl", DFT_IMPLS)
@pytest.mark.parametrize("height,width", [(8, 6), (7, 9)])
def test_one_coil_of_ones_is_the_single_coil_operator(impl, height, width):
    maps = torch.zeros(2, 1, 2, height, width, dtype=torch.float64)
    maps[:, :, 0] = 1
    mask = _line_mask(2, width, seed=8)
    x, y = randn(2, 2, height, width, seed=9), randn(2, 1, 2, height, width, seed=10)
    sense, single = SenseOp(maps, mask, impl=impl), MaskedFourierOp(mask, impl=impl)
    torch.testing.assert_close(sense(x)[:, 0], single(x), rtol=0, atol=1e-13)
    torch.testing.assert_close(sense.adjoint(y), single.adjoint(y[:, 0]), rtol=0, atol=1e-13)


def test_sense_matches_complex_numpy_and_fft_matches_matrix():
    rng = np.random.default_rng(11)
    coils, height, width = 3, 6, 10
    maps = rng.standard_normal((coils, height, width)) + 1j * rng.standard_normal((coils, height, width))
    image = rng.standard_normal((height, width)) + 1j * rng.standard_normal((height, width))
    mask = (rng.random(width) < 0.5).astype(float)
    expected = fft2c(maps * image) * mask
    maps_t = torch.from_numpy(np.stack((maps.real, maps.imag), axis=1))[None]
    image_t = torch.from_numpy(np.stack((image.real, image.imag)))[None]
    mask_t = torch.from_numpy(mask).reshape(1, 1, 1, width)
    results = [SenseOp(maps_t, mask_t, impl=impl)(image_t)[0].numpy() for impl in DFT_IMPLS]
    for result in results:
        np.testing.assert_allclose(result[:, 0] + 1j * result[:, 1], expected, atol=1e-12)


def test_normalised_maps_give_identity_normal_operator_when_fully_sampled():
    # sum_c |S_c|^2 = 1 and M = 1: A^H A = sum_c conj(S_c) S_c = I.
    maps = randn(1, 4, 2, 8, 8, seed=12)
    maps = maps / maps.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()
    op = SenseOp(maps, torch.ones(1, 1, 1, 8, dtype=torch.float64))
    x = randn(1, 2, 8, 8, seed=13)
    torch.testing.assert_close(op.adjoint(op(x)), x, rtol=0, atol=1e-13)


def test_sense_rejects_wrong_layouts():
    op = SenseOp(randn(1, 2, 2, 4, 4), torch.ones(1, 1, 1, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="image must be"):
        op(randn(1, 2, 4, 5))
    with pytest.raises(ValueError, match="k-space must be"):
        op.adjoint(randn(1, 3, 2, 4, 4))
    with pytest.raises(ValueError, match="coil maps"):
        SenseOp(randn(1, 2, 4, 4), torch.ones(1, 1, 1, 4))


def test_adjoint_with_espirit_maps_is_the_coil_combined_image():
    """SPEC 1b: with maps normalised on the object, |A^H f| of fully sampled data is the RSS image."""
    rng = np.random.default_rng(14)
    height, width, coils = 48, 40, 6
    image = brain_like_image(rng, height, width).astype(np.complex128)
    kspace = fft2c(simulate_coil_maps(rng, coils, height, width, normalise=False) * image)
    maps = estimate_maps(kspace, np.ones(width)).maps.astype(np.complex128)
    op = SenseOp(_channels(maps), torch.ones(1, 1, 1, width, dtype=torch.float64))
    combined = op.adjoint(_channels(kspace))[0].numpy()
    rss = np.sqrt(np.sum(np.abs(ifft2c(kspace)) ** 2, axis=0))
    obj = rss > 0.1 * rss.max()
    # ESPIRiT's map error (test_coils: <= 1.4e-4 of the maximum) bounds the difference.
    assert np.abs(np.hypot(combined[0], combined[1]) - rss)[obj].max() < 1e-3 * rss.max()
