"""Linear operators with an explicit adjoint, in the style of mrpro and ODL.

Every operator maps real tensors to real tensors (complex data travel as a (real, imaginary)
channel pair), so the graph traced for export is the graph run in training.  Domain and range
may carry a non-Euclidean inner product (the symmetric tensor fields of TGV count their
off-diagonal twice); ``adjoint`` is the adjoint with respect to those inner products, and
``domain_inner`` / ``range_inner`` say what they are, so one dot test serves every operator.
"""

from __future__ import annotations

from typing import Generic, TypeVar, Union, cast

import torch
from torch import nn

TensorLike = Union[torch.Tensor, tuple]
#: Domain and range types of an operator: a tensor, or a tuple of tensors (TGV's (x, v)). An
#: operator that does not say (``class Gradient(LinearOperator)``) gets ``Any`` for both, so it
#: may narrow them to ``torch.Tensor`` without breaking its contract with the base class.
Domain = TypeVar("Domain", bound=TensorLike)
Range = TypeVar("Range", bound=TensorLike)
_T = TypeVar("_T", bound=TensorLike)


def euclidean_inner(a: TensorLike, b: TensorLike) -> torch.Tensor:
    """Sum of elementwise products per batch element, for tensors or tuples of tensors.

    Returns a tensor of shape ``(B,)`` (the leading dimension is the batch).
    """
    if isinstance(a, tuple) and isinstance(b, tuple):
        total = euclidean_inner(a[0], b[0])
        for ai, bi in zip(a[1:], b[1:], strict=True):
            total = total + euclidean_inner(ai, bi)
        return total
    if isinstance(a, tuple) or isinstance(b, tuple):
        raise TypeError("inner product of a tensor with a tuple of tensors")
    return (a * b).flatten(1).sum(1)


class LinearOperator(nn.Module, Generic[Domain, Range]):
    """A linear map with ``forward`` (apply) and ``adjoint``.

    Subclasses implement :meth:`forward` and :meth:`adjoint`; ``.H`` and :meth:`operator_norm`
    come for free. Operators that combine others (``TGVOperator``) write both directions out.
    """

    def forward(self, x: Domain) -> Range:  # pragma: no cover - abstract
        raise NotImplementedError

    def adjoint(self, y: Range) -> Domain:  # pragma: no cover - abstract
        raise NotImplementedError

    def domain_inner(self, a: Domain, b: Domain) -> torch.Tensor:
        """Inner product of the domain, per batch element ``(B,)``."""
        return euclidean_inner(a, b)

    def range_inner(self, a: Range, b: Range) -> torch.Tensor:
        """Inner product of the range, per batch element ``(B,)``."""
        return euclidean_inner(a, b)

    @property
    def H(self) -> LinearOperator[Range, Domain]:  # noqa: N802 - the conventional name of the adjoint
        return AdjointOperator(self)

    @torch.no_grad()
    def operator_norm(self, x0: Domain, iterations: int = 200) -> torch.Tensor:
        """Largest singular value by power iteration on ``A^H A``, started at ``x0``.

        Returns one estimate per batch element ``(B,)``; it increases towards ``||A||``.
        """
        x = _scale(x0, 1.0 / self.domain_inner(x0, x0).sqrt())
        estimate = torch.zeros(())
        for _ in range(iterations):
            y = self.adjoint(self.forward(x))
            estimate = self.domain_inner(x, y).sqrt()
            x = _scale(y, 1.0 / self.domain_inner(y, y).sqrt())
        return estimate


def _scale(x: _T, factor: torch.Tensor) -> _T:
    if isinstance(x, tuple):
        return cast(_T, tuple(_scale(xi, factor) for xi in x))
    return cast(_T, x * factor.reshape(-1, *([1] * (x.ndim - 1))))


class AdjointOperator(LinearOperator[Range, Domain]):
    def __init__(self, operator: LinearOperator[Domain, Range]):
        super().__init__()
        self.operator = operator

    def forward(self, x: Range) -> Domain:
        return self.operator.adjoint(x)

    def adjoint(self, y: Domain) -> Range:
        return self.operator.forward(y)

    def domain_inner(self, a: Range, b: Range) -> torch.Tensor:
        return self.operator.range_inner(a, b)

    def range_inner(self, a: Domain, b: Domain) -> torch.Tensor:
        return self.operator.domain_inner(a, b)

    @property
    def H(self) -> LinearOperator[Domain, Range]:  # noqa: N802
        return self.operator


class IdentityOp(LinearOperator):
    """The identity, the forward operator of denoising: ``(B, C, H, W) -> (B, C, H, W)``."""

    def forward(self, x):
        return x

    def adjoint(self, y):
        return y
