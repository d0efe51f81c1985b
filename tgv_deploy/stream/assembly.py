"""Readouts of a stream into one slice at a time: the accumulation shared by the MRD v2 and server front ends.

MRD v2 (``mrd.Acquisition``, header fields under ``.head``) and ISMRMRD v1 (``ismrmrd.Acquisition``,
the same fields on the object) acquisitions are adapted into one :class:`Line` record; the flags
are the same bit masks in both. :class:`SliceAssembler` is the one place lines become slices, for
streams, the server handler and ISMRMRD HDF5 files alike, so a stream and the file it was saved as
reconstruct alike:

* noise scans (``IS_NOISE_MEASUREMENT``) are kept for the whole stream and whiten every slice that
  completes after them (a file's noise scans whiten all of its slices);
* ``IS_PARALLEL_CALIBRATION`` lines go to the calibration k-space only, ``..._AND_IMAGING`` lines to
  both; navigators, phase correction, feedback, dummy and phase-stabilisation scans are skipped;
* a readout shorter than the encoded matrix is placed by ``center_sample`` (after
  ``discard_pre`` / ``discard_post`` are removed), the phase-encode index is shifted so that the
  header's ``encodingLimits.kspace_encoding_step_1.center`` lands on column ``W // 2``;
* lines are grouped by (repetition, slice, contrast, phase, set); repeated lines (averages) are averaged.

A group is complete, and reconstructed at once, when the line flagged ``LAST_IN_SLICE`` arrives.
Lines still pending when the stream ends are an error (:meth:`SliceAssembler.finish`), not an
image: a slice whose end never came may be missing lines anywhere, and a plausible-looking image of
a partial slice is worse than none. A file is read whole instead (:meth:`SliceAssembler.complete_all`,
used by :func:`tgv_deploy.data.multicoil.read_ismrmrd_multicoil`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tgv_deploy.data.multicoil import Geometry, MultiCoilSlice, parse_header
from tgv_deploy.errors import InputError

Triple = tuple[float, float, float]

# Acquisition flags as bit masks: ISMRMRD v1 flag n is bit n - 1, which MRD v2's AcquisitionFlags spell out.
LAST_IN_SLICE = 1 << 7
IS_NOISE_MEASUREMENT = 1 << 18
IS_PARALLEL_CALIBRATION = 1 << 19
IS_PARALLEL_CALIBRATION_AND_IMAGING = 1 << 20
IS_REVERSE = 1 << 21
LAST_IN_MEASUREMENT = 1 << 24
#: Scans that carry no imaging or calibration line: navigator, phase correction, HP and RT
#: feedback, dummy scan, surface-coil correction, phase stabilisation and its reference.
NOT_IMAGING = sum(1 << bit for bit in (22, 23, 25, 26, 27, 28, 29, 30))
#: Every LAST_IN_* flag (encode step 1 and 2, average, slice, contrast, phase, repetition, set,
#: segment, measurement): what a filter that drops a line must hand on to the line it keeps.
LAST_FLAGS = sum(1 << bit for bit in (1, 3, 5, 7, 9, 11, 13, 15, 17, 24))

#: (repetition, slice, contrast, phase, set): the lines of one image.
Key = tuple[int, int, int, int, int]


@dataclass(frozen=True, eq=False)
class Line:
    """One acquisition, whichever MRD version delivered it: its samples and the header fields used here."""

    data: np.ndarray  # (C, S) complex64, discard_pre / discard_post removed
    flags: int
    step1: int  # kspace_encode_step_1 as acquired (before the centre shift)
    center_sample: int | None
    slice: int = 0
    repetition: int = 0
    contrast: int = 0
    phase: int = 0
    set: int = 0
    average: int = 0
    measurement_uid: int = 0
    acquisition_time_stamp: int = 0
    physiology_time_stamp: tuple[int, ...] = ()
    position: Triple = (0.0, 0.0, 0.0)
    read_dir: Triple = (0.0, 0.0, 0.0)
    phase_dir: Triple = (0.0, 0.0, 0.0)
    slice_dir: Triple = (0.0, 0.0, 0.0)
    patient_table_position: Triple = (0.0, 0.0, 0.0)

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)

    @property
    def key(self) -> Key:
        return (self.repetition, self.slice, self.contrast, self.phase, self.set)


def _int(value: Any) -> int:
    return 0 if value is None else int(value)


def _triple(values: Any) -> Triple:
    return (float(values[0]), float(values[1]), float(values[2]))


def _line(data: Any, flags: int, idx: Any, head: Any, center: Any, pre: Any, post: Any) -> Line:
    samples = np.array(data, dtype=np.complex64)  # a copy: readers may reuse their buffers
    if samples.ndim != 2:
        raise InputError(f"acquisition data must be (channels, samples), got shape {samples.shape}")
    pre, post = _int(pre), _int(post)
    if pre or post:
        if pre + post >= samples.shape[1]:
            raise InputError(f"acquisition discards {pre} + {post} of its {samples.shape[1]} samples")
        samples = samples[:, pre : samples.shape[1] - post]
    return Line(
        data=samples,
        flags=int(flags),
        step1=_int(idx.kspace_encode_step_1),
        center_sample=None if center is None else int(center) - pre,
        slice=_int(idx.slice),
        repetition=_int(idx.repetition),
        contrast=_int(idx.contrast),
        phase=_int(idx.phase),
        set=_int(idx.set),
        average=_int(idx.average),
        measurement_uid=_int(head.measurement_uid),
        acquisition_time_stamp=_int(head.acquisition_time_stamp),
        physiology_time_stamp=tuple(int(t) for t in head.physiology_time_stamp),
        position=_triple(head.position),
        read_dir=_triple(head.read_dir),
        phase_dir=_triple(head.phase_dir),
        slice_dir=_triple(head.slice_dir),
        patient_table_position=_triple(head.patient_table_position),
    )


def line_from_mrd(acq: Any) -> Line:
    """An MRD v2 ``mrd.Acquisition`` (fields under ``acq.head``; unset counters are ``None``)."""
    head = acq.head
    return _line(acq.data, int(head.flags), head.idx, head, head.center_sample, head.discard_pre, head.discard_post)


def line_from_ismrmrd(acq: Any) -> Line:
    """An ISMRMRD v1 ``ismrmrd.Acquisition`` (fields on the object)."""
    return _line(acq.data, int(acq.flags), acq.idx, acq, acq.center_sample, acq.discard_pre, acq.discard_post)


# --- header ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoding:
    """What placing lines needs from the header: its geometry (first encoding) and the phase-encode centre."""

    geometry: Geometry
    centre: int

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W): encoded readout samples and phase-encode lines."""
        return self.geometry.encoded_matrix[0], self.geometry.encoded_matrix[1]

    @property
    def line_shift(self) -> int:
        """Added to ``kspace_encode_step_1`` to give the k-space column (centre on ``W // 2``)."""
        return self.shape[1] // 2 - self.centre


