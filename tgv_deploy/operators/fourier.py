"""The centred orthonormal 2D DFT on (real, imaginary) channels, and the MRI forward operator.

Convention (fastMRI): ``F x = fftshift(fft2(ifftshift(x), norm="ortho"))`` over the last two
axes, so k-space arrays entering and leaving the package are centred.  Two implementations
compute the same operator:

* ``"fft"``: ``torch.fft``; fast in eager mode, used for training and as the reference;
* ``"matrix"``: dense real matrix products with the shifts and ``1/sqrt(N)`` folded into the
  constants; uses only MatMul/Reshape/Transpose, so it exports to ONNX and TensorRT.
"""

from __future__ import annotations

from typing import Literal

import torch

from tgv_deploy.dft import real_dft_block
from tgv_deploy.operators.base import LinearOperator

DFTImpl = Literal["fft", "matrix"]
DFT_IMPLS: tuple[str, ...] = ("fft", "matrix")


_TORCH_CACHE: dict[tuple, torch.Tensor] = {}


def _block_tensor(n: int, adjoint: bool, like: torch.Tensor) -> torch.Tensor:
    key = (n, adjoint, like.dtype, like.device)
    if key not in _TORCH_CACHE:
        block = real_dft_block(n)
        _TORCH_CACHE[key] = torch.as_tensor(block.T if adjoint else block, dtype=like.dtype, device=like.device)
    return _TORCH_CACHE[key]


def _matrix_dft2(x: torch.Tensor, adjoint: bool) -> torch.Tensor:
    """Apply ``C_H X C_W^T`` (or the adjoint) to ``x`` ``(B, 2, H, W)`` with two real matrix products.

    The channel-first layout makes ``x.reshape(B, 2H, W)`` the stacked ``[X_re; X_im]``; the column
    transform is a row transform of the transposed image.
    """
    batch, _, height, width = x.shape
    rows = _block_tensor(height, adjoint, x) @ x.reshape(batch, 2 * height, width)
    transposed = rows.reshape(batch, 2, height, width).transpose(-1, -2).reshape(batch, 2 * width, height)
    cols = _block_tensor(width, adjoint, x) @ transposed
    return cols.reshape(batch, 2, width, height).transpose(-1, -2)


def _fft_dft2(x: torch.Tensor, adjoint: bool) -> torch.Tensor:
    z = torch.complex(x[:, 0], x[:, 1])
    z = torch.fft.ifftshift(z, dim=(-2, -1))
    z = torch.fft.ifft2(z, norm="ortho") if adjoint else torch.fft.fft2(z, norm="ortho")
    z = torch.fft.fftshift(z, dim=(-2, -1))
    return torch.stack((z.real, z.imag), dim=1)


class CentredDFT(LinearOperator):
    """Centred orthonormal 2D DFT: ``(B, 2, H, W) -> (B, 2, H, W)``, channels (real, imaginary).

    Unitary, so ``adjoint`` is the inverse: ``fftshift(ifft2(ifftshift(k), norm="ortho"))``.
    """

    def __init__(self, impl: DFTImpl = "fft"):
        super().__init__()
        if impl not in DFT_IMPLS:
            raise ValueError(f"DFT implementation must be one of {DFT_IMPLS}, got {impl!r}")
        self.impl = impl

    def _transform(self, x: torch.Tensor, adjoint: bool) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 2:
            raise ValueError(f"DFT input must be (B, 2, H, W) (real, imaginary), got {tuple(x.shape)}")
        return (_fft_dft2 if self.impl == "fft" else _matrix_dft2)(x, adjoint)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._transform(x, adjoint=False)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._transform(y, adjoint=True)


class MaskedFourierOp(LinearOperator):
    """Single-coil Cartesian MRI ``A x = M * F x``: ``(B, 2, H, W) -> (B, 2, H, W)``.

    ``mask`` is a binary ``(B, 1, H, W)`` tensor or broadcastable to it (line masks: ``(B, 1, 1, W)``).
    A multi-coil SENSE operator would map to ``(B, coils, 2, H, W)`` behind the same interface.
    """

    def __init__(self, mask: torch.Tensor, impl: DFTImpl = "fft"):
        super().__init__()
        self.mask = mask
        self.dft = CentredDFT(impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask * self.dft(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.dft.adjoint(self.mask * y)
