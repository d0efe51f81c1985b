"""``tgv-deploy export``: checkpoint -> one ONNX graph (U-Net + T iterations) + contract.

The U-Net and the input normalisation are traced once with ``torch.onnx.export``; the T
iterations of the model's solver are appended as hand-written nodes (ADMM:
:mod:`tgv_deploy.export.admm_graph`, PDHG: :mod:`tgv_deploy.export.pdhg_graph`). The result is
verified against the PyTorch model in ONNX Runtime before it is written.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from tgv_deploy import __version__
from tgv_deploy.contract import Contract, TensorSpec, weights_sha256
from tgv_deploy.data.examples import example_inputs
from tgv_deploy.dft import dft_factors
from tgv_deploy.errors import BackendUnavailableError, InputError, TgvDeployError
from tgv_deploy.export.admm_graph import ADMMGraph, ADMMSenseGraph, ADMMSpec
from tgv_deploy.export.graph_builder import GraphBuilder, prune_dead_nodes
from tgv_deploy.limits import MAX_EXPORT_ITERATIONS, MAX_GRAPH_COILS
from tgv_deploy.export.pdhg_graph import LoopSpec, PDHGGraph
from tgv_deploy.export.prologue import Prologue, SensePrologue
from tgv_deploy.io_utils import atomic_write_bytes, check_output_path
from tgv_deploy.models.checkpoint import Checkpoint
from tgv_deploy.onnx_graph import graph_sha256, set_contract

DEFAULT_OPSET = 17
PARITY_TOLERANCE = 1e-5
#: Stated tolerance of graphs whose U-Net runs in float16 (the maps carry ~1e-3 relative error).
FP16_UNET_TOLERANCE = 1e-2


class ParityError(TgvDeployError):
    """The exported graph does not compute what the PyTorch model computes."""

    exit_code = 6


@dataclass(frozen=True)
class ExportConfig:
    """Options of ``tgv-deploy export``; ``None`` means "take it from the checkpoint"."""

    iterations: int | None = None
    height: int | None = None
    width: int | None = None
    batch: int | None = 1  # None = dynamic
    opset: int = DEFAULT_OPSET
    verify: bool = True
    max_lines: int | None = None  # MRI: most sampled phase-encode lines; None = ceil(W / 2)
    row_dft: str = "auto"  # MRI: "factorised" (two stages), "dense" (one product), "auto" (factorised where H allows)
    column_dft: str = "auto"  # ADMM graphs: the same choice for the DFT along W (PDHG transforms only the sampled lines)
    unet_fp16: bool = False  # U-Net in float16 inside the graph (for TensorRT 11's strong typing)
    coils: int = 0  # MRI, ADMM: receive coils of a multi-coil (SENSE) graph; 0 = single-coil


@dataclass(frozen=True)
class ExportResult:
    model: onnx.ModelProto
    contract: Contract
    nodes_per_iteration: int  # of the middle iteration, after pruning (GraphBuilder.nodes_of_middle_iteration)
    seconds: float
    parity: float | None
    row_dft: str = "none"  # MRI: "dense" or "two-stage n1 x n2"; "none" for denoising
    column_dft: str = "none"  # ADMM: "dense" or "two-stage n1 x n2"; "none" for PDHG


def io_specs(task: str, kind: str, height: int, width: int, batch: int | None,
             coils: int = 0) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Input and output tensor specs of an exported model (``coils > 0``: k-space and coil maps ``(B, C, 2, H, W)``)."""
    b = -1 if batch is None else batch
    channels = 2 if task == "mri" else 1
    maps = 2 if kind == "utgv" else 1
    inputs: tuple[TensorSpec, ...]
    if coils:
        coil = TensorSpec("kspace", (b, coils, 2, height, width))
        inputs = (coil, TensorSpec("coil_maps", coil.shape), TensorSpec("mask", (b, 1, 1, width)))
    elif task == "mri":
        inputs = (TensorSpec("kspace", (b, 2, height, width)), TensorSpec("mask", (b, 1, 1, width)))
    else:
        inputs = (TensorSpec("noisy", (b, 1, height, width)),)
    outputs = (TensorSpec("image", (b, channels, height, width)), TensorSpec("maps", (b, maps, height, width)))
    return inputs, outputs


