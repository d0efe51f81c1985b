"""The stacked operators ``K`` whose norm bounds the PDHG step sizes (SPEC section 2)."""

from __future__ import annotations

import torch

from tgv_deploy.operators.base import LinearOperator, euclidean_inner
from tgv_deploy.operators.finite_differences import Gradient, SymGradient, symmetric_tensor_inner


class TGVOperator(LinearOperator):
    """``K (x, v) = (grad x - v, E v, A x)``.

    Domain: ``x (B, C, H, W)``, ``v (B, 2, C, H, W)``; range: ``p (B, 2, C, H, W)``,
    ``q (B, 3, C, H, W)`` with the symmetric-tensor inner product, ``r`` shaped like ``A x``.
    """

    def __init__(self, forward_op: LinearOperator):
        super().__init__()
        self.A = forward_op
        self.grad = Gradient()
        self.sym = SymGradient()

    def forward(self, xv: tuple[torch.Tensor, torch.Tensor]):
        x, v = xv
        return (self.grad(x) - v, self.sym(v), self.A(x))

    def adjoint(self, pqr):
        p, q, r = pqr
        return (self.grad.adjoint(p) + self.A.adjoint(r), -p + self.sym.adjoint(q))

    def range_inner(self, a, b):
        return euclidean_inner(a[0], b[0]) + symmetric_tensor_inner(a[1], b[1]) + euclidean_inner(a[2], b[2])


class TVOperator(LinearOperator):
    """``K x = (grad x, A x)`` for the TV variant."""

    def __init__(self, forward_op: LinearOperator):
        super().__init__()
        self.A = forward_op
        self.grad = Gradient()

    def forward(self, x: torch.Tensor):
        return (self.grad(x), self.A(x))

    def adjoint(self, pr):
        p, r = pr
        return self.grad.adjoint(p) + self.A.adjoint(r)
