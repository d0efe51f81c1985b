"""``tgv-deploy build``: an exported ONNX graph -> a TensorRT engine (plan) + extended contract.

Written against the TensorRT 10.x / 11.x Python API (see docs/tensorrt.md for what has and has
not run on real TensorRT: nothing here has, this workplace has no TensorRT). Version differences
handled here, each from the TensorRT headers and migration guide:

* 11.x networks are always strongly typed; 10.x is weakly typed unless STRONGLY_TYPED is set;
* ``BuilderFlag.FP16`` / ``OBEY_PRECISION_CONSTRAINTS`` and ``layer.precision`` exist in 10.x only;
  on 11.x reduced precision must already be in the ONNX graph (Cast nodes), so ``fp16-unet``
  is refused there;
* TF32 is on by default in both; ``fp32`` clears it for strict parity.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from tgv_deploy.contract import Contract, sha256_bytes
from tgv_deploy.errors import InputError, TgvDeployError
from tgv_deploy.io_utils import atomic_write_bytes, check_output_path
from tgv_deploy.onnx_graph import load_verified
# Shared with the .plan runtime, which must not import this module (the export stage).
from tgv_deploy.trt_common import PLAN_SHA256, cuda_device, import_tensorrt, plan_contract_path, read_plan_contract

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "tf32", "fp16-unet")


@dataclass(frozen=True)
class BuildConfig:
    precision: str = "fp32"
    timing_cache: str | None = None
    version_compatible: bool = False
    workspace_mb: int | None = None
    optimization_level: int = 3

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.workspace_mb is not None and self.workspace_mb < 16:
            raise InputError(f"--workspace must be at least 16 MB, got {self.workspace_mb}")
        if not 0 <= self.optimization_level <= 5:
            raise InputError(f"optimization level must be in 0..5, got {self.optimization_level}")


class EngineBuildError(TgvDeployError):
    exit_code = 7


def build_engine(onnx_path: str | Path, out: str | Path, config: BuildConfig, say: Callable[[str], None] = log.info) -> Contract:
    """Parse, build and write ``out`` plus ``out.json``; returns the extended contract."""
    out = check_output_path(out)
    model, contract = load_verified(onnx_path)
    import_tensorrt()
    import tensorrt as trt

    gpu_name, capability = cuda_device()
    major = int(trt.__version__.split(".")[0])
    graph_fp16 = contract.precision == "fp16-unet"
    if config.precision == "fp16-unet" and major >= 11 and not graph_fp16:
        raise InputError("TensorRT 11 networks are strongly typed: export with --unet-fp16 to put the fp16 U-Net into the graph")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # A graph with an fp16 U-Net is built strongly typed (its Cast nodes decide, on 10.x and
    # 11.x alike). Otherwise 10.x is weakly typed: an all-float32 graph gives a float32 engine,
    # and fp16-unet pins the non-U-Net layers to float32 below. 11.x is always strongly typed.
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if graph_fp16 else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    say(f"parsing {onnx_path} ({len(model.graph.node)} nodes) with TensorRT {trt.__version__}")
    if not parser.parse(model.SerializeToString()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT could not parse {onnx_path}: {errors}")
    builder_config = builder.create_builder_config()
    builder_config.builder_optimization_level = config.optimization_level
    if config.workspace_mb:
        builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mb << 20)
    if config.precision == "fp32":
        builder_config.clear_flag(trt.BuilderFlag.TF32)
    if config.precision == "fp16-unet" and not graph_fp16:
        builder_config.set_flag(trt.BuilderFlag.FP16)
        builder_config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if "unet" not in layer.name:  # the PDHG iterations and the DFT stay float32 (SPEC 5)
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    layer.set_output_type(j, trt.float32)
    if config.version_compatible:
        builder_config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    if contract.batch is None:
        profile = builder.create_optimization_profile()
        for spec in contract.inputs:
            item = list(spec.shape[1:])
            profile.set_shape(spec.name, trt.Dims([1, *item]), trt.Dims([1, *item]), trt.Dims([8, *item]))
        builder_config.add_optimization_profile(profile)
    cache = None
    if config.timing_cache:
        cache_path = Path(config.timing_cache)
        cache = builder_config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        builder_config.set_timing_cache(cache, ignore_mismatch=False)
    say(f"building the engine ({config.precision}, optimization level {config.optimization_level}); this can take minutes")
    start = time.perf_counter()
    plan = builder.build_serialized_network(network, builder_config)
    if plan is None:
        raise EngineBuildError("TensorRT failed to build the engine; see the TensorRT log above")
    seconds = time.perf_counter() - start
    if config.timing_cache:
        atomic_write_bytes(config.timing_cache, bytes(builder_config.get_timing_cache().serialize()))
    data = bytes(plan)
    # The runtime loads only a plan whose bytes hash to this value: a plan is native code, and
    # the JSON beside it is no proof of what the plan file holds.
    extended = contract.with_engine(
        tensorrt_version=trt.__version__, gpu=gpu_name, compute_capability=capability,
        build=asdict(config), build_seconds=round(seconds, 1), version_compatible=config.version_compatible,
        **{PLAN_SHA256: sha256_bytes(data)},
    )
    atomic_write_bytes(out, data)
    try:
        atomic_write_bytes(plan_contract_path(out), extended.to_json().encode())
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    say(f"built {out} in {seconds:.1f} s")
    return extended


__all__ = ["BuildConfig", "PRECISIONS", "build_engine", "cuda_device", "import_tensorrt", "plan_contract_path", "read_plan_contract"]
