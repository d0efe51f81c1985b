import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tgv_deploy.models.utgv import build_model

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from tgv_deploy.errors import InputError
from tgv_deploy.models import ModelConfig, load_checkpoint
from tgv_deploy.training.config import config_from_dict, load_config
from tgv_deploy.dft import fft2c
from tgv_deploy.training.data import Corruption, SyntheticSlices, make_batch
from tgv_deploy.training.model_card import card
from tgv_deploy.metrics import ssim
from tgv_deploy.models.config import UNetConfig
from tgv_deploy.models.unet import UNet
from tgv_deploy.training.widen import widened_unet_state
from tgv_deploy.training.trainer import _source, lr_factor, parameter_groups, reconstruction_loss, ssim_torch, train, validate, warm_start

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"

TINY = """
seed = 3
steps = {steps}
batch_size = 2
warmup_steps = 2
val_every = 2
checkpoint_every = 2
train_iterations = 3
iterations_schedule = [[2, 4]]

[model]
kind = "{kind}"
task = "{task}"
iterations = 5
unet = {{ depth = 1, base_channels = 4 }}

[data]
height = 24
width = 20
val_size = 2
"""


def _tiny_dict(steps=4, kind="utgv", task="mri"):
    return tomllib.loads(TINY.format(steps=steps, kind=kind, task=task))


def _write(tmp_path, steps=4, kind="utgv", task="mri"):
    path = tmp_path / f"{kind}-{task}-{steps}.toml"
    path.write_text(TINY.format(steps=steps, kind=kind, task=task))
    return path


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.toml")))
def test_committed_configs_parse(name):
    config = load_config(CONFIGS / f"{name}.toml")
    # no config trains through more iterations than the model runs by default (multi-coil data may run more)
    assert config.steps > 0 and config.model.default_iterations(multicoil=True) >= config.iterations_at(0)


def test_config_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("stepz = 3\n")
    with pytest.raises(InputError, match="unknown keys"):
        load_config(bad)
    bad.write_text("steps = [\n")
    with pytest.raises(InputError, match="invalid TOML"):
        load_config(bad)
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(InputError, match=r"\[model\]"):
        config_from_dict({"model": {"kind": "tgv"}})
    assert config_from_dict({"iterations_schedule": [[10, 64]], "train_iterations": 8}).iterations_at(12) == 64


def test_psnr_loss_weighs_every_sample_alike():
    target = torch.zeros(2, 1, 4, 4)
    clean, noisy = torch.full((1, 1, 4, 4), 0.01), torch.full((1, 1, 4, 4), 1.0)
    x = torch.cat([clean, noisy])
    base = reconstruction_loss(x, target, "psnr")
    assert base.item() == pytest.approx(10 * (torch.log10(torch.tensor(1e-4)) + 0.0).item() / 2)
    # halving the clean sample's error gains as much as halving the noisy one's: plain MSE would
    # barely notice the clean sample
    gain_clean = base - reconstruction_loss(torch.cat([clean / 2, noisy]), target, "psnr")
    gain_noisy = base - reconstruction_loss(torch.cat([clean, noisy / 2]), target, "psnr")
    assert gain_clean.item() == pytest.approx(gain_noisy.item()) and gain_clean.item() > 0
    mse = reconstruction_loss(x, target, "mse")
    assert mse.item() == pytest.approx((1e-4 + 1.0) / 2)
    assert (mse - reconstruction_loss(torch.cat([clean / 2, noisy]), target, "mse")).item() < 1e-4
    with pytest.raises(InputError, match="loss must be one of"):
        config_from_dict({"loss": "l1"})


def test_ssim_loss_matches_the_metric_and_sees_faint_background_ripples():
    rng = np.random.default_rng(0)
    target = np.zeros((2, 48, 40))
    target[:, 12:36, 10:30] = 0.8 + 0.1 * rng.random((2, 24, 20))
    ripple = 0.01 * np.sin(np.arange(40) / 2.0)[None, None] * (target == 0)
    estimate = np.abs(target + ripple)  # magnitudes, as the loss and the metric see them
    ours = ssim_torch(torch.tensor(target), torch.tensor(estimate)).numpy()
    np.testing.assert_allclose(ours, [ssim(t, e) for t, e in zip(target, estimate)], rtol=1e-10)
    channels = lambda a: torch.tensor(np.stack([a, np.zeros_like(a)], 1))  # noqa: E731
    x, y = channels(estimate), channels(target)
    psnr_only = reconstruction_loss(x, y, "psnr")
    both = reconstruction_loss(x, y, "psnr+ssim", ssim_weight=20.0)
    # the loss's magnitude carries a 1e-6 floor (differentiable square root), which moves the
    # SSIM of an exactly empty background by ~1e-4
    assert both.item() - psnr_only.item() == pytest.approx(20.0 * (1 - ours.mean()), rel=1e-3)
    assert 1 - ours.mean() > 0.05


