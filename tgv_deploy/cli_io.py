"""Reading ``tgv-deploy infer`` inputs and writing its outputs (torch-free)."""

from __future__ import annotations

import dataclasses

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


@dataclass(frozen=True)
class ImageVolume:
    """Real images for a denoising model: ``images (S, H, W)`` float32."""

    images: np.ndarray
    source: str

    @property
    def num_slices(self) -> int:
        return self.images.shape[0]


IMAGE_FORMATS = "a real .npy array, a .png, or HDF5 with an 'image' dataset"
KSPACE_FORMATS = "fastMRI or ISMRMRD .h5, or a complex .npy array"


def _images(array: np.ndarray, path: Path, what: str) -> ImageVolume:
    if array.dtype.kind not in "biuf" or array.ndim not in (2, 3) or 0 in array.shape:
        raise InputError(f"{path}: {what} must be real (H, W) or (slices, H, W) with no empty axis, got {array.dtype} {array.shape}")
    return ImageVolume(_single_precision(array.reshape(-1, *array.shape[-2:]), np.float32, path, what), source=str(path))


def _single_precision(array: np.ndarray, dtype: type, path: Path, what: str) -> np.ndarray:
    """``array`` as ``dtype`` (float32 or complex64), refusing NaN, Inf and values beyond its range."""
    if not np.isfinite(array).all():
        raise InputError(f"{path}: {what} contains NaN or Inf")
    with np.errstate(over="ignore"):
        converted: np.ndarray = array.astype(dtype)
    if not np.isfinite(converted).all():
        raise InputError(f"{path}: {what} has values beyond single precision's range")
    return converted