def _validate(config: ExportConfig, ckpt: Checkpoint) -> tuple[int, int, int]:
    # a multi-coil (SENSE) graph takes the model's multi-coil default T where it has one
    iterations = ckpt.config.default_iterations(bool(config.coils)) if config.iterations is None else config.iterations
    if iterations < 1:
        raise InputError(f"--iterations must be >= 1, got {iterations}")
    if iterations > MAX_EXPORT_ITERATIONS:
        raise InputError(f"--iterations {iterations} is beyond what one graph should hold (max {MAX_EXPORT_ITERATIONS})")
    height = config.height or int(ckpt.training.get("height", 0)) or None
    width = config.width or int(ckpt.training.get("width", 0)) or None
    if height is None or width is None:
        raise InputError("the checkpoint records no training matrix size; pass --height and --width")
    for name, n in (("height", height), ("width", width)):
        if not 8 <= n <= 1024:
            raise InputError(f"--{name} must be in 8..1024, got {n}")
    if config.batch is not None and not 1 <= config.batch <= 256:
        raise InputError(f"--batch must be in 1..256 or 'dynamic', got {config.batch}")
    if not 13 <= config.opset <= 21:
        raise InputError(f"--opset must be in 13..21, got {config.opset}")
    if config.max_lines is not None and not 1 <= config.max_lines <= width:
        raise InputError(f"--max-lines must be in 1..{width} (the width), got {config.max_lines}")
    for option, choice in (("--row-dft", config.row_dft), ("--column-dft", config.column_dft)):
        if choice not in ("auto", "dense", "factorised"):
            raise InputError(f"{option} must be auto, dense or factorised, got {choice!r}")
    if config.column_dft == "factorised" and ckpt.config.solver != "admm":
        raise InputError("--column-dft factorised is for ADMM graphs; a PDHG graph transforms only the sampled lines")
    if config.coils and (ckpt.config.task != "mri" or ckpt.config.solver != "admm"):
        raise InputError("--coils exports a multi-coil graph of an ADMM MRI model; this checkpoint is "
                         f"{ckpt.config.task}/{ckpt.config.solver}")
    if not 0 <= config.coils <= MAX_GRAPH_COILS:
        raise InputError(f"--coils must be in 1..{MAX_GRAPH_COILS}, got {config.coils}")
    if config.coils and config.unet_fp16:
        raise InputError("--unet-fp16 is not offered for multi-coil graphs")
    if config.row_dft == "factorised" and dft_factors(height) is None:
        raise InputError(f"--row-dft factorised needs H = n1 * n2 with n1 even and both >= 4; {height} has none (use dense)")
    if config.column_dft == "factorised" and dft_factors(width) is None:
        raise InputError(f"--column-dft factorised needs W = n1 * n2 with n1 even and both >= 4; {width} has none (use dense)")
    return iterations, height, width


SENSE_PROLOGUE_OUTPUTS = ["x0", "coil_images", "maps_n", "scale", "coil_weights", "virtual"]


def _trace_prologue(
    model: torch.nn.Module, example: tuple[torch.Tensor, ...], names: list[str], dynamic: bool, opset: int, unet_fp16: bool,
    multicoil: bool = False,
) -> onnx.ModelProto:
    prologue: torch.nn.Module = (SensePrologue(model) if multicoil else Prologue(model, unet_fp16)).eval()
    outputs = SENSE_PROLOGUE_OUTPUTS if multicoil else ["x0", "f_n", "maps_n", "scale"]
    buffer = io.BytesIO()
    dynamic_axes = {n: {0: "batch"} for n in names + outputs} if dynamic else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(
            prologue,
            example,
            cast(Any, buffer),  # torch accepts file objects; its annotation names only paths
            dynamo=False,
            opset_version=opset,
            input_names=names,
            output_names=outputs,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buffer.getvalue())


