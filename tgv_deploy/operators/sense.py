"""Multi-coil Cartesian MRI (SENSE): ``A x = (M F (S_c x))_c`` on (real, imaginary) channels.

Shapes: image ``x (B, 2, H, W)``, coil maps ``S (B, C, 2, H, W)``, k-space ``(B, C, 2, H, W)``,
mask ``(B, 1, H, W)`` or broadcastable to it (line masks ``(B, 1, 1, W)``), shared by all coils.
``F`` is the centred orthonormal 2D DFT of :class:`~tgv_deploy.operators.fourier.CentredDFT`
(either implementation), applied to the ``B * C`` coil images as one batch.

Adjoint: ``A^H y = sum_c conj(S_c) F^H (M y_c)``. With maps normalised so that
``sum_c |S_c|^2 = 1`` (SPEC 1b), ``A^H A`` is the identity on fully sampled data wherever the maps
are not cropped, and with one coil of ones ``A`` is :class:`MaskedFourierOp`.
"""

from __future__ import annotations

import torch

from tgv_deploy.operators.base import LinearOperator, TensorLike
from tgv_deploy.operators.fourier import CentredDFT, DFTImpl


def _complex_multiply(a: torch.Tensor, b: torch.Tensor, conjugate_a: bool = False) -> torch.Tensor:
    """Product of complex numbers stored as (real, imaginary) on dim -3: ``a (..., 2, H, W) * b``."""
    a_re, a_im = a[..., 0, :, :], a[..., 1, :, :]
    b_re, b_im = b[..., 0, :, :], b[..., 1, :, :]
    if conjugate_a:
        a_im = -a_im
    return torch.stack((a_re * b_re - a_im * b_im, a_re * b_im + a_im * b_re), dim=-3)


def _describe(value: TensorLike) -> str:
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


class SenseOp(LinearOperator):
    """SENSE forward operator: ``(B, 2, H, W) -> (B, C, 2, H, W)``.

    Parameters
    ----------
    maps : torch.Tensor
        Coil maps ``(B, C, 2, H, W)`` (real, imaginary), real dtype.
    mask : torch.Tensor
        Binary sampling mask ``(B, 1, H, W)`` or broadcastable to it (``(B, 1, 1, W)`` for lines).
    impl : {"fft", "matrix"}
        DFT implementation (see :mod:`tgv_deploy.operators.fourier`).
    """

    def __init__(self, maps: torch.Tensor, mask: torch.Tensor, impl: DFTImpl = "fft"):
        super().__init__()
        if maps.ndim != 5 or maps.shape[2] != 2:
            raise ValueError(f"coil maps must be (B, C, 2, H, W) (real, imaginary), got {tuple(maps.shape)}")
        if mask.ndim != 4 or mask.shape[1] != 1:
            raise ValueError(f"mask must be (B, 1, H, W) or broadcastable to it, got {tuple(mask.shape)}")
        self.maps = maps
        # One mask for all coils: insert the coil axis so it broadcasts over (B, C, 2, H, W).
        self.mask = mask.unsqueeze(1)
        self.dft = CentredDFT(impl)

    @property
    def coils(self) -> int:
        return int(self.maps.shape[1])

    def _check_image(self, x: TensorLike) -> torch.Tensor:
        batch, _, _, height, width = self.maps.shape
        if (
            not isinstance(x, torch.Tensor)
            or x.ndim != 4
            or x.shape[1] != 2
            or x.shape[-2:] != (height, width)
            or x.shape[0] not in (1, batch)
        ):
            raise ValueError(f"image must be ({batch}, 2, {height}, {width}), got {_describe(x)}")
        return x

    def forward(self, x: TensorLike) -> torch.Tensor:
        x = self._check_image(x)
        coil_images = _complex_multiply(self.maps, x.unsqueeze(1))  # (B, C, 2, H, W)
        batch, coils, _, height, width = coil_images.shape
        kspace = self.dft(coil_images.reshape(batch * coils, 2, height, width)).reshape(batch, coils, 2, height, width)
        return self.mask * kspace

    def adjoint(self, y: TensorLike) -> torch.Tensor:
        if not isinstance(y, torch.Tensor) or y.ndim != 5 or y.shape[1:] != self.maps.shape[1:]:
            expected = tuple(self.maps.shape)
            raise ValueError(f"k-space must be (B, {self.coils}, 2, H, W) = {expected}, got {_describe(y)}")
        batch, coils, _, height, width = y.shape
        coil_images = self.dft.adjoint((self.mask * y).reshape(batch * coils, 2, height, width))
        coil_images = coil_images.reshape(batch, coils, 2, height, width)
        return _complex_multiply(self.maps, coil_images, conjugate_a=True).sum(dim=1)
