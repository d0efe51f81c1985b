"""A learned per-iteration penalty schedule for a U-TGV model's own maps (SPEC 2b allows one).

``benchmarks/rho_schedule.py`` tried hand-made schedules (geometric, alternating); this one learns
it: the model's maps stay as the model predicts them, and one schedule of T penalty factors
(``rho_k = rho * exp(s_k)``, from the model's own: ``s = 0``, its constant learned rho, or its
learned schedule) is fitted by Adam to the models' training loss (PSNR + w (1 - SSIM), w = 20 as in
training unless ``--ssim-weight``) over slices of the training generator (``synthetic_image_v3``,
this study's own seed range) at R = 4 and 8 and three noise levels. It is then scored, against the
model's own schedule, on the evaluation's synthetic test images (another seed range, never fitted
on; noise drawn per setting with this script's seeds, so its scores differ a little from
``evaluate``'s on the same images): PSNR, SSIM and SSIM over background / object (target below 2% of
its maximum). The fitted factors are recorded.

Usage: ``python benchmarks/rho_schedule_fit.py [--model utgv-mri] [--fit-images 4] [--test-images 6]
[--steps 80] [--lr 0.05] [--ssim-weight 20] [--out benchmarks/results/convergence/rho_schedule_fit.json]``
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
from tgv_deploy.evaluation.cases import Case, corrupt, ground_truth_images
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.machine import provenance
from tgv_deploy.metrics import psnr, ssim_by_region
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.models.utgv import UTGV
from tgv_deploy.registry import resolve_model
from tgv_deploy.solvers.admm import admm_tgv_channels
from tgv_deploy.training.trainer import ssim_torch

FIT_SEED = 61_000  # neither a training nor a test seed range, nor another study's
SIGMAS = (0.02, 0.05, 0.1)
ACCELERATIONS = (4, 8)
SSIM_WEIGHT = 20.0  # the training loss's (training/configs/*: ssim_weight)


class Problem:
    """One case as the model solves it: normalised k-space, the model's maps, the target in the same units."""

    def __init__(self, model: UTGV, case: Case):
        f, mask, _ = case.model_inputs()
        with torch.no_grad():
            _, self.scale, self.f, self.maps = model.normalised_inputs(f, mask)
        self.mask, self.case = mask, case
        self.target = torch.from_numpy(case.target.astype(np.float32)) / self.scale.reshape(())

    def magnitude(self, model: UTGV, iterations: int, factors: torch.Tensor | None) -> torch.Tensor:
        x, _ = admm_tgv_channels(self.f, self.maps[:, 0], self.maps[:, 1], self.mask, iterations, model.rho(), model.config.alpha,
                                 checkpoint_every=model.checkpoint_every, rho_factors=factors)
        return torch.sqrt(x[0].square().sum(0) + 1e-12)


def loss(problem: Problem, estimate: torch.Tensor, ssim_weight: float) -> torch.Tensor:
    mse_db = 10.0 * torch.log10((estimate - problem.target).square().mean().clamp_min(1e-20))
    return mse_db + ssim_weight * (1.0 - ssim_torch(problem.target[None], estimate[None])[0])


def scores(problem: Problem, estimate: torch.Tensor) -> list[float]:
    """PSNR, SSIM, and SSIM over background and object windows, as the evaluation scores magnitudes."""
    target = problem.case.target
    image = (estimate * problem.scale.reshape(())).detach().numpy()
    return [psnr(target, image), *ssim_by_region(target, image)]


def cases(images) -> list[tuple[str, Case]]:
    return [(f"R={r}, sigma={s:g}", case) for r in ACCELERATIONS for s in SIGMAS for case in corrupt(images, r, s, seed=r * 1000 + int(s * 1000))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="utgv-mri")
    parser.add_argument("--fit-images", type=int, default=4)
    parser.add_argument("--test-images", type=int, default=6)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--ssim-weight", type=float, default=SSIM_WEIGHT, help="dB of PSNR per unit of SSIM in the fitted loss")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/convergence/rho_schedule_fit.json"))
    args = parser.parse_args()
    path = resolve_model(args.model)
    model = load_checkpoint(path).build().eval()
    if not isinstance(model, UTGV) or model.config.solver != "admm" or model.config.task != "mri" or model.config.penalty_ratio != 1.0:
        raise SystemExit("--model must be an ADMM U-TGV MRI model with SPEC 2b's penalty (penalty_ratio 1)")
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    iterations = model.config.default_iterations(False)
    fit_images = [(f"synthetic-v3:{i}", synthetic_image_v3(np.random.default_rng([FIT_SEED, i]), 128, 128)) for i in range(args.fit_images)]
    fit = [Problem(model, case) for _, case in cases(fit_images)]
    test = [(setting, Problem(model, case)) for setting, case in cases(ground_truth_images([], args.test_images, (128, 128)))]

    own = model.rho_factors(iterations)
    # A scheduled model's fit starts from (and is compared with) its own learned schedule.
    log_factors = (torch.zeros(iterations) if own is None else torch.log(own)).clone().requires_grad_(True)
    optimiser = torch.optim.Adam([log_factors], lr=args.lr)
    started, history = time.perf_counter(), []
    for step in range(args.steps):
        optimiser.zero_grad()
        total = torch.stack([loss(p, p.magnitude(model, iterations, torch.exp(log_factors)), args.ssim_weight) for p in fit]).mean()
        total.backward()
        optimiser.step()
        history.append(float(total.detach()))
        print(f"step {step + 1}/{args.steps}: fit loss {float(total):.4f} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)

    rows = []
    with torch.no_grad():
        factors = torch.exp(log_factors)
        own_label = "learned rho (constant)" if own is None else "the model's learned schedule"
        for label, schedule in ((own_label, own), ("fitted schedule", factors)):
            by_setting: dict[str, list[list[float]]] = {}
            for setting, problem in test:
                by_setting.setdefault(setting, []).append(scores(problem, problem.magnitude(model, iterations, schedule)))
            for setting, values in by_setting.items():
                mean = np.mean(values, axis=0)
                rows.append({"schedule": label, "setting": setting, "psnr": float(mean[0]), "ssim": float(mean[1]),
                             "ssim_background": float(mean[2]), "ssim_object": float(mean[3])})
                print(f"{label}, {setting}: {mean[0]:.2f} dB, SSIM {mean[1]:.4f} ({mean[2]:.4f} / {mean[3]:.4f})", file=sys.stderr, flush=True)
    payload = {"provenance": provenance({"U-TGV": str(path)}), "iterations": iterations, "learned_rho": float(model.rho()),
               "alpha": model.config.alpha, "fit_images": args.fit_images, "test_images": args.test_images, "steps": args.steps,
               "lr": args.lr, "ssim_weight": args.ssim_weight, "fit_loss": history, "factors": factors.tolist(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, (json.dumps(payload, indent=1) + "\n").encode())
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
