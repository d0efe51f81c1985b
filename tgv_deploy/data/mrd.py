"""ISMRMRD / MRD HDF5 Cartesian acquisitions (``/dataset/xml`` + ``/dataset/data``), via the ``ismrmrd`` package.

Each imaging acquisition is one readout line ``(coils, samples)``; ``idx.kspace_encode_step_1``
places it on the phase-encode axis (W) and ``idx.slice`` selects the slice. Lines never acquired
form the mask. Noise, calibration-only and navigator acquisitions are skipped. Readout
oversampling is kept (H = number of samples).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tgv_deploy.data.fastmri import KSpaceVolume
from tgv_deploy.errors import BackendUnavailableError, InputError

_SKIP_FLAGS = ("ACQ_IS_NOISE_MEASUREMENT", "ACQ_IS_PARALLEL_CALIBRATION", "ACQ_IS_NAVIGATION_DATA", "ACQ_IS_PHASECORR_DATA")


def _ismrmrd():
    try:
        import ismrmrd
    except ImportError:
        raise BackendUnavailableError("reading ISMRMRD files needs the 'ismrmrd' package (pip install ismrmrd)") from None
    return ismrmrd


def is_mrd_file(path: str | os.PathLike) -> bool:
    """True for an HDF5 file with a ``/dataset/data`` acquisition table."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return "dataset" in handle and "data" in handle["dataset"]
    except OSError:
        return False


def read_mrd(path: str | os.PathLike) -> KSpaceVolume:
    """Read a Cartesian MRD file into ``kspace (S, C, H, W)`` (or ``(S, H, W)`` for one coil) and a mask."""
    ismrmrd = _ismrmrd()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input not found: {path}")
    try:
        dataset = ismrmrd.Dataset(str(path), "/dataset", create_if_needed=False)
    except Exception:
        raise InputError(f"{path}: not a readable ISMRMRD file") from None
    try:
        header = ismrmrd.xsd.CreateFromDocument(dataset.read_xml_header())
        width = int(header.encoding[0].encodedSpace.matrixSize.y)
        count = dataset.number_of_acquisitions()
        lines = []
        for i in range(count):
            acq = dataset.read_acquisition(i)
            if any(acq.is_flag_set(getattr(ismrmrd, flag)) for flag in _SKIP_FLAGS):
                continue
            lines.append((int(acq.idx.slice), int(acq.idx.kspace_encode_step_1), np.asarray(acq.data)))
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: unreadable ISMRMRD content ({type(exc).__name__})") from None
    finally:
        dataset.close()
    if not lines:
        raise InputError(f"{path}: no imaging acquisitions")
    coils, samples = lines[0][2].shape
    if any(data.shape != (coils, samples) for _, _, data in lines):
        raise InputError(f"{path}: acquisitions differ in coils or samples; only Cartesian data of one size is supported")
    slices = 1 + max(s for s, _, _ in lines)
    if width < 2 or any(not 0 <= line < width for _, line, _ in lines):
        raise InputError(f"{path}: phase-encode indices outside the encoded matrix (width {width})")
    kspace = np.zeros((slices, coils, samples, width), dtype=np.complex64)
    mask = np.zeros((slices, width), dtype=np.float32)
    for s, line, data in lines:
        kspace[s, :, :, line] = data
        mask[s, line] = 1
    if coils == 1:
        kspace = kspace[:, 0]
    return KSpaceVolume(kspace, mask, None, b"", {"acquisition": "MRD"}, str(path))


def write_mrd(path: str | os.PathLike, kspace: np.ndarray, mask: np.ndarray) -> Path:
    """Write ``kspace (S, C, H, W)`` sampled lines of ``mask (S, W)`` as MRD acquisitions (for tests and examples)."""
    ismrmrd = _ismrmrd()
    kspace = np.asarray(kspace, dtype=np.complex64)
    if kspace.ndim == 3:
        kspace = kspace[:, None]
    slices, coils, samples, width = kspace.shape
    xsd = ismrmrd.xsd
    space = xsd.encodingSpaceType(
        matrixSize=xsd.matrixSizeType(x=samples, y=width, z=1), fieldOfView_mm=xsd.fieldOfViewMm(x=samples, y=width, z=5)
    )
    encoding = xsd.encodingType(
        encodedSpace=space, reconSpace=space, encodingLimits=xsd.encodingLimitsType(), trajectory=xsd.trajectoryType("cartesian")
    )
    header = xsd.ismrmrdHeader(experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=63_500_000))
    header.encoding.append(encoding)
    path = Path(path)
    path.unlink(missing_ok=True)
    dataset = ismrmrd.Dataset(str(path), "/dataset", create_if_needed=True)
    try:
        dataset.write_xml_header(ismrmrd.xsd.ToXML(header))
        for s in range(slices):
            for line in np.flatnonzero(np.asarray(mask)[s]):
                acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(kspace[s, :, :, line]))
                acq.idx.slice = s
                acq.idx.kspace_encode_step_1 = int(line)
                acq.center_sample = samples // 2
                dataset.append_acquisition(acq)
    finally:
        dataset.close()
    return path
