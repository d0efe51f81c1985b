"""The parameter-map U-Net of SPEC section 3."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tgv_deploy.models.config import UNetConfig


class _ConvBlock(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, negative_slope: float):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.LeakyReLU(negative_slope),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.LeakyReLU(negative_slope),
        )


class UNet(nn.Module):
    """2D U-Net: ``(B, in_channels, H, W) -> (B, out_channels, H, W)`` non-negative maps.

    Max-pool down, bilinear up, skip connections by concatenation, LeakyReLU, a 1x1 head and
    ``softplus(beta)``. Any ``H, W``: the input is zero-padded (bottom/right) to a multiple of
    ``2**depth`` and the output cropped back.
    """

    def __init__(self, in_channels: int, out_channels: int, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = config
        widths = [config.base_channels * 2**level for level in range(config.depth + 1)]
        self.encoders = nn.ModuleList([_ConvBlock(in_channels, widths[0], config.negative_slope)])
        for level in range(1, config.depth + 1):
            self.encoders.append(_ConvBlock(widths[level - 1], widths[level], config.negative_slope))
        self.decoders = nn.ModuleList(
            _ConvBlock(widths[level + 1] + widths[level], widths[level], config.negative_slope)
            for level in reversed(range(config.depth))
        )
        self.head = nn.Conv2d(widths[0], out_channels, 1)
        # softplus_5(-0.4) = 0.021: untrained maps start near a typical scalar weight for
        # images normalised to max 1, not at the over-smoothing 0.14 of a zero bias.
        assert self.head.bias is not None  # Conv2d has a bias unless asked not to
        nn.init.constant_(self.head.bias, -0.4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        multiple = 2**self.config.depth
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        skips = []
        for level, encoder in enumerate(self.encoders):
            if level:
                x = F.max_pool2d(x, 2)
            x = encoder(x)
            skips.append(x)
        skips.pop()
        for decoder in self.decoders:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            x = decoder(torch.cat((x, skips.pop()), dim=1))
        maps = F.softplus(self.head(x), beta=self.config.softplus_beta)
        return maps[..., :height, :width]
