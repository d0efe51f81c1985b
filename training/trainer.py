"""The training loop: MSE, per-sample PSNR or PSNR + SSIM loss, AdamW, warm-up then cosine, gradient clipping,
validation, warm start, resume, DDP.

Launch on one device with ``tgv-deploy train CONFIG``, on several with
``torchrun --nproc-per-node N -m tgv_deploy.training CONFIG`` (PyTorch DDP; gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import gc
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from tgv_deploy.errors import BackendUnavailableError, InputError, IntegrityError
from tgv_deploy.io_utils import atomic_output
from tgv_deploy.layout import magnitude
from tgv_deploy.metrics import psnr, ssim
from tgv_deploy.models.checkpoint import load_checkpoint, save_checkpoint
from tgv_deploy.models.utgv import UnrolledModel, build_model
from tgv_deploy.training.config import TrainConfig
from tgv_deploy.training.data import Corruption, FileSlices, SyntheticSlices, make_batch
from tgv_deploy.training.widen import widened_unet_state

STATE_FILE = "state.pt"
MODEL_FILE = "model.pt"


#: One number per map each (and the coil penalty, one number; the penalty schedule, one per step of
#: it), trained at ``gain_learning_rate``.
GAIN_PARAMETERS = ("log_coil_gain", "coil_acceleration_exponent", "noise_exponent", "log_rho_coil", "log_rho_factors")


def parameter_groups(model: torch.nn.Module, config: TrainConfig) -> list[dict]:
    """AdamW groups: the per-map gains get their own rate and no weight decay (decay would pull the
    multi-coil gain towards 1, not towards a small weight); everything else the configured rate and decay.
    With ``config.trainable`` only those parameters train; the others are frozen (no gradient)."""
    names = {name for name, _ in model.named_parameters()}
    unknown = sorted(set(config.trainable) - names)
    if unknown:
        raise InputError(f"trainable names parameters the model does not have: {unknown}")
    if config.trainable:
        for name, p in model.named_parameters():
            p.requires_grad_(name in config.trainable)
    trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    gain = [p for name, p in trained if name in GAIN_PARAMETERS]
    rest = [p for name, p in trained if name not in GAIN_PARAMETERS]
    groups: list[dict] = [{"params": rest}] if rest else []
    if gain:
        groups.append({"params": gain, "lr": config.gain_learning_rate or config.learning_rate, "weight_decay": 0.0})
    return groups


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0.05 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _join_process_group() -> bool:
    """Join the torchrun process group if launched by one; True when this call created it."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    backend = "nccl" if torch.cuda.is_available() and os.environ.get("TGV_DDP_BACKEND", "") != "gloo" else "gloo"
    dist.init_process_group(backend=backend)
    return True


def _device(name: str, rank: int) -> str:
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BackendUnavailableError("the config asks for device 'cuda' but no CUDA GPU is available")
        return f"cuda:{int(os.environ.get('LOCAL_RANK', rank)) % torch.cuda.device_count()}"
    if name != "cpu":
        raise InputError(f"device must be 'cpu' or 'cuda', got {name!r}")
    return "cpu"


def _source(config: TrainConfig, seed: int):
    data = config.data
    if data.source == "synthetic":
        return SyntheticSlices(data.height, data.width, seed, data.synthetic_version, data.real_fraction, data.masked_fraction)
    return FileSlices(data.source, data.height, data.width)


