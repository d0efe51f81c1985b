"""Shared test helpers: the one adjointness check every operator test calls."""

from __future__ import annotations

import torch

from tgv_deploy.operators.base import LinearOperator


def _shape(t):
    return tuple(_shape(ti) for ti in t) if isinstance(t, tuple) else tuple(t.shape)


def assert_adjoint(op: LinearOperator, x, y, rtol: float = 1e-12) -> None:
    """Check shapes, then ``<A x, y>_range == <x, A^H y>_domain`` per batch element."""
    ax, ahy = op(x), op.adjoint(y)
    assert _shape(ax) == _shape(y), f"A x has shape {_shape(ax)}, range sample has {_shape(y)}"
    assert _shape(ahy) == _shape(x), f"A^H y has shape {_shape(ahy)}, domain sample has {_shape(x)}"
    lhs, rhs = op.range_inner(ax, y), op.domain_inner(x, ahy)
    rel = ((lhs - rhs).abs() / torch.maximum(lhs.abs(), rhs.abs())).max().item()
    assert rel < rtol, f"adjointness error {rel:.3e} >= {rtol:.1e}"


def randn(*shape, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=dtype)