def test_warm_start_copies_weights_and_refuses_another_model(tmp_path):
    first = train(load_config(_write(tmp_path, 2)), tmp_path / "a", log=lambda _: None)
    config = config_from_dict({**_tiny_dict(), "init_checkpoint": str(first)})
    model = build_model(config.model)
    warm_start(model, config)
    saved = load_checkpoint(first).state_dict
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    with pytest.raises(InputError, match="checkpoint not found"):
        train(config_from_dict({**_tiny_dict(), "init_checkpoint": str(tmp_path / "nope.pt")}), tmp_path / "c", log=lambda _: None)
    assert not (tmp_path / "c").exists()
    other = train(load_config(_write(tmp_path, 2, "utv", "mri")), tmp_path / "b", log=lambda _: None)
    with pytest.raises(InputError, match="utv/mri"):
        warm_start(model, config_from_dict({**_tiny_dict(), "init_checkpoint": str(other)}))


@pytest.mark.parametrize("depth, in_channels, out_channels", [(1, 2, 2), (3, 2, 2), (2, 1, 1), (2, 2, 1)])
def test_a_widened_unet_computes_the_narrow_ones_maps_and_its_new_weights_learn(depth, in_channels, out_channels):
    torch.manual_seed(0)
    narrow, wide = UNetConfig(depth=depth, base_channels=4), UNetConfig(depth=depth, base_channels=6)
    small = UNet(in_channels, out_channels, narrow)
    big = UNet(in_channels, out_channels, wide)
    big.load_state_dict(widened_unet_state(small.state_dict(), narrow, wide, big.state_dict()))
    assert big.encoders[0][0].weight[4:].abs().amax() > 0  # the new channels start from an initialisation, not zeros
    x = torch.randn(2, in_channels, 17, 24)
    maps = big(x)
    torch.testing.assert_close(maps, small(x), rtol=1e-6, atol=1e-7)
    maps.sum().backward()
    # the zero weights through which the old channels read the new ones get gradients at once ...
    assert big.head.weight.grad[:, 4:].abs().amax() > 0 and big.encoders[0][2].weight.grad[:4, 4:].abs().amax() > 0
    torch.optim.SGD(big.parameters(), lr=1e-3).step()
    big.zero_grad()
    big(x).sum().backward()  # ... and, once they are not zero, the new channels' own weights
    assert big.encoders[0][0].weight.grad[4:].abs().amax() > 0
    for bad in (UNetConfig(depth=depth, base_channels=4), UNetConfig(depth=depth + 1, base_channels=6),
                UNetConfig(depth=depth, base_channels=6, negative_slope=0.2)):
        with pytest.raises(ValueError, match="widened"):
            widened_unet_state(small.state_dict(), narrow, bad, UNet(in_channels, out_channels, bad).state_dict())


@pytest.mark.parametrize("kind", ["utgv", "utv"])  # two maps, one map: from two image channels
def test_warm_start_widens_the_checkpoints_unet_and_refuses_a_narrower_one(tmp_path, kind):
    first = train(load_config(_write(tmp_path, 2, kind)), tmp_path / "a", log=lambda _: None)
    wide_dict = {**_tiny_dict(kind=kind), "init_checkpoint": str(first)}
    wide_dict["model"] = {**wide_dict["model"], "unet": {"depth": 1, "base_channels": 8}}
    config = config_from_dict(wide_dict)
    model = build_model(config.model)
    warm_start(model, config)
    trained = load_checkpoint(first).build()
    f = torch.randn(1, 2, 24, 20)
    torch.testing.assert_close(model.unet(f), trained.unet(f), rtol=1e-6, atol=1e-7)
    assert torch.equal(model.log_rho.detach(), trained.log_rho.detach())
    wider = train(config_from_dict({**wide_dict, "steps": 2}), tmp_path / "wide", log=lambda _: None)
    narrow_dict = {**_tiny_dict(kind=kind), "init_checkpoint": str(wider)}
    with pytest.raises(InputError, match="widened"):
        warm_start(build_model(config_from_dict(narrow_dict).model), config_from_dict(narrow_dict))


