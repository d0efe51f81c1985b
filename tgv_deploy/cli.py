"""The ``tgv-deploy`` command line.

Every subcommand goes options -> config -> one library call -> report.  User errors
(:class:`tgv_deploy.errors.TgvDeployError`) end as one line on stderr and the error's exit code;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import math
import sys
from typing import NoReturn

import click

from tgv_deploy import __version__
from tgv_deploy.errors import InputError, TgvDeployError
from tgv_deploy.limits import MAX_GRAPH_COILS, MAX_RUN_ITERATIONS

#: Exit code of an unexpected exception: a bug, reported with its traceback.
EXIT_BUG = 70
POSITIVE = click.IntRange(min=1)


class FiniteFloatRange(click.FloatRange):
    """A float range that also refuses NaN and infinities (NaN passes every bound comparison)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{number} is not a finite number", param, ctx)
        return number


ACCELERATION = FiniteFloatRange(min=1)
CENTER_FRACTION = FiniteFloatRange(0, 1, min_open=True, max_open=True)
SIGMA = FiniteFloatRange(min=0)
SEED = click.IntRange(min=0)
#: most k-space values ``synth`` writes into one file (8 GiB of complex64): refused before any work
MAX_SYNTH_VALUES = 2**30
ITERATIONS = click.IntRange(1, MAX_RUN_ITERATIONS)

EXPECT_SHA256 = click.option(
    "--expect-sha256", metavar="HEX",
    help="Refuse the model file unless its SHA-256 is HEX (exit 5): pin the file you deployed. The hash inside an "
    "exported model only detects corruption, since whoever edits the file can update it.")
ALLOW_HOST_CODE = click.option(
    "--allow-engine-host-code", is_flag=True,
    help="Let TensorRT run host code stored in a .plan (version-compatible plans). Only for plans you trust: "
    "never implied by the plan's JSON.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tgv-deploy")
