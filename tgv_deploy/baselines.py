"""Best scalar TV and TGV reconstructions: the baselines every evaluation table reports.

A parameter search maximises PSNR or SSIM against the target: a coarse logarithmic grid, then
rounds of refinement on a finer grid around the best point.  Candidates are solved one by one,
each until it has converged: their iteration counts differ widely, and a batch would run every
candidate as long as its slowest one.  Regularisation weights are searched in units
of the per-image scale (max of ``|A^H f|``), so one grid fits every intensity range.

Every candidate is solved to convergence, so a baseline is the scalar TV/TGV itself and not an
unfinished iteration: ADMM with the exact Fourier step (SPEC 2b, periodic differences, default
rho and alpha) runs until the image changes by less than ``TOLERANCE`` (relative L2, for every
candidate of the batch) over ``CHECK_EVERY`` iterations, or ``max_iterations``. Each candidate
gets its own penalty, ``rho = RHO_PER_WEIGHT * L1 / scale`` (1, the solver's default, at
``L1 = 0.01 scale``): with one fixed rho, ADMM needs thousands of iterations for the strongly
regularised candidates at the top of the grid (measured on a held-out slice: 3000+ iterations
against about 1300).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from tgv_deploy.layout import magnitude
from tgv_deploy.metrics import METRICS
from tgv_deploy.models.utgv import image_scale
from tgv_deploy.operators.base import IdentityOp, LinearOperator
from tgv_deploy.operators.fourier import MaskedFourierOp
from tgv_deploy.operators.sense import SenseOp
from tgv_deploy.solvers.admm import admm_tgv_channels, admm_tv_channels
from tgv_deploy.solvers.admm_sense import admm_tgv_sense_channels, admm_tv_sense_channels

#: Convergence criterion of the baselines (see the module docstring).
TOLERANCE = 1e-4
CHECK_EVERY = 20
MAX_ITERATIONS = 3000
#: ADMM penalty per unit of normalised weight, and its bounds.
RHO_PER_WEIGHT = 100.0
RHO_BOUNDS = (0.05, 1000.0)


def _penalties(weights: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """One ADMM penalty per candidate ``(N,)`` from its normalised weight ``L / scale``."""
    return torch.as_tensor(np.clip(RHO_PER_WEIGHT * weights, *RHO_BOUNDS), dtype=like.dtype)


@dataclass(frozen=True)
class BaselineResult:
    """The best scalar parameters found, the reconstruction ``(C, H, W)`` and its score."""

    params: dict[str, float]
    image: torch.Tensor
    score: float
    criterion: str
    evaluations: int
    iterations: int = 0  # most iterations any batched solve of the search needed


class Convergence:
    """A solver callback that stops once every image of the batch changed by less than ``TOLERANCE``
    (relative L2) over the last ``CHECK_EVERY`` iterations; ``iterations`` records where it stopped."""

    def __init__(self) -> None:
        self.previous: torch.Tensor | None = None
        self.iterations = 0

    def __call__(self, k: int, x: torch.Tensor, *_: object) -> bool:
        self.iterations = k + 1
        if self.iterations % CHECK_EVERY:
            return False
        converged = False
        if self.previous is not None:
            change = (x - self.previous).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1).clamp_min(torch.finfo(x.dtype).tiny)
            converged = bool((change < TOLERANCE).all())
        self.previous = x.clone()
        return converged


def _forward_op(mask: torch.Tensor | None, coil_maps: torch.Tensor | None = None) -> LinearOperator:
    if coil_maps is not None and mask is not None:
        return SenseOp(coil_maps, mask)
    return IdentityOp() if mask is None else MaskedFourierOp(mask)


def _scale(f: torch.Tensor, mask: torch.Tensor | None, coil_maps: torch.Tensor | None) -> torch.Tensor:
    """The per-image scale ``max |A^H f|`` (0-d) in whose units the weights are searched."""
    return image_scale(_forward_op(mask, coil_maps).adjoint(f)).reshape(())


def _image_of(f: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``f`` as the ADMM solvers take it: pre-masked k-space, or the noisy image."""
    return f if mask is None else f * mask


