"""ISMRMRD / MRD HDF5 Cartesian acquisitions (``/dataset/xml`` + ``/dataset/data``), via the ``ismrmrd`` package.

Each imaging acquisition is one readout line ``(coils, samples)``; ``idx.kspace_encode_step_1``
places it on the phase-encode axis (W) and ``idx.slice`` selects the slice. Lines never acquired
form the mask. Reading is :mod:`tgv_deploy.data.multicoil`'s (one reader for every ISMRMRD path);
this module tells ISMRMRD files apart and writes small ones for tests and examples.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tgv_deploy.data.fastmri import KSpaceVolume
from tgv_deploy.errors import BackendUnavailableError, InputError

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
    """An ISMRMRD file as one volume: ``kspace (S, C, H, W)`` (or ``(S, H, W)`` for one coil) and its
    line mask ``(S, W)``, one entry per (repetition, slice). The one ISMRMRD reader is
    :func:`tgv_deploy.data.multicoil.read_ismrmrd_multicoil` (noise scans, calibration flags,
    averages, the phase-encode centre); this view of it serves the single-coil checks of ``infer``."""
    from tgv_deploy.data.multicoil import read_ismrmrd_multicoil

    return volume_of_slices(read_ismrmrd_multicoil(path), path)


def volume_of_slices(samples: list, path: str | os.PathLike) -> KSpaceVolume:
    """The :class:`KSpaceVolume` view of an ISMRMRD file's ``MultiCoilSlice`` s (see :func:`read_mrd`)."""
    shapes = {s.kspace.shape for s in samples}
    if len(shapes) > 1:
        raise InputError(f"{path}: slices differ in shape {sorted(shapes)}")
    kspace = np.stack([s.kspace for s in samples])
    if kspace.shape[1] == 1:
        kspace = kspace[:, 0]
    return KSpaceVolume(kspace, np.stack([s.mask for s in samples]), None, b"", {"acquisition": "MRD"}, str(path))


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