@click.option("--debug", is_flag=True, help="Show tracebacks for user errors too.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Learned TGV reconstruction (U-TGV): train, export to ONNX, build TensorRT engines, run, benchmark.

    Exit codes: 0 success, 1 user error, 2 missing backend, GPU or optional dependency,
    3 bad input or command line, 4 contract mismatch, 5 integrity failure (corrupt, tampered or
    hostile file), 6 export parity failure, 7 engine build failure, 8 TensorRT check violations,
    70 internal error (a bug).
    """
    ctx.obj = {"debug": debug}


def _echo(message: str) -> None:
    click.echo(message, err=True)


def _require(module: str, extra: str, what: str) -> None:
    """A command that needs an optional dependency says so in one line before any work (exit 2)."""
    import importlib.util

    from tgv_deploy.errors import BackendUnavailableError

    if importlib.util.find_spec(module) is None:
        raise BackendUnavailableError(f"{what} needs {module}: pip install 'tgv-deploy[{extra}]'")


def _require_torch(what: str) -> None:
    """Commands that need PyTorch say so in one line on a torch-free install (exit 2)."""
    _require("torch", "torch", what + " (the runtime commands do not)")


@cli.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def models_command(as_json: bool) -> None:
    """List the bundled models; their names work wherever a checkpoint is expected."""
    import json

    from tgv_deploy.registry import DEFAULT_MODEL, bundled_models

    rows = [
        {"name": m.name, "description": m.description, "installed": m.available, "default": m.name == DEFAULT_MODEL,
         "checkpoint": str(m.checkpoint), "card": str(m.card)}
        for m in bundled_models()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        flag = "*" if row["default"] else " "
        state = "" if row["installed"] else "  (not installed)"
        click.echo(f"{flag} {row['name']:<14} {row['description']}{state}")


@cli.command("export")
@click.argument("checkpoint")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output .onnx (default: <checkpoint name>.onnx).")
@click.option("--iterations", "-T", type=POSITIVE,
              help="Unrolled iterations T (default: the checkpoint's; with --coils its multi-coil default where it has one).")
@click.option("--height", type=POSITIVE, help="Matrix rows H (default: the training size).")
@click.option("--width", type=POSITIVE, help="Matrix columns W (default: the training size).")
@click.option("--batch", default="1", show_default=True, help="Fixed batch size, or 'dynamic'.")
@click.option("--opset", default=17, show_default=True, type=int, help="ONNX opset.")
@click.option("--max-lines", type=POSITIVE, help="MRI: most phase-encode lines a mask may sample (default: half the width). "
              "Only these lines are transformed, so fewer is faster; masks with more are refused at run time.")
@click.option("--row-dft", type=click.Choice(["auto", "dense", "factorised"]), default="auto", show_default=True,
              help="MRI: the DFT along H as two small stages (H = n1 x n2, n1 even; fewer FLOPs) or one dense product; "
              "auto factorises where H allows.")
@click.option("--column-dft", type=click.Choice(["auto", "dense", "factorised"]), default="auto", show_default=True,
              help="ADMM graphs: the same choice for the DFT along W (W = n1 x n2). PDHG graphs transform only the "
              "sampled lines, densely.")
@click.option("--unet-fp16", is_flag=True, help="Run the U-Net in float16 inside the graph (TensorRT 11 reads precision "
              "from the graph); the iterations stay float32. Verified to 1e-2 instead of 1e-5.")
@click.option("--coils", default=0, show_default=True, type=click.IntRange(0, MAX_GRAPH_COILS),
              help="ADMM MRI models: a multi-coil (SENSE) graph for up to this many coils, with k-space and coil maps "
              "(B, C, 2, H, W) as inputs (fewer coils run zero-padded, exactly); 0: single-coil.")
@click.option("--no-verify", is_flag=True, help="Skip the ONNX Runtime vs PyTorch parity check.")
@click.option("--triton-repo", type=click.Path(file_okay=False), help="Also write a Triton model repository here.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def export_command(checkpoint, output, iterations, height, width, batch, opset, max_lines, row_dft, column_dft, unet_fp16, coils,
                   no_verify, triton_repo, as_json) -> None:
    """Export CHECKPOINT (a .pt file or bundled name) to one ONNX graph: U-Net + T iterations.

    Writes OUT.onnx and OUT.json (the contract, also stored in the ONNX metadata). By default
    the graph is run in ONNX Runtime against PyTorch and refused above 1e-5 relative L2 error.
    """
    import json
    from pathlib import Path

    _require_torch("export")
    if not no_verify:
        _require("onnxruntime", "cpu", "export's parity check (or pass --no-verify)")
    from tgv_deploy.export.exporter import ExportConfig, build_graph, write_export
    from tgv_deploy.io_utils import check_output_path
    from tgv_deploy.models.checkpoint import load_checkpoint
    from tgv_deploy.registry import resolve_model

    if batch == "dynamic":
        batch_size = None
    else:
        try:
            batch_size = int(batch)
        except ValueError:
            raise InputError(f"--batch must be an integer or 'dynamic', got {batch!r}") from None
    path = resolve_model(checkpoint)
    out = Path(output) if output else Path(f"{Path(checkpoint).stem}.onnx")
    if out.suffix != ".onnx":
        raise InputError(f"output must end in .onnx, got {out}")
    check_output_path(out)
    triton_name = out.stem.replace("-", "_")
    if triton_repo:
        from tgv_deploy.export.triton import check_triton_repo

        check_triton_repo(triton_repo, triton_name)
    ckpt = load_checkpoint(path)
    config = ExportConfig(iterations=iterations, height=height, width=width, batch=batch_size, opset=opset, verify=not no_verify,
                          max_lines=max_lines, row_dft=row_dft, column_dft=column_dft, unet_fp16=unet_fp16, coils=coils)
    result = build_graph(ckpt, config, progress=_echo)
    onnx_path, contract_path = write_export(result, out)
    if triton_repo:
        from tgv_deploy.export.triton import write_triton_repo

        try:
            write_triton_repo(triton_repo, onnx_path, result.contract, triton_name)
        except BaseException:  # the command failed: it leaves no export behind (main reports a full disk in one line)
            onnx_path.unlink(missing_ok=True)
            contract_path.unlink(missing_ok=True)
            raise
    report = {
        "onnx": str(onnx_path), "contract": str(contract_path), "iterations": result.contract.iterations,
        "height": result.contract.height, "width": result.contract.width, "batch": result.contract.batch,
        "nodes": len(result.model.graph.node), "nodes_per_iteration": result.nodes_per_iteration,
        "seconds": round(result.seconds, 2), "parity_rel_l2": result.parity, "row_dft": result.row_dft,
        "column_dft": result.column_dft, "triton_repo": triton_repo,
    }
    if as_json:
        from tgv_deploy.machine import provenance

        report["provenance"] = provenance({"checkpoint": str(path)})  # a result file must say where it came from
        click.echo(json.dumps(report, indent=2))
    else:
        parity = "not checked" if result.parity is None else f"{result.parity:.2e} relative L2 vs PyTorch"
        dft = "" if result.row_dft == "none" else f", {result.row_dft} row DFT"
        dft += "" if result.column_dft == "none" else f", {result.column_dft} column DFT"
        click.echo(f"PASSED | wrote {onnx_path} ({report['nodes']} nodes, {report['nodes_per_iteration']} per iteration, "
                   f"T={report['iterations']}{dft}) and {contract_path} | parity {parity} | {report['seconds']} s")
    if triton_repo:
        from tgv_deploy.export.triton import trt_instructions

        repo = Path(triton_repo)
        say = _echo if as_json else click.echo  # stdout stays pure JSON with --json
        say(f"wrote Triton model repository {repo}: {triton_name}_onnx (ready to serve) and {triton_name}_trt, "
                   f"which needs {repo / f'{triton_name}_trt' / '1' / 'model.plan'}:")
        say("  " + trt_instructions(triton_name, result.contract).strip().replace("\n", "\n  "))


@cli.command("check-trt")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--trt", "trt_major", type=click.Choice(["10", "11"]), default="10", show_default=True, help="TensorRT major version.")
@click.option("--allow-dft", is_flag=True, help="Accept the ONNX DFT operator (TensorRT >= 11.2 only).")
@click.option("--json", "as_json", is_flag=True, help="Print violations as JSON.")
def check_trt_command(model, trt_major, allow_dft, as_json) -> None:
    """Check an ONNX graph offline against the TensorRT ONNX parser's supported operators.

    Exit 0 when no violation is found, 8 otherwise (every violation is listed).
    """
    import json
    from pathlib import Path

    from tgv_deploy.export.trt_check import check_model
    from tgv_deploy.onnx_graph import load_onnx

    path = Path(model)
    proto = load_onnx(path)
    violations = check_model(proto, int(trt_major), allow_dft=allow_dft)
    if as_json:
        click.echo(json.dumps({"model": str(path), "tensorrt": int(trt_major), "violations": [str(v) for v in violations]}, indent=2))
    else:
        for v in violations:
            click.echo(f"  {v}")
        status = "PASSED" if not violations else "FAILED"
        click.echo(f"{status} | {path} | TensorRT {trt_major}.x parser | {len(proto.graph.node)} nodes, {len(violations)} violations")
    if violations:
        sys.exit(8)


@cli.command("build")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output plan (default: MODEL with .plan).")
@click.option("--precision", type=click.Choice(["fp32", "tf32", "fp16-unet"]), default="fp32", show_default=True,
              help="fp32 clears TF32 for strict parity; fp16-unet lets the U-Net run in FP16 (TensorRT 10 only).")
@click.option("--timing-cache", type=click.Path(dir_okay=False), help="Read and update this timing cache.")
@click.option("--version-compatible", is_flag=True, help="Build a version-compatible plan (runs on later TensorRT).")
@click.option("--workspace", type=POSITIVE, help="Workspace limit in MB.")
@click.option("--optimization-level", type=click.IntRange(0, 5), default=3, show_default=True)
def build_command(model, output, precision, timing_cache, version_compatible, workspace, optimization_level) -> None:
    """Build a TensorRT engine from an exported ONNX MODEL (needs TensorRT and a CUDA GPU; exit 2 without)."""
    from pathlib import Path

    from tgv_deploy.export.trt_build import BuildConfig, build_engine

    config = BuildConfig(precision, timing_cache, version_compatible, workspace, optimization_level)
    out = Path(output) if output else Path(model).with_suffix(".plan")
    contract = build_engine(model, out, config, say=_echo)
    click.echo(f"PASSED | wrote {out} | TensorRT {contract.engine['tensorrt_version']} on {contract.engine['gpu']}")


@cli.command("infer")
@click.argument("model")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(), help="Output .h5 (one input) or directory (several).")
@click.option("--backend", default="auto", show_default=True,
              type=click.Choice(["auto", "onnxruntime", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt", "torch"]),
              help="auto: by extension (.onnx onnxruntime, .plan tensorrt, .pt or bundled name torch).")
@click.option("--iterations", "-T", type=ITERATIONS,
              help="T for checkpoints (default: the checkpoint's, for multi-coil data its multi-coil default where it "
                   "has one); an exported model's T is fixed by its contract.")
@click.option("--mask-type", default="equispaced", show_default=True, type=click.Choice(["equispaced", "random", "gaussian"]),
              help="Retrospective mask for inputs without a 'mask' dataset.")
@click.option("--acceleration", default=4.0, show_default=True, type=ACCELERATION)
@click.option("--center-fraction", default=0.08, show_default=True, type=CENTER_FRACTION)
@click.option("--seed", type=SEED, help="Mask seed (default: from the file name and slice).")
@click.option("--png", is_flag=True, help="Also write OUTPUT.png previews.")
@click.option("--coils", type=POSITIVE, help="Multi-coil data: SVD-compress to this many virtual coils (latency grows with coils).")
@click.option("--coil-maps", "coil_maps", default="espirit", show_default=True, type=click.Choice(["espirit", "walsh"]),
              help="Multi-coil data: how coil maps are estimated from the calibration lines.")
@click.option("--maps-outside", default="extend", show_default=True, type=click.Choice(["extend", "crop"]),
              help="Multi-coil data: coil maps outside the object, unit norm (extend) or zero (crop, ESPIRiT's).")
@EXPECT_SHA256
@ALLOW_HOST_CODE
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout (each output: input, slices, "
              "backend, T, seconds) instead of a line per output; if an input fails after others were written, it "
              "also names them and a 'failed' entry (input, error) before the non-zero exit.")
def infer_command(model, inputs, output, backend, iterations, mask_type, acceleration, center_fraction, seed, png, coils, coil_maps,
                  maps_outside, expect_sha256, allow_engine_host_code, as_json) -> None:
    """Reconstruct INPUTS (fastMRI .h5, ISMRMRD .h5 or .npy k-space) with MODEL, or denoise images.

    MODEL is a bundled name, a .pt checkpoint, an exported .onnx or a TensorRT .plan. Files with a
    'mask' dataset are taken as already undersampled; others are undersampled retrospectively.
    Multi-coil data (fastMRI (slices, coils, H, W), ISMRMRD raw data) is noise-whitened (ISMRMRD
    noise scans), cropped of readout oversampling, optionally compressed (--coils), given coil maps
    from its calibration lines and reconstructed coil-combined (SENSE), cropped to the header's
    recon matrix; checkpoints run any coil count, an exported model the coils it was exported for.
    Denoising models take images: a real .npy array, a .png, or HDF5 with an 'image' dataset.
    Writes HDF5 with 'reconstruction' (slices, H, W) (complex64 for MRI, float32 for denoising),
    'lambda0', 'lambda1', 'mask' (MRI) and the contract as attributes.
    """
    import json
    from pathlib import Path

    from tgv_deploy.cli_io import MaskOptions, check_task, read_infer_input
    from tgv_deploy.io_utils import check_not_overwriting, check_output_path
    from tgv_deploy.runtime import Reconstructor, Session
    from tgv_deploy.runtime.multicoil import MultiCoilPipeline

    paths = [Path(p) for p in inputs]
    out = Path(output)
    if len(paths) > 1:
        if not out.is_dir():
            raise InputError(f"with several inputs, --output must be an existing directory: {out}")
        targets = [out / f"{p.stem}.h5" for p in paths]
    else:
        targets = [out]
    for target in targets:
        check_output_path(target)
    check_not_overwriting(paths, targets)
    if png:
        check_not_overwriting(paths, [target.with_suffix(".png") for target in targets])
    options = MaskOptions(mask_type, acceleration, center_fraction, seed)
    read = [_naming(str(p), read_infer_input, p, options) for p in paths]  # every input is validated before any work
    volumes, raw = [volume for volume, _ in read], [samples for _, samples in read]
    session = Session(model, backend=backend, iterations=iterations, expected_sha256=expect_sha256,
                      allow_host_code=allow_engine_host_code)
    for volume in volumes:
        check_task(volume, session.contract.task)
    pipeline = None  # raw data only, which check_task has just kept from denoising models
    if any(samples is not None for samples in raw):
        pipeline = MultiCoilPipeline(Reconstructor(session), coils=coils, maps=coil_maps, outside=maps_outside)
    masks = []
    for volume, samples in zip(volumes, raw):  # every check a slice would make, before the first slice runs
        masks.append(_naming(volume.source, _check_infer_input, volume, samples, pipeline, Reconstructor(session), options, coils))
    report: dict = {"model": str(session.path), "outputs": []}
    try:
        _infer_all(session, pipeline, volumes, raw, masks, targets, png, model, as_json, report)
    except BaseException as exc:
        if as_json:  # a machine still learns which outputs exist before the command fails
            message = _os_error_line(exc) if isinstance(exc, OSError) else str(exc) or type(exc).__name__
            report["failed"] = {"input": report.pop("current", None), "error": message}
            click.echo(json.dumps(report, indent=2))
        raise
    if as_json:
        report.pop("current", None)
        click.echo(json.dumps(report, indent=2))


def _infer_all(session, pipeline, volumes, raw, masks, targets, png, model, as_json, report: dict) -> None:
    """Reconstruct and write each input in turn; ``report["outputs"]`` gets each output as it is
    written (its PNG once that is), ``report["current"]`` names the input being worked on."""
    import time
    from pathlib import Path

    from tgv_deploy.cli_io import ImageVolume, write_output, write_png
    from tgv_deploy.runtime import Reconstructor
    from tgv_deploy.runtime.multicoil import stack

    for volume, samples, mask, target in zip(volumes, raw, masks, targets):
        report["current"] = volume.source
        started = time.perf_counter()
        progress = lambda done, total, name=Path(volume.source).name: _echo(f"{name}: {done}/{total} slices")  # noqa: E731
        reconstructor = Reconstructor(session, progress=progress)
        if samples is not None and pipeline is not None:
            result = stack(pipeline.reconstruct_all(samples, progress))
        elif isinstance(volume, ImageVolume):
            result = reconstructor.denoise(volume.images)
        else:
            result = reconstructor.reconstruct(volume.kspace, mask)
        write_output(target, result, session.contract, volume.source)
        entry = {"input": volume.source, "output": str(target), "png": None, "slices": int(result.image.shape[0]),
                 "backend": session.backend, "iterations": result.iterations, "seconds": round(time.perf_counter() - started, 3)}
        report["outputs"].append(entry)
        if not as_json:
            click.echo(f"wrote {target} ({result.image.shape[0]} slices, backend {session.backend}, T={result.iterations})")
        if png:
            write_png(target.with_suffix(".png"), result, f"{Path(model).name} ({session.backend}, T={result.iterations})")
            entry["png"] = str(target.with_suffix(".png"))


def _naming(source: str, function, *args):
    """``function(*args)``, its user errors prefixed with ``source`` (the input file) unless they name it."""
    try:
        return function(*args)
    except TgvDeployError as exc:
        if source in str(exc):
            raise
        raise type(exc)(f"{source}: {exc}") from None


def _check_infer_input(volume, samples, pipeline, reconstructor, options, coils):
    """Refuse an ``infer`` input its model cannot run; returns a single-coil volume's masks ``(S, W)``."""
    from tgv_deploy.cli_io import ImageVolume, slice_masks

    if samples is not None:
        pipeline.check(samples)
        return None
    if coils is not None:
        raise InputError("--coils applies to multi-coil raw data; this input has one coil")
    if isinstance(volume, ImageVolume):
        reconstructor.check_size(*volume.images.shape[-2:])
        return None
    mask = slice_masks(volume, options)
    reconstructor.check_kspace(volume.kspace, mask)
    return mask


@cli.command("train")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--resume", is_flag=True, help="Continue from OUT_DIR/state.pt.")
@click.option("--overwrite", is_flag=True, help="Start a new run in a non-empty OUT_DIR, deleting its model.pt and state.pt.")
def train_command(config, out_dir, resume, overwrite) -> None:
    """Train a U-TGV/U-TV model from a TOML CONFIG (see training/configs/); writes OUT_DIR/model.pt.

    A non-empty OUT_DIR is refused unless --resume or --overwrite says what to do with it.
    For several GPUs or nodes: torchrun --nproc-per-node N -m tgv_deploy.training CONFIG OUT_DIR
    """
    from tgv_deploy.io_utils import check_run_directory

    run_dir = check_run_directory(out_dir, resume, overwrite)
    _require_torch("train")
    from tgv_deploy.training.config import load_config
    from tgv_deploy.training.trainer import MODEL_FILE, STATE_FILE, train

    loaded = load_config(config)
    if overwrite:  # a crash before the new run's first save must not leave the old run to --resume
        for name in (MODEL_FILE, STATE_FILE):
            (run_dir / name).unlink(missing_ok=True)
    path = train(loaded, out_dir, resume=resume, log=_echo)
    click.echo(f"wrote {path}")


@cli.command("synth")
@click.argument("output", type=click.Path(dir_okay=False))
@click.option("--slices", default=4, show_default=True, type=POSITIVE)
@click.option("--height", default=256, show_default=True, type=click.IntRange(8, 4096))
@click.option("--width", default=256, show_default=True, type=click.IntRange(8, 4096))
@click.option("--acceleration", type=ACCELERATION, help="Undersample with an equispaced mask (and store it); omit for fully sampled.")
@click.option("--center-fraction", default=0.08, show_default=True, type=CENTER_FRACTION)
@click.option("--sigma", default=0.0, show_default=True, type=SIGMA, help="Noise level (relative, SPEC 4).")
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--coils", default=1, show_default=True, type=POSITIVE,
              help="Receive coils: above 1, a multi-coil file (simulated smooth coil maps, 'reconstruction_rss' target).")
