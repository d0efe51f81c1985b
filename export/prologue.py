"""The part of the model that ``torch.onnx.export`` traces: normalisation and the U-Net."""

from __future__ import annotations

import torch
from torch import nn

from tgv_deploy.models.utgv import image_scale


class Prologue(nn.Module):
    """``(f, mask) -> (x0, f_n, maps, scale)`` with the exportable (matrix) DFT.

    ``x0 = A^H f / scale`` ``(B, C, H, W)``, ``f_n = M f / scale`` (pre-masked for MRI),
    ``maps (B, M, H, W)`` in normalised units, ``scale (B, 1, 1, 1)``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        model.set_dft("matrix")

    def forward(self, f: torch.Tensor, mask: torch.Tensor | None = None):
        if mask is not None:
            f = f * mask
        forward_op = self.model.forward_operator(f, mask)
        x0 = forward_op.adjoint(f)
        scale = image_scale(x0)
        x0 = x0 / scale
        return x0, f / scale, self.model.unet(x0), scale
