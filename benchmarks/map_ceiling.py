"""How far can any maps take SPEC 2b's iteration? Per-pixel maps fitted to each slice's ground truth.

A bound, not a method: for each test slice the regularisation maps themselves (one value per pixel,
``log``-parametrised, started from the bundled model's maps) are optimised against the ground
truth through the deployed iteration (the model's own learned rho and alpha, its default T), with
Adam, for the objective named by ``--objective``: ``psnr`` (per-slice MSE), ``ssim`` (1 - SSIM of
the magnitudes) or ``train`` (the models' training loss, PSNR + 20 (1 - SSIM)). No network predicts
such maps, so what they reach is an upper bound on what any U-Net can make of the iteration at that
T; the TGV bound against the TV one (both iterations as SPEC 2b writes them) says whether the
iteration or the network limits U-TGV. ``--rho-schedule`` fits U-TGV's per-iteration penalty
schedule (SPEC 2b's other freedom; ``rho_factors`` of ``admm_tgv_channels``, from the model's own
schedule, or all ones) with its maps; ``--shared-schedule`` fits one schedule for all the slices
together with each slice's maps (what a model's one learned schedule could do with ideal maps).
Nothing here feeds back into a model or a default.

For each slice and regulariser the record holds the bundled model's own score (reproducing the
evaluation's), the fitted maps' score at the deployed T and, with ``--converged``, the fitted maps
solved further (the same maps at a larger T), all scored like ``tgv-deploy evaluate`` (magnitudes
cropped to the target, ``tgv_deploy.metrics``).

Usage: ``python benchmarks/map_ceiling.py [benchmarks/data/undersampled/*_R4_sigma0.05.h5] [--synthetic N] [--synthetic-masked N] --objective ssim
[--steps 150] [--lr 0.05] [--converged 512] [--rho-schedule | --shared-schedule] [--out benchmarks/results/map_ceiling/ssim.json]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tgv_deploy.data.synthetic import synthetic_image_v3
from tgv_deploy.evaluation.cases import Case, _crop, corrupt, undersampled_cases
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.machine import provenance
from tgv_deploy.metrics import BACKGROUND_FRACTION, psnr, ssim_by_region
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.models.utgv import UTGV, UnrolledModel
from tgv_deploy.registry import resolve_model
from tgv_deploy.solvers.admm import admm_tgv_channels
from tgv_deploy.training.data import masked_background
from tgv_deploy.training.trainer import ssim_torch

SSIM_WEIGHT = 20.0  # the training loss's weight (training/configs/*: ssim_weight)
SYNTHETIC_SEED = 63_000  # neither a training nor a test seed range, nor another study's


def magnitude_cropped(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``(1, 2, H, W)`` -> the magnitude ``(h, w)`` cut to the target's shape, as the evaluation crops."""
    mag = torch.sqrt(x[0].square().sum(0) + 1e-12)
    h, w = mag.shape
    top, left = (h - shape[0]) // 2, (w - shape[1]) // 2
    return mag[top : top + shape[0], left : left + shape[1]]


