"""ADMM with an exact Fourier-domain (x, v) step for the periodic TGV and TV problems (SPEC section 2b).

Splitting ``z1 = grad x - v``, ``z2 = E v`` with scaled duals ``u1``, ``u2``, penalty ``rho`` and
relaxation ``alpha``; started at ``x = A^H f``, ``v = 0``, ``z1 = grad x``, ``z2 = 0``, ``u = 0``::

    w1 = z1 - u1,  w2 = z2 - u2
    (x, v) = argmin 1/2 ||A x - f||^2 + rho/2 ||grad x - v - w1||^2 + rho/2 ||E v - w2||^2
    g1 = alpha (grad x - v) + (1 - alpha) z1,   g2 = alpha E v + (1 - alpha) z2
    z1 = shrink(g1 + u1, L1 / rho),   z2 = shrink(g2 + u2, L0 / rho)
    u1 = u1 + g1 - z1,   u2 = u2 + g2 - z2

The (x, v) step is solved exactly per frequency (:mod:`tgv_deploy.fourier_symbols`): 3 forward
and 3 inverse 2D DFTs, one division by the mask-dependent denominator. The DFT inside the loop is
the plain orthonormal ``fft2`` of the image as stored (no shifts): the data enter it once, as the
transform of ``A^H f``, and the mask once, ifftshifted.

Channel layout as in :mod:`tgv_deploy.solvers.pdhg`: images ``(B, C, H, W)`` with C = 1 (real)
or 2 (real, imaginary); ``v (B, 2, C, H, W)``, ``z2 (B, 3, C, H, W)`` as (xx, yy, xy).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch

from tgv_deploy.fourier_symbols import tgv_step_constants, tv_step_denominator
from tgv_deploy.layout import magnitude
from tgv_deploy.operators.periodic import PeriodicGradient, PeriodicSymGradient
from tgv_deploy.solvers.pdhg import Scalar, _as_field_bound, _run, clip

#: Fixed penalty and relaxation of the channel-level solvers and the models' starting penalty: the
#: best worst case at T = 128 over the scalar maps of ``benchmarks/convergence.py``'s scan on data
#: normalised as the models normalise it (benchmarks/README.md). ``admm_tgv`` / ``admm_tv`` default
#: instead to :func:`default_rho`, which follows the weights.
DEFAULT_RHO = 2.0
DEFAULT_ALPHA = 1.9

#: The default penalty of ``admm_tgv`` / ``admm_tv`` (the functional interface) when none is given:
#: ``rho = c * w / scale`` with ``w = sqrt(mean lambda0 * mean lambda1)`` (TGV) or ``mean lambda``
#: (TV) and ``scale`` the peak of ``|A^H f|``, clipped to ``RHO_RANGE``. The fastest penalty grows
#: with the weights relative to the data (a fixed rho = 2 leaves strongly regularised synthetic
#: problems 3.6% from the minimum at T = 128, the rule 1.7%); ``c`` fitted by ``benchmarks/rho_rule.py``.
RHO_PER_WEIGHT = {"tgv": 80.0, "tv": 44.0}
#: ``admm_tgv`` ramps its default penalty geometrically from ``start`` to ``end`` times the rule's
#: rho over the run (SPEC 2b allows a per-iteration schedule): a low penalty first lets the data
#: and the shrinkage move, a high one last closes the constraints; chosen on synthetic slices by
#: ``benchmarks/rho_ramp.py`` (benchmarks/README.md, "The default penalty"). ``admm_tv`` keeps the
#: constant rule, whose gap is already small.
DEFAULT_RHO_RAMP = (0.25, 16.0)
RHO_RANGE = (0.05, 100.0)

_CONSTANTS: dict[tuple, dict[str, torch.Tensor]] = {}


def _constants(height: int, width: int, like: torch.Tensor, penalty_ratio: float = 1.0) -> dict[str, torch.Tensor]:
    """The step constants as tensors of ``like``'s precision and device (complex, ``s`` real)."""
    complex_dtype = torch.complex128 if like.dtype == torch.float64 else torch.complex64
    key = (height, width, like.dtype, like.device, penalty_ratio)
    if key not in _CONSTANTS:
        c = tgv_step_constants(height, width, penalty_ratio)
        tensors = {name: torch.as_tensor(getattr(c, name), dtype=complex_dtype, device=like.device)
                   for name in ("p11", "p22", "p12", "h0", "h1")}
        # the conjugates the step needs, stored resolved (a lazy conj view is slower in products)
        for name in ("p12", "h0", "h1"):
            tensors[f"{name}_conj"] = tensors[name].conj().resolve_conj()
        tensors["s"] = torch.as_tensor(c.s, dtype=like.dtype, device=like.device)
        tensors["tv"] = torch.as_tensor(tv_step_denominator(height, width), dtype=like.dtype, device=like.device)
        _CONSTANTS[key] = tensors
    return _CONSTANTS[key]


