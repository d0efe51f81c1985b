"""A python-ismrmrd-server (FIRE / OpenRecon style) handler: ``process(connection, config, metadata)``.

The server calls :func:`process` once per connection with an iterable connection (``ismrmrd``
``Acquisition`` / ``Image`` / ``Waveform`` items, ``None`` at the end), the configuration and the
MRD header (an ``ismrmrd.xsd`` header object, or its XML text when the server could not parse it).
Acquisitions are collected per slice by :class:`tgv_deploy.stream.assembly.SliceAssembler` (the same
rules as ``tgv-deploy mrd``); each slice is reconstructed when its ``ACQ_LAST_IN_SLICE`` line
arrives and sent at once as one ``ismrmrd.Image``. Images and waveforms sent to the handler are
not used. The connection is always closed with ``send_close()``. The first error (a bad slice,
line or header) ends the connection's reconstruction: it is logged and sent to the client with
``send_logging`` after the images already sent, and the rest of the stream is not read (a later
slice of a stream that broke its own rules once would be a guess, not a reconstruction).

Images are int16 magnitudes in ``BitsStored`` bits (the header's ``userParameterLong``, else 12),
one intensity scale for the whole connection (``"scaling": "series"``, the default): the slices of a
series share the receiver's units, and a reader comparing slices (or windowing them together) needs
the pixel values to keep that. Slices arrive one by one, so the first image fixes the scale: its
peak lands at half the range (:data:`FIRST_PEAK_FRACTION`), which leaves a later slice twice the
first one's peak before it clips; clipped pixels are counted and reported with ``send_logging``
(WARNING). ``"scaling": "image"`` scales each image to the full range instead, as the server's
examples do. ``TgvScale`` in the meta is the factor (pixel value / TgvScale = the model's
magnitude); ``WindowCenter`` / ``WindowWidth`` span zero to the first image's peak (image scaling:
the full range).

Configuration, first found wins:

1. the JSON configuration the client sends (``config`` is then a dict, or its text), under
   ``"parameters"``: ``"model"`` (a bundled name, ``.pt``, ``.onnx`` or ``.plan`` path),
   ``"backend"``, ``"iterations"``, ``"coils"``, ``"coilmaps"`` (``espirit`` or ``walsh``),
   ``"scaling"`` (``series`` or ``image``);
2. the environment: ``TGV_DEPLOY_MODEL``, ``TGV_DEPLOY_BACKEND``, ``TGV_DEPLOY_ITERATIONS``,
   ``TGV_DEPLOY_COILS``, ``TGV_DEPLOY_COILMAPS``, ``TGV_DEPLOY_SCALING``;
3. the bundled ``utgv-mri`` (torch backend), ``espirit`` maps, all coils, series scaling.

A plain config string (the module name the server dispatched on) carries no settings; text that
starts like JSON must parse, ``"parameters"`` must be an object and numbers integers (no silent
fallback to the defaults); other names in it (the server's ``"config"``, a client's own) are not
this handler's and are left alone. The model is
loaded once per server process and setting. The handler itself needs only numpy and ``ismrmrd``;
torch or ONNX Runtime come in with the model backend.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
import traceback
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from tgv_deploy.coils.maps import MapMethod
from tgv_deploy.errors import InputError, TgvDeployError
from tgv_deploy.limits import MAX_GRAPH_COILS, MAX_RUN_ITERATIONS
from tgv_deploy.stream.assembly import CompletedSlice, Encoding, SliceAssembler, encoding_from_xml, line_from_ismrmrd
from tgv_deploy.stream.images import SERIES_INDEX, describe_model, pixel_fov, progress_line, slice_meta

log = logging.getLogger(__name__)

DEFAULT_MODEL = "utgv-mri"
DEFAULT_BITS = 12
ENVIRONMENT = {"model": "TGV_DEPLOY_MODEL", "backend": "TGV_DEPLOY_BACKEND", "iterations": "TGV_DEPLOY_ITERATIONS",
               "coils": "TGV_DEPLOY_COILS", "coilmaps": "TGV_DEPLOY_COILMAPS", "scaling": "TGV_DEPLOY_SCALING"}
SCALINGS = ("series", "image")
#: Series scaling: where the first image's peak lands in the int16 range.
FIRST_PEAK_FRACTION = 0.5
# The severity strings of the server's send_logging messages (its constants.MRD_LOGGING_*).
LOG_INFO, LOG_WARNING, LOG_ERROR = "INFO    ", "WARNING ", "ERROR   "


@dataclass(frozen=True)
class Settings:
    model: str = DEFAULT_MODEL
    backend: str = "auto"
    iterations: int | None = None
    coils: int | None = None
    coilmaps: str = "espirit"
    scaling: str = "series"


class IntensityScale:
    """Pixel value per unit of reconstructed magnitude, for the images of one connection."""

    def __init__(self, scaling: str, bits: int):
        self.scaling, self.top = scaling, 2**bits - 1
        self.factor: float | None = None
        self.window_top = self.top  # what WindowCenter / WindowWidth span

    def for_image(self, magnitude: np.ndarray) -> float:
        """The factor for ``magnitude``: its own (image scaling) or the first image's (series)."""
        if self.scaling == "image" or self.factor is None:
            peak = float(magnitude.max())
            self.window_top = max(1, round(FIRST_PEAK_FRACTION * self.top)) if self.scaling == "series" else self.top
            if not peak > 0:
                return 1.0  # an empty (or non-finite) image fixes nothing: the next one sets the series scale
            self.factor = self.window_top / peak
        return self.factor


