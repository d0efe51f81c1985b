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
        maps = self.model.unet(x0.half()).float() if self.unet_fp16 else self.model.unet(x0)
        return x0, f / scale, maps, scale