def _per_image(rho: Scalar, ndim: int) -> Scalar:
    """``rho`` as given (a number or a 0-d tensor), or a ``(B,)`` tensor (one penalty per image,
    e.g. per candidate of a parameter search) viewed to broadcast against ``ndim``-D tensors."""
    if isinstance(rho, torch.Tensor) and rho.ndim == 1:
        return rho.reshape(-1, *([1] * (ndim - 1)))
    return rho


def require_centre_sampled(mask: torch.Tensor) -> None:
    """Refuse a mask ``(..., H|1, W)`` that misses the k-space centre: the zero frequency of the
    (x, v) step divides by the mask alone (SPEC 2b). A line mask's single row is its centre row."""
    row, column = mask.shape[-2] // 2, mask.shape[-1] // 2
    if not bool((mask[..., row, column] == 1).all()):
        raise ValueError(
            f"the mask does not sample the k-space centre (column {column}): ADMM's Fourier step divides by the mask there"
        )


def shrink(y: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Soft thresholding ``y - clip(y, t)`` of every real component (``t`` broadcast, non-negative)."""
    return y - clip(y, threshold)


def split_update(constraint: torch.Tensor, z: torch.Tensor, u: torch.Tensor, threshold: torch.Tensor,
                 alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A split variable and its scaled dual after the (x, v) step: ``(z, u)``.

    With the relaxed ``g = alpha constraint + (1 - alpha) z``, SPEC 2b's ``z = shrink(g + u, t)``,
    ``u = u + g - z`` are computed as ``u = clip(g + u, t)``, ``z = (g + u) - u``: the same values in
    three passes fewer, ``g + u`` in two fused ones (as the exported graph does).
    """
    s = torch.add(torch.add(u, z, alpha=1 - alpha), constraint, alpha=alpha)
    u = clip(s, threshold)
    return s - u, u


def _to_complex(y: torch.Tensor) -> torch.Tensor:
    """``(..., C, H, W)`` real channels -> ``(..., H, W)`` complex (C = 1: imaginary part 0)."""
    if y.shape[-3] == 2:
        return torch.complex(y[..., 0, :, :], y[..., 1, :, :])
    return y[..., 0, :, :].to(torch.complex128 if y.dtype == torch.float64 else torch.complex64)


def _to_channels(z: torch.Tensor, channels: int) -> torch.Tensor:
    """Inverse of :func:`_to_complex`; for C = 1 the (round-off) imaginary part is dropped."""
    if channels == 2:
        return torch.stack((z.real, z.imag), dim=-3)
    return z.real.unsqueeze(-3)


def _fft2(z: torch.Tensor) -> torch.Tensor:
    return torch.fft.fft2(z, norm="ortho")


def _ifft2(z: torch.Tensor) -> torch.Tensor:
    return torch.fft.ifft2(z, norm="ortho")


class _Data:
    """What the (x, v) step needs of the data: ``A^H f`` and its transform, the mask in DFT order.

    ``f`` is centred k-space ``(B, 2, H, W)`` with a mask ``(B, 1, 1|H, W)``, or an image
    ``(B, 1, H, W)`` for denoising (``mask=None``, ``m = 1``).
    """

    def __init__(self, f: torch.Tensor, mask: torch.Tensor | None):
        if mask is None:
            self.x0 = f
            self.m: torch.Tensor | float = 1.0
        else:
            centred = _to_complex(mask * f)
            image = torch.fft.fftshift(_ifft2(torch.fft.ifftshift(centred, dim=(-2, -1))), dim=(-2, -1))
            self.x0 = _to_channels(image, 2)
            self.m = torch.fft.ifftshift(mask[:, 0], dim=(-2, -1))  # (B, 1|H, W), uncentred like the loop's DFT
        self.transformed = _fft2(_to_complex(self.x0))  # F(A^H f) = M f in the loop's basis
        self.channels = f.shape[1]


def peak_of_adjoint(f: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``(B,)`` peak magnitude of ``A^H f`` (``f``, ``mask`` as for :func:`admm_tgv_channels`): the data's scale."""
    return magnitude(_Data(f, mask).x0).flatten(1).amax(1)


def default_rho(f: torch.Tensor, mask: torch.Tensor | None, weight: torch.Tensor, regulariser: str) -> torch.Tensor:
    """``(B,)`` penalty ``RHO_PER_WEIGHT[regulariser] * weight / peak |A^H f|`` clipped to ``RHO_RANGE``,
    ``weight`` ``(B|1,)`` the problem's weight (see :data:`RHO_PER_WEIGHT`); differentiable, so the
    iterates stay differentiable in the maps with the penalty they imply."""
    scale = peak_of_adjoint(f, mask).clamp_min(torch.finfo(f.dtype).tiny)
    rho = RHO_PER_WEIGHT[regulariser] * weight / scale
    return rho.clamp(*RHO_RANGE)


class FourierTGVSolve:
    """The exact (x, v) solve for a data weight ``m`` that is diagonal in the loop's DFT basis.

    ``(w1 (B, 2, C, H, W), w2 (B, 3, C, H, W), data_hat (B, H, W) complex) -> (x (B, C, H, W), v (B, 2, C, H, W))``
    minimising ``1/2 <x, m x> - <x, b> + rho/2 ||grad x - v - w1||^2 + kappa rho/2 ||E v - w2||^2`` where
    ``data_hat = F(b)`` (single-coil: ``b = A^H f``, ``m`` the mask). Coil splitting passes
    ``m = rho_coil`` and ``b = rho_coil * sum_c conj(S_c) w3_c`` as an image (``data_image``), whose
    transform shares the DFT of ``grad^T w1`` instead of costing one of its own. ``kappa`` is
    ``penalty_ratio`` (1: SPEC 2b).
    """

    def __init__(self, m: torch.Tensor | float, rho: Scalar, like: torch.Tensor, channels: int, penalty_ratio: float = 1.0):
        self.rho_images = _per_image(rho, 4)  # against images (B, C, H, W)
        self.rho = rho = _per_image(rho, 3)  # against spectra (B, H, W)
        self.const = _constants(like.shape[-2], like.shape[-1], like, penalty_ratio)
        self.penalty_ratio = penalty_ratio
        self.denominator = m + rho * self.const["s"]
        self.channels = channels
        self.grad, self.sym = PeriodicGradient(), PeriodicSymGradient()

    def __call__(
        self, w1: torch.Tensor, w2: torch.Tensor, data_hat: torch.Tensor | None = None, data_image: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        const, rho = self.const, self.rho
        first = self.grad.adjoint(w1)
        if data_image is not None:
            first = first + data_image / self.rho_images
        second = self.sym.adjoint(w2) if self.penalty_ratio == 1.0 else self.penalty_ratio * self.sym.adjoint(w2)
        rhs = torch.cat((first[:, None], second - w1), dim=1)  # (B, 3, C, H, W)
        spectra = _fft2(_to_complex(rhs))
        g, r0, r1 = spectra[:, 0], spectra[:, 1], spectra[:, 2]
        numerator = rho * (g + const["h0_conj"] * r0 + const["h1_conj"] * r1)
        x_hat = (numerator if data_hat is None else data_hat + numerator) / self.denominator
        v0 = const["p11"] * r0 + const["p12"] * r1 + const["h0"] * x_hat
        v1 = const["p12_conj"] * r0 + const["p22"] * r1 + const["h1"] * x_hat
        images = _to_channels(_ifft2(torch.stack((x_hat, v0, v1), dim=1)), self.channels)
        return images[:, 0], images[:, 1:]


class TGVStep:
    """The exact (x, v) step: ``(w1 (B, 2, C, H, W), w2 (B, 3, C, H, W)) -> (x (B, C, H, W), v (B, 2, C, H, W))``.

    Minimises ``1/2 ||A x - f||^2 + rho/2 ||grad x - v - w1||^2 + kappa rho/2 ||E v - w2||^2`` (the
    E-term under the symmetric-tensor norm) for the data, ``rho`` and ``kappa`` it was built with.
    """

    def __init__(self, f: torch.Tensor, mask: torch.Tensor | None, rho: Scalar, penalty_ratio: float = 1.0):
        self.data = _Data(f, mask)
        self.solve = FourierTGVSolve(self.data.m, rho, f, self.data.channels, penalty_ratio)
        self.grad, self.sym = self.solve.grad, self.solve.sym

    def __call__(self, w1: torch.Tensor, w2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.solve(w1, w2, data_hat=self.data.transformed)

    def with_penalty(self, rho: Scalar) -> TGVStep:
        """The same step at penalty ``rho``, sharing this one's data (``A^H f`` and its transform)."""
        other = copy.copy(self)
        other.solve = FourierTGVSolve(self.data.m, rho, self.data.x0, self.data.channels, self.solve.penalty_ratio)
        return other


class FourierTVSolve:
    """The exact x solve of TV for a Fourier-diagonal data weight ``m``: ``X = (F(b) + rho F(grad^T w)) / (m + rho |a|^2)``,
    with ``F(b)`` given as ``data_hat`` or ``b`` as ``data_image`` (as in :class:`FourierTGVSolve`)."""

    def __init__(self, m: torch.Tensor | float, rho: Scalar, like: torch.Tensor, channels: int):
        self.rho_images = _per_image(rho, 4)
        self.rho = rho = _per_image(rho, 3)
        self.denominator = m + rho * _constants(like.shape[-2], like.shape[-1], like)["tv"]
        self.channels = channels
        self.grad = PeriodicGradient()

    def __call__(self, w: torch.Tensor, data_hat: torch.Tensor | None = None, data_image: torch.Tensor | None = None) -> torch.Tensor:
        rhs = self.grad.adjoint(w)
        if data_image is not None:
            rhs = rhs + data_image / self.rho_images
        numerator = self.rho * _fft2(_to_complex(rhs))
        x_hat = (numerator if data_hat is None else data_hat + numerator) / self.denominator
        return _to_channels(_ifft2(x_hat), self.channels)


class TVStep:
    """The exact x step of TV: ``w (B, 2, C, H, W) -> x (B, C, H, W)`` minimising
    ``1/2 ||A x - f||^2 + rho/2 ||grad x - w||^2``: ``X = (M f + rho F(grad^T w)) / (m + rho |a|^2)``."""

    def __init__(self, f: torch.Tensor, mask: torch.Tensor | None, rho: Scalar):
        self.data = _Data(f, mask)
        self.solve = FourierTVSolve(self.data.m, rho, f, self.data.channels)
        self.grad = self.solve.grad

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return self.solve(w, data_hat=self.data.transformed)


def admm_tgv_channels(
    f: torch.Tensor,
    lambda0: torch.Tensor,
    lambda1: torch.Tensor,
    mask: torch.Tensor | None,
    iterations: int,
    rho: Scalar = DEFAULT_RHO,
    alpha: float = DEFAULT_ALPHA,
    callback: Callable[[int, torch.Tensor, torch.Tensor], bool | None] | None = None,
    checkpoint_every: int | None = None,
    penalty_ratio: float = 1.0,
    rho_factors: Sequence[float] | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``iterations`` ADMM iterations of periodic TGV; returns ``(x (B, C, H, W), v (B, 2, C, H, W))``.

    ``f``: centred k-space ``(B, 2, H, W)`` with ``mask`` ``(B, 1, 1|H, W)`` (sampling the
    centre), or a denoising image ``(B, 1, H, W)`` with ``mask=None``; ``lambda0`` / ``lambda1``
    ``(B, H, W)`` or broadcastable; ``rho`` a number, a 0-d tensor or one per image ``(B,)``.
    ``callback(k, x, v)`` runs after iteration ``k`` (True stops). ``penalty_ratio`` ``kappa``
    gives the ``z2 = E v`` constraint the penalty ``kappa rho`` (its scaled dual and threshold
    ``L0 / (kappa rho)`` follow); 1 is SPEC 2b's single penalty. Every ``kappa`` has the same
    minimiser; a larger one flattens strongly regularised regions in fewer iterations
    (benchmarks/README.md, "The penalty of the E v constraint"). ``rho_factors`` (one positive
    number per iteration, e.g. :func:`ramp_factors`, or a 1-D tensor, through which the result is
    differentiable: a learned schedule) makes the penalty a per-iteration schedule
    (SPEC 2b allows one), ``rho_factors[k] * rho`` in iteration k; the scaled duals are rescaled
    at each change, so the unscaled duals carry over (Boyd et al. 2011, section 3.4.1).
    """
    xv_step = TGVStep(f, mask, rho, penalty_ratio)
    grad, sym = xv_step.grad, xv_step.sym
    Step = tuple[TGVStep, torch.Tensor, torch.Tensor]

    def with_thresholds(solve: TGVStep, penalty: Scalar) -> Step:
        """``solve`` and the thresholds ``L1 / rho``, ``L0 / (kappa rho)`` at its penalty ``rho``."""
        fields = _per_image(penalty, 5)  # against (B, K, C, H, W)
        return solve, _as_field_bound(lambda1) / fields, _as_field_bound(lambda0) / (penalty_ratio * fields)

    if rho_factors is None:
        constant = with_thresholds(xv_step, rho)  # built once, outside the loop and outside checkpointed segments

        def prepare(u1: torch.Tensor, u2: torch.Tensor, k: torch.Tensor) -> tuple[Step, torch.Tensor, torch.Tensor]:
            return constant, u1, u2
    else:
        # a tensor stays one, so the schedule can be learned (differentiable); numbers are checked as numbers
        schedule: Sequence[float] | torch.Tensor = (
            rho_factors.reshape(-1) if isinstance(rho_factors, torch.Tensor) else [float(a) for a in rho_factors]
        )
        values = schedule.detach().tolist() if isinstance(schedule, torch.Tensor) else schedule
        if len(values) < iterations or not all(math.isfinite(a) and a > 0 for a in values):
            raise ValueError(f"rho_factors needs {iterations} finite positive factors, got {len(values)}")

        def prepare(u1: torch.Tensor, u2: torch.Tensor, k: torch.Tensor) -> tuple[Step, torch.Tensor, torch.Tensor]:
            # rebuilt every iteration (one (B, H, W) multiply-add): checkpointed segments recompute
            # exactly what they saved, and no iteration's constants outlive it; the index travels
            # in the state, so recomputed segments follow the same schedule
            index = int(k)
            # a tensor schedule rescales even between equal factors: the ratio's derivative is not 0 there
            if index and (isinstance(schedule, torch.Tensor) or values[index] != values[index - 1]):
                ratio = schedule[index - 1] / schedule[index]
                u1, u2 = u1 * ratio, u2 * ratio
            penalty = rho * schedule[index]
            return with_thresholds(xv_step.with_penalty(penalty), penalty), u1, u2

    def step(state):
        _, _, z1, z2, u1, u2, k = state
        (solve, t1, t0), u1, u2 = prepare(u1, u2, k)
        x, v = solve(z1 - u1, z2 - u2)
        z1, u1 = split_update(grad(x) - v, z1, u1, t1, alpha)
        z2, u2 = split_update(sym(v), z2, u2, t0, alpha)
        return x, v, z1, z2, u1, u2, k + 1

    x0 = xv_step.data.x0
    v0 = torch.zeros((x0.shape[0], 2, *x0.shape[1:]), dtype=x0.dtype, device=x0.device)
    q0 = torch.zeros((x0.shape[0], 3, *x0.shape[1:]), dtype=x0.dtype, device=x0.device)
    start = (x0, v0, grad(x0), q0, torch.zeros_like(v0), q0, torch.zeros((), dtype=torch.int64))
    x, v, *_ = _run(step, start, iterations, checkpoint_every, callback)
    return x, v


def ramp_factors(iterations: int, start: float, end: float) -> list[float]:
    """Penalty factors moving geometrically from ``start`` to ``end`` over ``iterations``:
    ``start^(1 - k/(T-1)) end^(k/(T-1))``."""
    last = max(iterations - 1, 1)
    return [start ** (1 - k / last) * end ** (k / last) for k in range(iterations)]


def admm_tv_channels(
    f: torch.Tensor,
    lam: torch.Tensor,
    mask: torch.Tensor | None,
    iterations: int,
    rho: Scalar = DEFAULT_RHO,
    alpha: float = DEFAULT_ALPHA,
    callback: Callable[[int, torch.Tensor], bool | None] | None = None,
    checkpoint_every: int | None = None,
) -> torch.Tensor:
    """The TV variant (no ``v``): ``X = (M f + rho F(grad^T w)) / (m + rho |a|^2)``; returns ``x (B, C, H, W)``."""
    x_step = TVStep(f, mask, rho)
    grad = x_step.grad
    threshold = _as_field_bound(lam) / _per_image(rho, 5)

    def step(state):
        _, z, u = state
        x = x_step(z - u)
        z, u = split_update(grad(x), z, u, threshold, alpha)
        return x, z, u

    x0 = x_step.data.x0
    tv_callback = None if callback is None else (lambda k, x, _z: callback(k, x))
    return _run(step, (x0, grad(x0), torch.zeros_like(grad(x0))), iterations, checkpoint_every, tv_callback)[0]
