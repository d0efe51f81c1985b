"""Multi-coil raw data: fastMRI multi-coil HDF5 and ISMRMRD v1 HDF5 into typed per-slice samples (torch-free).

Both readers return a list of :class:`MultiCoilSlice`, one per (repetition, slice), with k-space
``(C, H, W)`` complex64 in the package's layout (centred, H = readout, W = phase encode, SPEC 1),
the sampled-line mask ``(W,)``, the calibration lines when the file flags them, the noise scans,
and the header geometry. :func:`prepare` then runs SPEC 1b's order on one slice: noise
pre-whitening, readout oversampling removal, optional SVD coil compression, coil maps.

ISMRMRD v1 (``/dataset/xml`` + ``/dataset/data``, read through the ``ismrmrd`` package):

* ``ACQ_IS_NOISE_MEASUREMENT`` acquisitions are the noise scans, shared by every slice (``(C, N)``);
* ``ACQ_IS_PARALLEL_CALIBRATION`` lines go to the calibration k-space only (a separate reference
  scan, not used as data); ``ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING`` lines to both;
* navigator and phase-correction acquisitions are skipped;
* ``idx.repetition``, ``slice``, ``contrast``, ``phase`` and ``set`` select the sample; lines acquired
  more than once in one sample (averages) are averaged (the rules are
  :class:`tgv_deploy.stream.assembly.SliceAssembler`'s, shared with MRD streams);
* a readout shorter than the encoded matrix (asymmetric echo) is placed by ``center_sample``; the
  phase-encode index is shifted so that ``encodingLimits.kspace_encoding_step_1.center`` lands on
  line ``W // 2`` (the centred convention);
* readout oversampling: the encoded readout field of view over the recon one (2 for the usual
  2x oversampling); :func:`prepare` crops to ``round(H / factor)`` rows. The k-space itself is
  returned as acquired.

The header XML is parsed with the standard library (no ``ismrmrd`` needed for fastMRI files);
a header with a document type declaration is refused, since entity expansion is the classic XML
denial of service and ISMRMRD headers never need one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tgv_deploy.coils.compression import Compression, svd_compression
from tgv_deploy.coils.maps import CoilMaps, MapMethod, Outside, calibration_region, estimate_maps
from tgv_deploy.coils.oversampling import remove_readout_oversampling
from tgv_deploy.coils.whitening import noise_covariance, whiten, whitening_matrix
from tgv_deploy.data.fastmri import KSpaceVolume, read_fastmri
from tgv_deploy.data.mrd import is_mrd_file
from tgv_deploy.errors import BackendUnavailableError, InputError

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class Geometry:
    """Header geometry of one slice.

    Matrices are ``(x, y, z)`` = (readout, phase encode, partitions); fields of view in mm. The
    slice position and direction cosines (patient coordinates, mm) come from the acquisitions and
    are ``None`` where the file has none (fastMRI).
    """

    encoded_matrix: tuple[int, int, int]
    recon_matrix: tuple[int, int, int]
    encoded_fov_mm: Triple
    recon_fov_mm: Triple
    position: Triple | None = None
    read_dir: Triple | None = None
    phase_dir: Triple | None = None
    slice_dir: Triple | None = None

    @property
    def readout_oversampling(self) -> float:
        """Encoded over recon readout field of view (1.0 when the header does not say)."""
        encoded, recon = self.encoded_fov_mm[0], self.recon_fov_mm[0]
        if encoded > 0 and recon > 0:
            return encoded / recon
        return 1.0


@dataclass(frozen=True, eq=False)
class MultiCoilSlice:
    """One slice (of one repetition) of multi-coil raw data.

    Attributes
    ----------
    kspace : numpy.ndarray
        ``(C, H, W)`` complex64, centred, imaging lines only, zero where not sampled.
    mask : numpy.ndarray
        ``(W,)`` float32, 1 on the sampled imaging lines.
    calibration_kspace, calibration_mask : numpy.ndarray or None
        ``(C, H, W)`` complex64 and ``(W,)`` float32: the lines the file flags for calibration;
        ``None`` when it flags none (coil maps then come from the centre of ``mask``).
    noise : numpy.ndarray or None
        ``(C, N)`` complex64 noise samples, or ``None``.
    target : numpy.ndarray or None
        ``(h, w)`` float32 reference magnitude (fastMRI ``reconstruction_rss``), or ``None``.
    """

    kspace: np.ndarray
    mask: np.ndarray
    geometry: Geometry
    slice: int = 0
    repetition: int = 0
    calibration_kspace: np.ndarray | None = None
    calibration_mask: np.ndarray | None = None
    noise: np.ndarray | None = None
    target: np.ndarray | None = None
    source: str = ""

    @property
    def coils(self) -> int:
        return int(self.kspace.shape[0])


# --- header XML ------------------------------------------------------------------------------


def _find(node: ElementTree.Element | None, path: Sequence[str]) -> ElementTree.Element | None:
    for name in path:  # "{*}" matches the ISMRMRD namespace and no namespace alike
        if node is None:
            return None
        node = node.find(f"{{*}}{name}")
    return node


def _number(node: ElementTree.Element | None, path: Sequence[str], default: float = 0.0) -> float:
    element = _find(node, path)
    if element is None or element.text is None:
        return default
    try:
        return float(element.text)
    except ValueError:
        raise InputError(f"header: {'/'.join(path)} is not a number ({element.text.strip()[:20]!r})") from None


def parse_header(xml: bytes | str) -> tuple[Geometry, int | None]:
    """Geometry of the first encoding of an ISMRMRD header, and the phase-encode centre (or ``None``).

    Missing fields read as 0 (matrices, FOV) or ``None`` (centre); an empty header gives an empty
    geometry. Raises :class:`InputError` for malformed XML or a document type declaration.
    """
    text = xml.decode("utf-8", errors="replace") if isinstance(xml, bytes) else xml
    text = text.strip().rstrip("\x00")
    if not text:
        return Geometry((0, 0, 0), (0, 0, 0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)), None
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise InputError("header XML has a document type declaration; refused (ISMRMRD headers need none)")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise InputError(f"header XML is malformed ({exc})") from None
    encoding = _find(root, ["encoding"])

    def space(name: str) -> tuple[tuple[int, int, int], Triple]:
        matrix = tuple(int(_number(encoding, [name, "matrixSize", axis])) for axis in "xyz")
        fov = tuple(_number(encoding, [name, "fieldOfView_mm", axis]) for axis in "xyz")
        return matrix, fov  # type: ignore[return-value]

    encoded_matrix, encoded_fov = space("encodedSpace")
    recon_matrix, recon_fov = space("reconSpace")
    centre_path = ["encodingLimits", "kspace_encoding_step_1", "center"]
    centre = int(_number(encoding, centre_path)) if _find(encoding, centre_path) is not None else None
    return Geometry(encoded_matrix, recon_matrix, encoded_fov, recon_fov), centre


# --- fastMRI ---------------------------------------------------------------------------------


def read_fastmri_multicoil(path: str | os.PathLike) -> list[MultiCoilSlice]:
    """Read a fastMRI multi-coil file (``kspace (S, C, H, W)``) into one sample per slice.

    The mask is the file's ``mask`` when present, else the lines holding any non-zero sample.
    fastMRI k-space keeps the scanner's 2x readout oversampling; the header says so (encoded vs
    recon field of view), and :func:`prepare` removes it.
    """
    volume = read_fastmri(path)
    if not volume.multicoil:
        raise InputError(f"{path}: single-coil k-space {volume.kspace.shape}; expected (slices, coils, H, W)")
    return fastmri_multicoil_slices(volume)


def fastmri_multicoil_slices(volume: KSpaceVolume) -> list[MultiCoilSlice]:
    """The slices of an already read multi-coil fastMRI volume (see :func:`read_fastmri_multicoil`)."""
    path = volume.source
    geometry, _ = parse_header(volume.header)
    samples = []
    for index in range(volume.num_slices):
        kspace = np.ascontiguousarray(volume.kspace[index])
        if volume.mask is not None:
            mask = np.asarray(volume.mask[index], dtype=np.float32)
        else:
            mask = np.any(kspace != 0, axis=(0, 1)).astype(np.float32)
        target = None if volume.target is None else np.asarray(volume.target[index], dtype=np.float32)
        samples.append(MultiCoilSlice(kspace * mask, mask, geometry, slice=index, target=target, source=str(path)))
    return samples


# --- ISMRMRD v1 ------------------------------------------------------------------------------


def _ismrmrd():
    try:
        import ismrmrd  # type: ignore[import-untyped]
    except ImportError:
        raise BackendUnavailableError(
            "reading ISMRMRD files needs the 'ismrmrd' package (pip install 'tgv-deploy[mrd]')"
        ) from None
    return ismrmrd


def read_ismrmrd_multicoil(path: str | os.PathLike) -> list[MultiCoilSlice]:
    """Read ISMRMRD v1 Cartesian 2D raw data into one sample per image (repetition, slice, contrast,
    phase, set), in that order, with :class:`tgv_deploy.stream.assembly.SliceAssembler`'s rules.

    Every noise scan of the file whitens every slice; ``LAST_IN_SLICE`` flags are not needed (the
    file is complete), so lines of one image are averaged wherever they lie in the file. A header
    without a phase-encode centre places the lines as numbered (centre ``W // 2``).
    """
    from tgv_deploy.stream.assembly import IS_NOISE_MEASUREMENT, LAST_IN_SLICE, SliceAssembler, checked_encoding, line_from_ismrmrd

    ismrmrd = _ismrmrd()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input not found: {path}")
    if not is_mrd_file(path):
        raise InputError(f"{path}: not an ISMRMRD file (no /dataset/data)")
    dataset = ismrmrd.Dataset(str(path), "/dataset", create_if_needed=False)
    try:
        geometry, centre = parse_header(dataset.read_xml_header())
        width = geometry.encoded_matrix[1]
        try:
            encoding = checked_encoding(geometry, width // 2 if centre is None else centre)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
        lines = [line_from_ismrmrd(dataset.read_acquisition(i)) for i in range(dataset.number_of_acquisitions())]
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: unreadable ISMRMRD content ({type(exc).__name__}: {exc})") from None
    finally:
        dataset.close()
    assembler = SliceAssembler(encoding, source=str(path))
    for line in sorted(lines, key=lambda line: not line.has(IS_NOISE_MEASUREMENT)):  # noise first, otherwise in file order
        assembler.add(dataclasses.replace(line, flags=line.flags & ~LAST_IN_SLICE))
    samples = [done.sample for done in assembler.complete_all()]
    if not samples:
        raise InputError(f"{path}: no imaging acquisitions")
    return samples


def read_multicoil(path: str | os.PathLike) -> list[MultiCoilSlice]:
    """Read an ISMRMRD v1 or fastMRI multi-coil file (told apart by ``/dataset/data``)."""
    return read_ismrmrd_multicoil(path) if is_mrd_file(path) else read_fastmri_multicoil(path)


# --- preprocessing ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Prepared:
    """A slice ready for a SENSE reconstruction.

    ``kspace (C', H', W)`` complex64 (whitened, readout oversampling removed, compressed), its
    ``mask (W,)`` float32, and ``maps (C', H', W)`` complex64 (``coil_maps`` carries their support
    and confidence). ``whitening (C, C)`` and ``compression`` are what was applied (``None``: skipped).
    """

    kspace: np.ndarray
    mask: np.ndarray
    maps: np.ndarray
    coil_maps: CoilMaps
    whitening: np.ndarray | None
    compression: Compression | None
    readout_rows: int


def readout_rows(sample: MultiCoilSlice) -> int:
    """The readout length :func:`prepare` keeps: the k-space's, over the header's readout
    oversampling when the k-space still has the encoded readout length (k-space already cropped,
    e.g. a file rebuilt from images under a copied header, is not cropped again)."""
    factor = sample.geometry.readout_oversampling
    rows = sample.kspace.shape[-2]
    encoded_rows = sample.geometry.encoded_matrix[0]
    if factor > 1 + 1e-6 and encoded_rows in (0, rows):
        return max(1, int(round(rows / factor)))
    return rows


#: Largest raw-data magnitude the preprocessing takes: the Walsh maps multiply values in single
#: precision and overflow from ~3e16 (the rest runs in double precision); scanners deliver far less
#: (fastMRI ~1e-4 ... 1e-2, ADC counts below 1e12).
MAX_ABS_VALUE = 1e15


def check_values(sample: MultiCoilSlice) -> None:
    """Refuse a slice whose data cannot be reconstructed: not ``(C, H, W)`` k-space with a ``(W,)``
    mask, NaN, Inf or magnitudes above :data:`MAX_ABS_VALUE` in its k-space, calibration lines or
    noise, or no sampled value other than zero."""
    if not isinstance(sample, MultiCoilSlice):
        raise InputError(f"expected a MultiCoilSlice, got {type(sample).__name__}")
    where = f"slice {sample.slice}, repetition {sample.repetition}"
    kspace = np.asarray(sample.kspace)
    if kspace.ndim != 3 or 0 in kspace.shape or np.shape(sample.mask) != (kspace.shape[-1],):
        raise InputError(f"{where}: k-space must be (coils, H, W) with a (W,) mask, got {kspace.shape} and {np.shape(sample.mask)}")
    for name, data in (("k-space", kspace), ("calibration k-space", sample.calibration_kspace), ("noise data", sample.noise)):
        if data is None:
            continue
        if not np.isfinite(data).all():
            raise InputError(f"{where}: {name} contains NaN or Inf")
        if data.size and float(np.abs(data).max()) > MAX_ABS_VALUE:
            raise InputError(f"{where}: {name} has magnitudes above {MAX_ABS_VALUE:g}, beyond single precision's "
                             "squares: rescale the data")
    if not np.any(kspace != 0):
        raise InputError(f"{where}: all sampled k-space values are zero")


def prepare(
    sample: MultiCoilSlice,
    coils: int | None = None,
    maps: MapMethod = "espirit",
    outside: Outside = "crop",
) -> Prepared:
    """SPEC 1b on one slice: whiten, remove readout oversampling, compress to ``coils``, estimate maps.

    Whitening needs noise scans (skipped without). Oversampling is removed when the header's
    encoded readout FOV exceeds the recon one and the k-space still has the encoded readout length.
    Compression (``coils`` below the channel count) is computed from the calibration region. Maps come from the flagged calibration lines when there
    are any, else from the fully sampled centre of ``mask``.
    """
    check_values(sample)

    @contextlib.contextmanager
    def step() -> Iterator[None]:
        """A data-dependent step: its ValueError (numpy's LinAlgError too) says what the data lacks."""
        try:
            yield
        except InputError:
            raise
        except ValueError as exc:
            raise InputError(f"{sample.source or 'input'} slice {sample.slice}: {exc}") from None

    kspace = sample.kspace
    calib_kspace, calib_mask = sample.calibration_kspace, sample.calibration_mask
    if calib_kspace is None:
        calib_kspace, calib_mask = kspace, sample.mask
    elif calib_mask is not None:
        # Imaging lines also calibrate where they fill gaps between flagged ones (embedded ACS).
        calib_kspace = np.where(calib_mask > 0, calib_kspace, kspace)
        calib_mask = np.maximum(calib_mask, sample.mask)
    matrix = None
    if sample.noise is not None:
        with step():
            matrix = whitening_matrix(noise_covariance(sample.noise))
        kspace, calib_kspace = whiten(kspace, matrix), whiten(calib_kspace, matrix)
    rows = readout_rows(sample)
    if rows != kspace.shape[-2]:
        with step():
            kspace = remove_readout_oversampling(kspace, rows)
        calib_kspace = remove_readout_oversampling(calib_kspace, rows)
    compression = None
    if coils is not None:
        if not 1 <= coils <= kspace.shape[0]:
            raise InputError(f"--coils must be in 1..{kspace.shape[0]}, got {coils}")
        if coils < kspace.shape[0]:
            with step():
                region, _ = calibration_region(calib_kspace, calib_mask, rows=None)
                compression = svd_compression(region, coils)
            kspace, calib_kspace = compression.apply(kspace), compression.apply(calib_kspace)
    if kspace.shape[0] == 1:  # one coil is reconstructed single-coil: its map would only carry a phase
        shape = kspace.shape[-2:]
        coil_maps = CoilMaps(np.ones((1, *shape), np.complex64), np.ones(shape, np.float32), np.ones(shape, bool), "none", "extend")
        return Prepared(kspace.astype(np.complex64, copy=False), sample.mask.astype(np.float32), coil_maps.maps, coil_maps,
                        matrix, compression, rows)
    with step():
        coil_maps = estimate_maps(calib_kspace, calib_mask, method=maps, outside=outside)
    return Prepared(kspace.astype(np.complex64, copy=False), sample.mask.astype(np.float32), coil_maps.maps, coil_maps,
                    matrix, compression, rows)