def _solve_tgv(f: torch.Tensor, mask: torch.Tensor | None, coil_maps: torch.Tensor | None, lambda1: torch.Tensor | float,
               lambda0: torch.Tensor | float, scale: torch.Tensor, max_iterations: int) -> tuple[torch.Tensor, int]:
    """Scalar TGV ``(L0, L1)`` (units of ``f``) solved to convergence: the image ``(1, C, H, W)`` and
    the iterations it took."""
    rho = float(_penalties(np.array([float(lambda1 / scale)]), f)[0])
    l1 = torch.as_tensor(lambda1, dtype=f.dtype).reshape(1, 1, 1)
    l0 = torch.as_tensor(lambda0, dtype=f.dtype).reshape(1, 1, 1)
    stop = Convergence()
    if coil_maps is not None and mask is not None:
        x, _ = admm_tgv_sense_channels(f, coil_maps, mask, l0, l1, max_iterations, rho, callback=stop)
    else:
        x, _ = admm_tgv_channels(_image_of(f, mask), l0, l1, mask, max_iterations, rho, callback=stop)
    return x, stop.iterations


def _solve_tv(f: torch.Tensor, mask: torch.Tensor | None, coil_maps: torch.Tensor | None, lam: torch.Tensor | float,
              scale: torch.Tensor, max_iterations: int) -> tuple[torch.Tensor, int]:
    """Scalar TV ``L`` solved to convergence, as :func:`_solve_tgv`."""
    rho = float(_penalties(np.array([float(lam / scale)]), f)[0])
    weight = torch.as_tensor(lam, dtype=f.dtype).reshape(1, 1, 1)
    stop = Convergence()
    if coil_maps is not None and mask is not None:
        x = admm_tv_sense_channels(f, coil_maps, mask, weight, max_iterations, rho, callback=stop)
    else:
        x = admm_tv_channels(_image_of(f, mask), weight, mask, max_iterations, rho, callback=stop)
    return x, stop.iterations


def _score(x: torch.Tensor, target: np.ndarray, criterion: str) -> float:
    """``criterion`` of the magnitude of one reconstruction ``(1, C, H, W)`` against ``target``."""
    return float(METRICS[criterion](target, magnitude(x)[0].numpy()))


@torch.no_grad()
def scalar_tgv_at(f: torch.Tensor, target: np.ndarray, lambda0: float, lambda1: float, mask: torch.Tensor | None = None,
                  max_iterations: int = MAX_ITERATIONS, criterion: str = "psnr", coil_maps: torch.Tensor | None = None) -> BaselineResult:
    """Scalar TGV at given ``(L0, L1)`` (units of ``f``, e.g. an earlier search's result), solved as the search solves."""
    x, iterations = _solve_tgv(f, mask, coil_maps, lambda1, lambda0, _scale(f, mask, coil_maps), max_iterations)
    return BaselineResult({"lambda0": lambda0, "lambda1": lambda1}, x[0], _score(x, target, criterion), criterion, 1, iterations)


@torch.no_grad()
def scalar_tv_at(f: torch.Tensor, target: np.ndarray, lam: float, mask: torch.Tensor | None = None,
                 max_iterations: int = MAX_ITERATIONS, criterion: str = "psnr", coil_maps: torch.Tensor | None = None) -> BaselineResult:
    """Scalar TV at a given ``L``, as :func:`scalar_tgv_at`."""
    x, iterations = _solve_tv(f, mask, coil_maps, lam, _scale(f, mask, coil_maps), max_iterations)
    return BaselineResult({"lambda": lam}, x[0], _score(x, target, criterion), criterion, 1, iterations)


