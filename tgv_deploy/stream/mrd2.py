"""MRD v2 binary streams (``mrd-python``): raw data in, images out, one slice at a time.

:func:`reconstruct_stream` (``tgv-deploy mrd``) reads a header and ``StreamItem`` s, writes the same
header and one float32 magnitude image per completed slice (see :mod:`tgv_deploy.stream.assembly`
for how lines become slices), each flushed as soon as it is written so that the command composes
in pipes. Items other than acquisitions (images, waveforms) are not passed on, as in mrd-python's
own ``stream_recon``.

:func:`undersample_stream` (``tgv-deploy mrd-undersample``) is the retrospective undersampling
filter of a fully sampled stream: it drops the imaging lines outside a line mask, flags the kept
lines of the fully sampled centre ``IS_PARALLEL_CALIBRATION_AND_IMAGING`` (embedded calibration, the
ISMRMRD convention) and hands the ``LAST_IN_*`` flags of a dropped line on to the last kept line of
its image, so that the slice still ends.

Whatever goes wrong after the header was read, the output is ended as a valid stream holding the
images written so far before the error is raised.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from tgv_deploy.errors import InputError, TgvDeployError
from tgv_deploy.stream.assembly import (
    IS_NOISE_MEASUREMENT,
    IS_PARALLEL_CALIBRATION,
    IS_PARALLEL_CALIBRATION_AND_IMAGING,
    LAST_FLAGS,
    LAST_IN_SLICE,
    NOT_IMAGING,
    CompletedSlice,
    Encoding,
    Key,
    SliceAssembler,
    encoding_from_mrd,
    line_from_mrd,
)
from tgv_deploy.stream.images import SERIES_INDEX, describe_model, pixel_fov, progress_line, slice_meta


def _mrd() -> Any:
    from tgv_deploy.errors import BackendUnavailableError

    try:
        import mrd  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise BackendUnavailableError("MRD v2 streams need mrd-python: pip install 'tgv-deploy[mrd]'") from None
    return mrd


def _open_reader(mrd: Any, source: BinaryIO, name: str) -> tuple[Any, Any]:
    """The reader and the stream's header; anything unreadable is one :class:`InputError`."""
    try:
        reader = mrd.BinaryMrdReader(source)
        return reader, reader.read_header()
    except EOFError:
        raise InputError(f"{name} is empty or ends inside the stream header: not an MRD v2 stream") from None
    except Exception as exc:  # mrd-python raises RuntimeError, ValueError, struct.error for foreign bytes
        raise InputError(f"{name} is not an MRD v2 binary stream of this mrd-python version ({exc})") from None


def _items(reader: Any, name: str) -> Iterator[Any]:
    """The stream's items; a stream cut short (no end marker) or corrupt is one :class:`InputError`."""
    iterator = iter(reader.read_data())
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except (EOFError, BufferError):
            # mrd-python 2.1 raises BufferError instead of EOFError when the bytes end inside an item
            # after a short read (its refill of a partly used buffer); both mean the stream was cut.
            raise InputError(f"{name} ended in the middle of the data (truncated: no end-of-stream marker)") from None
        except (RuntimeError, ValueError, TypeError, IndexError, struct.error) as exc:
            raise InputError(f"{name}: unreadable stream item ({type(exc).__name__}: {exc})") from None
        yield item


def _flush(writer: Any) -> None:
    # mrd-python buffers 64 KiB before it writes; the next program in the pipe should get each
    # image when it exists, not when the buffer fills.
    writer._stream.flush()


@contextlib.contextmanager
def _writer(mrd: Any, sink: BinaryIO, header: Any) -> Iterator[Any]:
    """An open writer past the header whose stream is ended (valid) however the block exits."""
    try:
        writer = mrd.BinaryMrdWriter(sink)
        writer.write_header(header)
        writer.write_data([])  # enters the data step, so that close() always writes the end marker
    except BrokenPipeError:
        raise TgvDeployError("the output was closed before the stream header was written (broken pipe)") from None
    try:
        yield writer
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            writer.close()
        raise TgvDeployError("the output was closed by its reader (broken pipe)") from None
    except BaseException:
        with contextlib.suppress(OSError):  # the first error is the one to report
            writer.close()
        raise
    else:
        writer.close()


