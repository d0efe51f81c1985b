"""Reading ``tgv-deploy infer`` inputs and writing its outputs (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tgv_deploy.contract import Contract
from tgv_deploy.data.fastmri import KSpaceVolume, read_fastmri
from tgv_deploy.data.masks import make_mask, seed_from_string
from tgv_deploy.errors import InputError
from tgv_deploy.io_utils import atomic_output


@dataclass(frozen=True)
class MaskOptions:
    """Retrospective undersampling for inputs that carry no mask."""

    mask_type: str = "equispaced"
    acceleration: float = 4.0
    center_fraction: float = 0.08
    seed: int | None = None


def read_input(path: Path) -> KSpaceVolume:
    """A fastMRI file, an ISMRMRD/MRD file or a ``.npy`` complex k-space array."""
    if not path.is_file():
        raise InputError(f"input not found: {path}")
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as exc:  # numpy raises ValueError, EOFError, OSError, UnicodeError on garbage
            raise InputError(f"{path}: not a readable .npy array ({type(exc).__name__})") from None
        if not np.iscomplexobj(array) or array.ndim not in (2, 3):
            raise InputError(f"{path}: .npy k-space must be complex (H, W) or (slices, H, W), got {array.dtype} {array.shape}")
        return KSpaceVolume(array.reshape(-1, *array.shape[-2:]).astype(np.complex64), source=str(path))
    from tgv_deploy.data.mrd import is_mrd_file, read_mrd

    if is_mrd_file(path):
        return read_mrd(path)
    return read_fastmri(path)


def slice_masks(volume: KSpaceVolume, options: MaskOptions) -> np.ndarray:
    """The file's own mask if it has one, else a retrospective line mask per slice ``(S, W)``."""
    if volume.mask is not None:
        return volume.mask
    try:
        mask_fn = make_mask(options.mask_type, options.center_fraction, options.acceleration)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    width = volume.kspace.shape[-1]
    name = Path(volume.source).name
    seeds = [options.seed if options.seed is not None else seed_from_string(f"{name}:{s}") for s in range(volume.num_slices)]
    return np.stack([mask_fn(width, seed=seed) for seed in seeds])


def write_output(path: Path, reconstruction, contract: Contract, source: str) -> Path:
    """HDF5 with ``reconstruction`` (S, H, W) complex64, ``lambda0``/``lambda1``, ``mask`` and the contract."""
    import h5py

    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            handle.create_dataset("reconstruction", data=reconstruction.image)
            if reconstruction.lambda0 is not None:
                handle.create_dataset("lambda0", data=reconstruction.lambda0.astype(np.float32))
            handle.create_dataset("lambda1", data=reconstruction.lambda1.astype(np.float32))
            if reconstruction.mask is not None:
                handle.create_dataset("mask", data=reconstruction.mask.astype(np.float32))
            handle.attrs["contract"] = contract.to_json()
            handle.attrs["source"] = source
            handle.attrs["iterations"] = contract.iterations
    return path


def write_png(path: Path, reconstruction) -> None:
    """A preview: magnitude of the first slice beside its maps."""
    from PIL import Image

    def scaled(a):
        a = np.abs(a[(0,) * (a.ndim - 2)])
        return (255 * a / (a.max() or 1)).astype(np.uint8)

    panels = [scaled(reconstruction.image)]
    panels += [scaled(m) for m in (reconstruction.lambda0, reconstruction.lambda1) if m is not None]
    with atomic_output(path) as tmp:
        Image.fromarray(np.concatenate(panels, axis=1)).save(tmp, format="PNG")
