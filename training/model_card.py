"""Write a bundled model's card from its checkpoint metadata; evaluation tables are generated blocks.

    python -m tgv_deploy.training.model_card CHECKPOINT NAME CONFIG [--earlier CKPT CONFIG] [--evaluation DIR --command CMD]
        [--note TEXT] -o CARD.md && python benchmarks/tables.py

Each training stage's run directory is its checkpoint's folder. An evaluation is written as a
``<!-- table: quality DIR -->`` block that ``benchmarks/tables.py`` fills from ``DIR/results.csv``
(and keeps checked against it), so a card cannot drift from its result files.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.models.utgv import COIL_REFERENCE_FRACTION

_SOLVERS = {"admm": "ADMM (SPEC 2b: periodic differences, exact Fourier-domain step, learned penalty)",
            "pdhg": "PDHG (SPEC 2)"}


def _training_bullets(ckpt, config: str, run: str) -> list[str]:
    """How one training stage ran, from its checkpoint's metadata."""
    meta, model = ckpt.training, ckpt.config
    cfg = meta.get("config", {})
    data = cfg.get("data", {})
    schedule = cfg.get("iterations_schedule") or []
    t_train = cfg.get("train_iterations") or model.iterations
    curriculum = f"T = {t_train}" + "".join(f", T = {t} from step {s}" for s, t in schedule)
    loss = {
        "mse": "MSE",
        "psnr": "per-sample PSNR (mean of 10 log10 MSE)",
        "psnr+ssim": f"per-sample PSNR + {cfg.get('ssim_weight', 20.0):g} x (1 - SSIM)",
    }[cfg.get("loss", "mse")]
    real = data.get("real_fraction", 0.0)
    lines = [
        f"- Command: `tgv-deploy train {config} -o {run}` (seed {meta.get('seed')}), "
        f"{meta.get('steps')} steps of batch {cfg.get('batch_size')}, {loss} loss, AdamW lr {cfg.get('learning_rate')}, warm-up + cosine"
        + (f", starting from `{cfg['init_checkpoint']}`." if cfg.get("init_checkpoint") else "."),
        f"- Unrolled iterations during training: {curriculum}.",
        f"- Data: synthetic images only (`tgv_deploy.data.synthetic`, generator version {data.get('synthetic_version', 1)}"
        + (f", {real:.0%} of them phase-free" if real else "") + f"), {data.get('height')} x {data.get('width')}, "
        f"generated on the fly from the seed; no image from any third-party package or data set was used for training or tuning.",
    ]
    if model.task == "mri":
        low, high = data.get("sigma_range")
        sigma = (f"log sigma ~ U[log {low:g}, log {high:g}]" if data.get("sigma_prior") == "log-uniform"
                 else f"sigma ~ U{data.get('sigma_range')}")
        multicoil = data.get("multicoil_fraction", 0.0)
        coils = data.get("coils", (8, 8))
        lines.append(f"- Corruption: R ~ U{{{data.get('accelerations')[0]}..{data.get('accelerations')[1]}}}, {sigma}, "
                     f"masks {', '.join(data.get('mask_types', []))} (SPEC 4 noise model)"
                     + (f"; {multicoil:.0%} of the batches multi-coil ({coils[0]}-{coils[1]} simulated coil maps, SENSE"
                        + _multicoil_data(data)
                        + (f", multi-coil map gain{' and its power of the sampled fraction' if 'coil_acceleration_exponent' in ckpt.state_dict else ''}"
                           f"{' and coil penalty' if 'log_rho_coil' in ckpt.state_dict else ''} learned at rate "
                           f"{_gain_rate(cfg):g}" if _gain_rate(cfg) else "")
                        + ")" if multicoil else "") + ".")
        gain_rate = _gain_rate(cfg) or cfg.get("learning_rate")  # the gains' own rate, else the network's
        if model.noise_gain:
            lines.append(f"- The maps are scaled by a learned power of the k-space noise level (`tgv_deploy.models.noise_level`), "
                         f"learned at rate {gain_rate:g}.")
        if model.rho_schedule:
            start = "the config's `rho_schedule_start`" if cfg.get("rho_schedule_start") else "all ones"
            lines.append(f"- A per-iteration penalty schedule ({model.rho_schedule} factors on rho, followed over the run's progress) "
                         f"learned at rate {gain_rate:g} from {start}.")
    else:
        lines.append(f"- Corruption: Gaussian noise, sigma ~ U{data.get('sigma_range')} times the image maximum.")
    lines.append(f"- Training time: {meta.get('train_seconds', 0) / 60:.0f} min of step time on {meta.get('machine')} "
                 f"(one CPU thread, torch {meta.get('torch')}); the wall clock was longer, the machine was shared.")
    if meta.get("metadata_note"):
        lines.append(f"- Note: {meta['metadata_note']}.")
    return lines


def _multicoil_data(data: dict) -> str:
    """How multi-coil batches were measured and reconstructed, where a config says more than the defaults."""
    text = ""
    low, high = data.get("multicoil_center_fraction", (0.0, 0.0))
    if high:
        text += f", calibration fraction ~ U[{low:g}, {high:g}]"
    if data.get("coil_maps", "true") == "espirit":
        text += (", reconstructed with ESPIRiT maps estimated from the noisy calibration lines as the runtime does"
                 " and scored on magnitudes")
    return text


def _gain_rate(cfg: dict) -> float:
    """The per-map gains' learning rate (recorded as ``coil_gain_learning_rate`` before it also covered the noise exponent)."""
    return float(cfg.get("gain_learning_rate") or cfg.get("coil_gain_learning_rate") or 0.0)


