"""U-TGV and U-TV: U-Net parameter maps followed by T unrolled iterations (ADMM or PDHG).

The configuration's ``solver`` picks the iteration: ``"admm"`` (SPEC 2b: periodic differences,
exact Fourier-domain step, learned penalty ``rho = exp(log_rho)``) or ``"pdhg"`` (SPEC 2: learned
step parameter ``b``).

Input normalisation (SPEC section 2, "Scale"): the per-image scale is the maximum magnitude of
the starting image ``A^H f``.  The network sees ``A^H f / scale`` and the solver runs on
``f / scale``; the output is multiplied back.  Because the energy is positively homogeneous,
this equals solving the problem for ``f`` itself with maps ``scale * L``, which is what the
models return as maps: ``pdhg_tgv(f, L0, L1)`` (or ``admm_tgv`` with the model's rho and alpha)
with the returned maps reproduces the returned image.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from tgv_deploy.layout import magnitude
from tgv_deploy.models.config import ModelConfig
from tgv_deploy.models.noise_level import noise_feature
from tgv_deploy.models.unet import UNet
from tgv_deploy.operators.base import IdentityOp, LinearOperator
from tgv_deploy.operators.fourier import DFT_IMPLS, DFTImpl, MaskedFourierOp
from tgv_deploy.operators.sense import SenseOp
from tgv_deploy.solvers.admm import DEFAULT_RHO, admm_tgv_channels, admm_tv_channels, require_centre_sampled
from tgv_deploy.solvers.admm_sense import DEFAULT_RHO_COIL, admm_tgv_sense_channels, admm_tv_sense_channels
from tgv_deploy.solvers.pdhg import pdhg_tgv_channels, pdhg_tv_channels, step_sizes


#: Initial multi-coil map gain: with the coil-combined ``A^H f`` as input, the U-Net sees single- and
#: multi-coil data alike (the zero-filled image is aliased in both), but SENSE resolves most of the
#: aliasing, so the best maps are weaker; measured on the held-out slices (8 coils, R = 4 and 8),
#: scaling single-coil-trained maps by 0.25 gained 0.3-2 dB over 1 (benchmarks/README.md).
DEFAULT_COIL_GAIN = 0.25
#: Coil-splitting penalty a fresh ADMM MRI model starts from (learned, ``rho_coil = exp(log_rho_coil)``):
#: with the stage-7 models' learned rho (~0.9) and maps, 0.06 gave the best mean PSNR at T = 64 of
#: 0.015-0.25 (0.25, the solver default, was chosen for rho = 2 and scalar maps), closer to the
#: T = 1024 result (benchmarks/results/multicoil/rho_coil.json).
INITIAL_RHO_COIL = 0.06
#: Multi-coil maps also scale with the sampled fraction ``p`` of k-space as ``(COIL_REFERENCE_FRACTION / p) **
#: gamma`` (``gamma = coil_acceleration_exponent``, learned per map): the zero-filled image the U-Net reads is
#: aliased alike at every R, but the coils resolve the aliasing of R = 4 far better than that of R = 8, so
#: the best multi-coil maps are much weaker at R = 4 than at R = 8 (benchmarks/README.md, "The multi-coil
#: gain follows the acceleration"). At the reference fraction (R = 6 of the training range) the factor is 1.
COIL_REFERENCE_FRACTION = 1.0 / 6.0
INITIAL_COIL_ACCELERATION_EXPONENT = 1.0

#: Parameters added after models were first bundled, with the value a checkpoint written before them
#: computed with (``None``: the parameter's start value): the multi-coil gain its start, the noise
#: exponent 0 (no noise scaling), the coil penalty the solver default every such model used, the
#: multi-coil gain's exponent of the sampled fraction 0 (a gain independent of R). A warm
#: start in training gives them their start values instead (:meth:`UnrolledModel.load_state_dict_compatible`).
OPTIONAL_PARAMETERS: dict[str, float | None] = {
    "log_coil_gain": None,
    "noise_exponent": None,
    "log_rho_coil": math.log(DEFAULT_RHO_COIL),
    "coil_acceleration_exponent": 0.0,
    "log_rho_factors": 0.0,
}


def image_scale(x0: torch.Tensor) -> torch.Tensor:
    """Per-image normalisation scale ``(B, 1, 1, 1)``: the maximum magnitude of ``x0 (B, C, H, W)``."""
    peak = magnitude(x0).flatten(1).amax(1)
    return torch.clamp(peak, min=torch.finfo(x0.dtype).tiny).reshape(-1, 1, 1, 1)


class UnrolledModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.unet = UNet(config.image_channels, config.map_channels, config.unet)
        if config.solver == "pdhg":
            #: ``b`` of ``s = exp(b)/LK``, ``t = exp(-b)/LK``; learned, starts at 0.
            self.log_step = nn.Parameter(torch.zeros(()))
        else:
            #: ADMM's penalty ``rho = exp(log_rho)``, learned, starts at the solver's default.
            self.log_rho = nn.Parameter(torch.tensor(math.log(DEFAULT_RHO)))
        if config.rho_schedule:
            #: The learned penalty schedule's ``log`` factors on rho (start: 0, the constant penalty).
            self.log_rho_factors = nn.Parameter(torch.zeros(config.rho_schedule))
        if config.noise_gain:
            #: Maps are multiplied by ``10 ** (noise_exponent * noise feature)`` per channel (learned, starts at 0).
            self.noise_exponent = nn.Parameter(torch.zeros(config.map_channels))
        if config.task == "mri":
            #: Multi-coil maps are ``exp(log_coil_gain) * maps`` per channel (learned; see DEFAULT_COIL_GAIN).
            self.log_coil_gain = nn.Parameter(torch.full((config.map_channels,), math.log(DEFAULT_COIL_GAIN)))
            #: ... times ``(COIL_REFERENCE_FRACTION / sampled fraction) ** coil_acceleration_exponent`` per channel.
            self.coil_acceleration_exponent = nn.Parameter(torch.full((config.map_channels,), INITIAL_COIL_ACCELERATION_EXPONENT))
        if config.task == "mri" and config.solver == "admm":
            #: Coil splitting's penalty ``rho_coil = exp(log_rho_coil)`` (learned; SPEC 2b: "its own penalty").
            self.log_rho_coil = nn.Parameter(torch.tensor(math.log(INITIAL_RHO_COIL)))
        self.dft: DFTImpl = "fft"
        #: Activation checkpointing of the unrolled loop: keep every k-th state for backward.
        self.checkpoint_every: int | None = None

    def set_dft(self, impl: str) -> None:
        """Choose the DFT implementation: ``"fft"`` (training) or ``"matrix"`` (export)."""
        if impl not in DFT_IMPLS:
            raise ValueError(f"DFT implementation must be one of {DFT_IMPLS}, got {impl!r}")
        self.dft = cast(DFTImpl, impl)

    def forward_operator(self, f: torch.Tensor, mask: torch.Tensor | None, coil_maps: torch.Tensor | None = None) -> LinearOperator:
        if coil_maps is not None:
            return self.sense_operator(f, mask, coil_maps)
        channels = self.config.image_channels
        if f.ndim != 4 or f.shape[1] != channels or f.shape[2] < 2 or f.shape[3] < 2:
            layout = "(B, 2, H, W) k-space (real, imaginary)" if channels == 2 else "(B, 1, H, W) image"
            raise ValueError(f"{self.config.task} model input must be {layout} with H, W >= 2, got {tuple(f.shape)}")
        if self.config.task == "denoise":
            if mask is not None:
                raise ValueError("denoising models take no mask")
            return IdentityOp()
        if mask is None:
            raise ValueError("MRI models need a mask (B, 1, 1, W) or (B, 1, H, W)")
        batch, _, height, width = f.shape
        if mask.ndim != 4 or mask.shape[1] != 1 or any(
            m not in (1, n) for m, n in zip((mask.shape[0], *mask.shape[2:]), (batch, height, width))
        ):
            raise ValueError(f"mask must be (B, 1, 1, W) or (B, 1, H, W) for k-space {tuple(f.shape)}, got {tuple(mask.shape)}")
        return MaskedFourierOp(mask.to(f.dtype), impl=self.dft)

    def sense_operator(self, f: torch.Tensor, mask: torch.Tensor | None, coil_maps: torch.Tensor) -> SenseOp:
        """The validated SENSE operator of coil k-space ``f`` and ``coil_maps`` ``(B, C, 2, H, W)``."""
        if self.config.task != "mri":
            raise ValueError("coil maps apply to MRI models only")
        if f.ndim != 5 or f.shape[2] != 2 or coil_maps.shape != f.shape:
            raise ValueError(
                f"multi-coil input must be k-space and coil maps (B, C, 2, H, W) of one shape, got {tuple(f.shape)} and {tuple(coil_maps.shape)}"
            )
        if mask is None or mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-1] != f.shape[-1]:
            raise ValueError(f"multi-coil MRI needs a mask (B, 1, 1, W) or (B, 1, H, W), got {None if mask is None else tuple(mask.shape)}")
        return SenseOp(coil_maps, mask.to(f.dtype), impl=self.dft)

    def noise_scaled(self, maps: torch.Tensor, f: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """With ``noise_gain``: maps ``(B, M, H, W)`` times ``10 ** (noise_exponent * feature)``, a learned
        power of the noise level of the normalised k-space ``f`` (:func:`noise_feature`); else ``maps``."""
        if not self.config.noise_gain:
            return maps
        assert mask is not None  # noise_gain is for MRI models, which need a mask
        level = noise_feature(f, mask.to(f.dtype))  # (B, 1, 1, 1)
        return maps * torch.exp(math.log(10.0) * level * self.noise_exponent.reshape(1, -1, 1, 1))

    def load_state_dict_compatible(self, state: dict[str, torch.Tensor], warm_start: bool = False) -> None:
        """Load ``state``. Parameters added since the checkpoint was written (:data:`OPTIONAL_PARAMETERS`)
        get the value the checkpoint computed with, so it reconstructs as it always did; with
        ``warm_start`` (training from it) they keep this model's start values instead."""
        own = self.state_dict()
        missing = {}
        for name, legacy in OPTIONAL_PARAMETERS.items():
            if name in own and name not in state:
                missing[name] = own[name] if warm_start or legacy is None else torch.full_like(own[name], legacy)
        self.load_state_dict({**state, **missing})

    def coil_gain(self, mask: torch.Tensor) -> torch.Tensor:
        """``(B, M, 1, 1)`` factor of multi-coil maps for the mask ``(B, 1, 1|H, W)``: the learned gain
        times the learned power of the sampled fraction (:data:`COIL_REFERENCE_FRACTION`)."""
        fraction = mask.flatten(1).mean(1).clamp_min(torch.finfo(mask.dtype).tiny).reshape(-1, 1)
        log_factor = self.log_coil_gain + self.coil_acceleration_exponent * torch.log(COIL_REFERENCE_FRACTION / fraction)
        return torch.exp(log_factor).unsqueeze(-1).unsqueeze(-1)

    def step_sizes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """PDHG's ``(s, t)``."""
        s, t = step_sizes(self.log_step)
        return torch.as_tensor(s), torch.as_tensor(t)

    def rho(self) -> torch.Tensor:
        """ADMM's penalty."""
        return torch.exp(self.log_rho)

    def rho_factors(self, iterations: int) -> torch.Tensor | None:
        """The learned schedule's factors on rho for a run of ``iterations`` ``(T,)`` (None without one):
        the ``n`` learned log-factors sit at the run's progress ``j / (n - 1)``, and iteration ``k`` takes
        their linear interpolation at ``k / (T - 1)``, so a run of ``T = n`` takes them as learned."""
        if not self.config.rho_schedule:
            return None
        learned = self.log_rho_factors
        n = learned.shape[0]
        if n == 1 or iterations == 1:
            return torch.exp(learned[:1]).expand(iterations)
        position = torch.arange(iterations, dtype=learned.dtype, device=learned.device) * ((n - 1) / (iterations - 1))
        low = position.floor().long().clamp(max=n - 2)
        share = position - low.to(learned.dtype)
        return torch.exp(learned[low] * (1 - share) + learned[low + 1] * share)

    def rho_coil(self) -> torch.Tensor:
        """Coil-splitting ADMM's penalty of the ``y_c = S_c x`` constraints (multi-coil MRI)."""
        return torch.exp(self.log_rho_coil)

    def forward(
        self, f: torch.Tensor, mask: torch.Tensor | None = None, iterations: int | None = None, coil_maps: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct.

        Parameters
        ----------
        f
            MRI: centred k-space ``(B, 2, H, W)`` (real, imaginary); denoising: ``(B, 1, H, W)``.
        mask
            MRI only: binary ``(B, 1, 1, W)`` line mask or ``(B, 1, H, W)``.
        iterations
            T; defaults to the configured default (:meth:`ModelConfig.default_iterations`).
        coil_maps
            Multi-coil MRI (SPEC 1b): maps ``(B, C, 2, H, W)`` with ``sum_c |S_c|^2 <= 1``; ``f`` is
            then coil k-space ``(B, C, 2, H, W)``. The U-Net reads the coil-combined ``A^H f``, so the
            same weights serve both; ADMM models solve it by coil splitting
            (:mod:`tgv_deploy.solvers.admm_sense`), PDHG models with the SENSE operator.

        Returns
        -------
        ``x (B, C, H, W)`` and ``maps (B, M, H, W)``: (L0, L1) for U-TGV, (L,) for U-TV, in the
        units of ``f``.
        """
        iterations = self.config.default_iterations(coil_maps is not None) if iterations is None else iterations
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
        forward_op, scale, f_normalised, maps = self.normalised_inputs(f, mask, coil_maps)
        if coil_maps is not None:
            assert mask is not None  # checked by forward_operator
            maps = maps * self.coil_gain(mask.to(f.dtype))
        if self.config.solver == "admm":
            if mask is not None:
                require_centre_sampled(mask)
            if coil_maps is not None:
                assert mask is not None  # checked by forward_operator
                x = self._admm_sense(f_normalised, coil_maps, mask.to(f.dtype), maps, iterations)
            else:
                x = self._admm(f_normalised, maps, None if mask is None else mask.to(f.dtype), iterations)
        else:
            x = self._pdhg(f_normalised, maps, forward_op, iterations)
        return x * scale, maps * scale

    def normalised_inputs(
        self, f: torch.Tensor, mask: torch.Tensor | None = None, coil_maps: torch.Tensor | None = None
    ) -> tuple[LinearOperator, torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the solver starts from: the forward operator, the image scale ``(B, 1, 1, 1)``, ``f``
        divided by it and the U-Net's maps ``(B, M, H, W)`` in those units (before any coil gain)."""
        forward_op = self.forward_operator(f, mask, coil_maps)
        x0 = forward_op.adjoint(f)  # once: A^H is linear, so A^H (f / scale) = x0 / scale (as the exported prologue has it)
        scale = image_scale(x0)
        f_normalised = f / scale.reshape(-1, *([1] * (f.ndim - 1)))  # (B, 1, 1, 1[, 1]) against f
        return forward_op, scale, f_normalised, self.noise_scaled(self.unet(x0 / scale), f_normalised, mask)

    def _pdhg(self, f, maps, forward_op, iterations) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _admm(self, f, maps, mask, iterations) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _admm_sense(self, f, coil_maps, mask, maps, iterations) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class UTGV(UnrolledModel):
    """U-TGV: maps ``(L0, L1)`` from the U-Net, then T TGV iterations."""

    def _pdhg(self, f, maps, forward_op, iterations):
        sigma, tau = self.step_sizes()
        x, _ = pdhg_tgv_channels(
            f, maps[:, 0], maps[:, 1], forward_op, iterations, sigma, tau, checkpoint_every=self.checkpoint_every
        )
        return x

    def _admm(self, f, maps, mask, iterations):
        x, _ = admm_tgv_channels(
            f, maps[:, 0], maps[:, 1], mask, iterations, self.rho(), self.config.alpha, checkpoint_every=self.checkpoint_every,
            penalty_ratio=self.config.penalty_ratio, rho_factors=self.rho_factors(iterations),
        )
        return x

    def _admm_sense(self, f, coil_maps, mask, maps, iterations):
        x, _ = admm_tgv_sense_channels(
            f, coil_maps, mask, maps[:, 0], maps[:, 1], iterations, self.rho(), self.config.alpha, self.rho_coil(),
            checkpoint_every=self.checkpoint_every, penalty_ratio=self.config.penalty_ratio,
        )
        return x


class UTV(UnrolledModel):
    """U-TV: one map ``L`` from the U-Net, then T TV iterations."""

    def _pdhg(self, f, maps, forward_op, iterations):
        sigma, tau = self.step_sizes()
        return pdhg_tv_channels(f, maps[:, 0], forward_op, iterations, sigma, tau, checkpoint_every=self.checkpoint_every)

    def _admm(self, f, maps, mask, iterations):
        return admm_tv_channels(
            f, maps[:, 0], mask, iterations, self.rho(), self.config.alpha, checkpoint_every=self.checkpoint_every
        )

    def _admm_sense(self, f, coil_maps, mask, maps, iterations):
        return admm_tv_sense_channels(
            f, coil_maps, mask, maps[:, 0], iterations, self.rho(), self.config.alpha, self.rho_coil(),
            checkpoint_every=self.checkpoint_every,
        )


def build_model(config: ModelConfig) -> UnrolledModel:
    """The model a configuration describes, freshly initialised."""
    return (UTGV if config.kind == "utgv" else UTV)(config)
