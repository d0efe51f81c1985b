"""Coil-splitting ADMM (SPEC 2b, multi-coil): it minimises the periodic SENSE-TGV/TV energy exactly,
with extended (unit-norm everywhere) and cropped (zero outside the object) coil maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cvx_reference import exact_tgv_minimum, exact_tv_minimum_sense
from tgv_deploy.operators.sense import SenseOp
from tgv_deploy.solvers.admm import admm_tgv_channels
from tgv_deploy.solvers.admm_sense import CoilSplit, admm_tgv_sense_channels, admm_tv_sense_channels
from tgv_deploy.solvers.pdhg import tgv_energy_channels, tv_energy_channels

H, W, COILS = 10, 8, 3


def _problem(kind: str, seed: int = 0):
    """Random image, maps ``(1, C, 2, H, W)`` normalised to unit norm (``extend``) or cut to a
    rectangle (``crop``), a line mask with the centre, noisy coil k-space."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 2, H, W, generator=g, dtype=torch.float64)
    maps = torch.randn(1, COILS, 2, H, W, generator=g, dtype=torch.float64)
    maps = maps / maps.square().sum((1, 2), keepdim=True).sqrt()
    if kind == "crop":
        support = torch.zeros(H, W, dtype=torch.float64)
        support[2:8, 1:6] = 1
        maps = maps * support
    mask = torch.tensor([1, 0, 1, 0, 1, 1, 0, 1], dtype=torch.float64).reshape(1, 1, 1, W)
    op = SenseOp(maps, mask)
    f = op(x) + 0.2 * mask[:, None] * torch.randn(1, COILS, 2, H, W, generator=g, dtype=torch.float64)
    return f, maps, mask, op


def _scalar_maps(lambda0: float, lambda1: float) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((1, H, W), lambda0, dtype=torch.float64), torch.full((1, H, W), lambda1, dtype=torch.float64)


def _complex(t: torch.Tensor) -> np.ndarray:
    return (t[..., 0, :, :] + 1j * t[..., 1, :, :]).numpy()


@pytest.mark.parametrize("kind, mask_form", [("extend", "lines"), ("crop", "lines"), ("extend", "2d")])
def test_reaches_the_cvxpy_minimum_of_the_sense_tgv_energy(kind, mask_form):
    """Line masks take the coil step's 1D transforms, a mask that varies along the rows the 2D ones."""
    f, maps, mask, op = _problem(kind, seed=5 if mask_form == "2d" else 0)
    if mask_form == "2d":
        g = torch.Generator().manual_seed(6)
        mask = (torch.rand(1, 1, H, W, generator=g, dtype=torch.float64) < 0.5).double()
        mask[..., H // 2, W // 2] = 1
        f, op = f * mask[:, None], SenseOp(maps, mask)
    l0, l1 = _scalar_maps(0.1, 0.05)
    reference = exact_tgv_minimum(_complex(f[0]), l0[0].numpy(), l1[0].numpy(), mask[0, 0].numpy(), periodic=True,
                                  maps=_complex(maps[0]))
    x, v = admm_tgv_sense_channels(f, maps, mask, l0, l1, 3000)
    energy = float(tgv_energy_channels(x, v, f, l0, l1, op, periodic=True))
    # the minimum is unique, so the converged energy equals CVXPY's to the reference's accuracy
    assert abs(energy - reference) / reference < 1e-7


@pytest.mark.parametrize("kind", ["extend", "crop"])
def test_reaches_the_cvxpy_minimum_of_the_sense_tv_energy(kind):
    f, maps, mask, op = _problem(kind, seed=1)
    lam = torch.full((1, H, W), 0.08, dtype=torch.float64)
    reference = exact_tv_minimum_sense(_complex(f[0]), 0.08, mask[0, 0].numpy(), _complex(maps[0]))
    x = admm_tv_sense_channels(f, maps, mask, lam, 3000)
    energy = float(tv_energy_channels(x, f, lam, op, periodic=True))
    assert abs(energy - reference) / reference < 1e-7


def test_a_line_mask_takes_the_same_iterates_as_its_two_dimensional_form():
    """The 1D coil step of a line mask is the 2D one: the row transforms cancel."""
    f, maps, mask, _ = _problem("crop", seed=7)
    l0, l1 = _scalar_maps(0.1, 0.05)
    assert CoilSplit(f, maps, mask, 0.25).dims == (-1,) and CoilSplit(f, maps, mask.expand(1, 1, H, W), 0.25).dims == (-2, -1)
    x_lines, _ = admm_tgv_sense_channels(f, maps, mask, l0, l1, 30)
    x_full, _ = admm_tgv_sense_channels(f, maps, mask.expand(1, 1, H, W), l0, l1, 30)
    assert torch.allclose(x_lines, x_full, rtol=0, atol=1e-12 * float(x_full.abs().max()))


def test_one_coil_of_ones_is_the_single_coil_problem():
    """With C = 1 and S = 1 the energy is the single-coil one: both solvers reach the same minimum."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, H, W, generator=g, dtype=torch.float64)
    mask = torch.tensor([1, 1, 0, 0, 1, 0, 1, 0], dtype=torch.float64).reshape(1, 1, 1, W)
    maps = torch.zeros(1, 1, 2, H, W, dtype=torch.float64)
    maps[:, :, 0] = 1
    op = SenseOp(maps, mask)
    f = op(x)
    l0, l1 = _scalar_maps(0.2, 0.1)
    xs, vs = admm_tgv_sense_channels(f, maps, mask, l0, l1, 3000)
    x1, v1 = admm_tgv_channels(f[:, 0], l0, l1, mask, 3000)
    e_split = float(tgv_energy_channels(xs, vs, f, l0, l1, op, periodic=True))
    e_single = float(tgv_energy_channels(x1, v1, f, l0, l1, op, periodic=True))
    assert abs(e_split - e_single) / e_single < 1e-9


def test_positive_homogeneity_and_input_checks():
    f, maps, mask, _ = _problem("extend", seed=3)
    l0, l1 = _scalar_maps(0.1, 0.05)
    x, _ = admm_tgv_sense_channels(f, maps, mask, l0, l1, 20)
    x3, _ = admm_tgv_sense_channels(3 * f, maps, mask, 3 * l0, 3 * l1, 20)
    assert torch.allclose(x3, 3 * x, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="k-space centre"):
        admm_tgv_sense_channels(f, maps, mask * 0, l0, l1, 2)
    with pytest.raises(ValueError, match=r"sum_c \|S_c\|\^2 <= 1"):
        admm_tgv_sense_channels(f, 2 * maps, mask, l0, l1, 2)
    with pytest.raises(ValueError, match=r"\(B, C, 2, H, W\)"):
        admm_tgv_sense_channels(f, maps[:, :2], mask, l0, l1, 2)


def test_differentiable_in_the_maps():
    f, maps, mask, _ = _problem("extend", seed=4)
    l1 = torch.full((1, H, W), 0.05, dtype=torch.float64, requires_grad=True)
    x, _ = admm_tgv_sense_channels(f, maps, mask, 2 * l1, l1, 10)
    x.square().sum().backward()
    assert l1.grad is not None and torch.isfinite(l1.grad).all() and l1.grad.abs().sum() > 0
