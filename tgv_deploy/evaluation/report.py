"""Evaluation reports: the per-case CSV and mean Markdown tables, figures, the triple-edge profile."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import cast

import numpy as np

from tgv_deploy.evaluation.scoring import METHODS, Outcome
from tgv_deploy.io_utils import atomic_write_bytes

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