def ssim_torch(target: torch.Tensor, estimate: torch.Tensor, win_size: int = 7, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Differentiable SSIM per sample of magnitude images ``(B, H, W)`` -> ``(B,)``, with the
    conventions of :func:`tgv_deploy.metrics.ssim` (7x7 box, sample covariance, valid windows,
    ``data_range`` = the target's maximum)."""
    pool = lambda z: torch.nn.functional.avg_pool2d(z[:, None], win_size, stride=1)[:, 0]  # noqa: E731
    cov_norm = win_size**2 / (win_size**2 - 1)
    ux, uy = pool(target), pool(estimate)
    vx = cov_norm * (pool(target * target) - ux * ux)
    vy = cov_norm * (pool(estimate * estimate) - uy * uy)
    vxy = cov_norm * (pool(target * estimate) - ux * uy)
    data_range = target.flatten(1).amax(1)[:, None, None]
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def _magnitude(z: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, 1, H, W)``; the epsilon keeps the square root differentiable at 0."""
    return torch.sqrt(z.square().sum(1, keepdim=True) + 1e-12)


def reconstruction_loss(x: torch.Tensor, target: torch.Tensor, kind: str, ssim_weight: float = 0.0,
                        magnitudes: bool = False) -> torch.Tensor:
    """``x``, ``target`` ``(B, C, H, W)``; see ``TrainConfig.loss``. ``magnitudes``: compare
    ``|x|`` with ``|target|`` in every term (reconstructions with estimated coil maps, whose phase
    is the maps' reference, not the truth's)."""
    if magnitudes:
        x, target = _magnitude(x), _magnitude(target)
    if kind == "mse":
        return torch.nn.functional.mse_loss(x, target)
    per_sample = (x - target).square().flatten(1).mean(1)
    loss = 10.0 * torch.log10(per_sample.clamp_min(1e-12)).mean()
    if kind == "psnr+ssim":  # magnitudes, as scored
        x_abs, target_abs = (x, target) if magnitudes else (_magnitude(x), _magnitude(target))
        loss = loss + ssim_weight * (1.0 - ssim_torch(target_abs[:, 0], x_abs[:, 0])).mean()
    return loss


def warm_start(model: UnrolledModel, config: TrainConfig) -> None:
    """Load ``config.init_checkpoint``'s weights into ``model`` (same kind and task; the same U-Net,
    or one of the same depth with more base channels, widened by :func:`widened_unet_state` so the
    model starts computing what the checkpoint computes).

    From a checkpoint of the other solver only the U-Net is taken (PDHG's step parameter means
    nothing to ADMM, whose rho starts at its default): how PDHG models were moved to ADMM.
    Parameters the checkpoint lacks (:data:`OPTIONAL_PARAMETERS`) keep their start values (not the
    values the checkpoint computed with: a new parameter starts where a fresh model would).
    """
    checkpoint = load_checkpoint(config.init_checkpoint)
    theirs, ours = checkpoint.config, config.model
    if (theirs.kind, theirs.task) != (ours.kind, ours.task):
        raise InputError(f"init_checkpoint {config.init_checkpoint} is a {theirs.kind}/{theirs.task} model, "
                         f"the config trains {ours.kind}/{ours.task}")
    state = dict(checkpoint.state_dict)
    unet = {k.removeprefix("unet."): v for k, v in state.items() if k.startswith("unet.")}
    if theirs.unet != ours.unet:
        try:  # the new channels start where this model's freshly initialised U-Net has them
            unet = widened_unet_state(unet, theirs.unet, ours.unet, model.unet.state_dict())
        except (ValueError, KeyError, RuntimeError) as error:  # RuntimeError: weights that do not fit their own config
            raise InputError(f"init_checkpoint {config.init_checkpoint}: cannot widen its U-Net: {error}") from None
        state.update({f"unet.{k}": v for k, v in unet.items()})
    if theirs.solver == ours.solver:
        model.load_state_dict_compatible(state, warm_start=True)
    else:
        model.unet.load_state_dict(unet)


@torch.no_grad()
def validate(model, batch, iterations: int) -> dict[str, float]:
    """Mean PSNR and SSIM of magnitudes on a fixed validation batch."""
    f, mask, target, coil_maps = batch
    x, _ = model(f, mask, iterations=iterations, coil_maps=coil_maps)
    recon, truth = magnitude(x).cpu().numpy(), magnitude(target).cpu().numpy()
    return {
        "psnr": float(np.mean([psnr(t, r) for t, r in zip(truth, recon)])),
        "ssim": float(np.mean([ssim(t, r) for t, r in zip(truth, recon)])),
    }


def train(config: TrainConfig, out_dir: str | Path, resume: bool = False, log: Callable[[str], None] = print) -> Path:
    """Train, writing ``out_dir/model.pt`` (the checkpoint) and ``out_dir/state.pt`` (for resume)."""
    created_group = _join_process_group()
    try:
        return _train(config, Path(out_dir), resume, log)
    finally:
        # Gloo's worker threads outliving the interpreter abort rank 0 at exit ("terminate called
        # without an active exception"). The DDP wrapper keeps the group alive through reference
        # cycles, so collect it first, then tear the group down while Python is still alive: on a
        # loaded 2-core machine 0 aborts in 80 runs, against 6 in 48 without the collection.
        if created_group:
            gc.collect()
            dist.destroy_process_group()


def _train(config: TrainConfig, out_dir: Path, resume: bool, log: Callable[[str], None]) -> Path:
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    device = _device(config.device, rank)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    model = build_model(config.model).to(device)
    model.checkpoint_every = config.activation_checkpointing or None
    if config.init_checkpoint:
        warm_start(model, config)  # before anything is written: a bad checkpoint leaves no run directory
    if config.rho_schedule_start:
        with torch.no_grad():
            model.log_rho_factors.copy_(torch.log(torch.tensor(config.rho_schedule_start)))
    # before anything is written, like the warm start: a config naming parameters the model lacks leaves no run directory
    optimizer = torch.optim.AdamW(parameter_groups(model, config), lr=config.learning_rate, weight_decay=config.weight_decay)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config.warmup_steps, config.steps))
    start, elapsed, history = 0, 0.0, []
    state_path = out_dir / STATE_FILE
    if resume and state_path.is_file():
        try:
            state = torch.load(state_path, map_location=device, weights_only=True)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start, elapsed, history = int(state["step"]), float(state["elapsed"]), list(state["history"])
        except Exception as exc:
            raise IntegrityError(f"{state_path}: cannot resume ({type(exc).__name__})") from None
        log(f"resumed at step {start}")
    resumed_elapsed = elapsed
    trained: torch.nn.Module = model
    if world > 1:
        # the multi-coil map gain, its exponent and the coil penalty take no part in single-coil batches: frozen when
        # there are none, otherwise DDP must expect a batch that leaves them unused
        mixed = config.model.task == "mri" and config.data.multicoil_fraction > 0
        if config.model.task == "mri" and not mixed:
            for name in ("log_coil_gain", "coil_acceleration_exponent", "log_rho_coil"):
                if hasattr(model, name):
                    getattr(model, name).requires_grad_(False)
        trained = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[int(device.split(":")[1])] if device != "cpu" else None, find_unused_parameters=mixed
        )

    data = config.data
    source = _source(config, config.seed)
    corruption = Corruption(config.model.task, data.accelerations, data.sigma_range, data.mask_types, data.target_noise,
                            data.multicoil_fraction, data.coils, data.sigma_prior, data.coil_maps, data.multicoil_center_fraction)
    val_source = _source(config, config.seed + 10_000)
    val_corruption = Corruption(config.model.task, (data.val_acceleration,) * 2, (data.val_sigma,) * 2, (data.val_mask,))
    val_batch = make_batch(val_source, val_corruption, list(range(data.val_size)), np.random.default_rng([config.seed, 1]), device)
    if rank == 0:
        log(
            f"training {config.model.kind}/{config.model.task} T={config.iterations_at(start)} on {device} x{world}, "
            f"{sum(p.numel() for p in model.parameters())} parameters, {config.steps} steps of batch {config.batch_size}"
        )

    def save(step: int, metrics: dict[str, float]) -> None:
        meta = {
            "steps": step, "seed": config.seed, "height": data.height, "width": data.width,
            "train_iterations": config.iterations_at(step - 1), "train_seconds": round(elapsed, 1), "world_size": world,
            "device": device, "machine": f"{platform.machine()} {os.cpu_count()} cpus {platform.system()}",
            "torch": str(torch.__version__), "validation": metrics, "history": history, "config": config.to_dict(),
        }
        save_checkpoint(out_dir / MODEL_FILE, model, meta)
        payload = {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "step": step, "elapsed": elapsed, "history": history,
        }
        with atomic_output(state_path) as tmp:
            torch.save(payload, tmp)

    metrics: dict[str, float] = {}
    step = start
    for step in range(start, config.steps):
        tick = time.perf_counter()
        rng = np.random.default_rng([config.seed, step, rank])
        indices = [int(i) for i in rng.integers(0, data.train_size, config.batch_size)]
        f, mask, target, coil_maps = make_batch(source, corruption, indices, rng, device, corruption.batch_coils(rng))
        model.train()
        iterations = config.iterations_at(step)
        x, _ = trained(f, mask, iterations=iterations, coil_maps=coil_maps)
        estimated_maps = coil_maps is not None and data.coil_maps != "true"
        loss = reconstruction_loss(x, target, config.loss, config.ssim_weight, magnitudes=estimated_maps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        elapsed += time.perf_counter() - tick
        done = step + 1
        if rank == 0 and (done % 10 == 0 or done == config.steps):
            rate = (elapsed - resumed_elapsed) / (done - start)
            eta = rate * (config.steps - done)
            log(f"step {done}/{config.steps} loss {loss.item():.4g} lr {scheduler.get_last_lr()[0]:.2e} {rate:.2f} s/step eta {eta / 60:.1f} min")
        if rank == 0 and (done % config.val_every == 0 or done == config.steps):
            model.eval()
            metrics = validate(model, val_batch, config.model.iterations)
            history.append({"step": done, "loss": float(loss.item()), "val_iterations": config.model.iterations, **metrics})
            log(f"validation at step {done}: PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}")
        if rank == 0 and (done % config.checkpoint_every == 0 or done == config.steps):
            save(done, metrics)
    if start >= config.steps and rank == 0:
        log(f"nothing to do: already trained for {start} steps")
    if dist.is_initialized():
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        spread = max(float((g - gathered[0]).abs().max()) for g in gathered)
        if rank == 0:
            log(f"replicas agree: max parameter difference across {world} ranks {spread:.1e}")
        dist.barrier()
    return out_dir / MODEL_FILE
