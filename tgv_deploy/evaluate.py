"""``tgv-deploy evaluate``: zero-filled, best scalar TV, best scalar TGV, U-TV and U-TGV side by side.

Test images come from fully sampled fastMRI files (ground truth ``F^H k``), from already
undersampled fastMRI files with a ``mask`` and a ``reconstruction_esc`` target, or from a seeded
synthetic test set that training never uses (a separate seed range). Scalar baselines are
tuned per image against the ground truth (an oracle: the strongest scalar competitor).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch

from tgv_deploy.baselines import best_scalar_tgv, best_scalar_tv
from tgv_deploy.dft import fft2c, ifft2c
from tgv_deploy.data.fastmri import read_fastmri
from tgv_deploy.data.masks import default_center_fraction, make_mask
from tgv_deploy.data.noise import add_image_noise, add_kspace_noise
from tgv_deploy.data.synthetic import synthetic_image
from tgv_deploy.errors import InputError
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.metrics import psnr, ssim
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.registry import resolve_model

METHODS = ("zero-filled", "noisy input", "scalar TV", "scalar TGV", "U-TV", "U-TGV")
TEST_SEED = 990_000  # synthetic test images: far from any training or validation seed


@dataclass
class Case:
    """One test slice: undersampled k-space ``(H, W)``, mask ``(W,)``, magnitude target ``(h, w)``."""

    name: str
    kspace: np.ndarray
    mask: np.ndarray | None
    target: np.ndarray
    setting: str


@dataclass
class Outcome:
    case: Case
    images: dict[str, np.ndarray] = field(default_factory=dict)
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)
    maps: np.ndarray | None = None
    params: dict[str, dict[str, float]] = field(default_factory=dict)


def _crop(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = image.shape
    th, tw = shape
    top, left = (h - th) // 2, (w - tw) // 2
    return image[top : top + th, left : left + tw]


def ground_truth_images(files: list[Path], synthetic: int, size: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
    images = []
    for path in files:
        volume = read_fastmri(path)
        if volume.mask is not None:
            continue  # already undersampled: handled by undersampled_cases
        if volume.multicoil:
            raise InputError(f"{path}: multi-coil evaluation is not supported yet")
        for s, k in enumerate(volume.kspace):
            image = ifft2c(k)
            images.append((f"{path.name}:{s}", image / np.abs(image).max()))
    for i in range(synthetic):
        images.append((f"synthetic:{i}", synthetic_image(np.random.default_rng([TEST_SEED, i]), *size)))
    return images


def undersampled_cases(files: list[Path]) -> list[Case]:
    cases = []
    for path in files:
        volume = read_fastmri(path)
        if volume.mask is None:
            continue
        if volume.target is None:
            raise InputError(f"{path}: an undersampled file needs a 'reconstruction_esc' target for evaluation")
        for s, k in enumerate(volume.kspace):
            cases.append(Case(f"{path.name}:{s}", k, volume.mask[s], volume.target[s], "file"))
    return cases


def corrupt(images, acceleration: float, sigma: float, seed: int = 0) -> list[Case]:
    cases = []
    mask_fn = make_mask("equispaced", default_center_fraction(acceleration), acceleration)
    for i, (name, image) in enumerate(images):
        rng = np.random.default_rng([seed, i])
        mask = mask_fn(image.shape[-1], seed=int(rng.integers(2**31)))
        k = add_kspace_noise(fft2c(image), mask, sigma, rng)
        cases.append(Case(name, k, mask, np.abs(image).astype(np.float32), f"R={acceleration:g}, sigma={sigma:g}"))
    return cases


def corrupt_images(images, sigma: float, seed: int = 0) -> list[Case]:
    """Denoising cases: real images with Gaussian noise (``kspace`` holds the noisy image, no mask)."""
    cases = []
    for i, (name, image) in enumerate(images):
        target = np.abs(image).astype(np.float32)
        noisy = add_image_noise(target, sigma, np.random.default_rng([seed, i]))
        cases.append(Case(name, noisy, None, target, f"denoise, sigma={sigma:g}"))
    return cases


def scalar_baselines(f: torch.Tensor, target: np.ndarray, mask: torch.Tensor | None, iterations: int, criterion: str):
    """The oracle-tuned scalar TV and TGV of one case, on the same search grids for every task."""
    tv = best_scalar_tv(f, target, mask=mask, iterations=iterations, criterion=criterion,
                        lambda_grid=np.linspace(-3.5, -0.5, 7), rounds=2, points=3)
    tgv = best_scalar_tgv(f, target, mask=mask, iterations=iterations, criterion=criterion,
                          lambda1_grid=np.linspace(-3.5, -0.5, 7), ratio_grid=np.log10([1.0, 2.0, 4.0]), rounds=2, points=3)
    return tv, tgv


def evaluate_denoise_case(case: Case, utgv, utv, baseline_iterations: int, criterion: str = "psnr",
                          iterations: int | None = None) -> Outcome:
    f = torch.from_numpy(case.kspace[None, None].astype(np.float32))
    out = Outcome(case)
    out.images["noisy input"] = case.kspace
    tv, tgv = scalar_baselines(f, case.target, None, baseline_iterations, criterion)
    out.images["scalar TV"], out.params["scalar TV"] = np.abs(tv.image[0].numpy()), tv.params
    out.images["scalar TGV"], out.params["scalar TGV"] = np.abs(tgv.image[0].numpy()), tgv.params
    for name, model in (("U-TV", utv), ("U-TGV", utgv)):
        if model is None:
            continue
        with torch.no_grad():
            x, maps = model(f, iterations=iterations)
        out.images[name] = np.abs(x[0, 0].numpy())
        if name == "U-TGV":
            out.maps = maps[0].numpy()
    for name, image in out.images.items():
        out.scores[name] = (psnr(case.target, image), ssim(case.target, image))
    return out


def evaluate_case(case: Case, utgv, utv, baseline_iterations: int, criterion: str = "psnr",
                  iterations: int | None = None) -> Outcome:
    """Score one MRI case; ``iterations`` is the models' T (``None``: each model's own default)."""
    k = case.kspace
    f = torch.from_numpy(np.stack((k.real, k.imag))[None].astype(np.float32))
    mask = torch.from_numpy(case.mask.astype(np.float32)).reshape(1, 1, 1, -1)
    target = case.target
    out = Outcome(case)

    def crop(x):
        return _crop(np.abs(x), target.shape)

    out.images["zero-filled"] = crop(ifft2c(k * case.mask))

    def search_target_shape(image_channels: torch.Tensor) -> np.ndarray:
        return crop(np.sqrt((image_channels.numpy() ** 2).sum(0)))

    tv, tgv = scalar_baselines(f, _pad_target(target, k.shape), mask, baseline_iterations, criterion)
    out.images["scalar TV"], out.params["scalar TV"] = search_target_shape(tv.image), tv.params
    out.images["scalar TGV"], out.params["scalar TGV"] = search_target_shape(tgv.image), tgv.params
    for name, model in (("U-TV", utv), ("U-TGV", utgv)):
        if model is None:
            continue
        with torch.no_grad():
            x, maps = model(f, mask, iterations=iterations)
        out.images[name] = crop(torch.sqrt(x[0].square().sum(0)).numpy())
        if name == "U-TGV":
            out.maps = np.stack([_crop(m, target.shape) for m in maps[0].numpy()])
    for name, image in out.images.items():
        out.scores[name] = (psnr(target, image), ssim(target, image))
    return out


def _pad_target(target: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The baselines score full-size images; a cropped target is zero-padded back (the zero border
    then costs every method alike, and only a centre-cropped fastMRI target is ever smaller)."""
    if target.shape == tuple(shape):
        return target
    padded = np.zeros(shape, dtype=target.dtype)
    h, w = shape
    th, tw = target.shape
    padded[(h - th) // 2 : (h - th) // 2 + th, (w - tw) // 2 : (w - tw) // 2 + tw] = target
    return padded


def load_model(name: str | None):
    if name is None:
        return None
    return load_checkpoint(resolve_model(name)).build()


def tables(outcomes: list[Outcome]) -> tuple[str, str]:
    """(CSV of every case, Markdown of the means per setting)."""
    methods = [m for m in METHODS if any(m in o.scores for o in outcomes)]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["setting", "case", *[f"{m} {k}" for m in methods for k in ("PSNR", "SSIM")]])
    for o in outcomes:
        writer.writerow([o.case.setting, o.case.name, *[f"{v:.4f}" for m in methods for v in o.scores.get(m, (np.nan, np.nan))]])
    lines = ["| setting | slices | " + " | ".join(f"{m} PSNR / SSIM" for m in methods) + " |",
             "| --- | --- | " + " | ".join("---" for _ in methods) + " |"]
    for setting in dict.fromkeys(o.case.setting for o in outcomes):
        group = [o for o in outcomes if o.case.setting == setting]
        cells = []
        for m in methods:
            p = np.mean([o.scores[m][0] for o in group])
            s = np.mean([o.scores[m][1] for o in group])
            cells.append(f"{p:.2f} / {s:.4f}")
        lines.append(f"| {setting} | {len(group)} | " + " | ".join(cells) + " |")
    return buffer.getvalue(), "\n".join(lines)