def test_a_parameter_the_checkpoint_lacks_keeps_its_old_value_for_inference_and_starts_fresh_in_training(tmp_path):
    """A checkpoint written before ``log_rho_coil`` and ``coil_acceleration_exponent`` existed
    reconstructs with the 0.25 and the R-independent gain it was trained with; training from it
    starts the new parameters where a fresh model starts them."""
    from tgv_deploy.models.utgv import INITIAL_COIL_ACCELERATION_EXPONENT, INITIAL_RHO_COIL
    from tgv_deploy.solvers.admm_sense import DEFAULT_RHO_COIL

    trained = train(load_config(_write(tmp_path, 2)), tmp_path / "a", log=lambda _: None)
    checkpoint = load_checkpoint(trained)
    assert "log_rho_coil" in checkpoint.state_dict
    old = tmp_path / "old.pt"
    payload = torch.load(trained, weights_only=True)
    del payload["state_dict"]["log_rho_coil"], payload["state_dict"]["coil_acceleration_exponent"]
    torch.save(payload, old)
    legacy = load_checkpoint(old).build()
    assert float(legacy.rho_coil().detach()) == pytest.approx(DEFAULT_RHO_COIL)
    assert not legacy.coil_acceleration_exponent.detach().any()  # the gain stays independent of R
    model = build_model(config_from_dict(_tiny_dict()).model)
    warm_start(model, config_from_dict({**_tiny_dict(), "init_checkpoint": str(old)}))
    assert float(model.rho_coil().detach()) == pytest.approx(INITIAL_RHO_COIL) and INITIAL_RHO_COIL != DEFAULT_RHO_COIL
    assert torch.allclose(model.coil_acceleration_exponent.detach(), torch.full((2,), INITIAL_COIL_ACCELERATION_EXPONENT))
    assert torch.equal(model.unet.head.weight, checkpoint.state_dict["unet.head.weight"])


def test_real_fraction_drops_the_phase_of_that_share():
    phased = SyntheticSlices(16, 16, seed=5)
    real = SyntheticSlices(16, 16, seed=5, real_fraction=1.0)
    half = SyntheticSlices(16, 16, seed=5, real_fraction=0.5)
    for i in range(3):
        assert np.iscomplexobj(real(i)) and not np.abs(real(i).imag).any()
        np.testing.assert_allclose(real(i).real, np.abs(phased(i)), rtol=1e-6)
    kinds = [not np.abs(half(i).imag).any() for i in range(40)]
    assert 5 < sum(kinds) < 35  # both kinds occur
    with pytest.raises(InputError, match="real_fraction"):
        config_from_dict({"data": {"real_fraction": 1.5}})


def test_masked_fraction_zeroes_the_background_of_that_share_and_keeps_the_object():
    from tgv_deploy.training.data import masked_background

    image = np.zeros((32, 32), dtype=np.complex64)
    image[8:24, 8:24] = 1.0 + 0.5j
    image[15, 15] = 0.001  # a dark pixel inside the object stays
    image[0:3, 0:3] = 0.005  # a faint background haze, below 2% of the maximum, goes
    masked = masked_background(image)
    np.testing.assert_array_equal(masked[8:24, 8:24], image[8:24, 8:24])
    assert not masked[0:3, 0:3].any()
    plain = SyntheticSlices(32, 32, seed=5, version=3)
    every = SyntheticSlices(32, 32, seed=5, version=3, masked_fraction=1.0)
    half = SyntheticSlices(32, 32, seed=5, version=3, masked_fraction=0.5)
    assert (np.abs(plain(0)) > 0).all()  # the generator's backgrounds are never exactly zero
    np.testing.assert_array_equal(every(0), masked_background(plain(0)))
    kinds = [bool((half(i) == 0).any()) for i in range(40)]
    assert 5 < sum(kinds) < 35  # both kinds occur
    with pytest.raises(InputError, match="masked_fraction"):
        config_from_dict({"data": {"masked_fraction": -0.1}})


