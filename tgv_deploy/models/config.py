"""Typed, frozen model configuration; saved in every checkpoint and contract."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from tgv_deploy.fourier_symbols import checked_penalty_ratio

Task = Literal["mri", "denoise"]
Kind = Literal["utgv", "utv"]
Solver = Literal["pdhg", "admm"]
TASKS: tuple[str, ...] = ("mri", "denoise")
KINDS: tuple[str, ...] = ("utgv", "utv")
#: "admm" (SPEC 2b, periodic differences, exact Fourier step) is the default for new models;
#: "pdhg" (SPEC 2) is what every checkpoint written before the solver was configurable uses.
SOLVERS: tuple[str, ...] = ("pdhg", "admm")


@dataclass(frozen=True)
class UNetConfig:
    """U-Net shape. ``depth`` is the number of down blocks; channels double per level from ``base_channels``."""

    depth: int = 3
    base_channels: int = 16
    negative_slope: float = 0.01
    softplus_beta: float = 5.0

    def __post_init__(self) -> None:
        if not 1 <= self.depth <= 6:
            raise ValueError(f"U-Net depth must be in 1..6, got {self.depth}")
        if self.base_channels < 1:
            raise ValueError(f"U-Net base_channels must be >= 1, got {self.base_channels}")
        if self.softplus_beta <= 0:
            raise ValueError(f"softplus_beta must be positive, got {self.softplus_beta}")


#: Named U-Net configurations. ``small`` is the scanner-side default; ``paper`` is the network of
#: Vu, Kofler and Papafitsoros (4 down blocks, 128 base filters).
UNET_PRESETS: dict[str, UNetConfig] = {
    "small": UNetConfig(depth=3, base_channels=16),
    "paper": UNetConfig(depth=4, base_channels=128),
}


def unet_preset(name: str) -> UNetConfig:
    try:
        return UNET_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown U-Net preset {name!r}; choose one of {sorted(UNET_PRESETS)}") from None


@dataclass(frozen=True)
class ModelConfig:
    """What a checkpoint needs to rebuild its model.

    ``iterations`` is the default T for export and inference (``-T`` overrides it);
    ``multicoil_iterations`` the default for multi-coil data where it differs (coil splitting
    converges more slowly per iteration; None: ``iterations``). ``solver`` names the unrolled iteration; ``alpha`` is ADMM's (fixed)
    relaxation, its penalty rho is a learned weight.
    """

    kind: Kind = "utgv"
    task: Task = "mri"
    unet: UNetConfig = field(default_factory=UNetConfig)
    iterations: int = 64
    solver: Solver = "admm"
    alpha: float = 1.7
    #: MRI: the maps are scaled by a learned power of the k-space noise level (:mod:`tgv_deploy.models.noise_level`)
    noise_gain: bool = False
    #: ADMM U-TGV: the ``E v`` constraint's penalty over rho (1: SPEC 2b's single rho; see
    #: :func:`tgv_deploy.solvers.admm.admm_tgv_channels`)
    penalty_ratio: float = 1.0
    #: MRI: the default T for multi-coil data (None: ``iterations``); :meth:`default_iterations`
    multicoil_iterations: int | None = None
    #: ADMM U-TGV, single-coil and denoising: the number of learned per-iteration penalty factors
    #: (SPEC 2b's "learned per-iteration schedule"; 0: the one learned rho). A run of any T follows
    #: them over its progress (:meth:`UnrolledModel.rho_factors`). Coil splitting keeps the one rho.
    rho_schedule: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"model kind must be one of {KINDS}, got {self.kind!r}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 1:
            raise ValueError(f"iterations must be an integer >= 1, got {self.iterations!r}")
        if self.multicoil_iterations is not None and (
                isinstance(self.multicoil_iterations, bool) or not isinstance(self.multicoil_iterations, int)
                or self.multicoil_iterations < 1 or self.task != "mri"):
            raise ValueError(f"multicoil_iterations must be an integer >= 1 (MRI models only), got {self.multicoil_iterations!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if not 1.0 <= self.alpha <= 1.9:
            raise ValueError(f"ADMM relaxation alpha must be in [1, 1.9], got {self.alpha!r}")
        checked_penalty_ratio(self.penalty_ratio)
        if self.penalty_ratio != 1.0 and (self.kind != "utgv" or self.solver != "admm"):
            raise ValueError(f"penalty_ratio applies to ADMM U-TGV models only, got {self.penalty_ratio!r} for {self.kind}/{self.solver}")
        if isinstance(self.rho_schedule, bool) or not isinstance(self.rho_schedule, int) or self.rho_schedule < 0:
            raise ValueError(f"rho_schedule must be an integer >= 0, got {self.rho_schedule!r}")
        if self.rho_schedule and (self.kind != "utgv" or self.solver != "admm"):
            raise ValueError(f"rho_schedule applies to ADMM U-TGV models only, got {self.rho_schedule!r} for {self.kind}/{self.solver}")
        if not isinstance(self.noise_gain, bool) or (self.noise_gain and self.task != "mri"):
            raise ValueError(f"noise_gain is true or false, and true for MRI models only, got {self.noise_gain!r} for {self.task}")

    def default_iterations(self, multicoil: bool) -> int:
        """The T a model runs when none is asked for: ``multicoil_iterations`` for multi-coil data if set."""
        if multicoil and self.multicoil_iterations is not None:
            return self.multicoil_iterations
        return self.iterations

    @property
    def image_channels(self) -> int:
        """1 for real (denoising) images, 2 for (real, imaginary) MR images."""
        return 2 if self.task == "mri" else 1

    @property
    def map_channels(self) -> int:
        """2 maps (L0, L1) for TGV, 1 for TV."""
        return 2 if self.kind == "utgv" else 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        if not isinstance(data, dict):
            raise ValueError("model configuration must be a mapping")
        unet = data.get("unet", {})
        if not isinstance(unet, dict):
            raise ValueError("model configuration 'unet' must be a mapping")
        unknown = set(data) - {"kind", "task", "unet", "iterations", "solver", "alpha", "noise_gain", "penalty_ratio",
                              "multicoil_iterations", "rho_schedule"}
        if unknown:
            raise ValueError(f"unknown model configuration keys: {sorted(unknown)}")
        # checkpoints from before the solver was configurable were all PDHG
        return cls(**{"solver": "pdhg", **data, "unet": UNetConfig(**unet)})