def build_graph(ckpt: Checkpoint, config: ExportConfig, progress: Callable[[str], None] | None = None) -> ExportResult:
    """Build (and by default verify) the ONNX model of ``ckpt``; nothing is written."""
    say = progress or (lambda message: None)
    start = time.perf_counter()
    iterations, height, width = _validate(config, ckpt)
    model = ckpt.build()
    task, kind = ckpt.config.task, ckpt.config.kind
    inputs, outputs = io_specs(task, kind, height, width, config.batch, config.coils)
    trace_batch = config.batch or 2
    solver = ckpt.config.solver
    max_lines = (config.max_lines or -(-width // 2)) if solver == "pdhg" and task == "mri" else None
    example = example_inputs(task, trace_batch, height, width, coils=config.coils, max_lines=max_lines)
    say(f"tracing the U-Net and normalisation ({task}, {height}x{width}{f', {config.coils} coils' if config.coils else ''})")
    prologue = _trace_prologue(
        model, tuple(torch.from_numpy(example[s.name]) for s in inputs), [s.name for s in inputs], config.batch is None, config.opset,
        config.unet_fp16, multicoil=bool(config.coils),
    )

    say(f"writing {iterations} {solver.upper()} iterations")
    mask_input = "mask" if task == "mri" else None
    factors = column_factors = None
    if solver == "admm":
        g = GraphBuilder(prefix="admm/")
        factors = dft_factors(height) if config.row_dft != "dense" else None
        column_factors = dft_factors(width) if config.column_dft != "dense" else None
        schedule = None if config.coils else model.rho_factors(iterations)  # coil splitting keeps the one rho
        rho_factors = () if schedule is None else tuple(float(f) for f in schedule.detach())
        admm = ADMMSpec(task, kind, height, width, iterations, float(model.rho().detach()), ckpt.config.alpha,
                        row_blocks=factors[0] if factors else 0, penalty_ratio=ckpt.config.penalty_ratio,
                        column_blocks=column_factors[0] if column_factors else 0, rho_factors=rho_factors)
        if config.coils:
            graph_builder = ADMMSenseGraph(g, admm, float(model.rho_coil().detach()))
            x = graph_builder.build_sense("x0", "maps_n", "mask", "coil_images", "coil_weights", "virtual")
        else:
            x = ADMMGraph(g, admm).build("x0", "maps_n", mask_input)
    else:
        sigma, tau = (float(v.detach()) for v in model.step_sizes())
        g = GraphBuilder(prefix="pdhg/")
        factors = dft_factors(height) if task == "mri" and config.row_dft != "dense" else None
        loop = PDHGGraph(g, LoopSpec(task, kind, height, width, iterations, sigma, tau, max_lines or 0, factors[0] if factors else 0))
        x = loop.build("x0", "f_n", "maps_n", mask_input)
    g.nodes.append(helper.make_node("Mul", [x, "scale"], ["image"], name="epilogue/image"))
    g.nodes.append(helper.make_node("Mul", ["maps_n", "scale"], ["maps"], name="epilogue/maps"))
    loop_nodes = prune_dead_nodes(g.nodes, {"image", "maps"})
    nodes_per_iteration = g.nodes_of_middle_iteration(loop_nodes)

    graph = prologue.graph
    graph.node.extend(loop_nodes)
    used = {name for node in graph.node for name in node.input}
    graph.initializer.extend(t for name, t in g.initializers.items() if name in used)
    del graph.output[:]
    for spec in outputs:
        graph.output.append(helper.make_tensor_value_info(spec.name, TensorProto.FLOAT, ["batch" if d == -1 else d for d in spec.shape]))
    graph.name = f"tgv_deploy_{kind}_{task}_T{iterations}"
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", config.opset)], producer_name="tgv-deploy", producer_version=__version__)
    onnx_model.ir_version = min(onnx_model.ir_version, 9)  # readable by ONNX Runtime >= 1.16 and TensorRT 10
    onnx.checker.check_model(onnx_model)

    state = {k: v.numpy() for k, v in ckpt.state_dict.items()}
    contract = Contract(
        task=task, kind=kind, height=height, width=width, batch=config.batch, iterations=iterations,
        inputs=inputs, outputs=outputs, opset=config.opset, package_version=__version__,
        weights_sha256=weights_sha256(state), graph_sha256=graph_sha256(onnx_model), max_sampled_lines=max_lines,
        precision="fp16-unet" if config.unet_fp16 else "fp32", solver=solver, coils=config.coils,
    )
    set_contract(onnx_model, contract)

    parity = None
    if config.verify:
        say("verifying against PyTorch in ONNX Runtime (CPU)")
        parity = verify_parity(onnx_model, ckpt, contract, example)
        tolerance = FP16_UNET_TOLERANCE if config.unet_fp16 else PARITY_TOLERANCE
        if parity > tolerance:
            raise ParityError(f"exported graph differs from PyTorch: relative L2 error {parity:.2e} > {tolerance:.0e}")
    if task != "mri" and solver != "admm":
        row_dft = "none"
    else:
        row_dft = _dft_text(factors)
    column_dft = _dft_text(column_factors) if solver == "admm" else "none"
    return ExportResult(onnx_model, contract, nodes_per_iteration, time.perf_counter() - start, parity, row_dft, column_dft)


def _dft_text(factors: tuple[int, int] | None) -> str:
    return f"two-stage {factors[0]} x {factors[1]}" if factors else "dense"


def torch_reference(ckpt: Checkpoint, inputs: dict[str, np.ndarray], iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """The PyTorch model's (image, maps) for contract-layout inputs, with the FFT implementation."""
    model = ckpt.build()
    with torch.no_grad():
        if "coil_maps" in inputs:
            image, maps = model(torch.from_numpy(inputs["kspace"]), torch.from_numpy(inputs["mask"]), iterations=iterations,
                                coil_maps=torch.from_numpy(inputs["coil_maps"]))
        elif ckpt.config.task == "mri":
            image, maps = model(torch.from_numpy(inputs["kspace"]), torch.from_numpy(inputs["mask"]), iterations=iterations)
        else:
            image, maps = model(torch.from_numpy(inputs["noisy"]), iterations=iterations)
    return image.numpy(), maps.numpy()


def verify_parity(onnx_model: onnx.ModelProto, ckpt: Checkpoint, contract: Contract, inputs: dict[str, np.ndarray]) -> float:
    """Relative L2 error of the ONNX Runtime image against PyTorch on ``inputs``."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailableError("verification needs onnxruntime: install the 'cpu' extra, or pass --no-verify") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    image, _ = session.run(["image", "maps"], inputs)
    reference, _ = torch_reference(ckpt, inputs, contract.iterations)
    return float(np.linalg.norm(image - reference) / np.linalg.norm(reference))


def write_export(result: ExportResult, out: Path) -> tuple[Path, Path]:
    """Write ``out`` (.onnx) and its ``.json`` contract atomically; returns both paths."""
    out = check_output_path(out)
    contract_path = out.with_suffix(".json")
    atomic_write_bytes(out, result.model.SerializeToString())
    try:
        atomic_write_bytes(contract_path, result.contract.to_json().encode())
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return out, contract_path