def test_target_noise_is_measured_with_the_image_and_leaves_other_streams_alone():
    image = SyntheticSlices(32, 32, seed=2)(0)
    plain = Corruption("mri", (4, 4), (0.05, 0.05), ("equispaced",))
    same = Corruption("mri", (4, 4), (0.05, 0.05), ("equispaced",), target_noise=(0.0, 0.0))
    a, b = plain.sample(image, np.random.default_rng(7)), same.sample(image, np.random.default_rng(7))
    assert a[3] is None and b[3] is None  # single-coil: no coil maps
    assert all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3]))  # no extra draw when off
    noisy = Corruption("mri", (4, 4), (0.0, 0.0), ("equispaced",), target_noise=(0.02, 0.02))
    f, mask, target, _ = noisy.sample(image, np.random.default_rng(7))
    truth = np.stack([image.real, image.imag])
    residual = (target - truth).std() / np.abs(image).max()
    assert 0.012 < residual < 0.016  # 0.02 per complex sample: 0.02 / sqrt(2) per real part
    # with sigma = 0 the data are exactly the noisy target's k-space on the sampled lines
    k = fft2c(target[0] + 1j * target[1]) * mask[0, 0]
    np.testing.assert_allclose(f[0] + 1j * f[1], k, atol=1e-5)
    with pytest.raises(InputError, match="target_noise"):
        config_from_dict({"data": {"target_noise": [0.03, 0.01]}})
    with pytest.raises(InputError, match="MRI only"):
        config_from_dict({"model": {"task": "denoise"}, "data": {"target_noise": [0.0, 0.01]}})


def test_log_uniform_sigma_prior_is_scale_invariant():
    uniform = Corruption("mri", (4, 4), (0.01, 0.2), ("equispaced",))
    log_uniform = Corruption("mri", (4, 4), (0.01, 0.2), ("equispaced",), sigma_prior="log-uniform")
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    a = np.array([uniform.draw_sigma(rng_a) for _ in range(4000)])
    b = np.array([log_uniform.draw_sigma(rng_b) for _ in range(4000)])
    assert a.min() >= 0.01 and a.max() <= 0.2 and b.min() >= 0.01 and b.max() <= 0.2
    # equal mass per octave: [0.01, 0.02] and [0.1, 0.2] each hold log(2)/log(20) = 23% of it
    low, high = np.mean((b >= 0.01) & (b < 0.02)), np.mean((b >= 0.1) & (b <= 0.2))
    assert abs(low - 0.231) < 0.03 and abs(high - 0.231) < 0.03
    assert np.mean(a < 0.05) < 0.25 < np.mean(b < 0.05)  # the uniform prior puts most draws at high noise
    with pytest.raises(InputError, match="sigma_prior"):
        config_from_dict({"data": {"sigma_prior": "gamma"}})
    with pytest.raises(InputError, match="0 < lo"):
        config_from_dict({"data": {"sigma_prior": "log-uniform", "sigma_range": [0.0, 0.2]}})


