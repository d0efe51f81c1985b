import cvxpy as cp
import numpy as np
import pytest
import scipy.sparse as sp
import torch

import reference
from cvx_reference import assert_gap_decreases_to_reference, dplus_matrix, exact_tgv_minimum
from tgv_deploy.solvers import LK, pdhg_tgv, pdhg_tv, tgv_energy, tv_energy


def _problem(kind, h=8, w=9, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    image = (xx + yy > 0.6).astype(float) + 0.5 * xx
    if kind == "denoise":
        f = image[None] + 0.1 * rng.standard_normal((batch, h, w))
        return f, None
    phase = np.exp(1j * (xx - 0.3 * yy))
    mask = (rng.random((1, 1, w)) < 0.5).astype(float)
    mask[..., w // 2] = 1
    k = reference.fft2c(np.repeat((image * phase)[None], batch, 0))
    noise = 0.05 * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape))
    return mask * (k + noise), mask


def _maps(shape, seed):
    rng = np.random.default_rng(seed)
    return 0.02 + 0.1 * rng.random(shape), 0.01 + 0.05 * rng.random(shape)


@pytest.mark.parametrize("kind", ["denoise", "mri"])
@pytest.mark.parametrize("dft", ["fft", "matrix"])
def test_matches_independent_reference(kind, dft):
    f, mask = _problem(kind, h=7, w=10)
    lam0, lam1 = _maps(f.shape, seed=3)
    s, t = 0.3, 0.25
    expected = reference.pdhg_tgv(f, lam0, lam1, mask, 40, s, t)
    got = pdhg_tgv(f, lam0, lam1, mask=mask, iterations=40, sigma=s, tau=t, dft=dft)
    assert isinstance(got, np.ndarray) and got.dtype == expected.dtype
    rel = np.linalg.norm(got - expected) / np.linalg.norm(expected)
    assert rel < 1e-12, rel


def test_torch_float64_in_float64_out_and_float32():
    f, mask = _problem("mri")
    out = pdhg_tgv(torch.from_numpy(f), 0.05, 0.02, mask=torch.from_numpy(mask), iterations=3)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.complex128 and out.shape == f.shape
    out32 = pdhg_tgv(torch.from_numpy(f).to(torch.complex64), 0.05, 0.02, mask=torch.from_numpy(mask), iterations=3)
    assert out32.dtype == torch.complex64
    rel = ((out32.to(torch.complex128) - out).abs().norm() / out.abs().norm()).item()
    assert rel < 1e-5
    real = pdhg_tgv(torch.rand(2, 5, 6, dtype=torch.float32), 0.1, 0.1, iterations=2)
    assert real.dtype == torch.float32 and real.shape == (2, 5, 6)


def test_mask_broadcast_forms_agree():
    f, mask = _problem("mri", batch=2)
    full = np.broadcast_to(mask, f.shape).copy()
    a = pdhg_tgv(f, 0.05, 0.02, mask=mask, iterations=5)
    b = pdhg_tgv(f, 0.05, 0.02, mask=full, iterations=5)
    c = pdhg_tgv(f, 0.05, 0.02, mask=np.repeat(mask, 2, axis=0), iterations=5)
    np.testing.assert_allclose(a, b, atol=1e-14)
    np.testing.assert_allclose(a, c, atol=1e-14)


@pytest.mark.parametrize("kind", ["denoise", "mri"])
def test_converges_to_exact_minimiser_with_decreasing_gap(kind):
    f, mask = _problem(kind, h=8, w=7, batch=1, seed=5)
    lam0, lam1 = _maps(f.shape, seed=6)
    exact = exact_tgv_minimum(f[0], lam0[0], lam1[0], None if mask is None else mask[0])
    gaps = []
    for iterations in (125, 500, 2000, 8000):
        x, v = pdhg_tgv(f, lam0, lam1, mask=mask, iterations=iterations, sigma=1 / LK, tau=1 / LK, return_v=True)
        energy = float(tgv_energy(x, v, f, lam0, lam1, mask=mask)[0])
        assert energy >= exact - 1e-7 * abs(exact), "PDHG below the exact minimum: the energies disagree"
        gaps.append((energy - exact) / exact)
    # The primal energy of PDHG is not monotone iteration by iteration; over the doubling schedule
    # the gap must shrink until it reaches the reference's own accuracy, then stay within it.
    assert_gap_decreases_to_reference(gaps)
    assert gaps[-1] < 2e-4, gaps


def test_tv_converges_to_cvxpy():
    f, _ = _problem("denoise", h=7, w=8, batch=1, seed=2)
    lam = 0.08
    h, w = f.shape[1:]
    d0 = sp.kron(dplus_matrix(h), sp.eye(w))
    d1 = sp.kron(sp.eye(h), dplus_matrix(w))
    x = cp.Variable(h * w)
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - f.ravel()) + lam * cp.sum(cp.abs(d0 @ x) + cp.abs(d1 @ x))))
    problem.solve(solver=cp.CLARABEL)
    out = pdhg_tv(f, lam, iterations=4000)
    energy = float(tv_energy(out, f, lam)[0])
    assert (energy - problem.value) / problem.value < 1e-4
    np.testing.assert_allclose(out[0].ravel(), x.value, atol=2e-3)


def test_differentiable_in_maps_and_steps():
    f, mask = _problem("mri", h=6, w=6, batch=1)
    f, mask = torch.from_numpy(f), torch.from_numpy(mask)
    lam0 = torch.full((1, 6, 6), 0.05, dtype=torch.float64, requires_grad=True)
    lam1 = torch.full((1, 6, 6), 0.02, dtype=torch.float64, requires_grad=True)
    sigma = torch.tensor(0.25, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(
        lambda a, b, s: pdhg_tgv(f, a, b, mask=mask, iterations=4, sigma=s, tau=0.2).abs(),
        (lam0, lam1, sigma),
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(f=np.zeros((4, 4))), r"\(B, H, W\)"),
        (dict(f=np.zeros((1, 4, 4), dtype=complex)), "denoising"),
        (dict(f=np.zeros((1, 4, 4)), mask=np.ones((1, 1, 4))), "complex"),
        (dict(f=np.zeros((1, 4, 4), dtype=complex), mask=np.ones((1, 4))), "mask must be"),
        (dict(f=np.zeros((1, 4, 4), dtype=complex), mask=np.ones((1, 1, 5))), "mask must be"),
        (dict(f=np.zeros((1, 4, 4), dtype=complex), mask=np.full((1, 1, 4), 0.5)), "binary"),
        (dict(f=np.full((1, 4, 4), np.nan)), "NaN"),
        (dict(f=np.zeros((1, 4, 4)), lambda0=np.ones((1, 3, 4))), "lambda0"),
        (dict(f=np.zeros((1, 4, 4)), lambda1=-1.0), "non-negative"),
        (dict(f=np.zeros((1, 4, 4)), iterations=0), "iterations"),
        (dict(f=np.zeros((1, 4, 4)), sigma=-0.1), "sigma"),
        (dict(f=np.zeros((1, 4, 4), dtype=np.int64)), "float32/float64"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    args = dict(lambda0=0.1, lambda1=0.1) | kwargs
    with pytest.raises(ValueError, match=match):
        pdhg_tgv(**args)
