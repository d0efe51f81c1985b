import numpy as np
import pytest
import torch

from helpers import assert_adjoint, randn
from tgv_deploy.operators import (
    CentredDFT,
    Gradient,
    IdentityOp,
    MaskedFourierOp,
    SymGradient,
    TGVOperator,
    TVOperator,
    backward_difference,
    centred_dft_matrix,
    div,
    div2,
    forward_difference,
)
from tgv_deploy.solvers import LK

SIZES = [(6, 8), (7, 9), (8, 5), (5, 5), (2, 3)]


def _mask(width, seed=1, dtype=torch.float64):
    mask = (randn(1, 1, 1, width, seed=seed) > 0).to(dtype)
    mask[..., width // 2] = 1
    return mask


# name -> (operator factory, domain sample factory, range sample factory) for (B, C, H, W)
OPERATORS = {
    "gradient": (lambda h, w: Gradient(), lambda b, c, h, w: (b, c, h, w), lambda b, c, h, w: (b, 2, c, h, w)),
    "symgradient": (lambda h, w: SymGradient(), lambda b, c, h, w: (b, 2, c, h, w), lambda b, c, h, w: (b, 3, c, h, w)),
    "identity": (lambda h, w: IdentityOp(), lambda b, c, h, w: (b, c, h, w), lambda b, c, h, w: (b, c, h, w)),
    "dft-fft": (lambda h, w: CentredDFT("fft"), lambda b, c, h, w: (b, 2, h, w), lambda b, c, h, w: (b, 2, h, w)),
    "dft-matrix": (lambda h, w: CentredDFT("matrix"), lambda b, c, h, w: (b, 2, h, w), lambda b, c, h, w: (b, 2, h, w)),
    "mri-fft": (lambda h, w: MaskedFourierOp(_mask(w), "fft"), lambda b, c, h, w: (b, 2, h, w), lambda b, c, h, w: (b, 2, h, w)),
    "mri-matrix": (
        lambda h, w: MaskedFourierOp(_mask(w), "matrix"),
        lambda b, c, h, w: (b, 2, h, w),
        lambda b, c, h, w: (b, 2, h, w),
    ),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_adjointness_float64(name, channels, size):
    make_op, domain, range_ = OPERATORS[name]
    op = make_op(*size)
    assert_adjoint(op, randn(*domain(3, channels, *size), seed=2), randn(*range_(3, channels, *size), seed=3))


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_float32_runs_and_keeps_dtype(name):
    make_op, domain, range_ = OPERATORS[name]
    op = make_op(7, 6)
    x = randn(*domain(2, 2, 7, 6), dtype=torch.float32)
    if name.startswith("mri"):
        op.mask = op.mask.float()
    y = op(x)
    assert y.dtype == torch.float32
    assert_adjoint(op, x, randn(*range_(2, 2, 7, 6), dtype=torch.float32, seed=5), rtol=1e-5)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_stacked_operators_adjoint(size):
    h, w = size
    for forward_op, channels in ((IdentityOp(), 1), (MaskedFourierOp(_mask(w), "fft"), 2)):
        x, v = randn(2, channels, h, w, seed=1), randn(2, 2, channels, h, w, seed=2)
        p, q, r = randn(2, 2, channels, h, w, seed=3), randn(2, 3, channels, h, w, seed=4), randn(2, channels, h, w, seed=5)
        assert_adjoint(TGVOperator(forward_op), (x, v), (p, q, r))
        assert_adjoint(TVOperator(forward_op), x, (p, r))


def test_difference_conventions_by_hand():
    u = torch.tensor([[1.0, 4.0, 9.0, 16.0]], dtype=torch.float64)[None]  # (1, 1, 4) along dim -1
    assert forward_difference(u, -1).tolist() == [[[3.0, 5.0, 7.0, 0.0]]]
    # D- u = (u0, u1 - u0, u2 - u1, -u2)
    assert backward_difference(u, -1).tolist() == [[[1.0, 3.0, 5.0, -9.0]]]
    rows = u.transpose(-1, -2)
    assert forward_difference(rows, -2).flatten().tolist() == [3.0, 5.0, 7.0, 0.0]


def test_symgradient_components_and_weighted_inner_product():
    v = randn(1, 2, 1, 5, 6, seed=7)
    e = SymGradient()(v)
    torch.testing.assert_close(e[:, 0], backward_difference(v[:, 0], -2))
    torch.testing.assert_close(e[:, 1], backward_difference(v[:, 1], -1))
    torch.testing.assert_close(e[:, 2], 0.5 * (backward_difference(v[:, 0], -1) + backward_difference(v[:, 1], -2)))
    # Without the weight 2 on xy the adjoint identity breaks: the check can fail.
    w = randn(1, 3, 1, 5, 6, seed=8)
    plain = (e * w).sum()
    assert abs(plain - (v * SymGradient().adjoint(w)).sum()) > 1e-3


def test_div_and_div2_are_negative_adjoints():
    p, w = randn(2, 2, 1, 6, 7, seed=1), randn(2, 3, 1, 6, 7, seed=2)
    torch.testing.assert_close(div(p), -Gradient().adjoint(p))
    torch.testing.assert_close(div2(w), -SymGradient().adjoint(w))
    assert Gradient().H.H.__class__ is Gradient


@pytest.mark.parametrize("size", [(8, 8), (7, 10), (5, 3), (16, 13)])
def test_dft_implementations_agree(size):
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        x = randn(3, 2, *size, dtype=dtype, seed=4)
        for adjoint in (False, True):
            a = CentredDFT("fft").adjoint(x) if adjoint else CentredDFT("fft")(x)
            b = CentredDFT("matrix").adjoint(x) if adjoint else CentredDFT("matrix")(x)
            assert b.dtype == dtype
            rel = ((a - b).norm() / a.norm()).item()
            assert rel < tol, f"{dtype} adjoint={adjoint}: {rel:.2e}"


def test_dft_matches_fastmri_centred_convention():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2, 6, 9)) + 1j * rng.standard_normal((2, 6, 9))
    expected = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(z, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    x = torch.from_numpy(np.stack((z.real, z.imag), axis=1))
    for impl in ("fft", "matrix"):
        k = CentredDFT(impl)(x).numpy()
        np.testing.assert_allclose(k[:, 0] + 1j * k[:, 1], expected, rtol=0, atol=1e-12)
        back = CentredDFT(impl).adjoint(torch.from_numpy(np.stack((expected.real, expected.imag), 1))).numpy()
        np.testing.assert_allclose(back[:, 0] + 1j * back[:, 1], z, atol=1e-12)
    c = centred_dft_matrix(7)
    np.testing.assert_allclose(c.conj().T @ c, np.eye(7), atol=1e-13)


def test_dft_rejects_wrong_layout():
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        CentredDFT("fft")(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="one of"):
        CentredDFT("nufft")


@pytest.mark.parametrize("size", [(16, 16), (15, 12)])
def test_step_size_bound_covers_operator_norm(size):
    h, w = size
    for forward_op, channels in ((IdentityOp(), 1), (MaskedFourierOp(_mask(w), "fft"), 2)):
        K = TGVOperator(forward_op)
        x0 = (randn(1, channels, h, w, seed=11), randn(1, 2, channels, h, w, seed=12))
        norm_sq = K.operator_norm(x0, iterations=400).item() ** 2
        # > 10: the reference code's L = 3 (L^2 = 9) would violate s t ||K||^2 < 1.
        assert 10.0 < norm_sq <= LK**2, norm_sq
        # A power iteration only bounds the norm from below, so "<= LK**2" proves something only
        # once it has converged: four times as many iterations move it by under 1e-5 (measured 1e-6).
        longer = K.operator_norm(x0, iterations=1600).item() ** 2
        assert abs(longer - norm_sq) < 1e-5 * norm_sq and longer <= LK**2
    tv_norm_sq = TVOperator(IdentityOp()).operator_norm(randn(1, 1, h, w, seed=3), iterations=400).item() ** 2
    assert tv_norm_sq <= LK**2


@pytest.mark.parametrize("n", [16, 24, 40, 64, 256, 320, 368])
def test_factorised_dft_equals_the_centred_dft(n):
    from tgv_deploy.dft import centred_dft_matrix, factorised_dft, dft_factors

    n1, n2 = dft_factors(n)
    assert n1 * n2 == n and n1 % 2 == 0 and min(n1, n2) >= 4
    a, m, order = factorised_dft(n, n1)
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 3)) + 1j * rng.standard_normal((n, 3))
    stage1 = np.einsum("ab,bnk->ank", a, x.reshape(n1, n2, 3))
    z = np.einsum("acn,ank->ack", m, stage1).reshape(n, 3)
    np.testing.assert_allclose(z, (centred_dft_matrix(n) @ x)[order], rtol=0, atol=1e-12 * np.abs(z).max())
    assert sorted(order) == list(range(n))


@pytest.mark.parametrize("n", [9, 12, 13, 14, 18, 22, 31])
def test_sizes_without_an_even_factorisation_keep_the_dense_dft(n):
    from tgv_deploy.dft import dft_factors

    assert dft_factors(n) is None
