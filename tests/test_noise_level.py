"""The k-space noise estimate that noise-aware models read (tgv_deploy.models.noise_level)."""

import numpy as np
import pytest
import torch

from conftest import make_checkpoint
from tgv_deploy.data.masks import make_mask
from tgv_deploy.dft import fft2c
from tgv_deploy.models import load_checkpoint
from tgv_deploy.models.config import ModelConfig
from tgv_deploy.models.noise_level import FEATURE_OFFSET, kspace_noise_std, noise_feature
from tgv_deploy.models.utgv import build_model
from tgv_deploy.training.config import config_from_dict
from tgv_deploy.training.trainer import warm_start


def _kspace(image, mask, std, seed=0):
    rng = np.random.default_rng(seed)
    k = fft2c(image) + std * (rng.standard_normal(image.shape) + 1j * rng.standard_normal(image.shape))
    k = k * mask
    return torch.from_numpy(np.stack((k.real, k.imag))[None].astype(np.float64)), torch.from_numpy(mask.reshape(1, 1, 1, -1).astype(np.float64))


def test_pure_noise_is_measured_from_below_within_its_sampling_spread():
    mask = make_mask("equispaced", 0.08, 4)(128, seed=0)
    f, m = _kspace(np.zeros((128, 128)), mask, 0.3)
    # each of ~38 columns: 64 outer rows x 2 components, variance spread 1/sqrt(64); the least of them
    ratio = float(kspace_noise_std(f, m)) / 0.3
    assert 0.75 < ratio < 1.0


def test_a_smooth_image_does_not_disturb_it_and_the_feature_follows_scale():
    yy, xx = np.mgrid[:96, :80]
    image = np.exp(-((yy - 48) ** 2 + (xx - 40) ** 2) / (2 * 12.0**2))
    mask = make_mask("random", 0.08, 4)(80, seed=1)
    f, m = _kspace(image, mask, 0.01, seed=2)
    assert 0.75 < float(kspace_noise_std(f, m)) / 0.01 < 1.0
    # positively homogeneous: scaling the data shifts the log feature by log10 of the factor
    shift = noise_feature(10 * f, m) - noise_feature(f, m)
    assert float(shift) == pytest.approx(1.0, abs=1e-9)
    expected = np.log10(float(kspace_noise_std(f, m)) * np.sqrt(mask.astype(np.float64).mean())) + FEATURE_OFFSET
    assert float(noise_feature(f, m)) == pytest.approx(expected, abs=1e-9)


def test_two_dimensional_masks_coils_and_padding_coils_agree():
    mask = make_mask("equispaced", 0.08, 4)(64, seed=0)
    f, m = _kspace(np.zeros((64, 64)), mask, 0.2, seed=4)
    full = m.expand(1, 1, 64, 64).contiguous()
    assert float(kspace_noise_std(f, full)) == pytest.approx(float(kspace_noise_std(f, m)), rel=1e-12)
    # three coils with the same noise pool their power; zero-padded coils change nothing
    coils = torch.stack([_kspace(np.zeros((64, 64)), mask, 0.2, seed=s)[0][0] for s in (4, 5, 6)])[None]
    padded = torch.cat((coils, torch.zeros_like(coils[:, :2])), 1)
    assert float(kspace_noise_std(padded, m)) == pytest.approx(float(kspace_noise_std(coils, m)), rel=1e-12)
    assert 0.8 < float(kspace_noise_std(coils, m)) / 0.2 < 1.0  # three times the samples: closer


def test_noise_gain_is_a_learned_power_of_the_noise_level(tmp_path):
    plain = make_checkpoint(tmp_path / "plain.pt", iterations=4, solver="admm")
    config = config_from_dict({"init_checkpoint": str(plain), "model": {**load_checkpoint(plain).config.to_dict(), "noise_gain": True}})
    model = build_model(config.model)
    warm_start(model, config)  # the exponent starts at 0: the checkpoint's own maps
    reference = load_checkpoint(plain).build()
    mask = torch.from_numpy(make_mask("equispaced", 0.08, 4)(24, seed=0).astype(np.float32)).reshape(1, 1, 1, -1)
    f = torch.randn(1, 2, 32, 24) * mask
    with torch.no_grad():
        maps_ref = reference(f, mask)[1]
        torch.testing.assert_close(model(f, mask)[1], maps_ref)
        model.noise_exponent.copy_(torch.tensor([0.5, -1.0]))
        maps = model(f, mask)[1]
        # the scale normalises f first (SPEC 2): the feature is the normalised data's
        scale = float(torch.sqrt(reference.forward_operator(f, mask).adjoint(f).square().sum(1)).amax())
        level = float(noise_feature(f / scale, mask))
        torch.testing.assert_close(maps[:, 0], maps_ref[:, 0] * 10 ** (0.5 * level))
        torch.testing.assert_close(maps[:, 1], maps_ref[:, 1] * 10 ** (-1.0 * level))


def test_noise_gain_is_for_mri_models():
    with pytest.raises(ValueError, match="MRI models only"):
        ModelConfig(task="denoise", kind="utv", noise_gain=True)
    assert ModelConfig.from_dict({"kind": "utgv", "task": "mri"}).noise_gain is False  # older checkpoints