# --- reconstruction --------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamReport:
    images: int
    acquisitions: int


def _meta_value(mrd: Any, value: Any) -> Any:
    if isinstance(value, bool | int | np.integer):
        return mrd.ImageMetaValue.Int64(int(value))
    if isinstance(value, float | np.floating):
        return mrd.ImageMetaValue.Float64(float(value))
    return mrd.ImageMetaValue.String(str(value))


def image_meta(mrd: Any, values: dict[str, Any]) -> dict[str, list[Any]]:
    """An ``mrd.ImageMeta`` from plain values (a list gives several values under one name)."""
    return {name: [_meta_value(mrd, v) for v in (value if isinstance(value, list) else [value])]
            for name, value in values.items()}


def build_image(mrd: Any, magnitude: np.ndarray, done: CompletedSlice, encoding: Encoding, index: int,
                meta: dict[str, Any]) -> Any:
    """An ``mrd.Image[float32]`` of ``magnitude (H', W')`` (H' along the readout): data
    ``(1, 1, W', H')``, x along the readout (``col_dir = read_dir``), placed like the slice's centre line."""
    ref = done.reference
    head = mrd.ImageHeader(image_type=mrd.ImageType.MAGNITUDE)
    head.measurement_uid = ref.measurement_uid
    head.field_of_view[:] = pixel_fov(encoding, *magnitude.shape)
    head.position[:] = ref.position
    head.col_dir[:] = ref.read_dir
    head.line_dir[:] = ref.phase_dir
    head.slice_dir[:] = ref.slice_dir
    head.patient_table_position[:] = ref.patient_table_position
    head.average, head.slice, head.contrast = ref.average, ref.slice, ref.contrast
    head.phase, head.repetition, head.set = ref.phase, ref.repetition, ref.set
    head.acquisition_time_stamp = ref.acquisition_time_stamp
    head.physiology_time_stamp = list(ref.physiology_time_stamp)
    head.image_index = index
    head.image_series_index = SERIES_INDEX
    data = np.ascontiguousarray(magnitude.T, dtype=np.float32)[None, None]
    return mrd.Image[np.float32](head=head, data=data, meta=image_meta(mrd, meta))


def reconstruct_stream(pipeline: Any, model: str, source: BinaryIO, sink: BinaryIO, name: str = "input",
                       say: Callable[[str], None] | None = None) -> StreamReport:
    """Read an MRD v2 stream from ``source``, write its header and one image per slice to ``sink``.

    ``pipeline`` is a :class:`tgv_deploy.runtime.multicoil.MultiCoilPipeline`; ``model`` names it in
    the image meta; ``say`` gets one progress line per slice. Raises :class:`InputError` for a bad
    stream (after ending the output as a valid stream of the images written so far).
    """
    mrd = _mrd()
    reader, header = _open_reader(mrd, source, name)
    encoding = encoding_from_mrd(header)  # before the writer: a header refused here leaves no output behind
    described = describe_model(model, pipeline.reconstructor.session)
    images = 0
    with _writer(mrd, sink, header) as writer:
        assembler = SliceAssembler(encoding, source=name)
        for item in _items(reader, name):
            if not isinstance(item, mrd.StreamItem.Acquisition):
                continue
            done = assembler.add(line_from_mrd(item.value))
            if done is None:
                continue
            pipeline.check([done.sample])
            result = pipeline.reconstruct(done.sample)
            magnitude = np.abs(result.image).astype(np.float32)
            images += 1
            peak = float(magnitude.max())
            meta = {**described, **slice_meta(result), "WindowCenter": peak / 2, "WindowWidth": peak}
            image = build_image(mrd, magnitude, done, encoding, images, meta)
            writer.write_data([mrd.StreamItem.ImageFloat(image)])
            _flush(writer)
            if say is not None:
                say(progress_line(result, images, *magnitude.shape))
        assembler.finish()
    return StreamReport(images, assembler.seen)


