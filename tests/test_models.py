import copy
import io
import pickle
import zipfile

import numpy as np
import pytest
import torch

from tgv_deploy.errors import IntegrityError, InputError
from tgv_deploy.models import (
    UTGV,
    UTV,
    ModelConfig,
    UNet,
    UNetConfig,
    build_model,
    load_checkpoint,
    save_checkpoint,
    unet_preset,
)
from tgv_deploy.solvers import admm_tgv, pdhg_tgv

TINY = UNetConfig(depth=2, base_channels=4)


def _mri_input(batch=2, h=13, w=10, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(batch, 2, h, w, generator=g, dtype=dtype)
    mask = (torch.rand(batch, 1, 1, w, generator=g) < 0.5).to(dtype)
    mask[..., w // 2] = 1
    return f * mask, mask


@pytest.mark.parametrize("size", [(16, 16), (13, 10), (7, 5), (33, 17)])
def test_unet_any_size(size):
    net = UNet(2, 2, UNetConfig(depth=3, base_channels=4))
    out = net(torch.randn(2, 2, *size))
    assert out.shape == (2, 2, *size)
    assert (out >= 0).all()


def test_presets():
    assert unet_preset("paper") == UNetConfig(depth=4, base_channels=128)
    assert unet_preset("small").depth == 3
    with pytest.raises(ValueError, match="unknown U-Net preset"):
        unet_preset("huge")


@pytest.mark.parametrize("solver", ["pdhg", "admm"])
@pytest.mark.parametrize("kind", ["utgv", "utv"])
@pytest.mark.parametrize("task", ["mri", "denoise"])
def test_scale_equivariance(kind, task, solver):
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind=kind, task=task, unet=TINY, iterations=6, solver=solver)).double()
    if task == "mri":
        f, mask = _mri_input(dtype=torch.float64)
    else:
        f, mask = torch.rand(2, 1, 11, 14, dtype=torch.float64), None
    x, maps = model(f, mask)
    # The normalisation makes the model exactly 1-homogeneous, so in float64 only rounding
    # remains: measured <= 3e-16 (one or two ulps); 1e-13 leaves room for other BLAS builds but
    # fails for any real loss of homogeneity (a missing rescale shows at 1e-2 or more).
    for c in (1e-3, 7.5, 4e4):
        xc, mapsc = model(c * f, mask)
        assert ((xc - c * x).norm() / (c * x).norm()).item() < 1e-13
        assert ((mapsc - c * maps).norm() / (c * maps).norm()).item() < 1e-13
    assert maps.shape == (2, 2 if kind == "utgv" else 1, *f.shape[-2:])


def test_scale_equivariance_float32():
    """In float32 the model is as scale-equivariant as it is accurate: at 1x and 250x the data its
    output is within float32 rounding of the float64 model's (exactly equivariant, test above)."""
    torch.manual_seed(1)
    model = UTGV(ModelConfig(unet=TINY, iterations=8))
    f, mask = _mri_input()
    x, _ = model(f, mask)
    xc, _ = model(250.0 * f, mask)
    x64, _ = copy.deepcopy(model).double()(f.double(), mask.double())

    def relative(a: torch.Tensor, b: torch.Tensor) -> float:
        return ((a.double() - b.double()).norm() / b.double().norm()).item()

    # The ADMM default's float32 solve measured 7e-7 ... 1e-6 from float64 over seeds at both scales
    # (a few ulps per iteration through the FFTs; the equivariance gap is at most their sum). 1e-5
    # still fails for any scale-dependent loss of precision, which shows at one scale only.
    assert relative(x, x64) < 1e-5 and relative(xc, 250.0 * x64) < 1e-5
    assert relative(xc, 250.0 * x) < 1e-5


def test_returned_maps_reproduce_output_through_public_solver():
    torch.manual_seed(2)
    model = UTGV(ModelConfig(unet=TINY, iterations=7, solver="pdhg")).double()
    with torch.no_grad():
        model.log_step.fill_(0.3)
    f, mask = _mri_input(batch=1, dtype=torch.float64)
    x, maps = model(f, mask)
    sigma, tau = model.step_sizes()
    expected = pdhg_tgv(
        torch.complex(f[:, 0], f[:, 1]), maps[:, 0], maps[:, 1], mask=mask[:, 0], iterations=7, sigma=sigma, tau=tau
    )
    torch.testing.assert_close(torch.complex(x[:, 0], x[:, 1]), expected, rtol=1e-10, atol=1e-12)