def objective(estimate: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Magnitudes ``(h, w)``; lower is better."""
    mse_db = 10.0 * torch.log10((estimate - target).square().mean().clamp_min(1e-20))
    one_minus_ssim = 1.0 - ssim_torch(target[None], estimate[None])[0]
    if kind == "psnr":
        return mse_db
    if kind == "ssim":
        return one_minus_ssim
    return mse_db + SSIM_WEIGHT * one_minus_ssim


class _Slice:
    """One case as the model solves it: normalised k-space, the model's maps, the target in those units."""

    def __init__(self, model: UnrolledModel, case: Case):
        f, self.mask, _ = case.model_inputs()
        self.target_np = case.target.astype(np.float32)
        with torch.no_grad():
            _, self.scale, self.f_normalised, self.start = model.normalised_inputs(f, self.mask)
        self.target = torch.from_numpy(self.target_np) / self.scale.reshape(())
        self.background = self.target_np < BACKGROUND_FRACTION * self.target_np.max()

    def solve(self, model: UnrolledModel, log_maps: torch.Tensor, t: int, log_factors: torch.Tensor | None) -> torch.Tensor:
        if log_factors is None:
            return model._admm(self.f_normalised, torch.exp(log_maps), self.mask, t)
        # the fitted schedule (one factor per fitted iteration), its last factor held beyond
        factors = torch.exp(torch.cat((log_factors, log_factors[-1:].expand(max(t - len(log_factors), 0)))))
        maps = torch.exp(log_maps)
        x, _ = admm_tgv_channels(self.f_normalised, maps[:, 0], maps[:, 1], self.mask, t, model.rho(), model.config.alpha,
                                 checkpoint_every=model.checkpoint_every, rho_factors=factors)
        return x

    def score(self, x: torch.Tensor) -> list[float]:
        """PSNR, SSIM, and SSIM's mean over background and over object windows."""
        image = magnitude_cropped(x * self.scale, self.target_np.shape).detach().numpy()
        return [psnr(self.target_np, image), *ssim_by_region(self.target_np, image)]

    def background_medians(self, log_maps: torch.Tensor) -> list[float]:
        """Each map's median over the background, relative to its median over the object."""
        maps = torch.exp(log_maps[0]).detach().numpy()
        cropped = [_crop(m, self.target_np.shape) for m in maps]
        return [float(np.median(m[self.background]) / np.median(m[~self.background])) for m in cropped]


def fit_maps(model: UnrolledModel, cases: list[Case], kind: str, steps: int, lr: float, converged: int | None,
             fit_iterations: int | None, fit_schedule: bool = False) -> list[dict]:
    """Per-pixel maps for each case, fitted together (the mean objective) with one penalty schedule
    for all of them when ``fit_schedule`` (one case: its own schedule); a record per case."""
    slices = [_Slice(model, case) for case in cases]
    iterations = model.config.default_iterations(False) if fit_iterations is None else fit_iterations
    log_factors = None
    if fit_schedule:  # from the model's own schedule where it learned one, else from its one rho
        own_factors = model.rho_factors(iterations)
        log_factors = (torch.zeros(iterations) if own_factors is None else torch.log(own_factors.detach())).requires_grad_(True)

    log_maps = [torch.log(piece.start.clamp_min(1e-8)).clone().requires_grad_(True) for piece in slices]
    with torch.no_grad():
        own = [piece.score(piece.solve(model, maps, iterations, log_factors)) for piece, maps in zip(slices, log_maps)]
    for scores in own:
        print(f"  before: PSNR {scores[0]:.2f} dB, SSIM {scores[1]:.4f} (background {scores[2]:.4f}, object {scores[3]:.4f})",
              file=sys.stderr, flush=True)
    optimiser = torch.optim.Adam(log_maps + ([] if log_factors is None else [log_factors]), lr=lr)
    best_loss, best = float("inf"), [maps.detach().clone() for maps in log_maps]
    best_factors = None if log_factors is None else log_factors.detach().clone()
    for step in range(steps):
        optimiser.zero_grad()
        loss = torch.stack([objective(magnitude_cropped(piece.solve(model, maps, iterations, log_factors), piece.target_np.shape),
                                      piece.target, kind) for piece, maps in zip(slices, log_maps)]).mean()
        loss.backward()
        if loss.item() < best_loss:  # the maps the loss was computed with, before this step moves them
            best_loss, best = loss.item(), [maps.detach().clone() for maps in log_maps]
            best_factors = None if log_factors is None else log_factors.detach().clone()
        optimiser.step()
        if (step + 1) % 25 == 0:
            print(f"  step {step + 1}/{steps}: objective {loss.item():.4f}", file=sys.stderr, flush=True)
    records = []
    with torch.no_grad():
        if log_factors is not None:
            log_factors.copy_(best_factors)
        for piece, own_scores, fitted_maps in zip(slices, own, best):
            record = {"model": own_scores, "fitted": piece.score(piece.solve(model, fitted_maps, iterations, log_factors)),
                      "iterations": iterations,
                      "model_background_over_object": piece.background_medians(torch.log(piece.start.clamp_min(1e-8))),
                      "fitted_background_over_object": piece.background_medians(fitted_maps)}
            if log_factors is not None:
                record["fitted_rho_factors"] = torch.exp(log_factors).tolist()
            if converged:
                record["fitted_converged"] = piece.score(piece.solve(model, fitted_maps, converged, log_factors))
                record["converged_iterations"] = converged
            records.append(record)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="undersampled fastMRI files (benchmarks/heldout.py --undersample)")
    parser.add_argument("--synthetic", type=int, default=0,
                        help="also N slices of the training generator (synthetic_image_v3, this study's own seeds), R = 4, sigma = 0.05")
    parser.add_argument("--synthetic-masked", type=int, default=0,
                        help="also N further slices of the training generator with their background masked to exact zeros "
                             "(training.data.masked_background, as DataConfig.masked_fraction trains on), R = 4, sigma = 0.05")
    parser.add_argument("--objective", choices=("psnr", "ssim", "train"), default="train")
    parser.add_argument("--models", default="utgv-mri,utv-mri")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--iterations", type=int, default=None, help="T to fit the maps through (default: each model's)")
    parser.add_argument("--converged", type=int, default=None, help="also score the fitted maps at this T")
    parser.add_argument("--rho-schedule", action="store_true",
                        help="U-TGV: fit a per-iteration penalty schedule (SPEC 2b allows one) with the maps")
    parser.add_argument("--shared-schedule", action="store_true",
                        help="U-TGV: one schedule for all the slices (a model's), fitted with every slice's maps together")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    def training_slice(index: int) -> np.ndarray:
        return synthetic_image_v3(np.random.default_rng([SYNTHETIC_SEED, index]), 128, 128)

    synthetic = [(f"synthetic-v3:{i}", training_slice(i)) for i in range(args.synthetic)]
    synthetic += [(f"synthetic-v3-masked:{i}", masked_background(training_slice(i)))
                  for i in range(args.synthetic, args.synthetic + args.synthetic_masked)]
    cases = undersampled_cases(args.files) + corrupt(synthetic, 4, 0.05)
    if not cases:
        raise SystemExit("give undersampled files, --synthetic N or --synthetic-masked N")
    paths = {name: resolve_model(name) for name in args.models.split(",")}
    models = {name: load_checkpoint(path).build().eval() for name, path in paths.items()}
    for model in models.values():
        for parameter in model.parameters():
            parameter.requires_grad_(False)
    results = [{"case": case.name, "setting": case.setting} for case in cases]
    started = time.perf_counter()
    # one fit per case, or (--shared-schedule) one for all cases with one schedule
    groups = [list(range(len(cases)))] if args.shared_schedule else [[index] for index in range(len(cases))]
    for group in groups:
        for name, model in models.items():
            print(f"[{group[-1] + 1}/{len(cases)}] {', '.join(cases[i].name for i in group)} {name} ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr, flush=True)
            records = fit_maps(model, [cases[i] for i in group], args.objective, args.steps, args.lr, args.converged, args.iterations,
                               (args.rho_schedule or args.shared_schedule) and isinstance(model, UTGV))
            for index, record in zip(group, records):
                results[index][name] = record
                fitted = record["fitted"]
                print(f"  fitted: PSNR {fitted[0]:.2f} dB, SSIM {fitted[1]:.4f} (background {fitted[2]:.4f}, object {fitted[3]:.4f})",
                      file=sys.stderr, flush=True)
    record = {"provenance": provenance({name: str(path) for name, path in paths.items()}), "objective": args.objective,
              "steps": args.steps, "lr": args.lr, "iterations": args.iterations, "rho_schedule": args.rho_schedule, "shared_schedule": args.shared_schedule, "background_below": BACKGROUND_FRACTION,
              "scores": ["psnr", "ssim", "ssim_background", "ssim_object"], "models": list(models), "cases": results}
    text = json.dumps(record, indent=1)
    if args.out is None:
        print(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(args.out, text.encode())


if __name__ == "__main__":
    main()