def synth_command(output, slices, height, width, acceleration, center_fraction, sigma, seed, coils) -> None:
    """Write a synthetic fastMRI file (realistic piecewise-smooth images, not ellipses), single- or multi-coil."""
    import numpy as np

    from tgv_deploy.data.fastmri import write_fastmri
    from tgv_deploy.data.masks import make_mask
    from tgv_deploy.data.noise import add_kspace_noise
    from tgv_deploy.data.synthetic import synthetic_image
    from tgv_deploy.dft import fft2c

    if slices * coils * height * width > MAX_SYNTH_VALUES:
        raise InputError(f"{slices} slices x {coils} coils of {height}x{width} is beyond what one synthetic file should hold "
                         f"({MAX_SYNTH_VALUES:.1e} k-space values)")
    rng = np.random.default_rng(seed)
    images = np.stack([synthetic_image(rng, height, width) for _ in range(slices)])
    if coils > 1:
        from tgv_deploy.data.coil_sim import simulate_coil_maps

        images = images[:, None] * np.stack([simulate_coil_maps(rng, coils, height, width) for _ in range(slices)])
    kspace = fft2c(images)
    mask = None
    if acceleration:
        mask = make_mask("equispaced", center_fraction, acceleration)(width, seed=seed)
        kspace = np.stack([add_kspace_noise(k, mask, sigma, rng) for k in kspace])
    elif sigma:
        raise InputError("--sigma needs --acceleration (noise is added at sampled locations)")
    target = np.sqrt((np.abs(images) ** 2).sum(1)) if coils > 1 else np.abs(images)
    write_fastmri(output, kspace, mask=mask, target=target)
    shape = f"{height}x{width}{f', {coils} coils' if coils > 1 else ''}"
    click.echo(f"wrote {output} ({slices} slices {shape}{'' if mask is None else f', R={acceleration}, sigma={sigma}'})")