def test_multicoil_batches_can_carry_espirit_maps_and_a_drawn_calibration_fraction():
    """As deployed: ESPIRiT maps from the noisy calibration lines (unit norm everywhere, not the
    simulated ones), and the calibration region's width drawn; single-coil samples keep their streams."""
    from tgv_deploy.coils.maps import centre_lines

    image = SyntheticSlices(64, 64, seed=3)(0)
    simulated = Corruption("mri", (4, 4), (0.05, 0.05), ("equispaced",), multicoil_fraction=1.0, coils=(4, 4))
    estimated = Corruption("mri", (4, 4), (0.05, 0.05), ("equispaced",), multicoil_fraction=1.0, coils=(4, 4), coil_maps="espirit")
    f_true, mask_true, target_true, maps_true = simulated.sample(image, np.random.default_rng(1), coils=4)
    f, mask, target, maps = estimated.sample(image, np.random.default_rng(1), coils=4)
    # the same data (ESPIRiT draws nothing), other maps
    assert all(np.array_equal(a, b) for a, b in zip((f, mask, target), (f_true, mask_true, target_true)))
    assert maps.shape == maps_true.shape == (4, 2, 64, 64)
    np.testing.assert_allclose((maps ** 2).sum((0, 1)), 1.0, atol=1e-4)  # extended to unit norm everywhere
    assert np.abs(maps - maps_true).max() > 0.1  # estimated, not the simulated truth ...
    estimate, truth = maps[:, 0] + 1j * maps[:, 1], maps_true[:, 0] + 1j * maps_true[:, 1]
    agreement = np.abs((estimate.conj() * truth).sum(0))  # ... but the same up to a phase where there is signal
    assert agreement[np.abs(image) > 0.2 * np.abs(image).max()].mean() > 0.98
    wide = Corruption("mri", (4, 4), (0.05, 0.05), ("equispaced",), multicoil_fraction=1.0, coils=(4, 4),
                      coil_maps="espirit", multicoil_center_fraction=(0.2, 0.2))
    _, wide_mask, _, _ = wide.sample(image, np.random.default_rng(1), coils=4)
    low, high = centre_lines(wide_mask[0, 0])
    assert high - low >= round(0.2 * 64) > round(0.08 * 64) + 5  # the drawn fraction, far above fastMRI's 8% at R = 4
    one_coil = [c.sample(image, np.random.default_rng(2)) for c in (simulated, wide)]
    assert all(np.array_equal(a, b) for a, b in zip(one_coil[0][:3], one_coil[1][:3]))
    with pytest.raises(InputError, match="coil_maps"):
        config_from_dict({"data": {"coil_maps": "walsh"}})
    with pytest.raises(InputError, match="multicoil_center_fraction"):
        config_from_dict({"data": {"multicoil_center_fraction": [0.1, 0.05]}})
    # too few calibration lines for ESPIRiT is refused before training, not at the first multi-coil batch
    with pytest.raises(InputError, match="3 calibration lines"):
        config_from_dict({"data": {"coil_maps": "espirit", "multicoil_fraction": 0.5, "width": 48, "accelerations": [4, 8]}})
    with pytest.raises(InputError, match="3 calibration lines"):
        config_from_dict({"data": {"coil_maps": "espirit", "multicoil_fraction": 0.5, "multicoil_center_fraction": [0.01, 0.05]}})
    config_from_dict({"data": {"coil_maps": "espirit", "multicoil_fraction": 0.5, "multicoil_center_fraction": [0.03, 0.05]}})


def test_the_magnitude_loss_ignores_the_phase_of_estimated_maps():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(2, 2, 8, 8, generator=g)
    x = target + 0.1 * torch.randn(2, 2, 8, 8, generator=g)
    phase = torch.rand(2, 1, 8, 8, generator=g) * 6.0  # a smooth map phase would do; any per-pixel phase must
    rotated = torch.cat((x[:, :1] * torch.cos(phase) - x[:, 1:] * torch.sin(phase),
                         x[:, :1] * torch.sin(phase) + x[:, 1:] * torch.cos(phase)), 1)
    for kind in ("mse", "psnr", "psnr+ssim"):
        plain = reconstruction_loss(x, target, kind, 20.0, magnitudes=True)
        assert reconstruction_loss(rotated, target, kind, 20.0, magnitudes=True).item() == pytest.approx(plain.item(), rel=1e-5)
        assert reconstruction_loss(rotated, target, kind, 20.0).item() > reconstruction_loss(x, target, kind, 20.0).item() + 1e-3


def test_coil_gain_and_penalty_get_their_own_rate_and_no_weight_decay():
    config = config_from_dict({"learning_rate": 1e-4, "gain_learning_rate": 3e-3})
    model = build_model(config.model)
    groups = parameter_groups(model, config)
    assert [len(g["params"]) for g in groups] == [len(list(model.parameters())) - 3, 3]
    assert {id(p) for p in groups[1]["params"]} == {id(model.log_coil_gain), id(model.coil_acceleration_exponent),
                                                    id(model.log_rho_coil)}
    assert groups[1]["lr"] == 3e-3 and groups[1]["weight_decay"] == 0.0
    denoiser = build_model(config_from_dict({"model": {"task": "denoise", "kind": "utv"}}).model)
    assert len(parameter_groups(denoiser, config)) == 1  # no coils, no gain


def test_trainable_freezes_every_other_parameter(tmp_path):
    import dataclasses

    with pytest.raises(InputError, match=r"does not have: \['log_gain'\]"):
        parameter_groups(build_model(ModelConfig()), config_from_dict({"trainable": ["log_gain"]}))
    config = dataclasses.replace(load_config(_write(tmp_path, 2)), trainable=("log_gain",))
    with pytest.raises(InputError, match="does not have"):
        train(config, tmp_path / "refused", log=lambda line: None)
    assert not (tmp_path / "refused").exists()  # refused before anything is written
    config = dataclasses.replace(config, trainable=("log_rho",))
    torch.manual_seed(config.seed)  # the trainer's initial weights
    initial = build_model(config.model).state_dict()
    trained = load_checkpoint(train(config, tmp_path / "run", log=lambda line: None)).state_dict
    assert [k for k in initial if not torch.equal(initial[k], trained[k])] == ["log_rho"]


