"""What both stream front ends write into an image besides its pixels: field of view, series, meta.

The meta names follow the Gadgetron / python-ismrmrd-server conventions where one exists
(``DataRole``, ``ImageProcessingHistory``, ``WindowCenter``, ``WindowWidth``); the rest start with
``Tgv`` so that they never collide with a scanner's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tgv_deploy.stream.assembly import Encoding

#: The series of every image this package writes (DICOM SeriesNumber); image_index counts from 1 within it.
SERIES_INDEX = 1


def pixel_fov(encoding: Encoding, rows: int, columns: int) -> tuple[float, float, float]:
    """The field of view (mm) of an image of ``rows`` readout x ``columns`` phase-encode pixels.

    Cropping in image space keeps the pixel size of the encoded matrix (encoded FOV / encoded
    matrix), so this is the header's recon FOV whenever the image has the recon matrix, and stays
    right where it does not (a recon matrix above the encoded one is not interpolated up to).
    """
    geometry = encoding.geometry
    height, width = encoding.shape
    encoded_x, encoded_y, encoded_z = geometry.encoded_fov_mm
    recon_x, recon_y, recon_z = geometry.recon_fov_mm
    fov_x = rows * encoded_x / height if encoded_x > 0 else recon_x
    fov_y = columns * encoded_y / width if encoded_y > 0 else recon_y
    return float(fov_x), float(fov_y), float(recon_z if recon_z > 0 else encoded_z)


def describe_model(model: str, session: Any) -> dict[str, Any]:
    """Meta that says what made the image (the same in every image of a run)."""
    from tgv_deploy import __version__

    contract = session.contract
    return {
        "DataRole": "Image",
        "ImageProcessingHistory": ["TGV-DEPLOY"],
        "SequenceDescriptionAdditional": "TGV",
        "TgvDeployVersion": __version__,
        "TgvModel": model,
        "TgvModelFile": Path(session.path).name,
        "TgvModelKind": contract.kind,
        "TgvSolver": contract.solver,
        "TgvBackend": session.backend,
    }


def slice_meta(result: Any) -> dict[str, Any]:
    """Meta of one slice (a :class:`~tgv_deploy.runtime.multicoil.SliceReconstruction`): what was sampled, the T
    the model ran (multi-coil data may have its own), what it cost."""
    lines = int(result.prepared.mask.sum())
    return {
        "TgvCoils": int(result.prepared.kspace.shape[0]),
        "TgvIterations": int(result.iterations),
        "TgvSampledLines": lines,
        "TgvAcceleration": float(result.prepared.mask.size / max(lines, 1)),
        "TgvWhitened": int(result.prepared.whitening is not None),
        "TgvPreprocessSeconds": float(result.preprocess_s),
        "TgvModelSeconds": float(result.model_s),
    }


def progress_line(result: Any, index: int, rows: int, columns: int) -> str:
    sample = result.sample
    return (f"slice {sample.slice} repetition {sample.repetition}: image {index} {rows}x{columns} from "
            f"{int(sample.mask.sum())}/{sample.mask.size} lines, {sample.coils} coils | "
            f"preprocess {result.preprocess_s:.2f} s, model {result.model_s:.2f} s")