@cli.command("bench")
@click.argument("models", nargs=-1, required=True)
@click.option("--backend", default="auto", show_default=True, help="Backend for every model (default: by extension).")
@click.option("--iterations", "-T", type=ITERATIONS, help="T for checkpoints (must equal the T of exported models).")
@click.option("--height", type=click.IntRange(min=2), help="Matrix rows (default: from an exported model's contract).")
@click.option("--width", type=click.IntRange(min=2), help="Matrix columns.")
@click.option("--batch", default=1, show_default=True, type=POSITIVE)
@click.option("--runs", default=10, show_default=True, type=POSITIVE)
@click.option("--warmup", default=2, show_default=True, type=click.IntRange(min=0))
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the results as JSON.")
@click.option("--expect-sha256", multiple=True, metavar="HEX",
              help="Refuse a model file unless its SHA-256 is HEX (exit 5); repeat once per model, in order.")
@ALLOW_HOST_CODE
@click.option("--coils", type=click.IntRange(1, MAX_GRAPH_COILS), help="Multi-coil inputs with this many coils (default: the exported "
              "models' coil count; single-coil for checkpoints alone).")
def bench_command(models, backend, iterations, height, width, batch, runs, warmup, json_path, expect_sha256,
                  allow_engine_host_code, coils) -> None:
    """Time MODELS (bundled names, .pt, .onnx, .plan) on the same inputs, interleaved after warm-up.

    Reports p50/p90/p99/mean latency and throughput, and each row's p50 ratio to the torch eager
    row of the same run. Checkpoints run at --iterations, else at the exported models' T.
    """
    import json

    from tgv_deploy.bench import bench, rows_to_json, rows_to_markdown
    from tgv_deploy.io_utils import atomic_write_bytes, check_output_path

    if json_path:
        check_output_path(json_path)
    rows = bench(list(models), backend, iterations, height, width, batch, runs, warmup, progress=_echo,
                 expected_sha256=list(expect_sha256) or None, allow_host_code=allow_engine_host_code, coils=coils or None)
    click.echo(rows_to_markdown(rows))
    if json_path:
        command = "tgv-deploy " + " ".join(sys.argv[1:])
        atomic_write_bytes(json_path, json.dumps(rows_to_json(rows, command), indent=2).encode())
        click.echo(f"wrote {json_path}")