def _search(solve, log_grids: list[np.ndarray], rounds: int, points: int, target: np.ndarray, criterion: str):
    """Maximise ``criterion`` over parameters whose log10 values span ``log_grids``.

    ``solve(params (N, P))`` returns images ``(N, C, H, W)``.
    """
    score_fn = METRICS[criterion]
    steps = [float(g[1] - g[0]) if len(g) > 1 else 0.5 for g in log_grids]
    candidates = np.array(list(itertools.product(*log_grids)))
    best = (-np.inf, None, None)
    evaluations = 0
    for round_index in range(rounds + 1):
        images = solve(10.0**candidates)
        evaluations += len(candidates)
        for logp, image in zip(candidates, images):
            score = score_fn(target, magnitude(image[None])[0].numpy())
            if score > best[0]:
                best = (score, logp, image)
        if round_index == rounds:
            break
        offsets = [np.linspace(-step, step, points) for step in steps]
        candidates = np.array([best[1] + np.array(o) for o in itertools.product(*offsets)])
        steps = [2 * step / (points - 1) for step in steps]
    return best, evaluations


@torch.no_grad()
def best_scalar_tgv(
    f: torch.Tensor,
    target: np.ndarray,
    mask: torch.Tensor | None = None,
    max_iterations: int = MAX_ITERATIONS,
    criterion: str = "psnr",
    lambda1_grid: np.ndarray | None = None,
    ratio_grid: np.ndarray | None = None,
    rounds: int = 2,
    points: int = 5,
    coil_maps: torch.Tensor | None = None,
) -> BaselineResult:
    """Best scalar ``(L0, L1)`` for one image.

    ``f`` is ``(1, C, H, W)`` (k-space channels for MRI, with ``mask (1, 1, 1, W)``), ``target``
    the ``(H, W)`` magnitude reference. The grids are log10 values: ``L1 / scale`` and ``L0 / L1``.
    Multi-coil: ``f`` and ``coil_maps`` ``(1, C, 2, H, W)``, solved by coil-splitting ADMM.
    """
    if criterion not in METRICS:
        raise ValueError(f"criterion must be one of {sorted(METRICS)}, got {criterion!r}")
    scale = _scale(f, mask, coil_maps)
    lambda1_grid = np.linspace(-3.5, -0.5, 7) if lambda1_grid is None else lambda1_grid
    ratio_grid = np.log10([0.5, 1.0, 2.0, 4.0]) if ratio_grid is None else ratio_grid

    used = [0]

    def solve(params: np.ndarray) -> torch.Tensor:
        images = []
        for weight, ratio in params:
            x, iterations = _solve_tgv(f, mask, coil_maps, float(weight) * scale, float(weight * ratio) * scale, scale, max_iterations)
            used[0] = max(used[0], iterations)
            images.append(x)
        return torch.cat(images)

    (score, logp, image), evaluations = _search(solve, [lambda1_grid, ratio_grid], rounds, points, target, criterion)
    lambda1 = float(10 ** logp[0] * scale)
    params = {"lambda0": lambda1 * float(10 ** logp[1]), "lambda1": lambda1}
    return BaselineResult(params, image, float(score), criterion, evaluations, used[0])


@torch.no_grad()
def best_scalar_tv(
    f: torch.Tensor,
    target: np.ndarray,
    mask: torch.Tensor | None = None,
    max_iterations: int = MAX_ITERATIONS,
    criterion: str = "psnr",
    lambda_grid: np.ndarray | None = None,
    rounds: int = 2,
    points: int = 5,
    coil_maps: torch.Tensor | None = None,
) -> BaselineResult:
    """Best scalar TV weight ``L`` for one image; arguments as :func:`best_scalar_tgv`."""
    if criterion not in METRICS:
        raise ValueError(f"criterion must be one of {sorted(METRICS)}, got {criterion!r}")
    scale = _scale(f, mask, coil_maps)
    lambda_grid = np.linspace(-3.5, -0.5, 9) if lambda_grid is None else lambda_grid

    used = [0]

    def solve(params: np.ndarray) -> torch.Tensor:
        images = []
        for (weight,) in params:
            x, iterations = _solve_tv(f, mask, coil_maps, float(weight) * scale, scale, max_iterations)
            used[0] = max(used[0], iterations)
            images.append(x)
        return torch.cat(images)

    (score, logp, image), evaluations = _search(solve, [lambda_grid], rounds, points, target, criterion)
    return BaselineResult({"lambda": float(10 ** logp[0] * scale)}, image, float(score), criterion, evaluations, used[0])