def triple_edge_profile(target: np.ndarray, lambda1: np.ndarray) -> dict[str, object]:
    """Lambda1 along the row through the strongest edge of the target, and whether it shows the
    paper's high-low-high pattern: a local minimum at the edge with higher values on both sides."""
    gy, gx = np.gradient(target)
    strength = np.hypot(gx, gy)
    row, col = np.unravel_index(np.argmax(strength[2:-2, 6:-6]), strength[2:-2, 6:-6].shape)
    row, col = row + 2, col + 6
    lo, hi = max(0, col - 6), min(target.shape[1], col + 7)
    profile = lambda1[row, lo:hi]
    centre = col - lo
    window = profile[max(0, centre - 1) : centre + 2]
    low = float(window.min())
    left, right = float(profile[: max(1, centre - 1)].max()), float(profile[centre + 2 :].max()) if centre + 2 < len(profile) else 0.0
    return {"row": int(row), "columns": [int(lo), int(hi)], "lambda1": profile.tolist(),
            "target": target[row, lo:hi].tolist(), "triple_edge": bool(left > low and right > low)}


def figures(outcome: Outcome, directory: Path, stem: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    target = outcome.case.target
    names = list(outcome.images)
    fig, axes = plt.subplots(2, len(names) + 1, figsize=(3 * (len(names) + 1), 6))
    axes[0, 0].imshow(target, cmap="gray")
    axes[0, 0].set_title("target")
    axes[1, 0].axis("off")
    for i, name in enumerate(names, start=1):
        p, s = outcome.scores[name]
        axes[0, i].imshow(outcome.images[name], cmap="gray", vmin=0, vmax=target.max())
        axes[0, i].set_title(f"{name}\n{p:.2f} dB / {s:.3f}", fontsize=9)
        axes[1, i].imshow(np.abs(outcome.images[name] - target), cmap="magma", vmin=0, vmax=0.25 * target.max())
        axes[1, i].set_title("|error|", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    written.append(_save(fig, directory / f"{stem}_reconstructions.png"))
    if outcome.maps is not None:
        written.append(_save(maps_figure(outcome), directory / f"{stem}_maps.png"))
    return written


def maps_figure(outcome: Outcome):
    """Lambda0 and Lambda1 with their colour bars, and Lambda1 along a row across an edge, with
    the target on a second axis. The constrained layout keeps each colour bar's labels clear of
    the next panel (Lambda1's used to run into the profile's axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if outcome.maps is None:
        raise ValueError("maps_figure needs an outcome with U-TGV maps")
    target = outcome.case.target
    profile = triple_edge_profile(target, outcome.maps[1])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    for ax, m, title in zip(axes[:2], outcome.maps, ("Lambda0 (weighs E v)", "Lambda1 (weighs grad x - v)")):
        shown = ax.imshow(m, cmap="viridis")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
    axes[1].axhline(profile["row"], color="w", lw=0.6)
    first, last = cast(list[int], profile["columns"])
    cols = np.arange(first, last)
    (lambda_line,) = axes[2].plot(cols, profile["lambda1"], "o-", label="Lambda1")
    axes[2].set_xlabel(f"column (row {profile['row']}, marked on the Lambda1 map)")
    axes[2].set_ylabel("Lambda1")
    twin = axes[2].twinx()
    (target_line,) = twin.plot(cols, profile["target"], "k--", lw=1, label="target")
    twin.set_ylabel("target intensity")
    axes[2].legend(handles=[lambda_line, target_line], loc="best", fontsize=8)
    axes[2].set_title(f"profile across an edge (triple edge: {'yes' if profile['triple_edge'] else 'no'})", fontsize=9)
    return fig


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


@torch.no_grad()
def run_evaluation(
    files: list[Path], synthetic: int, size: tuple[int, int], settings: list[tuple[float, float]], utgv: str | None,
    utv: str | None, out_dir: Path, baseline_iterations: int = 256, say: Callable[[str], None] = print,
    iterations: int | None = None,
) -> list[Outcome]:
    out_dir.mkdir(parents=True, exist_ok=True)
    models = load_model(utgv), load_model(utv)
    denoising = any(m is not None and m.config.task == "denoise" for m in models)
    images = ground_truth_images(files, synthetic, size)
    if denoising:
        groups = [corrupt_images(images, s) for _, s in settings]
    else:
        groups = [corrupt(images, r, s) for r, s in settings] + [undersampled_cases(files)]
    cases = [c for group in groups for c in group]
    if not cases:
        raise InputError("nothing to evaluate: give files or --synthetic N")
    evaluate_one = evaluate_denoise_case if denoising else evaluate_case
    outcomes = []
    for i, case in enumerate(cases):
        say(f"[{i + 1}/{len(cases)}] {case.setting} {case.name}")
        outcomes.append(evaluate_one(case, *models, baseline_iterations, iterations=iterations))
        best = outcomes[-1].scores
        say("    " + ", ".join(f"{m} {p:.2f} dB {s:.3f}" for m, (p, s) in best.items()))
    csv_text, markdown = tables(outcomes)
    atomic_write_bytes(out_dir / "results.csv", csv_text.encode())
    atomic_write_bytes(out_dir / "results.md", (markdown + "\n").encode())
    for setting in dict.fromkeys(o.case.setting for o in outcomes):
        first = next(o for o in outcomes if o.case.setting == setting)
        stem = setting.replace(", ", "_").replace("=", "").replace(" ", "_")
        figures(first, out_dir, stem)
    return outcomes