@cli.command("evaluate")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--synthetic", default=0, show_default=True, type=click.IntRange(min=0), help="Add N synthetic test images (never used in training).")
@click.option("--size", default=128, show_default=True, type=click.IntRange(min=8), help="Size of the synthetic test images.")
@click.option("--setting", "settings", multiple=True, default=["4,0.05"], show_default=True,
              help="R,sigma pairs for fully sampled inputs (repeatable); denoising models use sigma only.")
@click.option("--utgv", default="utgv-mri", show_default=True, help="U-TGV checkpoint or bundled name ('none' to skip).")
@click.option("--utv", default="utv-mri", show_default=True, help="U-TV checkpoint or bundled name ('none' to skip).")
@click.option("--iterations", "-T", type=ITERATIONS, help="T of U-TV and U-TGV (default: each checkpoint's own).")
@click.option("--baseline-max-iterations", default=3000, show_default=True, type=POSITIVE,
              help="Most iterations of the scalar TV/TGV solves; each stops earlier at convergence "
              "(ADMM, relative change of the image over 20 iterations below 1e-4).")
@click.option("--coils", default=1, show_default=True, type=POSITIVE,
              help="Above 1: multi-coil test data (simulated coil maps, ESPIRiT maps from the calibration lines, SENSE).")
@click.option("--center-fraction", type=CENTER_FRACTION, help="Calibration lines of the multi-coil masks (default: fastMRI's for R).")
@click.option("--max-slices", type=POSITIVE, help="Evaluate only the first N slices of each fully sampled file.")
@click.option("--baselines-from", type=click.Path(exists=True, dir_okay=False),
              help="An earlier run's results.json: solve its tuned scalar TV/TGV parameters again instead of searching "
              "(the oracle does not depend on the models; every case must be in it and reproduce its recorded scores).")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory for tables and figures.")
