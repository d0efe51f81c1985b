"""fastMRI HDF5 files (SPEC section 4): read, validate, write (torch-free).

Layout: ``kspace`` ``(S, H, W)`` single-coil or ``(S, C, H, W)`` multi-coil complex64, centred,
phase-encode lines along W; optional ``mask`` ``(W,)`` or ``(S, W)``; targets
``reconstruction_esc`` (single-coil) / ``reconstruction_rss`` (multi-coil); ``ismrmrd_header``
XML bytes; attributes ``acquisition``, ``max``, ``norm``, ``patient_id``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from tgv_deploy.errors import InputError
from tgv_deploy.io_utils import atomic_output


@dataclass
class KSpaceVolume:
    """K-space of one file: ``kspace (S, H, W)`` or ``(S, C, H, W)`` complex64, with what came with it."""

    kspace: np.ndarray
    mask: np.ndarray | None = None  # (S, W) float32, or None
    target: np.ndarray | None = None  # (S, h, w) float32 magnitude, or None
    header: bytes = b""
    attrs: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def multicoil(self) -> bool:
        return self.kspace.ndim == 4

    @property
    def num_slices(self) -> int:
        return self.kspace.shape[0]


def read_fastmri(path: str | os.PathLike) -> KSpaceVolume:
    """Read and validate a fastMRI file; every problem is one :class:`InputError` line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input not found: {path}")
    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise InputError(f"{path}: not a readable HDF5 file (missing, truncated or corrupt)") from None
    try:
        with handle:
            if "kspace" not in handle:
                raise InputError(f"{path}: no 'kspace' dataset (has {sorted(handle.keys())[:8]})")
            dataset = handle["kspace"]
            if not isinstance(dataset, h5py.Dataset):
                raise InputError(f"{path}: 'kspace' is not a dataset")
            if dataset.ndim not in (3, 4):
                raise InputError(f"{path}: 'kspace' must be (slices, H, W) or (slices, coils, H, W), got shape {dataset.shape}")
            if dataset.dtype.kind != "c":
                raise InputError(f"{path}: 'kspace' must be complex, got dtype {dataset.dtype}")
            kspace = np.asarray(dataset[()], dtype=np.complex64)
            mask = None
            if "mask" in handle:
                mask = np.asarray(handle["mask"][()])
                width = kspace.shape[-1]
                if mask.dtype.kind not in "biuf":
                    raise InputError(f"{path}: 'mask' must be numeric or bool, got dtype {mask.dtype}")
                if mask.shape == (width,):
                    mask = np.broadcast_to(mask, (kspace.shape[0], width))
                elif mask.shape != (kspace.shape[0], width):
                    raise InputError(f"{path}: 'mask' must be (W,) or (slices, W) = ({kspace.shape[0]}, {width}), got {mask.shape}")
                mask = mask.astype(np.float32)
            target = None
            for name in ("reconstruction_esc", "reconstruction_rss"):
                if name in handle:
                    target = np.asarray(handle[name][()], dtype=np.float32)
                    break
            header = bytes(np.asarray(handle["ismrmrd_header"][()]).tobytes()) if "ismrmrd_header" in handle else b""
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in handle.attrs.items()}
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: unreadable fastMRI file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if kspace.shape[0] == 0 or min(kspace.shape[-2:]) < 2 or (kspace.ndim == 4 and kspace.shape[1] == 0):
        raise InputError(f"{path}: 'kspace' has no usable slices (shape {kspace.shape})")
    if mask is not None and (not np.isfinite(mask).all() or not np.isin(mask, (0, 1)).all()):
        raise InputError(f"{path}: 'mask' must contain only 0 and 1")
    return KSpaceVolume(kspace, mask, target, header, attrs, str(path))


def write_fastmri(
    path: str | os.PathLike,
    kspace: np.ndarray,
    mask: np.ndarray | None = None,
    target: np.ndarray | None = None,
    attrs: dict[str, Any] | None = None,
    header: bytes = b"",
) -> Path:
    """Write a fastMRI-layout file atomically (temporary name, then rename)."""
    path = Path(path)
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            handle.create_dataset("kspace", data=np.asarray(kspace, dtype=np.complex64))
            if mask is not None:
                handle.create_dataset("mask", data=np.asarray(mask).astype(bool))
            if target is not None:
                name = "reconstruction_rss" if np.asarray(kspace).ndim == 4 else "reconstruction_esc"
                handle.create_dataset(name, data=np.asarray(target, dtype=np.float32))
            handle.create_dataset("ismrmrd_header", data=np.frombuffer(header or b"<ismrmrdHeader/>", dtype=np.uint8).tobytes())
            attributes = {"acquisition": "SYNTHETIC", "patient_id": "", "norm": 0.0, "max": 0.0}
            if target is not None:
                attributes.update(max=float(np.max(target)), norm=float(np.linalg.norm(target)))
            attributes.update(attrs or {})
            for key, value in attributes.items():
                handle.attrs[key] = value
    return path