def test_lr_schedule_warms_up_then_decays():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100) == pytest.approx(0.05)
    assert lr_factor(50, 10, 100) < lr_factor(20, 10, 100)


@pytest.mark.parametrize("kind, task", [("utgv", "mri"), ("utv", "denoise")])
def test_training_runs_saves_and_resumes(tmp_path, kind, task):
    logs = []
    out = tmp_path / "run"
    first = train(load_config(_write(tmp_path, 4, kind, task)), out, log=logs.append)
    ckpt = load_checkpoint(first)
    assert ckpt.training["steps"] == 4 and ckpt.training["height"] == 24 and ckpt.training["train_iterations"] == 4
    assert [h["step"] for h in ckpt.training["history"]] == [2, 4]
    # The recorded scores are the saved model's: recomputed on the trainer's validation batch
    # (same seed, corruption and slices), they agree to float32 rounding.
    config = load_config(_write(tmp_path, 4, kind, task))
    data = config.data
    val_batch = make_batch(_source(config, config.seed + 10_000),
                           Corruption(config.model.task, (data.val_acceleration,) * 2, (data.val_sigma,) * 2, (data.val_mask,)),
                           list(range(data.val_size)), np.random.default_rng([config.seed, 1]), "cpu")
    recomputed = validate(ckpt.build().eval(), val_batch, config.model.iterations)
    last = ckpt.training["history"][-1]
    assert recomputed["psnr"] == pytest.approx(last["psnr"], abs=1e-3) and recomputed["ssim"] == pytest.approx(last["ssim"], abs=1e-4)
    assert 5 < last["psnr"] < 60 and 0 < last["ssim"] <= 1
    assert any("validation at step 4" in line for line in logs)
    before = {k: v.clone() for k, v in ckpt.state_dict.items()}
    logs.clear()
    train(load_config(_write(tmp_path, 6, kind, task)), out, resume=True, log=logs.append)
    assert logs[0] == "resumed at step 4"
    resumed = load_checkpoint(out / "model.pt")
    assert resumed.training["steps"] == 6
    assert any(not torch.equal(before[k], resumed.state_dict[k]) for k in before)


def test_two_process_ddp_on_cpu_keeps_replicas_identical(tmp_path):
    config = _write(tmp_path, 3)
    env = {**os.environ, "TGV_DDP_BACKEND": "gloo", "OMP_NUM_THREADS": "1"}
    with socket.socket() as probe:  # a free port: a fixed one collides with lingering runs
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", port,
               "-m", "tgv_deploy.training", str(config), str(tmp_path / "ddp")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    # the head holds a C++ abort's message, the tail torchrun's summary
    assert result.returncode == 0, result.stderr[:3000] + "\n...\n" + result.stderr[-1500:]
    output = result.stdout + result.stderr
    assert "x2," in output  # both ranks joined
    line = next(l for l in output.splitlines() if "replicas agree" in l)
    assert line.endswith("0.0e+00"), line
    checkpoint = load_checkpoint(tmp_path / "ddp" / "model.pt")
    assert checkpoint.training["world_size"] == 2
    # no multi-coil batches: the multi-coil-only parameters were frozen (DDP would otherwise wait for
    # their gradients) and keep their start values
    from tgv_deploy.models.utgv import DEFAULT_COIL_GAIN, INITIAL_COIL_ACCELERATION_EXPONENT, INITIAL_RHO_COIL

    state = checkpoint.state_dict
    assert torch.allclose(torch.exp(state["log_coil_gain"]), torch.full((2,), DEFAULT_COIL_GAIN))
    assert torch.allclose(state["coil_acceleration_exponent"], torch.full((2,), INITIAL_COIL_ACCELERATION_EXPONENT))
    assert float(torch.exp(state["log_rho_coil"])) == pytest.approx(INITIAL_RHO_COIL)


