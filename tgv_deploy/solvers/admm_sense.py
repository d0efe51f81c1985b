"""Multi-coil (SENSE) ADMM by coil splitting (SPEC section 2b, last paragraph).

Energy: ``1/2 sum_c ||M F S_c x - f_c||^2 + TGV(x)`` (or TV). ``A^H A = sum_c S_c^H F^H M F S_c``
is not Fourier-diagonal, so each coil image gets its own variable ``y_c = S_c x`` with penalty
``rho_coil`` (scaled duals ``u_c``), next to section 2b's ``z1 = grad x - v``, ``z2 = E v``. The
constraints' weight on ``x`` is ``sum_c |S_c|^2 + r^2`` with one more, data-free "virtual coil"
``y_0 = r x``, ``r = sqrt(1 - sum_c |S_c|^2)``: it makes the weight 1 at every pixel, so the (x, v)
step is the single-coil Fourier solve with ``m = rho_coil``, and it works for both kinds of map of
SPEC 1b (cropped to 0 outside the object, where ``r = 1``, or extended to unit norm, ``r = 0``).
Having no data term, the virtual coil's sub-step is ``y_0 = (relaxed) r x`` and its dual stays 0;
it is an exact reformulation, not an approximation: the minimiser is that of the energy above.

Each iteration (``alpha`` over-relaxes every constraint alike)::

    w1 = z1 - u1,  w2 = z2 - u2,  b = sum_c conj(S_c) (y_c - u_c) + r y_0
    (x, v) = argmin rho_coil/2 ||x - b||^2 + rho/2 ||grad x - v - w1||^2 + kappa rho/2 ||E v - w2||^2
    g_c = alpha S_c x + (1 - alpha) y_c,   y_0 = alpha r x + (1 - alpha) y_0
    g1, g2, z1, z2, u1, u2 as in section 2b (kappa = penalty_ratio, 1 in SPEC 2b: threshold L0 / (kappa rho))
    y_c = argmin 1/2 ||M F y - f_c||^2 + rho_coil/2 ||y - g_c - u_c||^2 = F^H (M f_c + rho_coil F(g_c + u_c)) / (m + rho_coil)
    u_c = u_c + g_c - y_c

Cost: the 3 + 3 DFTs of the (x, v) step plus the coil step, a filter of each coil image by a
factor of the mask's frequencies; for line masks that is one 1D transform pair along each row (the
last axis; the row transforms would cancel), about a quarter of a 2D pair as real matrix products (the exported
graph applies it as one ``2W x 2W`` matrix). Conjugate gradients inside the (x, v) step would cost
2C 2D DFTs per inner step, and PDHG converges slowly (benchmarks/README.md, "Multi-coil: the scheme").

Shapes: k-space ``f (B, C, 2, H, W)`` centred, maps ``S (B, C, 2, H, W)`` with
``sum_c |S_c|^2 <= 1``, mask ``(B, 1, 1|H, W)`` shared by the coils, image ``x (B, 2, H, W)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from tgv_deploy.coils.maps import MAP_NORM_TOLERANCE
from tgv_deploy.solvers.admm import (
    DEFAULT_ALPHA,
    DEFAULT_RHO,
    FourierTGVSolve,
    FourierTVSolve,
    _ifft2,
    _per_image,
    _to_channels,
    _to_complex,
    require_centre_sampled,
    split_update,
)
from tgv_deploy.solvers.pdhg import Scalar, _as_field_bound, _run

#: Coil penalty on data normalised as the models normalise it: the fastest to the minimiser at T = 64
#: and 128 of 0.25 ... 4, extended and cropped maps (benchmarks/results/convergence_sense).
DEFAULT_RHO_COIL = 0.25



def _centred_ifft2(k: torch.Tensor) -> torch.Tensor:
    return torch.fft.fftshift(_ifft2(torch.fft.ifftshift(k, dim=(-2, -1))), dim=(-2, -1))


class CoilSplit:
    """The coil variables' data: maps, the virtual coil's weight, the coils' data share.

    ``f (B, C, 2, H, W)``, ``maps (B, C, 2, H, W)``, ``mask (B, 1, 1|H, W)``, ``alpha`` the relaxation. Coil images are complex
    ``(B, C, H, W)``. The coil step multiplies each coil's spectrum by a factor of the mask alone, so
    for a line mask ``(B, 1, 1, W)`` the row transforms cancel (``F^H D F = F_w^H D F_w`` for ``D``
    constant along the rows) and it runs as 1D transforms along each row (the last axis); a 2D mask takes the
    2D DFT. Either way in the loop's unshifted DFT order, as in :mod:`.admm`.
    """

    def __init__(self, f: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor, rho_coil: Scalar, alpha: float = DEFAULT_ALPHA):
        if f.ndim != 5 or f.shape[2] != 2 or maps.shape != f.shape:
            raise ValueError(f"coil k-space and maps must both be (B, C, 2, H, W), got {tuple(f.shape)} and {tuple(maps.shape)}")
        require_centre_sampled(mask)
        self.maps = _to_complex(maps)  # (B, C, H, W)
        self.maps_conj = self.maps.conj().resolve_conj()  # stored resolved: a lazy conj view is slower in products
        weight = self.maps.abs().square().sum(1)  # (B, H, W)
        if bool((weight > 1 + MAP_NORM_TOLERANCE).any()):
            raise ValueError(f"coil maps must satisfy sum_c |S_c|^2 <= 1, found {float(weight.max()):.4g}")
        self.virtual = torch.sqrt(torch.clamp(1 - weight, min=0))  # (B, H, W)
        coil_images = _centred_ifft2(_to_complex(mask[:, None] * f))  # A_c^H f_c
        self.rho = _per_image(rho_coil, 4)  # against (B, C, H, W)
        self.rho_image = _per_image(rho_coil, 3)  # against (B, H, W)
        self.dims = (-1,) if mask.shape[-2] == 1 else (-2, -1)
        shifted = torch.fft.ifftshift(mask, dim=self.dims)
        denominator = shifted + self.rho
        self.keep = self.rho / denominator
        # F^H (M f_c / (m + rho_coil)); the factor m keeps round-off at unsampled frequencies from being scaled by 1 / rho_coil
        self.data_share = self._filter(coil_images, shifted / denominator)
        self.x0 = (self.maps_conj * coil_images).sum(1)  # A^H f, (B, H, W)
        # once per run, so each relaxed coil variable is one fused pass per iteration
        self.alpha, self.alpha_maps, self.alpha_virtual = alpha, alpha * self.maps, alpha * self.virtual

    def _filter(self, images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        """``F^H (factor F images)`` for a factor of the mask's frequencies."""
        return torch.fft.ifftn(factor * torch.fft.fftn(images, dim=self.dims, norm="ortho"), dim=self.dims, norm="ortho")

    def combine(self, y: torch.Tensor, u: torch.Tensor, y0: torch.Tensor) -> torch.Tensor:
        """``rho_coil * (sum_c conj(S_c) (y_c - u_c) + r y_0)`` as image channels ``(B, 2, H, W)``."""
        b = (self.maps_conj * (y - u)).sum(1) + self.virtual * y0
        return _to_channels(self.rho_image * b, 2)

    def update(self, x: torch.Tensor, y: torch.Tensor, u: torch.Tensor, y0: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The coil variables after the (x, v) step, ``x`` complex ``(B, H, W)``: ``(y, u, y_0)``.

        ``g_c = alpha S_c x + (1 - alpha) y_c``, ``y_c = F^H (M f_c + rho_coil F t_c) / (m + rho_coil)``
        for ``t = g + u``, ``u = t - y``; the data-free coil's ``y_0 = alpha r x + (1 - alpha) y_0``.
        """
        g = torch.add(self.alpha_maps * x[:, None], y, alpha=1 - self.alpha)
        y0 = torch.add(self.alpha_virtual * x, y0, alpha=1 - self.alpha)
        t = g + u
        y = self._filter(t, self.keep) + self.data_share
        return y, t - y, y0


def _start(split: CoilSplit):
    x0 = split.x0
    return _to_channels(x0, 2), split.maps * x0[:, None], split.virtual * x0


def admm_tgv_sense_channels(
    f: torch.Tensor,
    maps: torch.Tensor,
    mask: torch.Tensor,
    lambda0: torch.Tensor,
    lambda1: torch.Tensor,
    iterations: int,
    rho: Scalar = DEFAULT_RHO,
    alpha: float = DEFAULT_ALPHA,
    rho_coil: Scalar = DEFAULT_RHO_COIL,
    callback: Callable[[int, torch.Tensor, torch.Tensor], bool | None] | None = None,
    checkpoint_every: int | None = None,
    penalty_ratio: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``iterations`` coil-splitting ADMM iterations of periodic SENSE-TGV; ``(x (B, 2, H, W), v (B, 2, 2, H, W))``.

    Maps ``lambda0`` / ``lambda1`` ``(B, H, W)`` or broadcastable; ``rho`` and ``rho_coil`` numbers,
    0-d tensors or one per image ``(B,)``. ``callback(k, x, v)`` after iteration ``k`` (True stops).
    ``penalty_ratio``: the ``E v`` constraint's penalty over ``rho``, as in
    :func:`tgv_deploy.solvers.admm.admm_tgv_channels`.
    """
    split = CoilSplit(f, maps, mask, rho_coil, alpha)
    solve = FourierTGVSolve(split.rho_image, rho, f[:, 0], 2, penalty_ratio)
    grad, sym = solve.grad, solve.sym
    rho_fields = _per_image(rho, 5)
    t1, t0 = _as_field_bound(lambda1) / rho_fields, _as_field_bound(lambda0) / (penalty_ratio * rho_fields)

    def step(state):
        _, _, z1, z2, u1, u2, y, u, y0 = state
        x, v = solve(z1 - u1, z2 - u2, data_image=split.combine(y, u, y0))
        z1, u1 = split_update(grad(x) - v, z1, u1, t1, alpha)
        z2, u2 = split_update(sym(v), z2, u2, t0, alpha)
        y, u, y0 = split.update(_to_complex(x), y, u, y0)
        return x, v, z1, z2, u1, u2, y, u, y0

    x0, y, y0 = _start(split)
    v0 = torch.zeros((x0.shape[0], 2, *x0.shape[1:]), dtype=x0.dtype, device=x0.device)
    q0 = torch.zeros((x0.shape[0], 3, *x0.shape[1:]), dtype=x0.dtype, device=x0.device)
    state = (x0, v0, grad(x0), q0, torch.zeros_like(v0), q0, y, torch.zeros_like(y), y0)
    x, v, *_ = _run(step, state, iterations, checkpoint_every, callback)
    return x, v


def admm_tv_sense_channels(
    f: torch.Tensor,
    maps: torch.Tensor,
    mask: torch.Tensor,
    lam: torch.Tensor,
    iterations: int,
    rho: Scalar = DEFAULT_RHO,
    alpha: float = DEFAULT_ALPHA,
    rho_coil: Scalar = DEFAULT_RHO_COIL,
    callback: Callable[[int, torch.Tensor], bool | None] | None = None,
    checkpoint_every: int | None = None,
) -> torch.Tensor:
    """The TV variant of :func:`admm_tgv_sense_channels` (no ``v``); returns ``x (B, 2, H, W)``."""
    split = CoilSplit(f, maps, mask, rho_coil, alpha)
    solve = FourierTVSolve(split.rho_image, rho, f[:, 0], 2)
    grad = solve.grad
    threshold = _as_field_bound(lam) / _per_image(rho, 5)

    def step(state):
        _, z, w, y, u, y0 = state
        x = solve(z - w, data_image=split.combine(y, u, y0))
        z, w = split_update(grad(x), z, w, threshold, alpha)
        y, u, y0 = split.update(_to_complex(x), y, u, y0)
        return x, z, w, y, u, y0

    x0, y, y0 = _start(split)
    tv_callback = None if callback is None else (lambda k, x, _z: callback(k, x))
    state = (x0, grad(x0), torch.zeros_like(grad(x0)), y, torch.zeros_like(y), y0)
    return _run(step, state, iterations, checkpoint_every, tv_callback)[0]
