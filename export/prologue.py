"""The part of the model that ``torch.onnx.export`` traces: normalisation and the U-Net."""

from __future__ import annotations

import torch
from torch import nn

from tgv_deploy.models.utgv import UTGV, UTV, image_scale


class Prologue(nn.Module):
    """``(f, mask) -> (x0, f_n, maps, scale)`` with the exportable (matrix) DFT.

    ``x0 = A^H f / scale`` ``(B, C, H, W)``, ``f_n = M f / scale`` (pre-masked for MRI),
    ``maps (B, M, H, W)`` in normalised units, ``scale (B, 1, 1, 1)``.
    """

    def __init__(self, model: nn.Module, unet_fp16: bool = False):
        super().__init__()
        if not isinstance(model, (UTGV, UTV)):
            raise TypeError(f"Prologue wraps a U-TGV or U-TV model, got {type(model).__name__}")
        self.model = model
        self.unet_fp16 = unet_fp16
        model.set_dft("matrix")
        if unet_fp16:  # the PDHG part and the DFT stay float32 (SPEC 5)
            model.unet.half()

    def forward(self, f: torch.Tensor, mask: torch.Tensor | None = None):
        if mask is not None:
            f = f * mask
        forward_op = self.model.forward_operator(f, mask)
        x0 = forward_op.adjoint(f)
        scale = image_scale(x0)
        x0 = x0 / scale
        f = f / scale
        maps = self.model.unet(x0.half()).float() if self.unet_fp16 else self.model.unet(x0)
        return x0, f, self.model.noise_scaled(maps, f, mask), scale


class SensePrologue(nn.Module):
    """Multi-coil: ``(f, maps, mask) -> (x0, coil_images, maps_n, scale, coil_weights, virtual)``.

    ``x0 = A^H f / scale`` ``(B, 2, H, W)``; ``coil_images = F^H (M f_c) / scale`` ``(B, C, H, 2W)``,
    real and imaginary parts side by side along the rows, the layout of the loop's coil variables
    (:class:`tgv_deploy.export.admm_graph.ADMMSenseGraph`); ``coil_weights (B, C, 2, H, 2, W)`` the
    real 2 x 2 form of multiplying by ``S_c``, indexed (in re/im, row, out re/im, column), which read
    as (out, row, in, column) is the form of ``conj(S_c)`` (its transpose), so both coil products in
    the loop are one Mul and one ReduceSum; ``virtual (B, 1, H, W)`` the data-free coil's weight
    ``sqrt(1 - sum_c |S_c|^2)`` (:mod:`tgv_deploy.solvers.admm_sense`).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        if not isinstance(model, (UTGV, UTV)):
            raise TypeError(f"SensePrologue wraps a U-TGV or U-TV model, got {type(model).__name__}")
        self.model = model
        model.set_dft("matrix")

    def forward(self, f: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor):
        f = f * mask[:, None]
        sense = self.model.sense_operator(f, mask, maps)
        x0 = sense.adjoint(f)
        scale = image_scale(x0)
        x0 = x0 / scale
        batch, coils, _, height, width = f.shape
        coil_images = sense.dft.adjoint(f.reshape(batch * coils, 2, height, width)).reshape(f.shape) / scale[:, None]
        coil_images = coil_images.transpose(2, 3).reshape(batch, coils, height, 2 * width)
        real, imag = maps[:, :, 0], maps[:, :, 1]
        # S x = (Sr xr - Si xi, Si xr + Sr xi): from x's real part (Sr, Si), from its imaginary part (-Si, Sr)
        coil_weights = torch.stack((torch.stack((real, imag), 3), torch.stack((-imag, real), 3)), 2)
        virtual = torch.sqrt(torch.relu(1 - maps.square().sum((1, 2)))).unsqueeze(1)
        f_n = f / scale[:, None]
        maps_n = self.model.noise_scaled(self.model.unet(x0), f_n, mask) * self.model.coil_gain(mask)
        return x0, coil_images, maps_n, scale, coil_weights, virtual