# --- retrospective undersampling -------------------------------------------------------------


@dataclass(frozen=True)
class UndersampleReport:
    kept: int
    dropped: int
    calibration_lines: int
    mask: np.ndarray


def centre_block(width: int, center_fraction: float) -> range:
    """The fully sampled centre of :class:`tgv_deploy.data.masks.LineMask` (the same arithmetic)."""
    count = max(1, round(width * center_fraction))
    start = (width - count + 1) // 2
    return range(start, start + count)


def undersample_stream(source: BinaryIO, sink: BinaryIO, acceleration: float, center_fraction: float,
                       seed: int | None = 0, mask_type: str = "equispaced", name: str = "input",
                       say: Callable[[str], None] | None = None) -> UndersampleReport:
    """Copy an MRD v2 stream, keeping only the imaging lines a ``(W,)`` line mask selects.

    The mask is ``make_mask(mask_type, center_fraction, acceleration)(W, seed=seed)`` over the
    header's encoded phase-encode lines (the centre shifted to ``W // 2`` as the reconstruction
    does). Noise scans, calibration-only lines, navigators and other items pass unchanged.
    """
    from tgv_deploy.data.masks import make_mask

    mrd = _mrd()
    try:
        line_mask = make_mask(mask_type, center_fraction, acceleration)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    reader, header = _open_reader(mrd, source, name)
    encoding = encoding_from_mrd(header)  # before the writer: a header refused here leaves no output behind
    kept = dropped = 0
    with _writer(mrd, sink, header) as writer:
        width = encoding.shape[1]
        mask = line_mask(width, seed=seed)
        calibration = centre_block(width, center_fraction)
        held: dict[Key, Any] = {}  # the last kept line of each image, until we know whether it ends it

        def write(item: Any) -> None:
            writer.write_data([item])
            if isinstance(item, mrd.StreamItem.Acquisition) and int(item.value.head.flags) & LAST_IN_SLICE:
                _flush(writer)

        for index, item in enumerate(_items(reader, name)):
            if not isinstance(item, mrd.StreamItem.Acquisition):
                write(item)
                continue
            head = item.value.head
            flags = int(head.flags)
            calibration_only = flags & IS_PARALLEL_CALIBRATION and not flags & IS_PARALLEL_CALIBRATION_AND_IMAGING
            if flags & (IS_NOISE_MEASUREMENT | NOT_IMAGING) or calibration_only:
                write(item)
                continue
            step = 0 if head.idx.kspace_encode_step_1 is None else int(head.idx.kspace_encode_step_1)
            column = step + encoding.line_shift
            if not 0 <= column < width:
                raise InputError(f"{name}: acquisition {index}: phase-encode line {step} (k-space column {column}) "
                                 f"is outside the encoded matrix of {width} lines")
            line = line_from_mrd(item.value)
            if mask[column]:
                kept += 1
                if column in calibration:
                    head.flags = mrd.AcquisitionFlags(flags | IS_PARALLEL_CALIBRATION_AND_IMAGING)
                previous = held.pop(line.key, None)
                if previous is not None:
                    write(previous)
                held[line.key] = item
            else:
                dropped += 1
                ending = flags & LAST_FLAGS
                if ending and line.key in held:
                    last = held.pop(line.key)
                    last.value.head.flags = mrd.AcquisitionFlags(int(last.value.head.flags) | ending)
                    write(last)
        for item in held.values():
            write(item)
    if say is not None:
        say(f"kept {kept} of {kept + dropped} imaging acquisitions ({int(mask.sum())}/{mask.size} lines, "
            f"{mask_type} R={acceleration:g}, {len(calibration)} centre lines flagged calibration)")
    return UndersampleReport(kept, dropped, len(calibration), mask)