def test_admm_model_maps_reproduce_output_through_public_solver():
    torch.manual_seed(2)
    model = UTGV(ModelConfig(unet=TINY, iterations=7, solver="admm", alpha=1.5)).double()
    with torch.no_grad():
        model.log_rho.fill_(0.4)
    f, mask = _mri_input(batch=1, dtype=torch.float64)
    x, maps = model(f, mask)
    expected = admm_tgv(
        torch.complex(f[:, 0], f[:, 1]), maps[:, 0], maps[:, 1], mask=mask[:, 0], iterations=7, rho=model.rho(), alpha=1.5
    )
    torch.testing.assert_close(torch.complex(x[:, 0], x[:, 1]), expected, rtol=1e-10, atol=1e-12)


def test_checkpoint_without_solver_loads_as_pdhg(tmp_path):
    """Checkpoints written before the solver was configurable are PDHG models (SPEC 2b)."""
    model = UTGV(ModelConfig(unet=TINY, iterations=5, solver="pdhg"))
    path = tmp_path / "old.pt"
    save_checkpoint(path, model)
    payload = torch.load(path, weights_only=True)
    del payload["config"]["solver"], payload["config"]["alpha"]
    torch.save(payload, path)
    assert load_checkpoint(path).config.solver == "pdhg"
    assert ModelConfig().solver == "admm"  # new models


def test_admm_model_refuses_mask_without_centre():
    model = UTGV(ModelConfig(unet=TINY, iterations=2, solver="admm"))
    f, mask = _mri_input()
    mask[..., mask.shape[-1] // 2] = 0
    with pytest.raises(ValueError, match="centre"):
        model(f * mask, mask)


@pytest.mark.parametrize("solver", ["pdhg", "admm"])
@pytest.mark.parametrize("model_cls", [UTGV, UTV])
def test_gradients_reach_every_parameter(model_cls, solver):
    torch.manual_seed(3)
    model = model_cls(ModelConfig(unet=TINY, iterations=4, solver=solver))
    with torch.no_grad():
        model.unet.head.bias.fill_(-1.0)  # keep maps small so no clip saturates every pixel
    f, mask = _mri_input()
    x, _ = model(f, mask)
    # one coil of ones: the multi-coil path, where the coil gain of the maps enters
    ones = torch.zeros(f.shape[0], 1, *f.shape[1:])
    ones[:, :, 0] = 1
    x_coils, _ = model(f[:, None], mask, coil_maps=ones)
    (x.square().mean() + x_coils.square().mean()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert (model.log_step if solver == "pdhg" else model.log_rho).grad.abs() > 0


def test_fft_and_matrix_dft_models_agree():
    torch.manual_seed(4)
    model = UTGV(ModelConfig(unet=TINY, iterations=10, solver="pdhg"))
    f, mask = _mri_input()
    x_fft, _ = model(f, mask)
    model.set_dft("matrix")
    x_mat, _ = model(f, mask)
    assert ((x_fft - x_mat).norm() / x_fft.norm()).item() < 1e-5
    with pytest.raises(ValueError):
        model.set_dft("dft-op")


@pytest.mark.parametrize(
    "f_shape, mask_shape, match",
    [
        ((2, 1, 8, 8), (2, 1, 1, 8), r"\(B, 2, H, W\)"),
        ((2, 2, 8, 8), None, "need a mask"),
        ((2, 2, 8, 8), (2, 1, 8), r"\(B, 1, 1, W\)"),
        ((2, 2, 8, 8), (2, 1, 1, 7), r"\(B, 1, 1, W\)"),
        ((8, 8), (1, 1, 1, 8), r"\(B, 2, H, W\)"),
    ],
)
def test_model_rejects_wrong_shapes(f_shape, mask_shape, match):
    model = UTGV(ModelConfig(unet=TINY, iterations=2))
    mask = None if mask_shape is None else torch.ones(mask_shape)
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(f_shape), mask)


def test_config_validation():
    with pytest.raises(ValueError, match="kind"):
        ModelConfig(kind="tgv")
    with pytest.raises(ValueError, match="iterations"):
        ModelConfig(iterations=0)
    with pytest.raises(ValueError, match="depth"):
        UNetConfig(depth=0)
    config = ModelConfig(kind="utv", task="denoise", unet=TINY, iterations=9)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="penalty_ratio must be a positive number"):
        ModelConfig(penalty_ratio=0.0)
    with pytest.raises(ValueError, match="penalty_ratio applies to ADMM U-TGV models only"):
        ModelConfig(kind="utv", penalty_ratio=4.0)
    with pytest.raises(ValueError, match="penalty_ratio applies to ADMM U-TGV models only"):
        ModelConfig(solver="pdhg", penalty_ratio=4.0)
    # checkpoints written before the ratio existed load with SPEC 2b's single penalty
    older = {k: v for k, v in ModelConfig(unet=TINY).to_dict().items() if k != "penalty_ratio"}
    assert ModelConfig.from_dict(older).penalty_ratio == 1.0