def evaluate_command(files, synthetic, size, settings, utgv, utv, iterations, baseline_max_iterations, coils, center_fraction,
                     max_slices, baselines_from, out_dir) -> None:
    """Compare zero-filled, best scalar TV, best scalar TGV, U-TV and U-TGV (PSNR, SSIM).

    The scalar baselines are tuned per image on the ground truth (an oracle) and solved to
    convergence. Writes results.csv, results.md, results.json (scores, parameters, provenance) and
    PNG figures (reconstructions, error maps, Lambda0/Lambda1 maps and a Lambda1 profile across an edge).
    """
    from pathlib import Path

    _require_torch("evaluate")
    _require("matplotlib", "plots", "evaluate (its figures)")
    from tgv_deploy.evaluate import run_evaluation

    parsed = []
    for text in settings:
        try:
            r, s = (float(v) for v in text.split(","))
        except ValueError:
            raise InputError(f"--setting must be R,sigma (e.g. 4,0.05), got {text!r}") from None
        if not (math.isfinite(r) and math.isfinite(s) and r >= 0 and s >= 0):
            raise InputError(f"--setting {text!r}: R and sigma must be finite numbers >= 0")
        parsed.append((r, s))
    none = lambda v: None if v.lower() == "none" else v  # noqa: E731
    from tgv_deploy.machine import provenance
    from tgv_deploy.registry import resolve_model

    models = {name: str(resolve_model(value)) for name, value in (("U-TGV", none(utgv)), ("U-TV", none(utv))) if value}
    outcomes = run_evaluation([Path(f) for f in files], synthetic, (size, size), parsed, none(utgv), none(utv), Path(out_dir),
                              baseline_max_iterations, say=_echo, iterations=iterations, record={"provenance": provenance(models)},
                              coils=coils, center_fraction=center_fraction, max_slices=max_slices,
                              baselines_from=Path(baselines_from) if baselines_from else None)
    click.echo((Path(out_dir) / "results.md").read_text())
    click.echo(f"evaluated {len(outcomes)} slices; wrote {out_dir}/results.csv, results.md and figures")