#: Beyond this ratio of encoded to recon readout field of view a header is taken to be wrong (scanners use 2).
MAX_READOUT_OVERSAMPLING = 8.0


def checked_encoding(geometry: Geometry, centre: int | None) -> Encoding:
    """Refuse a header this reconstruction cannot place lines with (one line, :class:`InputError`)."""
    height, width, partitions = geometry.encoded_matrix
    if height < 2 or width < 2:
        raise InputError(f"header has no encoded matrix (encoding/encodedSpace/matrixSize is {geometry.encoded_matrix})")
    if partitions > 1:
        raise InputError(f"header encodes 3D ({partitions} partitions); 2D multi-slice only")
    fovs = (*geometry.encoded_fov_mm, *geometry.recon_fov_mm)
    if not all(math.isfinite(v) for v in fovs):
        raise InputError(f"header has a field of view that is not a finite number (encoded {geometry.encoded_fov_mm}, "
                         f"recon {geometry.recon_fov_mm} mm)")
    if geometry.readout_oversampling > MAX_READOUT_OVERSAMPLING:
        raise InputError(f"header's readout oversampling (encoded over recon field of view) is {geometry.readout_oversampling:.4g}, "
                         f"more than {MAX_READOUT_OVERSAMPLING}: check encodedSpace/reconSpace fieldOfView_mm x")
    if centre is None:
        raise InputError("header has no phase-encode centre (encoding/encodingLimits/kspace_encoding_step_1/center): "
                         "lines cannot be placed")
    if not 0 <= centre < width:
        raise InputError(f"header's phase-encode centre {centre} is outside the encoded matrix of {width} lines")
    return Encoding(geometry, int(centre))


