"""Multi-coil raw data to images (torch-free): SPEC 1b preprocessing, then the model, slice by slice.

``raw slice (MultiCoilSlice) -> prepare (whiten, crop readout oversampling, compress, coil maps)
-> Reconstructor.reconstruct_multicoil -> coil-combined image``. The preprocessing runs on the
host in numpy; its cost is part of every latency figure (``benchmarks/multicoil_latency.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from tgv_deploy.coils.maps import MAP_METHODS, OUTSIDE_CHOICES, MapMethod, Outside
from tgv_deploy.data.multicoil import MultiCoilSlice, Prepared, check_values, prepare, readout_rows
from tgv_deploy.errors import InputError
from tgv_deploy.runtime.reconstructor import Reconstruction, Reconstructor


@dataclass(frozen=True, eq=False)
class SliceReconstruction:
    """One slice: ``image (H', W)`` complex64 coil-combined (readout oversampling removed), the
    maps ``lambda0`` / ``lambda1 (H', W)``, the slice's ``mask (W,)``, what preprocessing made of
    it, the seconds spent in preprocessing and in the model, and the T the model ran."""

    sample: MultiCoilSlice
    prepared: Prepared
    image: np.ndarray
    lambda0: np.ndarray | None
    lambda1: np.ndarray
    preprocess_s: float
    model_s: float
    iterations: int


class MultiCoilPipeline:
    """Reconstruct multi-coil slices with one session.

    ``coils``: SVD-compress to this many virtual coils (``None``: keep all); ``maps``: ``"espirit"``
    (SPEC 1b's reference) or ``"walsh"``; ``outside``: ``"crop"`` (maps 0 outside the object) or
    ``"extend"`` (unit norm everywhere, the default: measured better, benchmarks/README.md); the
    solver handles both exactly. One-coil data (after compression to 1 coil, or a one-channel file)
    takes the single-coil path (no maps), so a single-coil graph serves it.
    """

    def __init__(self, reconstructor: Reconstructor, coils: int | None = None, maps: MapMethod = "espirit",
                 outside: Outside = "extend"):
        if not isinstance(reconstructor, Reconstructor):
            raise InputError(f"MultiCoilPipeline takes a Reconstructor (Reconstructor(session)), got {type(reconstructor).__name__}")
        if reconstructor.contract.task != "mri":
            raise InputError(f"{reconstructor.session.path.name} is a denoising model: raw k-space data needs an MRI model")
        if coils is not None and (not isinstance(coils, int | np.integer) or isinstance(coils, bool) or coils < 1):
            raise InputError(f"coils must be a positive integer or None, got {coils!r}")
        if maps not in MAP_METHODS or outside not in OUTSIDE_CHOICES:
            raise InputError(f"maps must be one of {MAP_METHODS} and outside one of {OUTSIDE_CHOICES}, got {maps!r}, {outside!r}")
        self.reconstructor = reconstructor
        self.coils = None if coils is None else int(coils)
        self.maps: MapMethod = maps
        self.outside: Outside = outside

    def check(self, samples: Iterable[MultiCoilSlice]) -> None:
        """Refuse, before any work, data this session cannot run (multi-coil data on a single-coil
        graph, more coils than the graph takes, a matrix other than an exported graph's, masks
        the model refuses, NaN, Inf or empty slices)."""
        samples = list(samples)
        contract = self.reconstructor.contract
        for coils in {s.coils for s in samples}:
            if self.coils is not None and self.coils > coils:
                raise InputError(f"--coils {self.coils}: the data has {coils} coils")
            contract.check_coils(min(self.coils or coils, coils))
        for size in {(readout_rows(s), s.kspace.shape[-1]) for s in samples}:
            self.reconstructor.check_size(*size)
        for sample in samples:
            check_values(sample)
            contract.check_masks(sample.mask[None])

    def reconstruct(self, sample: MultiCoilSlice) -> SliceReconstruction:
        start = time.perf_counter()
        prepared = prepare(sample, coils=self.coils, maps=self.maps, outside=self.outside)
        middle = time.perf_counter()
        if prepared.kspace.shape[0] == 1:
            result = self.reconstructor.reconstruct(prepared.kspace, prepared.mask)
        else:
            result = self.reconstructor.reconstruct_multicoil(prepared.kspace[None], prepared.mask, prepared.maps[None])
        end = time.perf_counter()
        image = crop_to_recon(result.image[0], sample)
        return SliceReconstruction(sample, prepared, image,
                                   None if result.lambda0 is None else crop_to_recon(result.lambda0[0], sample),
                                   crop_to_recon(result.lambda1[0], sample),
                                   middle - start, end - middle, result.iterations)

    def reconstruct_all(self, samples: Iterable[MultiCoilSlice],
                        progress: Callable[[int, int], None] | None = None) -> list[SliceReconstruction]:
        samples = list(samples)
        results = []
        for done, sample in enumerate(samples, 1):
            results.append(self.reconstruct(sample))
            if progress is not None:
                progress(done, len(samples))
        return results


def crop_to_recon(image: np.ndarray, sample: MultiCoilSlice) -> np.ndarray:
    """Centre-crop ``(H', W)`` to the header's recon matrix where it is smaller (fastMRI's 320 x 320
    targets come from a 640 x 368 acquisition: readout oversampling, then phase-encode padding)."""
    rows, columns, _ = sample.geometry.recon_matrix
    height, width = image.shape
    rows = rows if 0 < rows < height else height
    columns = columns if 0 < columns < width else width
    top, left = (height - rows) // 2, (width - columns) // 2
    return image[top : top + rows, left : left + columns]


def stack(results: list[SliceReconstruction]) -> Reconstruction:
    """The slices of one file as one :class:`Reconstruction` (they share the matrix size)."""
    if not results:
        raise InputError("no slices to reconstruct")
    shapes = {r.image.shape for r in results}
    if len(shapes) > 1:
        raise InputError(f"slices of one file have different matrix sizes {sorted(shapes)}")
    iterations = {r.iterations for r in results}
    if len(iterations) > 1:  # single- and multi-coil slices in one file ran at different defaults
        raise InputError(f"slices of one file ran at different T {sorted(iterations)}; give one with --iterations")
    lambda0 = None if results[0].lambda0 is None else np.stack([r.lambda0 for r in results if r.lambda0 is not None])
    return Reconstruction(np.stack([r.image for r in results]), lambda0, np.stack([r.lambda1 for r in results]),
                          np.stack([r.prepared.mask for r in results]), iterations.pop())
