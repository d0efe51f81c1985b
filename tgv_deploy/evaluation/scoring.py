"""Scoring one case: zero-filled (or noisy input), converged oracle scalar TV and TGV, U-TV and U-TGV.

Scalar baselines are tuned per image against the ground truth (an oracle: the strongest scalar
competitor) and solved to convergence (:mod:`tgv_deploy.baselines`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from tgv_deploy.baselines import best_scalar_tgv, best_scalar_tv, scalar_tgv_at, scalar_tv_at
from tgv_deploy.dft import ifft2c
from tgv_deploy.errors import InputError
from tgv_deploy.evaluation.cases import Case, _crop, _pad_target
from tgv_deploy.metrics import psnr, ssim
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.registry import resolve_model

METHODS = ("zero-filled", "noisy input", "scalar TV", "scalar TGV", "U-TV", "U-TGV")
#: A reused baseline must reproduce its recorded PSNR to this many dB: the same converged solve.
REUSE_TOLERANCE_DB = 0.01


@dataclass
class Outcome:
    case: Case
    images: dict[str, np.ndarray] = field(default_factory=dict)
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)
    maps: np.ndarray | None = None
    params: dict[str, dict[str, float]] = field(default_factory=dict)


def scalar_baselines(f: torch.Tensor, target: np.ndarray, mask: torch.Tensor | None, max_iterations: int, criterion: str,
                     coil_maps: torch.Tensor | None = None, known: dict | None = None):
    """The oracle-tuned scalar TV and TGV of one case, on the same search grids for every task.

    ``known``: a case record of an earlier ``results.json`` (``params`` of "scalar TV" and "scalar
    TGV"): its tuned parameters are solved again instead of searched (the oracle does not depend on
    the models, and the search costs some 50 converged solves)."""
    if known is not None:
        tv_params, tgv_params = known["params"]["scalar TV"], known["params"]["scalar TGV"]
        return (scalar_tv_at(f, target, tv_params["lambda"], mask, max_iterations, criterion, coil_maps),
                scalar_tgv_at(f, target, tgv_params["lambda0"], tgv_params["lambda1"], mask, max_iterations, criterion, coil_maps))
    tv = best_scalar_tv(f, target, mask=mask, max_iterations=max_iterations, criterion=criterion,
                        lambda_grid=np.linspace(-3.5, -0.5, 7), rounds=2, points=3, coil_maps=coil_maps)
    tgv = best_scalar_tgv(f, target, mask=mask, max_iterations=max_iterations, criterion=criterion,
                          lambda1_grid=np.linspace(-3.5, -0.5, 7), ratio_grid=np.log10([1.0, 2.0, 4.0]), rounds=2, points=3,
                          coil_maps=coil_maps)
    return tv, tgv


def check_reused(out: Outcome, known: dict | None, methods: tuple[str, ...]) -> None:
    """Refuse reused baselines unless the case is the recorded one (same zero-filled or noisy-input
    scores) and the re-solved baselines reproduce their recorded PSNR."""
    if known is None:
        return
    for method in methods:
        if method not in known["scores"] or method not in out.scores:
            continue
        recorded, now = known["scores"][method][0], out.scores[method][0]
        limit = 1e-6 if method in ("zero-filled", "noisy input") else REUSE_TOLERANCE_DB
        if abs(recorded - now) > limit:
            raise InputError(f"--baselines-from: case {out.case.name} ({out.case.setting}) gives {method} {now:.6f} dB, "
                             f"the recorded run {recorded:.6f} dB: not the same case or solver")


def evaluate_denoise_case(case: Case, utgv, utv, baseline_max_iterations: int, criterion: str = "psnr",
                          iterations: int | None = None, known: dict | None = None) -> Outcome:
    f = torch.from_numpy(case.kspace[None, None].astype(np.float32))
    out = Outcome(case)
    out.images["noisy input"] = case.kspace
    out.scores["noisy input"] = (psnr(case.target, case.kspace), ssim(case.target, case.kspace))
    check_reused(out, known, ("noisy input",))
    tv, tgv = scalar_baselines(f, case.target, None, baseline_max_iterations, criterion, known=known)
    out.images["scalar TV"], out.params["scalar TV"] = np.abs(tv.image[0].numpy()), {**tv.params, "iterations": tv.iterations}
    out.images["scalar TGV"], out.params["scalar TGV"] = np.abs(tgv.image[0].numpy()), {**tgv.params, "iterations": tgv.iterations}
    for name, model in (("U-TV", utv), ("U-TGV", utgv)):
        if model is None:
            continue
        with torch.no_grad():
            x, maps = model(f, iterations=iterations)
        out.images[name] = np.abs(x[0, 0].numpy())
        if name == "U-TGV":
            out.maps = maps[0].numpy()
    for name, image in out.images.items():
        if name not in out.scores:  # the noisy input was scored first, to check a reused record
            out.scores[name] = (psnr(case.target, image), ssim(case.target, image))
    check_reused(out, known, ("scalar TV", "scalar TGV"))
    return out


def evaluate_case(case: Case, utgv, utv, baseline_max_iterations: int, criterion: str = "psnr",
                  iterations: int | None = None, known: dict | None = None) -> Outcome:
    """Score one MRI case; ``iterations`` is the models' T (``None``: each model's own default);
    ``known``: reuse the scalar baselines of this case's record in an earlier results.json."""
    f, mask, coil_maps = case.model_inputs()
    k = case.kspace
    target = case.target
    out = Outcome(case)

    def crop(x):
        return _crop(np.abs(x), target.shape)

    zero_filled = ifft2c(k * case.mask)
    if case.maps is not None:  # coil-combined with the same maps the solvers get
        zero_filled = (np.conj(case.maps) * zero_filled).sum(0)
    out.images["zero-filled"] = crop(zero_filled)
    out.scores["zero-filled"] = (psnr(target, out.images["zero-filled"]), ssim(target, out.images["zero-filled"]))
    check_reused(out, known, ("zero-filled",))

    def search_target_shape(image_channels: torch.Tensor) -> np.ndarray:
        return crop(np.sqrt((image_channels.numpy() ** 2).sum(0)))

    tv, tgv = scalar_baselines(f, _pad_target(target, k.shape[-2:]), mask, baseline_max_iterations, criterion, coil_maps, known)
    out.images["scalar TV"], out.params["scalar TV"] = search_target_shape(tv.image), {**tv.params, "iterations": tv.iterations}
    out.images["scalar TGV"], out.params["scalar TGV"] = search_target_shape(tgv.image), {**tgv.params, "iterations": tgv.iterations}
    for name, model in (("U-TV", utv), ("U-TGV", utgv)):
        if model is None:
            continue
        with torch.no_grad():
            x, maps = model(f, mask, iterations=iterations, coil_maps=coil_maps)
        out.images[name] = crop(torch.sqrt(x[0].square().sum(0)).numpy())
        if name == "U-TGV":
            out.maps = np.stack([_crop(m, target.shape) for m in maps[0].numpy()])
    for name, image in out.images.items():
        if name not in out.scores:  # zero-filled was scored first, to check a reused record
            out.scores[name] = (psnr(target, image), ssim(target, image))
    check_reused(out, known, ("scalar TV", "scalar TGV"))
    return out


def load_model(name: str | None):
    if name is None:
        return None
    return load_checkpoint(resolve_model(name)).build()

