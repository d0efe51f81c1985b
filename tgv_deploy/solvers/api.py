"""Validating public entry points: complex (or real) ``(B, H, W)`` arrays in, the same layout out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tgv_deploy.fourier_symbols import checked_penalty_ratio
from tgv_deploy.layout import channels_to_complex, complex_to_channels
from tgv_deploy.operators.base import IdentityOp, LinearOperator
from tgv_deploy.operators.fourier import DFTImpl, MaskedFourierOp
from tgv_deploy.solvers.admm import (
    DEFAULT_ALPHA,
    DEFAULT_RHO_RAMP,
    admm_tgv_channels,
    admm_tv_channels,
    default_rho,
    peak_of_adjoint,
    ramp_factors,
    require_centre_sampled,
)
from tgv_deploy.solvers.pdhg import (
    LK,
    pdhg_tgv_channels,
    pdhg_tv_channels,
    tgv_energy_channels,
    tv_energy_channels,
)


@dataclass(frozen=True)
class _Problem:
    f: torch.Tensor  # (B, C, H, W) real
    forward_op: LinearOperator
    is_mri: bool
    was_numpy: bool
    mask: torch.Tensor | None = None  # (B|1, 1, H|1, W), MRI only


def _to_tensor(a: Any, name: str) -> tuple[torch.Tensor, bool]:
    if isinstance(a, torch.Tensor):
        return a, False
    if isinstance(a, np.ndarray):
        return torch.from_numpy(a), True
    raise ValueError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(a).__name__}")


def _problem(f: Any, mask: Any, dft: DFTImpl) -> _Problem:
    f, was_numpy = _to_tensor(f, "f")
    if f.ndim != 3:
        raise ValueError(f"f must be (B, H, W), got shape {tuple(f.shape)}")
    if f.shape[1] < 2 or f.shape[2] < 2:
        raise ValueError(f"f must be (B, H, W) with H, W >= 2, got shape {tuple(f.shape)}")
    if not torch.isfinite(torch.view_as_real(f) if f.is_complex() else f).all():
        raise ValueError("f contains NaN or Inf")
    if mask is None:
        if f.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"denoising (mask=None) needs a real float32/float64 f (B, H, W), got {f.dtype}")
        return _Problem(f[:, None], IdentityOp(), is_mri=False, was_numpy=was_numpy)
    if f.dtype not in (torch.complex64, torch.complex128):
        raise ValueError(f"MRI (mask given) needs complex64/complex128 centred k-space f (B, H, W), got {f.dtype}")
    mask, _ = _to_tensor(mask, "mask")
    if mask.ndim == 1 and mask.shape[0] == f.shape[2]:  # a file's (W,) line mask, shared by the batch
        mask = mask.reshape(1, 1, -1)
    elif mask.ndim == 2 and tuple(mask.shape) == tuple(f.shape[1:]):  # an (H, W) pattern, shared by the batch
        mask = mask[None]
    expected = "(B, H, W) or broadcastable to it, e.g. (W,), (H, W), (B, 1, W) or (1, 1, W)"
    if mask.ndim != 3 or any(m not in (1, n) for m, n in zip(mask.shape, f.shape)):
        raise ValueError(f"mask must be {expected} for f {tuple(f.shape)}, got {tuple(mask.shape)}")
    if mask.is_complex():
        raise ValueError("mask must be real or bool, got a complex tensor")
    real_dtype = torch.float32 if f.dtype == torch.complex64 else torch.float64
    mask = mask.to(real_dtype)
    if not ((mask == 0) | (mask == 1)).all():
        raise ValueError("mask must be binary (0 or 1)")
    return _Problem(
        complex_to_channels(f), MaskedFourierOp(mask[:, None], impl=dft), is_mri=True, was_numpy=was_numpy, mask=mask[:, None]
    )


def _map(lam: Any, name: str, f: torch.Tensor) -> torch.Tensor:
    """A scalar or a ``(B, H, W)`` (or broadcastable 3-D) map as a real tensor of f's precision."""
    dtype = f.dtype
    if isinstance(lam, (int, float)) and not isinstance(lam, bool):
        lam = torch.tensor(float(lam), dtype=dtype, device=f.device).reshape(1, 1, 1)
    else:
        lam, _ = _to_tensor(lam, name)
        if lam.is_complex() or not lam.is_floating_point():
            raise ValueError(f"{name} must be a real floating map, got {lam.dtype}")
        if lam.ndim == 0:
            lam = lam.reshape(1, 1, 1)
        expected = (f.shape[0], f.shape[-2], f.shape[-1])
        if lam.ndim != 3 or any(m not in (1, n) for m, n in zip(lam.shape, expected)):
            raise ValueError(f"{name} must be a scalar or {expected} (B, H, W), got shape {tuple(lam.shape)}")
        lam = lam.to(dtype)
    if not torch.isfinite(lam).all() or (lam < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    return lam


def _steps(iterations: int, sigma: Any, tau: Any, theta: float) -> tuple[Any, Any]:
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    sigma = 1.0 / LK if sigma is None else sigma
    tau = 1.0 / LK if tau is None else tau
    for name, value in (("sigma", sigma), ("tau", tau)):
        if not bool(torch.as_tensor(value > 0).all()):
            raise ValueError(f"{name} must be positive, got {value!r}")
    if not 0.0 <= theta <= 1.0:
        raise ValueError(f"theta must be in [0, 1], got {theta!r}")
    return sigma, tau


def _output(x: torch.Tensor, problem: _Problem) -> Any:
    out = channels_to_complex(x) if problem.is_mri else x[:, 0]
    return out.detach().numpy() if problem.was_numpy else out


def _output_xv(x: torch.Tensor, v: torch.Tensor, problem: _Problem, return_v: bool) -> Any:
    """``x`` (and ``v (B, 2, H, W)``, complex for MRI, with ``return_v``) in the caller's layout."""
    if not return_v:
        return _output(x, problem)
    v_out = torch.complex(v[:, :, 0], v[:, :, 1]) if problem.is_mri else v[:, :, 0]
    return _output(x, problem), (v_out.detach().numpy() if problem.was_numpy else v_out)


def pdhg_tgv(
    f: Any,
    lambda0: Any,
    lambda1: Any,
    mask: Any = None,
    iterations: int = 256,
    sigma: Any = None,
    tau: Any = None,
    theta: float = 1.0,
    *,
    dft: DFTImpl = "fft",
    return_v: bool = False,
) -> Any:
    """Minimise ``1/2 ||A x - f||^2 + sum L1 |grad x - v|_1 + sum L0 |E v|_1`` by ``iterations`` PDHG steps.

    Parameters
    ----------
    f
        Denoising (``mask is None``): the noisy real image ``(B, H, W)``. MRI: centred complex
        k-space ``(B, H, W)``; ``A = M * F`` with the centred orthonormal DFT.
    lambda0, lambda1
        Non-negative maps ``(B, H, W)`` (or broadcastable) or scalars. ``lambda0`` weighs ``E v``,
        ``lambda1`` weighs ``grad x - v``.
    mask
        Binary sampling mask ``(B, H, W)`` or broadcastable (``(B, 1, W)``, ``(1, 1, W)``).
    iterations, sigma, tau, theta
        The iteration count and steps; ``sigma = tau = 1/sqrt(13)`` by default, which satisfies
        ``sigma tau ||K||^2 < 1``.
    dft
        ``"fft"`` or ``"matrix"``; the same operator either way.
    return_v
        Also return the auxiliary field ``v (B, 2, H, W)`` (complex for MRI).

    Returns
    -------
    ``x (B, H, W)``, complex for MRI, in f's precision and array type (torch or numpy);
    differentiable with respect to tensor inputs.
    """
    problem = _problem(f, mask, dft)
    l0, l1 = _map(lambda0, "lambda0", problem.f), _map(lambda1, "lambda1", problem.f)
    sigma, tau = _steps(iterations, sigma, tau, theta)
    x, v = pdhg_tgv_channels(problem.f, l0, l1, problem.forward_op, iterations, sigma, tau, theta)
    return _output_xv(x, v, problem, return_v)


def pdhg_tv(
    f: Any,
    lam: Any,
    mask: Any = None,
    iterations: int = 256,
    sigma: Any = None,
    tau: Any = None,
    theta: float = 1.0,
    *,
    dft: DFTImpl = "fft",
) -> Any:
    """Minimise ``1/2 ||A x - f||^2 + sum L |grad x|_1`` (anisotropic TV); arguments as :func:`pdhg_tgv`."""
    problem = _problem(f, mask, dft)
    lam = _map(lam, "lam", problem.f)
    sigma, tau = _steps(iterations, sigma, tau, theta)
    return _output(pdhg_tv_channels(problem.f, lam, problem.forward_op, iterations, sigma, tau, theta), problem)


def _image_channels(x: Any, problem: _Problem) -> torch.Tensor:
    x, _ = _to_tensor(x, "x")
    return complex_to_channels(x) if problem.is_mri else x[:, None]


def tgv_energy(x: Any, v: Any, f: Any, lambda0: Any, lambda1: Any, mask: Any = None, *, periodic: bool = False) -> Any:
    """The TGV energy of ``(x, v)`` per batch element ``(B,)``; arrays laid out as in :func:`pdhg_tgv`.

    ``periodic=True``: with SPEC 2b's periodic differences, the energy :func:`admm_tgv` minimises.
    """
    problem = _problem(f, mask, "fft")
    x_ch = _image_channels(x, problem)
    v, _ = _to_tensor(v, "v")
    v_ch = torch.stack((v.real, v.imag), dim=2) if problem.is_mri else v[:, :, None]
    l0, l1 = _map(lambda0, "lambda0", problem.f), _map(lambda1, "lambda1", problem.f)
    energy = tgv_energy_channels(x_ch, v_ch, problem.f, l0, l1, problem.forward_op, periodic=periodic)
    return energy.detach().numpy() if problem.was_numpy else energy


def tv_energy(x: Any, f: Any, lam: Any, mask: Any = None, *, periodic: bool = False) -> Any:
    """The TV energy of ``x`` per batch element ``(B,)`` (``periodic``: what :func:`admm_tv` minimises)."""
    problem = _problem(f, mask, "fft")
    lam = _map(lam, "lam", problem.f)
    energy = tv_energy_channels(_image_channels(x, problem), problem.f, lam, problem.forward_op, periodic=periodic)
    return energy.detach().numpy() if problem.was_numpy else energy


def _admm_arguments(
    problem: _Problem, iterations: int, rho: Any, alpha: float, weight: torch.Tensor, regulariser: str
) -> tuple[torch.Tensor | None, Any]:
    """Validate ADMM's settings; return the mask ``(B|1, 1, H|1, W)`` (None for denoising) and the
    penalty: ``rho`` as given (a numpy one, e.g. one per image from :func:`data_scale`, as a tensor
    of f's precision), or by default :func:`default_rho` of the problem's ``weight`` ``(B|1,)``."""
    _steps(iterations, None, None, 1.0)
    if rho is not None and not bool((torch.as_tensor(rho) > 0).all()):
        raise ValueError(f"rho must be positive, got {rho!r}")
    if not 1.0 <= alpha < 2.0:
        raise ValueError(f"alpha must be in [1, 2), got {alpha!r}")
    if problem.mask is not None:
        require_centre_sampled(problem.mask)
    if rho is None:
        rho = default_rho(problem.f, problem.mask, weight, regulariser)
    elif isinstance(rho, np.ndarray):
        rho = torch.as_tensor(rho, dtype=problem.f.dtype, device=problem.f.device)
    return problem.mask, rho


def _mean_weight(lam: torch.Tensor) -> torch.Tensor:
    """``(B|1,)`` spatial mean of a ``(B|1, H|1, W|1)`` map."""
    return lam.flatten(1).mean(1)


def data_scale(f: Any, mask: Any = None) -> Any:
    """``(B,)`` peak of ``|A^H f|`` (arrays as in :func:`admm_tgv`): the scale the default rho divides by."""
    problem = _problem(f, mask, "fft")
    scale = peak_of_adjoint(problem.f, problem.mask)
    return scale.numpy() if problem.was_numpy else scale


def admm_tgv(
    f: Any,
    lambda0: Any,
    lambda1: Any,
    mask: Any = None,
    iterations: int = 128,
    rho: Any = None,
    alpha: float = DEFAULT_ALPHA,
    *,
    return_v: bool = False,
    penalty_ratio: float = 1.0,
    rho_ramp: tuple[float, float] | None = None,
) -> Any:
    """Minimise the periodic TGV energy of SPEC 2b by ``iterations`` ADMM steps with an exact Fourier-domain step.

    Same arrays and conventions as :func:`pdhg_tgv`: ``f`` a real image ``(B, H, W)`` (denoising)
    or centred complex k-space ``(B, H, W)`` with a binary ``mask`` (``(B, H, W)`` or broadcastable,
    ``(W,)``, ``(H, W)``) that samples the k-space centre; ``lambda0`` weighs ``E v``, ``lambda1``
    ``grad x - v``. Differences are periodic (SPEC 2b), which makes the (x, v) step exact.

    ``rho`` (penalty, positive; a number, a tensor for a learned one, or one per image ``(B,)``)
    defaults to ``RHO_PER_WEIGHT["tgv"] * sqrt(mean lambda0 * mean lambda1) / peak |A^H f|`` per
    image (clipped to ``RHO_RANGE``): the fastest penalty grows with the weights relative to the
    data, and the rule keeps the iterates positively homogeneous in ``(f, lambda0, lambda1)``.
    ``rho_ramp = (start, end)`` makes the penalty a per-iteration schedule that moves
    geometrically from ``start * rho`` to ``end * rho`` over the run (SPEC 2b allows a schedule);
    by default the default penalty ramps by ``DEFAULT_RHO_RAMP`` (fewer iterations to the same
    energy gap, benchmarks/README.md "The default penalty"), a given ``rho`` stays constant.
    ``alpha`` (relaxation in [1, 2)) defaults to 1.9. See ``benchmarks/README.md`` ("Convergence").
    ``penalty_ratio`` (positive; 1 is SPEC 2b) gives the ``E v`` constraint the penalty
    ``penalty_ratio * rho``: the same minimiser, reached faster where the maps are large
    (benchmarks/README.md, "The penalty of the E v constraint").

    Returns ``x (B, H, W)`` (and ``v (B, 2, H, W)`` with ``return_v``) in f's precision and array
    type; differentiable in the maps and in ``rho``.
    """
    problem = _problem(f, mask, "fft")
    l0, l1 = _map(lambda0, "lambda0", problem.f), _map(lambda1, "lambda1", problem.f)
    if rho_ramp is None and rho is None:
        rho_ramp = DEFAULT_RHO_RAMP
    if rho_ramp is not None:
        try:
            start, end = (float(a) for a in rho_ramp)
        except (TypeError, ValueError):
            start = end = float("nan")
        if not (start > 0 and end > 0 and np.isfinite(start * end)):
            raise ValueError(f"rho_ramp must be two positive factors (start, end), got {rho_ramp!r}")
    # clamped so that a zero weight keeps the gradient finite (sqrt' is infinite at 0)
    weight = torch.sqrt((_mean_weight(l0) * _mean_weight(l1)).clamp_min(torch.finfo(l0.dtype).tiny))
    mask_ch, rho = _admm_arguments(problem, iterations, rho, alpha, weight, "tgv")
    factors = None if rho_ramp is None else ramp_factors(iterations, start, end)
    x, v = admm_tgv_channels(problem.f, l0, l1, mask_ch, iterations, rho, alpha, penalty_ratio=checked_penalty_ratio(penalty_ratio),
                             rho_factors=factors)
    return _output_xv(x, v, problem, return_v)


def admm_tv(
    f: Any, lam: Any, mask: Any = None, iterations: int = 128, rho: Any = None, alpha: float = DEFAULT_ALPHA
) -> Any:
    """Minimise the periodic anisotropic TV energy ``1/2 ||A x - f||^2 + sum L |grad x|_1``; as :func:`admm_tgv`
    (the default rho: ``RHO_PER_WEIGHT["tv"] * mean lam / peak |A^H f|``)."""
    problem = _problem(f, mask, "fft")
    lam = _map(lam, "lam", problem.f)
    mask_ch, rho = _admm_arguments(problem, iterations, rho, alpha, _mean_weight(lam), "tv")
    return _output(admm_tv_channels(problem.f, lam, mask_ch, iterations, rho, alpha), problem)