def _read_png(path: Path) -> ImageVolume:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            # Colour is averaged to grey; the models are scale-invariant (the contract's
            # normalisation), so 8-bit and 16-bit values need no rescaling.
            grey = image.convert("L") if image.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "1") else image
            array = np.asarray(grey, dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{path}: not a readable PNG image ({type(exc).__name__})") from None
    return _images(array, path, "a PNG image")


def _hdf5_image(path: Path) -> ImageVolume | None:
    """The ``image`` dataset of an HDF5 file that has no ``kspace``; None for k-space files."""
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError:
        return None  # not HDF5 (or unreadable): the k-space readers give the precise message
    try:
        with handle:
            if "kspace" in handle or "image" not in handle:
                return None
            dataset = handle["image"]
            if not isinstance(dataset, h5py.Dataset):
                raise InputError(f"{path}: 'image' is not a dataset")
            array = np.asarray(dataset[()])
    except InputError:
        raise
    except Exception as exc:  # h5py raises many types on damaged files
        raise InputError(f"{path}: unreadable 'image' dataset ({type(exc).__name__})") from None
    return _images(array, path, "'image'")


def read_input(path: Path) -> KSpaceVolume | ImageVolume:
    """K-space (a fastMRI file, an ISMRMRD/MRD file or a complex ``.npy``) or real images for a
    denoising model (a real ``.npy``, a ``.png`` or an HDF5 file with an ``image`` dataset)."""
    if not path.is_file():
        raise InputError(f"input not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except Exception as exc:  # numpy raises ValueError, EOFError, OSError, UnicodeError on garbage
            raise InputError(f"{path}: not a readable .npy array ({type(exc).__name__})") from None
        if not np.iscomplexobj(array):
            return _images(array, path, ".npy images")
        if array.ndim not in (2, 3) or 0 in array.shape:
            raise InputError(f"{path}: .npy k-space must be complex (H, W) or (slices, H, W) with no empty axis, "
                             f"got {array.dtype} {array.shape}")
        return KSpaceVolume(_single_precision(array.reshape(-1, *array.shape[-2:]), np.complex64, path, ".npy k-space"),
                            source=str(path))
    if suffix == ".png":
        return _read_png(path)
    images = _hdf5_image(path)
    if images is not None:
        return images
    from tgv_deploy.data.mrd import is_mrd_file, read_mrd

    if is_mrd_file(path):
        return read_mrd(path)
    return read_fastmri(path)


def read_infer_input(path: Path, options: MaskOptions) -> tuple[KSpaceVolume | ImageVolume, list | None]:
    """:func:`read_input`'s volume, and for raw data that takes the multi-coil path (SPEC 1b) its
    ``MultiCoilSlice`` s (else ``None``); every file is read once.

    ISMRMRD files always take it (noise scans, calibration flags and readout oversampling are there,
    and the acquired lines are the mask); fastMRI files when their k-space has a coil axis, or when
    their header's recon matrix is smaller than their k-space (one coil). A fastMRI
    file without a ``mask`` dataset is undersampled retrospectively, as single-coil files are,
    unless whole phase-encode lines are zero: then it was undersampled already and those lines are
    its mask (fully sampled data never has an empty line).
    """
    from tgv_deploy.data.mrd import is_mrd_file, volume_of_slices
    from tgv_deploy.data.multicoil import fastmri_multicoil_slices, read_ismrmrd_multicoil

    if path.suffix.lower() not in (".npy", ".png") and is_mrd_file(path):
        samples = read_ismrmrd_multicoil(path)
        return volume_of_slices(samples, path), samples
    volume = read_input(path)
    if isinstance(volume, ImageVolume):
        return volume, None
    if not volume.multicoil and not _header_crops(volume):
        return volume, None
    # one coil under a header with readout oversampling or a smaller recon matrix (fastMRI's
    # single-coil 640 x 368 -> 320 x 320): the raw-data path removes the oversampling and crops to
    # the recon matrix, as for multi-coil data, so the output matches reconstruction_esc
    samples = fastmri_multicoil_slices(volume if volume.multicoil else dataclasses.replace(volume, kspace=volume.kspace[:, None]))
    # single-coil files without a mask are undersampled retrospectively, as on the single-coil path
    # (fastMRI's knee k-space has empty columns outside its encoding limits even when fully sampled)
    if volume.mask is None and (not volume.multicoil or all(s.mask.all() for s in samples)):
        masks = slice_masks(volume, options)
        samples = [dataclasses.replace(s, kspace=s.kspace * m.astype(np.float32), mask=m.astype(np.float32))
                   for s, m in zip(samples, masks)]
    return volume, samples


def _header_crops(volume: KSpaceVolume) -> bool:
    """Whether the file's ISMRMRD header asks for a recon matrix smaller than its k-space."""
    from tgv_deploy.data.multicoil import parse_header

    try:
        rows, columns, _ = parse_header(volume.header)[0].recon_matrix
    except InputError:
        return False  # a header the single-coil path never needed: reconstructed at the k-space's size, as before
    height, width = volume.kspace.shape[-2:]
    return 0 < rows < height or 0 < columns < width


def check_task(volume: KSpaceVolume | ImageVolume, task: str) -> None:
    """MRI models take k-space, denoising models images: say which when they are mixed up."""
    if task == "mri" and isinstance(volume, ImageVolume):
        raise InputError(f"{volume.source}: this is an MRI model, it takes k-space ({KSPACE_FORMATS}), not images")
    if task == "denoise" and isinstance(volume, KSpaceVolume):
        raise InputError(f"{volume.source}: this is a denoising model, it takes images ({IMAGE_FORMATS}), not k-space")


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
            handle.attrs["iterations"] = reconstruction.iterations
    return path


def write_png(path: Path, reconstruction, label: str) -> None:
    """A preview of every slice: one row per slice (magnitude, then each map), each row under a
    caption with its slice index and ``label`` (the model)."""
    from PIL import Image, ImageDraw

    def scaled(a):
        a = np.abs(a)
        return (255 * a / (a.max() or 1)).astype(np.uint8)

    maps = [m for m in (reconstruction.lambda0, reconstruction.lambda1) if m is not None]
    images = reconstruction.image.reshape(-1, *reconstruction.image.shape[-2:])
    maps = [m.reshape(-1, *m.shape[-2:]) for m in maps]
    names = ["image"] + (["Lambda0", "Lambda1"] if len(maps) == 2 else ["Lambda1"])
    caption = 14  # pixel rows of one line of PIL's default bitmap font, with a margin
    rows = []
    for s in range(images.shape[0]):
        panels = np.concatenate([scaled(images[s])] + [scaled(m[s]) for m in maps], axis=1)
        row = Image.new("L", (panels.shape[1], panels.shape[0] + caption), color=255)
        row.paste(Image.fromarray(panels), (0, caption))
        ImageDraw.Draw(row).text((2, 1), f"slice {s} | {label} | {' / '.join(names)}", fill=0)
        rows.append(row)
    sheet = Image.new("L", (rows[0].width, sum(r.height for r in rows)), color=255)
    for s, row in enumerate(rows):
        sheet.paste(row, (0, s * row.height))
    with atomic_output(path) as tmp:
        sheet.save(tmp, format="PNG")