def test_multicoil_default_iterations():
    config = ModelConfig(unet=TINY, iterations=64, multicoil_iterations=96)
    assert (config.default_iterations(False), config.default_iterations(True)) == (64, 96)
    assert ModelConfig.from_dict(config.to_dict()) == config
    # checkpoints written before the field existed run multi-coil data at their one T
    older = {k: v for k, v in config.to_dict().items() if k != "multicoil_iterations"}
    assert ModelConfig.from_dict(older).default_iterations(True) == 64
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="multicoil_iterations must be an integer >= 1"):
            ModelConfig(multicoil_iterations=bad)
    with pytest.raises(ValueError, match="MRI models only"):
        ModelConfig(task="denoise", multicoil_iterations=8)


def test_the_model_runs_multicoil_data_at_its_multicoil_default():
    torch.manual_seed(0)
    model = build_model(ModelConfig(unet=TINY, iterations=3, multicoil_iterations=5)).eval()
    rng = np.random.default_rng(1)
    coils, height, width = 3, 16, 12
    f = torch.from_numpy(rng.standard_normal((1, coils, 2, height, width)).astype(np.float32))
    maps = torch.from_numpy(rng.standard_normal((1, coils, 2, height, width)).astype(np.float32))
    maps = maps / maps.square().sum(dim=(1, 2), keepdim=True).sqrt()  # sum_c |S_c|^2 = 1
    mask = torch.zeros(1, 1, 1, width)
    mask[..., ::2] = 1
    mask[..., width // 2] = 1
    single = f[:, 0]
    with torch.no_grad():
        assert torch.equal(model(f * mask, mask, coil_maps=maps)[0], model(f * mask, mask, iterations=5, coil_maps=maps)[0])
        assert not torch.equal(model(f * mask, mask, coil_maps=maps)[0], model(f * mask, mask, iterations=3, coil_maps=maps)[0])
        assert torch.equal(model(single * mask, mask)[0], model(single * mask, mask, iterations=3)[0])


@pytest.mark.parametrize("solver", ["pdhg", "admm"])
def test_checkpoint_round_trip(tmp_path, solver):
    torch.manual_seed(5)
    model = UTGV(ModelConfig(unet=TINY, iterations=5, solver=solver))
    with torch.no_grad():
        (model.log_step if solver == "pdhg" else model.log_rho).fill_(-0.2)
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, {"steps": 12, "seed": 3})
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    ckpt = load_checkpoint(path)
    assert ckpt.config == model.config and ckpt.training == {"steps": 12, "seed": 3}
    loaded = ckpt.build()
    f, mask = _mri_input()
    torch.testing.assert_close(loaded(f, mask)[0], model.eval()(f, mask)[0], rtol=0, atol=0)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_checkpoint_with_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "tgv-deploy-checkpoint", "payload": _Evil()}, path)
    with pytest.raises(IntegrityError, match=r"refused.*\(print\)$") as refusal:
        load_checkpoint(path)
    assert "weights_only" not in str(refusal.value)  # never relay torch's advice to load unsafely
    assert "pwned" not in capsys.readouterr().out


def test_raw_pickle_and_corrupt_files_are_refused(tmp_path):
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Evil()))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint" * 10)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    for path, reason in ((raw, "not a PyTorch checkpoint"), (corrupt, "not a PyTorch checkpoint"), (foreign, "not a tgv-deploy checkpoint")):
        with pytest.raises(IntegrityError, match=reason):
            load_checkpoint(path)
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_truncated_and_mismatched_checkpoints_are_refused(tmp_path):
    model = UTGV(ModelConfig(unet=TINY, iterations=5))
    good = tmp_path / "good.pt"
    save_checkpoint(good, model)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:500])
    with pytest.raises(IntegrityError):
        load_checkpoint(truncated)
    payload = torch.load(good, weights_only=True)
    payload["config"]["unet"]["base_channels"] = 8
    mismatched = tmp_path / "mismatched.pt"
    torch.save(payload, mismatched)
    with pytest.raises(IntegrityError, match="shape|match"):
        load_checkpoint(mismatched)
    payload = torch.load(good, weights_only=True)
    payload["format_version"] = 99
    future = tmp_path / "future.pt"
    torch.save(payload, future)
    with pytest.raises(IntegrityError, match="version"):
        load_checkpoint(future)
    assert zipfile.is_zipfile(io.BytesIO(good.read_bytes()))


