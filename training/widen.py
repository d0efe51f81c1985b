"""Warm-starting a wider U-Net from a trained narrower one without changing what it computes.

A trained model's U-Net (``base_channels`` c) is copied into a U-Net of the same depth and more
channels (c' > c): every convolution's old output channels keep their weights on the old input
channels and get zero weights on the new ones, the new output channels keep the wide network's
own initial values, and the head reads the new channels with zero weights. So the wider network's
maps equal the trained network's maps (up to float summation order) at the first training step,
and the new weights still get gradients: the new channels carry non-zero activations into the
zero weights that read them (net2net's widening, with zeros instead of copies).
"""

from __future__ import annotations

import torch

from tgv_deploy.models.config import UNetConfig


def _input_groups(config: UNetConfig, in_channels: int) -> dict[str, list[int]]:
    """Each convolution's input channel groups (sizes, in the order they are concatenated), by
    its state-dict prefix in :class:`UNet`."""
    widths = [config.base_channels * 2**level for level in range(config.depth + 1)]
    groups = {"encoders.0.0": [in_channels]}
    for level in range(config.depth + 1):
        if level:
            groups[f"encoders.{level}.0"] = [widths[level - 1]]
        groups[f"encoders.{level}.2"] = [widths[level]]
    for index, level in enumerate(reversed(range(config.depth))):
        groups[f"decoders.{index}.0"] = [widths[level + 1], widths[level]]  # upsampled, then the skip
        groups[f"decoders.{index}.2"] = [widths[level]]
    groups["head"] = [widths[0]]
    return groups


def _kept_positions(old: list[int], new: list[int]) -> torch.Tensor:
    """Where the old layout's channels sit in the new layout: the first ``old[k]`` of each group."""
    positions: list[int] = []
    offset = 0
    for old_size, new_size in zip(old, new):
        positions.extend(range(offset, offset + old_size))
        offset += new_size
    return torch.tensor(positions)


def widened_unet_state(state: dict[str, torch.Tensor], narrow: UNetConfig, wide: UNetConfig,
                       start: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict of a ``wide`` U-Net that computes what ``state`` (a ``narrow`` U-Net's, keys
    without the ``unet.`` prefix) computes; its new channels keep their values in ``start`` (the
    wide U-Net's own initial state). Raises ``ValueError`` unless ``wide`` differs from ``narrow``
    only by more base channels."""
    if (wide.depth, wide.negative_slope, wide.softplus_beta) != (narrow.depth, narrow.negative_slope, narrow.softplus_beta) \
            or wide.base_channels <= narrow.base_channels:
        raise ValueError(f"a U-Net can only be widened to more base channels at the same depth and activations: {narrow} -> {wide}")
    in_channels = state["encoders.0.0.weight"].shape[1]
    widened = dict(start)
    old_groups, new_groups = _input_groups(narrow, in_channels), _input_groups(wide, in_channels)
    for prefix, old_in in old_groups.items():
        weight, bias = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
        rows = weight.shape[0]
        new_weight = widened[f"{prefix}.weight"].clone()
        new_weight[:rows] = 0.0  # the old outputs ignore the new inputs
        new_weight[:rows, _kept_positions(old_in, new_groups[prefix])] = weight.to(new_weight)  # start's device (a GPU run's)
        new_bias = widened[f"{prefix}.bias"].clone()
        new_bias[:rows] = bias.to(new_bias)
        widened[f"{prefix}.weight"], widened[f"{prefix}.bias"] = new_weight, new_bias
    return widened
