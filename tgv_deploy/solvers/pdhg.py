"""The unrolled primal-dual (Chambolle-Pock) iteration of SPEC section 2.

The data term is dualised as in the reference code.  With ``K = [[grad, -I], [0, E], [A, 0]]``
and state ``x, v`` (primal), ``p, q, r`` (dual), each iteration is::

    p <- clip(p + s (grad xbar - vbar), L1)
    q <- clip(q + s E vbar, L0)
    r <- (r + s (A xbar - f)) / (1 + s)
    x+ = x + t (div p - A^H r)
    v+ = v + t (p + div2 q)
    xbar = x+ + theta (x+ - x),   vbar = v+ + theta (v+ - v)

started at ``x = xbar = A^H f`` and zero elsewhere.  ``clip`` clamps every real component to
``[-L, L]`` per pixel, so the regulariser is the anisotropic L1 norm of the paper.

The functions here work on real channel-first tensors ``(B, C, H, W)`` (C = 1 real, C = 2 for
(real, imaginary)) so that the model and its exported graph run this exact code; the public,
validating entry points are in :mod:`tgv_deploy.solvers.api`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Union

import torch

from tgv_deploy.operators.base import LinearOperator
from tgv_deploy.operators.finite_differences import Gradient, SymGradient
from tgv_deploy.operators.periodic import PeriodicGradient, PeriodicSymGradient

#: Closed-form bound with ``LK**2 >= ||K||**2`` for every forward operator with ``||A|| <= 1``
#: (``||grad||^2 <= 8`` and ``||E||^2 <= 8`` plus the coupling terms; power iteration gives
#: about 11.8 with ``A = I``).  The reference code's 3 violates the convergence condition.
LK = math.sqrt(13.0)

Scalar = Union[float, torch.Tensor]


def step_sizes(log_step: Scalar) -> tuple[Scalar, Scalar]:
    """``s = exp(b) / LK`` and ``t = exp(-b) / LK``, so ``s t ||K||^2 <= ||K||^2 / LK^2 < 1``."""
    if isinstance(log_step, torch.Tensor):
        return torch.exp(log_step) / LK, torch.exp(-log_step) / LK
    return math.exp(log_step) / LK, math.exp(-log_step) / LK


def clip(y: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
    """Clamp every component of ``y`` to ``[-bound, bound]`` (bound broadcast, non-negative)."""
    return torch.clamp(y, -bound, bound)  # one pass; the same values as minimum(maximum(y, -bound), bound)


def _as_field_bound(lam: torch.Tensor) -> torch.Tensor:
    """Map ``(B, H, W)`` (or broadcastable 3-D) to ``(B, 1, 1, H, W)`` against ``(B, K, C, H, W)``."""
    return lam[:, None, None]


def _run(step, state: tuple, iterations: int, checkpoint_every: int | None, callback) -> tuple:
    """Apply ``step`` ``iterations`` times; with ``checkpoint_every`` keep only segment boundaries
    for backward (activation checkpointing trades compute for memory at large T).

    ``callback(k, x, v_or_aux)`` runs after iteration ``k``; returning True stops the run there
    (convergence criteria of baselines and studies).
    """
    if not checkpoint_every or callback is not None or not torch.is_grad_enabled():
        for k in range(iterations):
            state = step(state)
            if callback is not None and callback(k, *state[:2]):
                break
        return state
    from torch.utils.checkpoint import checkpoint

    def segment(n: int):
        def run(*s):
            for _ in range(n):
                s = step(s)
            return s

        return run

    done = 0
    while done < iterations:
        n = min(checkpoint_every, iterations - done)
        state = checkpoint(segment(n), *state, use_reentrant=False)
        done += n
    return state


def pdhg_tgv_channels(
    f: torch.Tensor,
    lambda0: torch.Tensor,
    lambda1: torch.Tensor,
    forward_op: LinearOperator,
    iterations: int,
    sigma: Scalar,
    tau: Scalar,
    theta: float = 1.0,
    callback: Callable[[int, torch.Tensor, torch.Tensor], bool | None] | None = None,
    checkpoint_every: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``iterations`` TGV iterations; returns ``(x (B, C, H, W), v (B, 2, C, H, W))``.

    ``f`` is shaped like the range of ``forward_op``; ``lambda0`` / ``lambda1`` are ``(B, H, W)``
    or broadcastable 3-D tensors.  ``callback(k, x, v)`` runs after iteration ``k`` (diagnostics
    only; it is never part of an exported graph).
    """
    grad, sym = Gradient(), SymGradient()
    l0, l1 = _as_field_bound(lambda0), _as_field_bound(lambda1)
    x = forward_op.adjoint(f)
    v = torch.zeros((x.shape[0], 2, *x.shape[1:]), dtype=x.dtype, device=x.device)
    q = torch.zeros((x.shape[0], 3, *x.shape[1:]), dtype=x.dtype, device=x.device)

    def step(state):
        x, v, xbar, vbar, p, q, r = state
        p = clip(p + sigma * (grad(xbar) - vbar), l1)
        q = clip(q + sigma * sym(vbar), l0)
        r = (r + sigma * (forward_op(xbar) - f)) / (1 + sigma)
        x_new = x - tau * (grad.adjoint(p) + forward_op.adjoint(r))
        v_new = v + tau * (p - sym.adjoint(q))
        return x_new, v_new, x_new + theta * (x_new - x), v_new + theta * (v_new - v), p, q, r

    state = (x, v, x, v, torch.zeros_like(v), q, torch.zeros_like(f))
    x, v, *_ = _run(step, state, iterations, checkpoint_every, callback)
    return x, v