def encoding_from_xml(xml: bytes | str) -> Encoding:
    """The encoding of an ISMRMRD v1 XML header."""
    return checked_encoding(*parse_header(xml))


def encoding_from_mrd(header: Any) -> Encoding:
    """The encoding of an MRD v2 ``mrd.Header`` (``None``, a stream without header, is refused)."""
    if header is None or not header.encoding:
        raise InputError("stream header has no encoding (matrix sizes, fields of view, encoding limits)")
    enc = header.encoding[0]

    def space(name: str) -> tuple[tuple[int, int, int], Triple]:
        value = getattr(enc, name, None)
        matrix, fov = getattr(value, "matrix_size", None), getattr(value, "field_of_view_mm", None)
        size = (0, 0, 0) if matrix is None else (int(matrix.x), int(matrix.y), int(matrix.z))
        return size, (0.0, 0.0, 0.0) if fov is None else (float(fov.x), float(fov.y), float(fov.z))

    encoded_matrix, encoded_fov = space("encoded_space")
    recon_matrix, recon_fov = space("recon_space")
    limits = getattr(enc.encoding_limits, "kspace_encoding_step_1", None) if enc.encoding_limits is not None else None
    centre = None if limits is None else int(limits.center)
    return checked_encoding(Geometry(encoded_matrix, recon_matrix, encoded_fov, recon_fov), centre)


# --- accumulation ----------------------------------------------------------------------------


@dataclass
class _Group:
    """Running sums of one image's lines, and the line whose header describes the image."""

    shape: tuple[int, int, int]
    reference: Line
    distance: int  # of the reference line from the k-space centre column
    data: np.ndarray = field(init=False)
    counts: np.ndarray = field(init=False)
    calib: np.ndarray = field(init=False)
    calib_counts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.data = np.zeros(self.shape, dtype=np.complex128)
        self.calib = np.zeros(self.shape, dtype=np.complex128)
        self.counts = np.zeros(self.shape[-1], dtype=np.int64)
        self.calib_counts = np.zeros(self.shape[-1], dtype=np.int64)


