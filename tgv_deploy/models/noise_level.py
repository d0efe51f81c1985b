"""The noise level of undersampled k-space, for noise-aware models (``ModelConfig.noise_gain``).

A U-Net that reads only the zero-filled image cannot tell the noise level well: trained over a
range of noise levels it falls back towards the range's centre (benchmarks/README.md, "The noise
level"). Noise-gain models scale their maps by a learned power of this estimate. The noise is
white over the sampled k-space while the signal concentrates at low frequencies, so the sampled
column with the least power in the outer half of the readout frequencies measures the noise from
above (more so where the signal dominates, at low noise; measured in
benchmarks/results/noise_level.json). Built from reductions, ``Where`` and ``Log``
only, so the same code exports to ONNX and TensorRT.
"""

from __future__ import annotations

import torch

#: The feature is ``log10(noise) + FEATURE_OFFSET``, noise per pixel of the normalised image
#: (roughly 0.003-0.03 on data like the paper's), which puts it near [0, 1].
FEATURE_OFFSET = 2.5
_BOUNDS = (1e-6, 1.0)
_NOT_SAMPLED = 1e30


def kspace_noise_std(f: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Estimated noise standard deviation per real component ``(B,)`` of k-space ``f``.

    ``f``: centred k-space ``(B, 2, H, W)`` or ``(B, C, 2, H, W)`` (coils), zero where not sampled;
    ``mask``: ``(B, 1, 1, W)`` or ``(B, 1, H, W)``. The least mean power over the outer-half
    readout rows of any sampled column, halved for one real component. Coils (equal noise after
    pre-whitening) are pooled: their mean power over the coils that hold data, so that coils
    zero-padded up to an exported graph's count change nothing.
    """
    power = f.square().sum(-3) / 2  # (B, [C,] H, W)
    if f.ndim == 5:
        holding_data = (power.flatten(2).amax(2) > 0).to(f.dtype).sum(1).clamp_min(1.0)
        power = power.sum(1) / holding_data.reshape(-1, 1, 1)
    sampled = mask[:, 0]  # (B, 1 or H, W), broadcasts against power
    height = f.shape[-2]
    rows = torch.arange(height, device=f.device, dtype=f.dtype)
    outer = ((rows - height // 2).abs() >= height / 4).to(f.dtype).reshape(height, 1)
    weight = sampled * outer
    count = weight.sum(-2)  # (B, [1,] W)
    column = (power * weight).sum(-2) / count.clamp_min(1.0)
    column = torch.where(count > 0, column, torch.full_like(column, _NOT_SAMPLED))
    return torch.sqrt(column.flatten(1).amin(1))


def noise_feature(f: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, 1, 1, 1)``: ``log10`` of the noise per pixel of the zero-filled image ``A^H f`` (the
    k-space noise times the square root of the sampled fraction) plus :data:`FEATURE_OFFSET`."""
    fraction = mask.flatten(1).mean(1)
    noise = (kspace_noise_std(f, mask) * torch.sqrt(fraction)).clamp(*_BOUNDS)
    return (torch.log10(noise) + FEATURE_OFFSET).reshape(-1, 1, 1, 1)
