"""Training configuration: a typed, frozen dataclass read from TOML."""

from __future__ import annotations

import math
import sys
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tgv_deploy.coils.maps import MIN_CALIBRATION_LINES
from tgv_deploy.data.masks import centre_line_count, default_center_fraction
from tgv_deploy.errors import InputError
from tgv_deploy.models.config import ModelConfig, UNetConfig, unet_preset

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


LOSSES = ("mse", "psnr", "psnr+ssim")
SIGMA_PRIORS = ("uniform", "log-uniform")
COIL_MAPS = ("true", "espirit")


@dataclass(frozen=True)
class DataConfig:
    """Where slices come from and how they are corrupted on the fly."""

    source: str = "synthetic"  # "synthetic" or a directory of fastMRI files (fully sampled k-space)
    synthetic_version: int = 2  # tgv_deploy.data.synthetic.GENERATORS
    height: int = 128
    width: int = 128
    train_size: int = 4096  # synthetic slices per epoch
    val_size: int = 16
    accelerations: tuple[int, int] = (4, 8)  # R ~ U{lo..hi} (MRI)
    sigma_range: tuple[float, float] = (0.0, 0.2)  # noise level drawn from [lo, hi] by sigma_prior
    # "uniform": sigma ~ U[lo, hi]. "log-uniform": log sigma ~ U[log lo, log hi], the scale-invariant
    # prior of a scale parameter; a U-Net that cannot read the noise level off the image exactly
    # regresses towards the prior's centre, and the uniform prior puts 3/4 of its mass above 0.05
    sigma_prior: str = "uniform"
    mask_types: tuple[str, ...] = ("equispaced", "random", "gaussian")
    val_acceleration: int = 4
    val_sigma: float = 0.05
    val_mask: str = "equispaced"
    # share of synthetic images whose phase is dropped: scanners often hand over magnitude-derived
    # (real) images, and a model that only saw smooth phase treats an empty imaginary channel as odd
    real_fraction: float = 0.0
    # share of synthetic images whose background is set to exact zeros, as masked or processed MR
    # images (templates, skull-stripped or background-masked series) have it; the generator's own
    # backgrounds are an acquisition's, never exactly zero (training.data.masked_background)
    masked_fraction: float = 0.0
    # MRI: complex noise of this level (times the image maximum, ~U[lo, hi]) added to the ground
    # truth itself before it is measured, as in real acquisitions, whose fully sampled reference
    # images are noisy too; the part of it the mask samples is then signal to be kept
    target_noise: tuple[float, float] = (0.0, 0.0)
    # MRI: share of batches that are multi-coil (simulated smooth coil maps, SENSE), coils ~ U{lo..hi}
    multicoil_fraction: float = 0.0
    coils: tuple[int, int] = (8, 8)
    # MRI, multi-coil batches: the maps the reconstruction is given. "true": the simulated maps that
    # made the data. "espirit": estimated from the noisy calibration lines as the runtime does
    # (ESPIRiT, extended to unit norm, phase referenced to a virtual body coil), so the model meets
    # the maps it is deployed with; the reconstruction then carries the maps' phase, so these
    # batches score magnitudes (TrainConfig.loss)
    coil_maps: str = "true"
    # MRI, multi-coil batches: calibration (fully sampled centre) fraction ~ U[lo, hi]; (0, 0) keeps
    # fastMRI's pair for R (0.08 at 4x, 0.04 at 8x). Scanners' calibration regions vary (24-32 lines)
    multicoil_center_fraction: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self):
        if min(self.height, self.width) < 16:
            raise ValueError(f"height and width must be at least 16, got {self.height} x {self.width}")
        if self.train_size < 1 or self.val_size < 1:
            raise ValueError(f"train_size and val_size must be positive, got {self.train_size}, {self.val_size}")
        if not 1 <= self.accelerations[0] <= self.accelerations[1] or self.val_acceleration < 1:
            raise ValueError(f"accelerations must be a range 1 <= lo <= hi and val_acceleration >= 1, got "
                             f"{list(self.accelerations)}, {self.val_acceleration}")
        if not 0.0 <= self.sigma_range[0] <= self.sigma_range[1] or self.val_sigma < 0:
            raise ValueError(f"sigma_range must be a range 0 <= lo <= hi and val_sigma >= 0, got {list(self.sigma_range)}, {self.val_sigma}")
        if self.sigma_prior not in SIGMA_PRIORS:
            raise ValueError(f"sigma_prior must be one of {', '.join(SIGMA_PRIORS)}, got {self.sigma_prior!r}")
        if self.sigma_prior == "log-uniform" and not 0.0 < self.sigma_range[0] <= self.sigma_range[1]:
            raise ValueError(f"a log-uniform sigma_prior needs 0 < lo <= hi, got sigma_range {list(self.sigma_range)}")
        if not 0.0 <= self.real_fraction <= 1.0:
            raise ValueError(f"real_fraction must be in [0, 1], got {self.real_fraction}")
        if not 0.0 <= self.masked_fraction <= 1.0:
            raise ValueError(f"masked_fraction must be in [0, 1], got {self.masked_fraction}")
        if not 0.0 <= self.multicoil_fraction <= 1.0:
            raise ValueError(f"multicoil_fraction must be in [0, 1], got {self.multicoil_fraction}")
        if not 2 <= self.coils[0] <= self.coils[1]:
            raise ValueError(f"coils must be a range 2 <= lo <= hi, got {list(self.coils)}")
        if self.coil_maps not in COIL_MAPS:
            raise ValueError(f"coil_maps must be one of {', '.join(COIL_MAPS)}, got {self.coil_maps!r}")
        low, high = self.multicoil_center_fraction
        if (low, high) != (0.0, 0.0) and not 0.0 < low <= high < 1.0:
            raise ValueError(f"multicoil_center_fraction must be a range 0 < lo <= hi < 1 (or [0, 0]), got {[low, high]}")
        if self.coil_maps == "espirit" and self.multicoil_fraction > 0:
            # refused here, not at the first multi-coil batch of a run (which a resume would replay)
            narrowest = low if high else default_center_fraction(self.accelerations[1])
            lines = centre_line_count(self.width, narrowest)
            if lines < MIN_CALIBRATION_LINES:
                raise ValueError(f"coil_maps = 'espirit' needs at least {MIN_CALIBRATION_LINES} calibration lines: a calibration "
                                 f"fraction of {narrowest:g} of width {self.width} gives {lines}")
        if not 0.0 <= self.target_noise[0] <= self.target_noise[1]:
            raise ValueError(f"target_noise must be a range 0 <= lo <= hi, got {list(self.target_noise)}")


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train_iterations: int | None = None  # T during training; None = model.iterations
    # curriculum over T: ((first_step, T), ...) overrides train_iterations from each first_step on
    iterations_schedule: tuple[tuple[int, int], ...] = ()
    steps: int = 1000
    batch_size: int = 4
    learning_rate: float = 1e-3
    # the learned per-map gains (multi-coil gain and its exponent of the sampled fraction, noise
    # exponent; and the coil penalty) are one number per map, the multi-coil ones moved only by
    # multi-coil batches: with the U-Net's rate they would barely
    # leave their start values in a fine-tune; 0 = learning_rate
    gain_learning_rate: float = 0.0
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    grad_clip: float = 1.0
    val_every: int = 100
    checkpoint_every: int = 100
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # torch CPU threads; 0 = torch's default
    activation_checkpointing: int = 0  # keep every k-th PDHG state for backward; 0 = off
    # "mse": the paper's mean squared error over the batch. "psnr": mean over samples of
    # 10 log10(per-sample MSE), so a noisy sample's large error does not drown a clean one's and
    # the maps are not biased towards the high-noise end of sigma_range. "psnr+ssim" adds
    # ssim_weight * (1 - SSIM of the magnitudes) (fastMRI's VarNet trains on SSIM): PSNR barely
    # sees faint smooth ripples over a large empty background, SSIM does. Batches whose maps are
    # estimated (DataConfig.coil_maps) compare magnitudes in every term, as they are scored: their
    # reconstruction carries the estimated maps' phase, not the truth's.
    loss: str = "mse"
    ssim_weight: float = 20.0  # dB of PSNR worth one unit of SSIM; only for loss = "psnr+ssim"
    # warm start: a checkpoint (path) whose weights initialise the model; its kind and task must match
    init_checkpoint: str = ""
    # names of the only parameters to train (e.g. the multi-coil ones, which leave single-coil
    # reconstructions unchanged); empty: all of them
    trainable: tuple[str, ...] = ()
    # model.rho_schedule's start factors on rho (one per learned factor), set after the warm start:
    # a schedule far from 1 is out of reach of the gain rate in a fine-tuning run; empty: all 1
    rho_schedule_start: tuple[float, ...] = ()

    def __post_init__(self):
        for name in ("steps", "batch_size", "val_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.learning_rate > 0 or self.warmup_steps < 0 or self.threads < 0:
            raise ValueError(f"learning_rate must be positive and warmup_steps, threads non-negative, got "
                             f"{self.learning_rate}, {self.warmup_steps}, {self.threads}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.rho_schedule_start and (len(self.rho_schedule_start) != self.model.rho_schedule
                                        or not all(math.isfinite(a) and a > 0 for a in self.rho_schedule_start)):
            raise ValueError(f"rho_schedule_start needs model.rho_schedule = {self.model.rho_schedule} finite positive factors, "
                             f"got {len(self.rho_schedule_start)}")
        if self.model.task != "mri" and self.data.target_noise[1] > 0:
            raise ValueError("data.target_noise applies to MRI only (a denoising target is the clean image)")

    def iterations_at(self, step: int) -> int:
        """Training T at ``step`` (0-based)."""
        iterations = self.train_iterations or self.model.iterations
        for first_step, value in sorted(self.iterations_schedule):
            if step >= first_step:
                iterations = value
        return iterations

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tuples(value):
    return tuple(_tuples(v) if isinstance(v, list) else v for v in value)


def _check_type(value: Any, hint: Any) -> bool:
    """Whether a TOML value fits a field annotation (ints, floats, strings, tuples, optionals)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_check_type(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_check_type(v, args[0]) for v in value)
        return len(args) == len(value) and all(_check_type(v, a) for v, a in zip(value, args))
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _build(cls, data: dict[str, Any], where: str):
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise InputError(f"{where}: unknown keys {sorted(unknown)}; allowed {sorted(known)}")
    values = {k: _tuples(v) if isinstance(v, list) else v for k, v in data.items()}
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key in hints and not _check_type(value, hints[key]):
            raise InputError(f"{where}: {key} = {value!r} is not a valid {hints[key]}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}") from None


def config_from_dict(data: dict[str, Any], where: str = "config") -> TrainConfig:
    data = dict(data)
    model = dict(data.pop("model", {}))
    unet = model.pop("unet", "small")
    unet_config = unet_preset(unet) if isinstance(unet, str) else _build(UNetConfig, unet, f"{where} [model.unet]")
    model_config = _build(ModelConfig, {**model, "unet": unet_config}, f"{where} [model]")
    data_config = _build(DataConfig, data.pop("data", {}), f"{where} [data]")
    return _build(TrainConfig, {**data, "model": model_config, "data": data_config}, where)


def load_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"training config not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: invalid TOML ({exc})") from None
    return config_from_dict(data, str(path))