def _mean(total: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return (total / np.maximum(counts, 1)).astype(np.complex64)


@dataclass(frozen=True, eq=False)
class CompletedSlice:
    """A slice ready to reconstruct, the line nearest its k-space centre (position, directions,
    counters and time stamps of the image) and how many acquisitions went into it."""

    sample: MultiCoilSlice
    reference: Line
    acquisitions: int


class SliceAssembler:
    """Feed :meth:`add` every acquisition in stream order; it returns a :class:`CompletedSlice` when
    a ``LAST_IN_SLICE`` line completes one. Call :meth:`finish` at the end of the stream.

    ``source`` names the stream in error messages. Errors (:class:`InputError`) name the
    acquisition by its 0-based position in the stream.
    """

    def __init__(self, encoding: Encoding, source: str = "stream"):
        self.encoding = encoding
        self.source = source
        self.seen = 0
        self._noise: list[np.ndarray] = []
        self._groups: dict[Key, _Group] = {}
        self._added: dict[Key, int] = {}
        self._coils: int | None = None

    def add(self, line: Line) -> CompletedSlice | None:
        index = self.seen
        self.seen += 1
        if line.has(IS_NOISE_MEASUREMENT):
            self._noise.append(line.data)
            return None
        if line.has(NOT_IMAGING):
            # A sequence may end a slice on its last navigator: the slice is complete all the same.
            return self._complete(line.key) if line.has(LAST_IN_SLICE) and line.key in self._groups else None
        if line.has(IS_REVERSE):
            raise InputError(f"{self.source}: acquisition {index} is a reversed (EPI) readout; Cartesian readouts only")
        height, width = self.encoding.shape
        coils, samples = line.data.shape
        if samples == 0 or coils == 0:
            raise InputError(f"{self.source}: acquisition {index} holds no samples ({coils} channels x {samples})")
        if self._coils is None:
            self._coils = coils
        if coils != self._coils:
            raise InputError(f"{self.source}: acquisition {index} has {coils} channels, earlier ones {self._coils}")
        if samples == height:
            offset = 0
        elif line.center_sample is None:
            raise InputError(f"{self.source}: acquisition {index}: {samples} samples, not the encoded {height}, "
                             "and no center_sample to place them")
        else:
            offset = height // 2 - line.center_sample
        if offset < 0 or offset + samples > height:
            raise InputError(f"{self.source}: acquisition {index}: {samples} samples (centre {line.center_sample}) "
                             f"do not fit the encoded readout of {height}")
        column = line.step1 + self.encoding.line_shift
        if not 0 <= column < width:
            raise InputError(f"{self.source}: acquisition {index}: phase-encode line {line.step1} (k-space column {column}) "
                             f"is outside the encoded matrix of {width} lines")
        distance = abs(column - width // 2)
        group = self._groups.get(line.key)
        if group is None:
            group = self._groups[line.key] = _Group((coils, height, width), line, distance)
            self._added[line.key] = 0
        elif distance < group.distance:
            group.reference, group.distance = line, distance
        self._added[line.key] += 1
        calibration = line.has(IS_PARALLEL_CALIBRATION)
        both = line.has(IS_PARALLEL_CALIBRATION_AND_IMAGING)
        if calibration or both:
            group.calib[:, offset : offset + samples, column] += line.data
            group.calib_counts[column] += 1
        if not calibration or both:
            group.data[:, offset : offset + samples, column] += line.data
            group.counts[column] += 1
        return self._complete(line.key) if line.has(LAST_IN_SLICE) else None

    def _complete(self, key: Key) -> CompletedSlice:
        group = self._groups.pop(key)
        acquisitions = self._added.pop(key)
        repetition, slice_index = key[0], key[1]
        if not group.counts.any():
            raise InputError(f"{self.source}: slice {slice_index} (repetition {repetition}) ended without imaging lines")
        noise = None
        if self._noise:
            if any(n.shape[0] != group.shape[0] for n in self._noise):
                raise InputError(f"{self.source}: noise scans have a different channel count than the imaging data "
                                 f"({group.shape[0]})")
            noise = np.concatenate(self._noise, axis=1)
        ref = group.reference
        geometry = dataclasses.replace(self.encoding.geometry, position=ref.position, read_dir=ref.read_dir,
                                       phase_dir=ref.phase_dir, slice_dir=ref.slice_dir)
        has_calib = bool(group.calib_counts.any())
        sample = MultiCoilSlice(
            kspace=_mean(group.data, group.counts),
            mask=(group.counts > 0).astype(np.float32),
            geometry=geometry,
            slice=slice_index,
            repetition=repetition,
            calibration_kspace=_mean(group.calib, group.calib_counts) if has_calib else None,
            calibration_mask=(group.calib_counts > 0).astype(np.float32) if has_calib else None,
            noise=noise,
            source=self.source,
        )
        return CompletedSlice(sample, ref, acquisitions)

    def complete_all(self) -> list[CompletedSlice]:
        """Every pending image as complete, in key order: for a file, where all lines are present
        and the ``LAST_IN_SLICE`` flags (often absent from files) are not needed."""
        return [self._complete(key) for key in sorted(self._groups)]

    def pending(self) -> list[tuple[Key, int]]:
        """The incomplete images and how many acquisitions each holds, in arrival order."""
        return [(key, self._added[key]) for key in self._groups]

    def finish(self) -> None:
        """At the end of the stream: refuse lines whose slice never completed (see the module docstring)."""
        pending = self.pending()
        if pending:
            (repetition, slice_index, *_), count = pending[0]
            more = f" and {len(pending) - 1} more" if len(pending) > 1 else ""
            raise InputError(f"{self.source} ended inside slice {slice_index} (repetition {repetition}): {count} "
                             f"acquisitions without the LAST_IN_SLICE line{more}; not reconstructed")