def _parameters(config: Any) -> dict[str, Any]:
    if isinstance(config, bytes):
        config = config.decode("utf-8", errors="replace")
    if isinstance(config, str):
        if not config.lstrip().startswith("{"):
            return {}  # the name of the handler the server dispatched on
        try:
            config = json.loads(config)
        except ValueError as exc:
            raise InputError(f"the configuration is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        return {}
    if "parameters" not in config:
        return config
    parameters = config["parameters"]
    if not isinstance(parameters, dict):
        raise InputError(f"configuration 'parameters' must be an object, got {parameters!r}")
    return parameters  # other names are the server's and the client's own ("config", OpenRecon's UI values)


def _positive(name: str, value: Any, most: int) -> int | None:
    """A whole number in ``1..most`` from JSON (a number, or a string of one: the environment's are
    strings) or None when not given; a fraction or a flag is refused, not truncated."""
    if value is None or value == "":
        return None
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= most:
        raise InputError(f"configuration {name!r} must be a whole number in 1..{most}, got {value!r}")
    return number


def settings_from(config: Any, environ: dict[str, str] | None = None) -> Settings:
    """The settings of one connection: JSON configuration, then environment, then defaults."""
    environ = dict(os.environ) if environ is None else environ
    given = _parameters(config)

    def pick(name: str) -> Any:
        value = given.get(name)
        return value if value not in (None, "") else environ.get(ENVIRONMENT[name]) or None

    maps = str(pick("coilmaps") or "espirit")
    if maps not in ("espirit", "walsh"):
        raise InputError(f"configuration 'coilmaps' must be espirit or walsh, got {maps!r}")
    scaling = str(pick("scaling") or "series")
    if scaling not in SCALINGS:
        raise InputError(f"configuration 'scaling' must be series or image, got {scaling!r}")
    return Settings(model=str(pick("model") or DEFAULT_MODEL), backend=str(pick("backend") or "auto"),
                    iterations=_positive("iterations", pick("iterations"), MAX_RUN_ITERATIONS),
                    coils=_positive("coils", pick("coils"), MAX_GRAPH_COILS),
                    coilmaps=maps, scaling=scaling)


def pipeline_for(settings: Settings) -> Any:
    """The :class:`~tgv_deploy.runtime.multicoil.MultiCoilPipeline` of ``settings``, loaded once per
    process and model setting (the image scaling is not one)."""
    return _pipeline(settings.model, settings.backend, settings.iterations, settings.coils, settings.coilmaps)


@functools.lru_cache(maxsize=2)
def _pipeline(model: str, backend: str, iterations: int | None, coils: int | None, coilmaps: str) -> Any:
    from tgv_deploy.runtime import Reconstructor, Session
    from tgv_deploy.runtime.multicoil import MultiCoilPipeline

    session = Session(model, backend=backend, iterations=iterations)
    maps = cast(MapMethod, coilmaps)  # settings_from admits only the MapMethod names
    return MultiCoilPipeline(Reconstructor(session), coils=coils, maps=maps)


def _header_xml(metadata: Any) -> str:
    if isinstance(metadata, bytes | str):
        return metadata.decode("utf-8", errors="replace") if isinstance(metadata, bytes) else metadata
    if metadata is None:
        raise InputError("the connection sent no MRD header")
    import ismrmrd  # type: ignore[import-untyped]

    try:
        xml = ismrmrd.xsd.ToXML(metadata)
    except Exception as exc:
        raise InputError(f"the MRD header could not be serialised ({type(exc).__name__}: {exc})") from None
    return xml.decode("utf-8") if isinstance(xml, bytes) else str(xml)


def bits_stored(xml: str) -> int:
    """``userParameterLong`` ``BitsStored`` of the header, else 12 (what the server's examples assume)."""
    try:
        root = ElementTree.fromstring(xml.strip().rstrip("\x00"))
    except ElementTree.ParseError:
        return DEFAULT_BITS
    for parameter in root.iterfind("{*}userParameters/{*}userParameterLong"):
        if (parameter.findtext("{*}name") or "").strip() == "BitsStored":
            try:
                return min(15, max(1, int((parameter.findtext("{*}value") or "").strip())))
            except ValueError:
                return DEFAULT_BITS
    return DEFAULT_BITS


def build_image(magnitude: np.ndarray, done: CompletedSlice, encoding: Encoding, index: int, intensity: IntensityScale,
                meta: dict[str, Any]) -> tuple[Any, int]:
    """An int16 ``ismrmrd.Image`` of ``magnitude (H', W')`` (H' along the readout): data ``(W', H')``
    with x along the readout (``read_dir``), placed like the slice's centre line; and how many of its
    pixels were clipped at the top of the range."""
    import ismrmrd

    scale, top = intensity.for_image(magnitude), intensity.top
    values = np.round(magnitude.T * scale)
    clipped = int(np.count_nonzero(values > top))
    pixels = np.clip(values, 0, top).astype(np.int16)
    image = ismrmrd.Image.from_array(np.ascontiguousarray(pixels), transpose=False)
    ref = done.reference
    image.image_type = ismrmrd.IMTYPE_MAGNITUDE
    image.image_index = index
    image.image_series_index = SERIES_INDEX
    image.field_of_view[:] = pixel_fov(encoding, *magnitude.shape)
    image.position[:] = ref.position
    image.read_dir[:] = ref.read_dir
    image.phase_dir[:] = ref.phase_dir
    image.slice_dir[:] = ref.slice_dir
    image.patient_table_position[:] = ref.patient_table_position
    image.measurement_uid = ref.measurement_uid
    image.average, image.slice, image.contrast = ref.average, ref.slice, ref.contrast
    image.phase, image.repetition, image.set = ref.phase, ref.repetition, ref.set
    image.acquisition_time_stamp = ref.acquisition_time_stamp
    stamps = (list(ref.physiology_time_stamp) + [0, 0, 0])[:3]
    image.physiology_time_stamp[:] = stamps
    values = {
        **meta,
        "WindowCenter": str((intensity.window_top + 1) // 2),
        "WindowWidth": str(intensity.window_top + 1),
        "TgvScale": repr(scale),
        "Keep_image_geometry": 1,
        "ImageRowDir": [f"{v:.18f}" for v in ref.read_dir],
        "ImageColumnDir": [f"{v:.18f}" for v in ref.phase_dir],
    }
    image.attribute_string = ismrmrd.Meta({k: v if isinstance(v, list) else str(v) for k, v in values.items()}).serialize()
    return image, clipped


def _send_logging(connection: Any, level: str, text: str) -> None:
    send = getattr(connection, "send_logging", None)
    if send is not None:
        send(level, text)


def process(connection: Any, config: Any, metadata: Any) -> None:
    """Reconstruct every slice of one connection with tgv-deploy and send it back as it completes."""
    import ismrmrd

    images = 0
    start = time.perf_counter()
    try:
        settings = settings_from(config)
        xml = _header_xml(metadata)
        encoding = encoding_from_xml(xml)
        bits = bits_stored(xml)
        intensity = IntensityScale(settings.scaling, bits)
        pipeline = pipeline_for(settings)
        described = describe_model(settings.model, pipeline.reconstructor.session)
        log.info("tgv-deploy: %s (%s, %s), %d-bit int16 images, %s scaling", settings.model,
                 pipeline.reconstructor.session.backend, pipeline.reconstructor.contract.iterations_text(), bits, settings.scaling)
        assembler = SliceAssembler(encoding, source="connection")
        for item in connection:
            if item is None:
                break
            if not isinstance(item, ismrmrd.Acquisition):
                continue
            done = assembler.add(line_from_ismrmrd(item))
            if done is None:
                continue
            pipeline.check([done.sample])
            result = pipeline.reconstruct(done.sample)
            magnitude = np.abs(result.image).astype(np.float32)
            images += 1
            image, clipped = build_image(magnitude, done, encoding, images, intensity, {**described, **slice_meta(result)})
            connection.send_image([image])
            if clipped:
                warning = (f"tgv-deploy: image {images} (slice {done.reference.slice}): {clipped} pixels above the series "
                           f"scale clipped at {intensity.top}; 'scaling': 'image' scales each image alone")
                log.warning(warning)
                _send_logging(connection, LOG_WARNING, warning)
            line = progress_line(result, images, *magnitude.shape)
            log.info("tgv-deploy: %s", line)
            _send_logging(connection, LOG_INFO, f"tgv-deploy: {line}")
        assembler.finish()
        log.info("tgv-deploy: sent %d images in %.2f s", images, time.perf_counter() - start)
    except TgvDeployError as exc:
        log.error("tgv-deploy: %s (after %d images)", exc, images)
        _send_logging(connection, LOG_ERROR, f"tgv-deploy: {exc}")
    except Exception:
        message = traceback.format_exc()
        log.error(message)
        _send_logging(connection, LOG_ERROR, message)
    finally:
        connection.send_close()