def test_model_card_describes_every_stage(tmp_path):
    stage1 = train(load_config(_write(tmp_path, 2)), tmp_path / "s1", log=lambda _: None)
    stage2_config = tmp_path / "stage2.toml"
    stage2_config.write_text(f'loss = "psnr+ssim"\ngain_learning_rate = 0.003\ninit_checkpoint = "{stage1}"\n'
                             + TINY.format(steps=2, kind="utgv", task="mri")
                             .replace("[data]", "[data]\nreal_fraction = 0.5\nsigma_prior = 'log-uniform'\nsigma_range = [0.01, 0.2]\n"
                                      "multicoil_fraction = 0.5\ncoils = [2, 3]\ncoil_maps = 'espirit'\n"
                                      "multicoil_center_fraction = [0.2, 0.3]")
                             .replace("iterations = 5", "iterations = 5\nnoise_gain = true"))
    stage2 = train(load_config(stage2_config), tmp_path / "s2", log=lambda _: None)
    text = card(stage2, "tiny", "stage2.toml", [], [], earlier=[(stage1, "stage1.toml")])
    first, second = text.index("Stage 1:"), text.index("Stage 2 (final):")
    assert first < second
    assert "MSE loss" in text[first:second] and "per-sample PSNR + 20 x (1 - SSIM) loss" in text[second:]
    assert f"starting from `{stage1}`" in text[second:] and "50% of them phase-free" in text[second:]
    assert f"`tgv-deploy train stage1.toml -o {stage1.parent}`" in text  # each stage's run folder is its checkpoint's
    assert "ADMM (SPEC 2b" in text  # the solver the final stage trained through (new models default to ADMM)
    assert "sigma ~ U[0.0, 0.2]" in text[first:second] and "log sigma ~ U[log 0.01, log 0.2]" in text[second:]
    assert ("50% of the batches multi-coil (2-3 simulated coil maps, SENSE, calibration fraction ~ U[0.2, 0.3], reconstructed "
            "with ESPIRiT maps estimated from the noisy calibration lines as the runtime does and scored on magnitudes, "
            "multi-coil map gain and its power of the sampled fraction and coil penalty learned at rate 0.003)" in text[second:])
    assert "learned rho_coil = " in text.splitlines()[2]  # the final stage trained on coils: its learned coil penalty
    assert "times (0.167 / sampled fraction) to the powers" in text.splitlines()[2]
    assert "learned rho_coil" not in card(stage1, "tiny", "stage1.toml", [], []).splitlines()[2]  # never trained on coils
    assert "scaled by a learned power of the k-space noise level" in text[second:] and "noise level" not in text[first:second]
    with_eval = card(stage2, "tiny", "stage2.toml", ["benchmarks/results/some-eval"], ["tgv-deploy evaluate ..."])
    assert "<!-- table: quality benchmarks/results/some-eval -->\n<!-- /table -->" in with_eval


def test_a_learned_penalty_schedule_starts_where_the_config_says_and_trains(tmp_path):
    base = _tiny_dict(steps=2)
    base["model"]["rho_schedule"] = 3
    start = [4.0, 1.0, 0.5]
    path = train(config_from_dict({**base, "rho_schedule_start": start, "gain_learning_rate": 0.01}), tmp_path / "s", log=lambda _: None)
    learned = load_checkpoint(path).state_dict["log_rho_factors"]
    moved = learned - torch.log(torch.tensor(start))
    assert moved.abs().max() <= 2 * 0.01 + 1e-6 and moved.abs().max() > 0  # from the start, at the gain rate
    text = card(path, "tiny", "s.toml", [], [])
    factors = torch.exp(learned)
    assert (f"times a learned per-iteration schedule of 3 factors (single-coil; {float(factors.min()):.3g} ... "
            f"{float(factors.max()):.3g}, {float(factors[0]):.3g} first and {float(factors[-1]):.3g} last)") in text.splitlines()[2]
    assert "penalty schedule (3 factors on rho, followed over the run's progress) learned at rate 0.01 from the config's" in text
    assert "schedule" not in card(train(config_from_dict(_tiny_dict(steps=1)), tmp_path / "plain", log=lambda _: None),
                                  "tiny", "p.toml", [], [])
    for bad in ([1.0, 1.0], [1.0, 0.0, 1.0], [1.0, float("inf"), 1.0]):
        with pytest.raises(InputError, match="rho_schedule_start needs model.rho_schedule = 3"):
            config_from_dict({**base, "rho_schedule_start": bad})
