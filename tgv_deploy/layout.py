"""Conversions between complex arrays and the (real, imaginary) channel layout used everywhere.

``(B, H, W)`` complex  <->  ``(B, 2, H, W)`` real, channel 0 real part, channel 1 imaginary part.
``(B, H, W)`` real     <->  ``(B, 1, H, W)`` real (denoising).
"""

from __future__ import annotations

import torch


def complex_to_channels(z: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` complex -> ``(B, 2, H, W)`` real."""
    return torch.stack((z.real, z.imag), dim=1)


def channels_to_complex(x: torch.Tensor) -> torch.Tensor:
    """``(B, 2, H, W)`` real -> ``(B, H, W)`` complex."""
    return torch.complex(x[:, 0], x[:, 1])


def magnitude(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, H, W)``: absolute value (C = 1) or complex modulus (C = 2)."""
    return x[:, 0].abs() if x.shape[1] == 1 else torch.sqrt(x.square().sum(1))