def _mrd_streams(input_path: str | None, output_path: str | None):
    """The binary input and output of a stream command: files, or standard input and output."""
    import contextlib
    from pathlib import Path
    from typing import BinaryIO, cast

    from tgv_deploy.io_utils import OpenOnFirstWrite, check_not_overwriting, check_output_path

    if input_path is not None and not Path(input_path).is_file():
        raise InputError(f"input not found: {input_path}")
    if output_path is not None:
        check_output_path(output_path)
        if input_path is not None:
            check_not_overwriting([input_path], [output_path])
    stack = contextlib.ExitStack()
    source: BinaryIO = sys.stdin.buffer
    sink: BinaryIO = sys.stdout.buffer
    if input_path is not None:
        source = stack.enter_context(open(input_path, "rb"))
    if output_path is not None:  # created once the input's header has been read and the output's is written
        sink = cast(BinaryIO, stack.enter_context(contextlib.closing(OpenOnFirstWrite(output_path))))
    return stack, source, sink, input_path or "standard input"


@cli.command("mrd")
@click.argument("model")
@click.option("-i", "--input", "input_path", type=click.Path(dir_okay=False), help="MRD v2 binary stream (default: standard input).")
@click.option("-o", "--output", "output_path", type=click.Path(dir_okay=False), help="Image stream (default: standard output).")
@click.option("--backend", default="auto", show_default=True,
              type=click.Choice(["auto", "onnxruntime", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt", "torch"]),
              help="auto: by extension (.onnx onnxruntime, .plan tensorrt, .pt or bundled name torch).")
@click.option("--iterations", "-T", type=ITERATIONS,
              help="T for checkpoints (default: the checkpoint's, for multi-coil data its multi-coil default where it "
                   "has one); an exported model's T is fixed by its contract.")
@click.option("--coils", type=POSITIVE, help="SVD-compress to this many virtual coils.")
@click.option("--coil-maps", "coil_maps", default="espirit", show_default=True, type=click.Choice(["espirit", "walsh"]))
@EXPECT_SHA256
def mrd_command(model, input_path, output_path, backend, iterations, coils, coil_maps, expect_sha256) -> None:
    """Reconstruct an MRD v2 raw-data stream into MRD v2 images, each slice as its last line arrives.

    Reads mrd-python's binary stream (header, then acquisitions), writes the same header and one
    float32 magnitude image per slice (recon matrix and FOV, the slice's position and directions,
    the model in the image meta), flushed as written. Noise scans whiten every later slice;
    calibration flags and the header's phase-encode centre are honoured; a slice ends on its
    LAST_IN_SLICE line. A stream that ends inside a slice, a header without encoding or lines
    outside the matrix stop with one line on stderr (exit 3); the images already written stay a
    valid stream. Progress goes to stderr.
    """
    _require("mrd", "mrd", "tgv-deploy mrd")
    from tgv_deploy.runtime import Reconstructor, Session
    from tgv_deploy.runtime.multicoil import MultiCoilPipeline
    from tgv_deploy.stream.mrd2 import reconstruct_stream

    session = Session(model, backend=backend, iterations=iterations, expected_sha256=expect_sha256)
    pipeline = MultiCoilPipeline(Reconstructor(session), coils=coils, maps=coil_maps)
    stack, source, sink, name = _mrd_streams(input_path, output_path)
    with stack:
        _echo(f"tgv-deploy mrd: {session.path.name} ({session.backend}, {session.contract.iterations_text()}), reading {name}")
        report = reconstruct_stream(pipeline, model, source, sink, name=name, say=_echo)
    _echo(f"wrote {report.images} images from {report.acquisitions} acquisitions")


@cli.command("mrd-undersample")
@click.option("-i", "--input", "input_path", type=click.Path(dir_okay=False), help="MRD v2 binary stream (default: standard input).")
@click.option("-o", "--output", "output_path", type=click.Path(dir_okay=False), help="Output stream (default: standard output).")
@click.option("--acceleration", default=4.0, show_default=True, type=ACCELERATION)
@click.option("--center-fraction", default=0.08, show_default=True, type=CENTER_FRACTION)
@click.option("--mask-type", default="equispaced", show_default=True, type=click.Choice(["equispaced", "random", "gaussian"]))
@click.option("--seed", default=0, show_default=True, type=SEED, help="Mask seed.")
def mrd_undersample_command(input_path, output_path, acceleration, center_fraction, mask_type, seed) -> None:
    """Keep only the phase-encode lines a line mask selects in an MRD v2 stream (retrospective undersampling).

    Noise scans and everything else pass unchanged; the kept lines of the fully sampled centre are
    flagged IS_PARALLEL_CALIBRATION_AND_IMAGING, and a dropped line's LAST_IN_* flags move to the
    last kept line of its slice. Writes the stream to standard output by default.
    """
    _require("mrd", "mrd", "tgv-deploy mrd-undersample")
    from tgv_deploy.stream.mrd2 import undersample_stream

    stack, source, sink, name = _mrd_streams(input_path, output_path)
    with stack:
        undersample_stream(source, sink, acceleration, center_fraction, seed=seed, mask_type=mask_type, name=name, say=_echo)


def _os_error_line(exc: OSError) -> str:
    """``FILE: reason`` for an operating-system error (a full disk, a failing device)."""
    return f"{exc.filename}: {exc.strerror or exc}" if exc.filename else str(exc.strerror or exc)


def _fail(message: str, exit_code: int, debug: bool) -> NoReturn:
    """One ``error:`` line and the exit code; ``--debug`` adds the traceback."""
    if debug:
        import traceback

        traceback.print_exc()
    click.echo(f"error: {message}", err=True)
    sys.exit(exit_code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the click group and turns user errors into exit codes."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="tgv-deploy", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        # One line like every other user error; and click's own exit code for a bad command line
        # is 2, which here means "backend or GPU missing".
        command = f" (see {exc.ctx.command_path} --help)" if isinstance(exc, click.UsageError) and exc.ctx else ""
        click.echo(f"error: {exc.format_message()}{command}", err=True)
        sys.exit(InputError.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except TgvDeployError as exc:
        _fail(str(exc), exc.exit_code, debug)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except MemoryError:
        _fail("not enough memory for this request (fewer slices, coils or a smaller matrix?)", InputError.exit_code, debug)
    except OSError as exc:
        # A full disk or a failing device while writing is the machine's state, not a bug: one line
        # (the output that was being written is never left half-written: atomic_output).
        _fail(_os_error_line(exc), TgvDeployError.exit_code, debug)
    except Exception:
        import traceback

        traceback.print_exc()
        click.echo("internal error: this is a bug in tgv-deploy; please report it with the traceback above", err=True)
        sys.exit(EXIT_BUG)
