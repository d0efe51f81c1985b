"""The ``model.pt`` checkpoint: format version, model configuration, state_dict, training metadata.

Only plain containers, numbers, strings and tensors are stored, so loading uses
``torch.load(weights_only=True)`` and never unpickles code from a user's file.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tgv_deploy.errors import InputError, IntegrityError
from tgv_deploy.io_utils import atomic_output
from tgv_deploy.models.config import ModelConfig
from tgv_deploy.models.utgv import OPTIONAL_PARAMETERS, UnrolledModel, build_model

FORMAT = "tgv-deploy-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    training: dict[str, Any] = field(default_factory=dict)

    def build(self) -> UnrolledModel:
        """The model with these weights, in eval mode."""
        model = build_model(self.config)
        model.load_state_dict_compatible(self.state_dict)
        return model.eval()


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)


def save_checkpoint(path: str | os.PathLike, model: UnrolledModel, training: dict[str, Any] | None = None) -> None:
    """Write ``model`` (a :class:`UTGV` or :class:`UTV`) with its config and training metadata."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        # a JSON round trip keeps the metadata to plain containers, numbers and strings, which is
        # what torch.load(weights_only=True) accepts (a TorchVersion or numpy scalar would not be)
        "training": json.loads(json.dumps(training or {}, default=_plain)),
    }
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint; raises :class:`InputError` or :class:`IntegrityError` with one line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():
            # torch warns about foreign pickle protocols before refusing them; the refusal is the message.
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not zipfile.is_zipfile(path):  # torch.save writes zip archives; anything else is foreign or damaged
            raise IntegrityError(f"{path}: not a PyTorch checkpoint (a raw pickle, another format, or a damaged file)") from None
        # torch's message ends with advice to pass weights_only=False, which is exactly what must not happen
        culprit = re.search(r"GLOBAL (\S+)", str(exc))
        detail = f" ({culprit.group(1)})" if culprit else ""
        raise IntegrityError(f"{path}: refused to load, the checkpoint holds objects other than tensors and plain data{detail}") from None
    except Exception as exc:  # garbage makes the unpickler fail in many ways (IndexError, KeyError, ...)
        raise IntegrityError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise IntegrityError(f"{path}: not a tgv-deploy checkpoint (no '{FORMAT}' marker)")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise IntegrityError(f"{path}: checkpoint format version {version!r}, this package reads {FORMAT_VERSION}")
    try:
        config = ModelConfig.from_dict(payload["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"{path}: invalid model configuration ({exc})") from None
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise IntegrityError(f"{path}: state_dict missing or not a mapping of tensors")
    expected = build_model(config).state_dict()
    # parameters added after a checkpoint was written take the value it computed with (UnrolledModel.load_state_dict_compatible)
    missing = set(expected) - set(state) - set(OPTIONAL_PARAMETERS)
    unexpected = set(state) - set(expected)
    if missing or unexpected:
        raise IntegrityError(
            f"{path}: weights do not match the configuration (missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    for name, tensor in expected.items():
        if name not in state:
            continue
        if state[name].shape != tensor.shape:
            raise IntegrityError(f"{path}: weight {name} has shape {tuple(state[name].shape)}, expected {tuple(tensor.shape)}")
        if not torch.isfinite(state[name]).all():
            raise IntegrityError(f"{path}: weight {name} contains NaN or Inf")
    training = payload.get("training", {})
    if not isinstance(training, dict):
        raise IntegrityError(f"{path}: training metadata is not a mapping")
    return Checkpoint(config=config, state_dict=state, training=training)