def _learned(ckpt) -> str:
    """The learned solver parameter, as the checkpoint holds it."""
    if ckpt.config.solver == "admm":
        trained_on_coils = ckpt.training.get("config", {}).get("data", {}).get("multicoil_fraction", 0.0) > 0
        state = ckpt.state_dict
        coil = (f", multi-coil: learned rho_coil = {math.exp(float(state['log_rho_coil'])):.3f}"
                if "log_rho_coil" in state and trained_on_coils else "")
        if "coil_acceleration_exponent" in state and trained_on_coils:
            gains = ", ".join(f"{math.exp(float(g)):.3f}" for g in state["log_coil_gain"])
            exponents = ", ".join(f"{float(e):.2f}" for e in state["coil_acceleration_exponent"])
            coil += f", map gains ({gains}) times ({COIL_REFERENCE_FRACTION:.3g} / sampled fraction) to the powers ({exponents})"
        schedule = ""
        if ckpt.config.rho_schedule:
            factors = [math.exp(float(f)) for f in state["log_rho_factors"]]
            scope = "single-coil; " if ckpt.config.task == "mri" else ""  # coil splitting keeps the one rho
            schedule = (f" times a learned per-iteration schedule of {len(factors)} factors ({scope}"
                        f"{min(factors):.3g} ... {max(factors):.3g}, {factors[0]:.3g} first and {factors[-1]:.3g} last)")
        return f"learned rho = {math.exp(float(state['log_rho'])):.3f}{schedule}, alpha = {ckpt.config.alpha:g}{coil}"
    return f"learned step parameter b = {float(ckpt.state_dict['log_step']):.3f}"


def card(checkpoint: Path, name: str, config: str, evaluation: list[str], commands: list[str],
         earlier: Sequence[tuple[Path, str]] = (), note: str = "") -> str:
    """``earlier``: (checkpoint, config) of the stages before the final one, oldest first."""
    ckpt = load_checkpoint(checkpoint)
    meta, model = ckpt.training, ckpt.config
    cfg = meta.get("config", {})
    data = cfg.get("data", {})
    history = meta.get("history", [])
    lines = [
        f"# Model card: `{name}`",
        "",
        f"{model.kind.upper()} for {'Cartesian MRI (single- and multi-coil)' if model.task == 'mri' else 'denoising'}: a U-Net "
        f"(depth {model.unet.depth}, {model.unet.base_channels} base channels, "
        f"{sum(v.numel() for v in ckpt.state_dict.values())} parameters) predicts the regularisation map(s); "
        f"T unrolled {_SOLVERS[model.solver]} iterations reconstruct ({_learned(ckpt)}). "
        f"Default T at inference and export: **{model.iterations}**"
        + (f" (multi-coil data: **{model.multicoil_iterations}**)." if model.multicoil_iterations is not None else "."),
        "",
        "## Training",
    ]
    if note:
        lines += [note, ""]
    stages = [(load_checkpoint(path), cfg_name) for path, cfg_name in earlier] + [(ckpt, config)]
    checkpoints = [path for path, _ in earlier] + [checkpoint]
    for i, (stage, stage_config) in enumerate(stages, 1):
        if len(stages) > 1:
            lines.append(f"{'' if i == 1 else chr(10)}Stage {i}{' (final)' if i == len(stages) else ''}:")
        lines += _training_bullets(stage, stage_config, str(checkpoints[i - 1].parent))
    lines += [
        "",
        "## Validation during training (synthetic, " + (f"R = {data.get('val_acceleration')}, sigma = {data.get('val_sigma')}, "
                                                        f"{data.get('val_mask')}" if model.task == "mri" else f"sigma = {data.get('val_sigma')}")
        + ")",
        "",
        "| step | loss | validation T | PSNR dB | SSIM |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {h['step']} | {h['loss']:.4g} | {h['val_iterations']} | {h['psnr']:.2f} | {h['ssim']:.4f} |"
              for h in history]
    if evaluation:
        lines += ["", "## Evaluation", "",
                  "Scalar TV/TGV are tuned per image against the ground truth (an oracle) and solved to convergence; the models run at their default T. Synthetic test images come from a seed "
                  "range training never uses; held-out real MR images come from `benchmarks/heldout.py`. On the 2-core CPU machine:"]
        for directory, command in zip(evaluation, commands):
            lines += ["", f"`{command}`", "", f"<!-- table: quality {directory} -->", "<!-- /table -->"]
    lines += [
        "",
        "## Use and limits",
        "- Research and engineering use; not a medical device, not validated on clinical data.",
        "- Input: centred Cartesian k-space with a line mask, single-coil or multi-coil with coil maps (MRI), or a real image (denoising); any matrix size.",
        "- Trained on synthetic anatomy-like images: check it on your own data with `tgv-deploy evaluate` before relying on it.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("name")
    parser.add_argument("config")
    parser.add_argument("--evaluation", action="append", default=[], help="result directory of an evaluation, relative to "
                        "the repository root (repeatable)")
    parser.add_argument("--note", default="", help="a paragraph placed before the training stages")
    parser.add_argument("--command", action="append", default=[], help="the command that produced it (same order)")
    parser.add_argument("--earlier", nargs=2, action="append", default=[], metavar=("CHECKPOINT", "CONFIG"),
                        help="an earlier training stage this one started from (repeatable, oldest first)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    earlier = [(Path(path), config) for path, config in args.earlier]
    atomic_write_bytes(args.output, card(args.checkpoint, args.name, args.config, args.evaluation, args.command, earlier,
                                         args.note).encode())
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