def pdhg_tv_channels(
    f: torch.Tensor,
    lam: torch.Tensor,
    forward_op: LinearOperator,
    iterations: int,
    sigma: Scalar,
    tau: Scalar,
    theta: float = 1.0,
    callback: Callable[[int, torch.Tensor], bool | None] | None = None,
    checkpoint_every: int | None = None,
) -> torch.Tensor:
    """The TV variant (no ``v``, no ``q``): returns ``x (B, C, H, W)``."""
    grad = Gradient()
    bound = _as_field_bound(lam)
    x = forward_op.adjoint(f)

    def step(state):
        x, xbar, p, r = state
        p = clip(p + sigma * grad(xbar), bound)
        r = (r + sigma * (forward_op(xbar) - f)) / (1 + sigma)
        x_new = x - tau * (grad.adjoint(p) + forward_op.adjoint(r))
        return x_new, x_new + theta * (x_new - x), p, r

    p0 = torch.zeros((x.shape[0], 2, *x.shape[1:]), dtype=x.dtype, device=x.device)
    tv_callback = None if callback is None else (lambda k, x, _xbar: callback(k, x))
    return _run(step, (x, x, p0, torch.zeros_like(f)), iterations, checkpoint_every, tv_callback)[0]


def tgv_energy_channels(
    x: torch.Tensor,
    v: torch.Tensor,
    f: torch.Tensor,
    lambda0: torch.Tensor,
    lambda1: torch.Tensor,
    forward_op: LinearOperator,
    periodic: bool = False,
) -> torch.Tensor:
    """``1/2 ||A x - f||^2 + sum L1 |grad x - v|_1 + sum L0 |E v|_1`` per batch element ``(B,)``.

    ``|E v|_1`` counts the off-diagonal entry twice, consistent with the tensor inner product.
    ``periodic`` selects the differences of SPEC 2b (what ADMM minimises) instead of section 1's.
    """
    grad, sym = (PeriodicGradient(), PeriodicSymGradient()) if periodic else (Gradient(), SymGradient())
    l0, l1 = _as_field_bound(lambda0), _as_field_bound(lambda1)
    data = 0.5 * (forward_op(x) - f).square().flatten(1).sum(1)
    first = (l1 * (grad(x) - v).abs()).flatten(1).sum(1)
    ev = sym(v).abs()
    weights = torch.tensor([1.0, 1.0, 2.0], dtype=x.dtype, device=x.device).reshape(1, 3, 1, 1, 1)
    second = (l0 * weights * ev).flatten(1).sum(1)
    return data + first + second


def tv_energy_channels(
    x: torch.Tensor, f: torch.Tensor, lam: torch.Tensor, forward_op: LinearOperator, periodic: bool = False
) -> torch.Tensor:
    """``1/2 ||A x - f||^2 + sum L |grad x|_1`` per batch element ``(B,)`` (``periodic``: SPEC 2b's differences)."""
    grad = PeriodicGradient() if periodic else Gradient()
    data = 0.5 * (forward_op(x) - f).square().flatten(1).sum(1)
    return data + (_as_field_bound(lam) * grad(x).abs()).flatten(1).sum(1)
