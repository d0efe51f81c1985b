"""Finite differences of SPEC section 1: gradient, symmetrised gradient and their adjoints.

Axis 0 of the image is rows (tensor dim -2), axis 1 is columns (tensor dim -1).

* forward difference ``D+``: ``u[k+1] - u[k]``, and 0 at the last index (Neumann);
* backward difference ``D- = -(D+)^T``: ``u[0]`` at 0, ``u[k] - u[k-1]`` inside, ``-u[N-2]`` at N-1.

``div = -Gradient.H`` and ``div2 = -SymGradient.H``; each adjoint is written once, here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tgv_deploy.operators.base import LinearOperator, euclidean_inner

# F.pad lists (left, right) pairs from the last dimension backwards.
_PAD_AFTER = {-1: (0, 1), -2: (0, 0, 0, 1)}
_PAD_BEFORE = {-1: (1, 0), -2: (0, 0, 1, 0)}


def forward_difference(u: torch.Tensor, dim: int) -> torch.Tensor:
    """``D+`` along ``dim`` (-2 rows or -1 columns), same shape as ``u``."""
    n = u.shape[dim]
    diff = u.narrow(dim, 1, n - 1) - u.narrow(dim, 0, n - 1)
    return F.pad(diff, _PAD_AFTER[dim])


def backward_difference(u: torch.Tensor, dim: int) -> torch.Tensor:
    """``D- = -(D+)^T`` along ``dim`` (-2 rows or -1 columns), same shape as ``u``."""
    n = u.shape[dim]
    head = u.narrow(dim, 0, n - 1)  # u[N-1] never enters D-
    return F.pad(head, _PAD_AFTER[dim]) - F.pad(head, _PAD_BEFORE[dim])


class Gradient(LinearOperator):
    """``grad u = (D_0+ u, D_1+ u)``: ``(B, C, H, W) -> (B, 2, C, H, W)``.

    ``C`` is 1 for real images and 2 for (real, imaginary); each channel is differentiated alone.
    """

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return torch.stack((forward_difference(u, -2), forward_difference(u, -1)), dim=1)

    def adjoint(self, p: torch.Tensor) -> torch.Tensor:
        """``grad^T p = -(D_0- p_0 + D_1- p_1)``: ``(B, 2, C, H, W) -> (B, C, H, W)``."""
        return -(backward_difference(p[:, 0], -2) + backward_difference(p[:, 1], -1))


class SymGradient(LinearOperator):
    """Symmetrised gradient ``E v``: ``(B, 2, C, H, W) -> (B, 3, C, H, W)`` as (xx, yy, xy).

    ``E v = [[D_0- v1, (D_1- v1 + D_0- v2) / 2], [., D_1- v2]]``. The range carries the inner
    product ``<w, w'> = w_xx w'_xx + w_yy w'_yy + 2 w_xy w'_xy`` (the off-diagonal counts twice),
    and :meth:`adjoint` is the adjoint for it.
    """

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        v1, v2 = v[:, 0], v[:, 1]
        xx = backward_difference(v1, -2)
        yy = backward_difference(v2, -1)
        xy = 0.5 * (backward_difference(v1, -1) + backward_difference(v2, -2))
        return torch.stack((xx, yy, xy), dim=1)

    def adjoint(self, w: torch.Tensor) -> torch.Tensor:
        """``E^* w = -(D_0+ w_xx + D_1+ w_xy, D_0+ w_xy + D_1+ w_yy)``: ``(B,3,C,H,W) -> (B,2,C,H,W)``."""
        xx, yy, xy = w[:, 0], w[:, 1], w[:, 2]
        first = forward_difference(xx, -2) + forward_difference(xy, -1)
        second = forward_difference(xy, -2) + forward_difference(yy, -1)
        return -torch.stack((first, second), dim=1)

    def range_inner(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return symmetric_tensor_inner(a, b)


def symmetric_tensor_inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``<a, b>`` of symmetric tensor fields ``(B, 3, ...)`` stored as (xx, yy, xy); returns ``(B,)``."""
    return euclidean_inner(a[:, :2], b[:, :2]) + 2 * euclidean_inner(a[:, 2], b[:, 2])


def div(p: torch.Tensor) -> torch.Tensor:
    """``div = -grad^T``: ``(B, 2, C, H, W) -> (B, C, H, W)``."""
    return -Gradient().adjoint(p)


def div2(w: torch.Tensor) -> torch.Tensor:
    """``div2 = -E^*``: ``(B, 3, C, H, W) -> (B, 2, C, H, W)``."""
    return -SymGradient().adjoint(w)