@pytest.mark.parametrize("solver", ["pdhg", "admm"])
def test_activation_checkpointing_gives_the_same_gradients(solver):
    torch.manual_seed(6)
    model = UTGV(ModelConfig(unet=TINY, iterations=7, solver=solver)).double()
    f, mask = _mri_input(dtype=torch.float64)
    grads = []
    for every in (None, 3):
        model.zero_grad()
        model.checkpoint_every = every
        x, _ = model(f, mask)
        x.square().sum().backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    multicoil_only = {"log_coil_gain", "coil_acceleration_exponent", "log_rho_coil"}
    assert len(grads[0]) == len([n for n, _ in model.named_parameters() if n not in multicoil_only])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_a_learned_penalty_schedule(tmp_path):
    """``rho_schedule``: refused where it does not apply; at its start (all factors 1) the model is
    the one-rho model exactly; a run of T = n takes the n learned factors as they are, another T their
    interpolation over its progress; the schedule is in the solver (the public one with the same
    factors reproduces the output), learns (gradient), and survives a checkpoint round trip."""
    from tgv_deploy.models.utgv import image_scale
    from tgv_deploy.solvers.admm import admm_tgv_channels

    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="rho_schedule must be an integer >= 0"):
            ModelConfig(rho_schedule=bad)
    with pytest.raises(ValueError, match="rho_schedule applies to ADMM U-TGV models only"):
        ModelConfig(kind="utv", rho_schedule=4)
    with pytest.raises(ValueError, match="rho_schedule applies to ADMM U-TGV models only"):
        ModelConfig(solver="pdhg", rho_schedule=4)
    older = {k: v for k, v in ModelConfig(unet=TINY).to_dict().items() if k != "rho_schedule"}
    assert ModelConfig.from_dict(older).rho_schedule == 0

    torch.manual_seed(7)
    plain = UTGV(ModelConfig(unet=TINY, iterations=6, solver="admm")).double()
    scheduled = UTGV(ModelConfig(unet=TINY, iterations=6, solver="admm", rho_schedule=6)).double()
    scheduled.load_state_dict_compatible(plain.state_dict())  # a checkpoint without the schedule: factors 1
    f, mask = _mri_input(batch=1, dtype=torch.float64)
    torch.testing.assert_close(scheduled(f, mask)[0], plain(f, mask)[0], rtol=0, atol=1e-13)

    learned = torch.tensor([0.0, 0.6, -0.4, 1.2, 0.3, -0.8], dtype=torch.float64)
    with torch.no_grad():
        scheduled.log_rho_factors.copy_(learned)
    torch.testing.assert_close(scheduled.rho_factors(6).log(), learned, rtol=0, atol=1e-14)
    stretched = scheduled.rho_factors(11).log()  # k / 10 of the way: every other one is learned, between them the mean
    torch.testing.assert_close(stretched[::2], learned, rtol=0, atol=1e-14)
    torch.testing.assert_close(stretched[1::2], (learned[:-1] + learned[1:]) / 2, rtol=0, atol=1e-14)
    assert plain.rho_factors(6) is None

    x, maps = scheduled(f, mask)
    scale = image_scale(scheduled.forward_operator(f, mask).adjoint(f)).reshape(())
    expected, _ = admm_tgv_channels(f / scale, maps[:, 0] / scale, maps[:, 1] / scale, mask, 6, scheduled.rho(), scheduled.config.alpha,
                                    rho_factors=learned.exp().tolist())
    torch.testing.assert_close(x, expected * scale, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(x, plain(f, mask)[0], rtol=0, atol=1e-6)
    (gradient,) = torch.autograd.grad(x.square().sum(), scheduled.log_rho_factors)
    assert torch.all(gradient != 0)

    path = tmp_path / "model.pt"
    save_checkpoint(path, scheduled.float(), {"steps": 1})
    loaded = load_checkpoint(path).build()
    assert loaded.config.rho_schedule == 6
    torch.testing.assert_close(loaded.log_rho_factors, scheduled.log_rho_factors, rtol=0, atol=0)
