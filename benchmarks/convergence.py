"""Convergence of PDHG (SPEC 2) and ADMM (SPEC 2b) against T, and the choice of ADMM's rho and alpha.

For each test case (held-out real MR slices written by ``benchmarks/heldout.py --undersample 4,0.05``
and seeded synthetic slices, R = 4, sigma = 0.05) and each kind of maps (scalar ``L1 = 0.01 s``,
``L0 = 2 L1`` with ``s`` the starting image's peak, and the bundled U-TGV's own maps), it records:

* the relative distance ``||x_T - x*|| / ||x*||`` for T = 16 ... 1024, PDHG and ADMM, where ``x*``
  is the minimiser of the periodic energy (ADMM, 3000 iterations, float64; the energy change over the
  last 1000 is recorded); PDHG minimises the Neumann energy, so its distance also contains the
  boundary difference of the two minimisers (``pdhg_4096``, PDHG at 4096 iterations, bounds it);
* on the first slice of each file and one synthetic slice: the relative energy gap of ADMM at
  T = 32, 64, 128 for a grid of (rho, alpha).

Usage: ``python benchmarks/convergence.py [--data benchmarks/data/undersampled] [--out benchmarks/results/convergence]``.
Writes ``convergence.json`` (with provenance), ``convergence.md`` and ``convergence.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tgv_deploy.data.fastmri import read_fastmri
from tgv_deploy.evaluation.cases import TEST_SEED, corrupt, held_out_file_name
from tgv_deploy.data.synthetic import synthetic_image
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.machine import provenance
from tgv_deploy.models.checkpoint import load_checkpoint
from tgv_deploy.models.utgv import image_scale
from tgv_deploy.operators.fourier import MaskedFourierOp
from tgv_deploy.registry import resolve_model
from tgv_deploy.solvers import LK, admm_tgv_channels, pdhg_tgv_channels
from tgv_deploy.solvers.pdhg import tgv_energy_channels

CHECKPOINTS = (16, 32, 64, 128, 256, 512, 1024)
RHOS = (0.3, 0.5, 1.0, 2.0, 5.0, 10.0)
ALPHAS = (1.0, 1.5, 1.7, 1.9)
GAP_T = (32, 64, 128)


def cases(data: Path, synthetic: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, centred k-space (H, W) complex, mask (W,))."""
    out = []
    for path in sorted(data.glob(held_out_file_name("*", 4, 0.05))):  # R = 4 only: R = 8 copies may sit beside them
        volume = read_fastmri(path)
        for s in range(volume.num_slices):
            out.append((f"{path.stem}:{s}", volume.kspace[s], volume.mask[s]))
    images = [(f"synthetic:{i}", synthetic_image(np.random.default_rng([TEST_SEED, i]), 256, 256)) for i in range(synthetic)]
    out += [(c.name, c.kspace, c.mask) for c in corrupt(images, 4.0, 0.05, seed=1)]
    return out


def _periodic_minimiser(f, l0, l1, mask, rho, alpha, iterations=3000):
    """ADMM run long; returns x, its energy and the relative energy change over the last third."""
    energies: dict[int, float] = {}
    op = MaskedFourierOp(mask)

    def callback(k, x, v):
        if k + 1 in (2 * iterations // 3, iterations):
            energies[k + 1] = tgv_energy_channels(x, v, f, l0, l1, op, periodic=True).item()

    x, _ = admm_tgv_channels(f, l0, l1, mask, iterations, rho, alpha, callback=callback)
    change = abs(energies[2 * iterations // 3] - energies[iterations]) / abs(energies[iterations])
    return x, energies[iterations], change


def _distances(run, reference) -> dict[int, float]:
    seen: dict[int, float] = {}
    wanted = set(CHECKPOINTS)

    def callback(k, x, _v):
        if k + 1 in wanted:
            seen[k + 1] = float((x - reference).norm() / reference.norm())

    run(callback)
    return seen


def study(name, kspace, mask_line, model, default_rho, default_alpha, scan: bool) -> dict:
    f = torch.from_numpy(np.stack((kspace.real, kspace.imag))[None].astype(np.float64))
    mask = torch.from_numpy(mask_line.astype(np.float64)).reshape(1, 1, 1, -1)
    op = MaskedFourierOp(mask)
    scale = image_scale(op.adjoint(f)).reshape(())
    with torch.no_grad():
        _, maps = model(f.float(), mask.float())
    map_sets = {
        "scalar": (torch.full((1, 1, 1), 0.02, dtype=torch.float64) * scale, torch.full((1, 1, 1), 0.01, dtype=torch.float64) * scale),
        "u-tgv": (maps[:, 0].double(), maps[:, 1].double()),
    }
    record: dict = {"case": name, "shape": list(kspace.shape), "maps": {}}
    for label, (l0, l1) in map_sets.items():
        t0 = time.perf_counter()
        x_star, e_star, change = _periodic_minimiser(f, l0, l1, mask, default_rho, default_alpha)
        entry: dict = {"reference_energy": e_star, "reference_last_third_energy_change": change}
        with torch.no_grad():
            entry["pdhg"] = _distances(lambda cb: pdhg_tgv_channels(f, l0, l1, op, max(CHECKPOINTS), 1 / LK, 1 / LK, callback=cb), x_star)
            entry["admm"] = _distances(lambda cb: admm_tgv_channels(f, l0, l1, mask, max(CHECKPOINTS), default_rho, default_alpha, callback=cb), x_star)
            if not scan:
                entry["seconds"] = time.perf_counter() - t0
                record["maps"][label] = entry
                print(f"{name} {label}: ADMM T=64 {entry['admm'][64]:.4f}, PDHG T=256 {entry['pdhg'][256]:.4f}", file=sys.stderr, flush=True)
                continue
            far, _ = pdhg_tgv_channels(f, l0, l1, op, 4096, 1 / LK, 1 / LK)
            entry["pdhg_4096"] = float((far - x_star).norm() / x_star.norm())
            gaps = {}
            for rho in RHOS:
                for alpha in ALPHAS:
                    energies = {}

                    def callback(k, x, v, energies=energies):
                        if k + 1 in GAP_T:
                            e = tgv_energy_channels(x, v, f, l0, l1, op, periodic=True).item()
                            energies[k + 1] = (e - e_star) / abs(e_star)

                    admm_tgv_channels(f, l0, l1, mask, max(GAP_T), rho, alpha, callback=callback)
                    gaps[f"{rho:g},{alpha:g}"] = energies
            entry["energy_gap"] = gaps
        entry["seconds"] = time.perf_counter() - t0
        record["maps"][label] = entry
        print(f"{name} {label}: ADMM T=64 {entry['admm'][64]:.4f}, PDHG T=256 {entry['pdhg'][256]:.4f} "
              f"({entry['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return record


def summary(records: list[dict]) -> tuple[str, dict]:
    lines = ["| case | maps | PDHG T=64 | PDHG T=256 | PDHG T=1024 | PDHG T=4096 | ADMM T=16 | ADMM T=32 | ADMM T=64 | ADMM T=128 | ADMM T=256 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in records:
        for label, e in r["maps"].items():
            p, a = e["pdhg"], e["admm"]
            lines.append(f"| {r['case']} | {label} | {p[64]:.3f} | {p[256]:.3f} | {p[1024]:.3f} | {e.get('pdhg_4096', float('nan')):.3f} | "
                         f"{a[16]:.3f} | {a[32]:.3f} | {a[64]:.4f} | {a[128]:.4f} | {a[256]:.5f} |")
    worst: dict[str, dict[int, float]] = {}
    for r in records:
        for e in r["maps"].values():
            for setting, gaps in e.get("energy_gap", {}).items():
                for t, g in gaps.items():
                    worst.setdefault(setting, {}).setdefault(int(t), 0.0)
                    worst[setting][int(t)] = max(worst[setting][int(t)], g)
    lines += ["", "Worst relative energy gap over all cases and maps (ADMM, rho, alpha):", "",
              "| rho, alpha | T=32 | T=64 | T=128 |", "| --- | --- | --- | --- |"]
    for setting, gaps in sorted(worst.items(), key=lambda kv: kv[1][64]):
        lines.append(f"| {setting} | {gaps[32]:.2e} | {gaps[64]:.2e} | {gaps[128]:.2e} |")
    return "\n".join(lines) + "\n", worst


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, label in zip(axes, ("scalar", "u-tgv")):
        for r in records:
            e = r["maps"][label]
            ts = sorted(int(t) for t in e["pdhg"])
            ax.loglog(ts, [e["pdhg"][t] for t in ts], "-", color="tab:red", alpha=0.6)
            ax.loglog(ts, [e["admm"][t] for t in ts], "-", color="tab:blue", alpha=0.6)
        ax.plot([], [], color="tab:red", label="PDHG (SPEC 2)")
        ax.plot([], [], color="tab:blue", label="ADMM (SPEC 2b)")
        ax.set_title(f"{label} maps, {len(records)} cases")
        ax.set_xlabel("iterations T")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("||x_T - x*|| / ||x*||")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("benchmarks/data/undersampled"))
    parser.add_argument("--synthetic", type=int, default=2)
    parser.add_argument("--model", default="utgv-mri", help="whose maps to use (the bundled PDHG-trained U-TGV by default)")
    parser.add_argument("--rho", type=float, default=1.0)
    parser.add_argument("--alpha", type=float, default=1.7)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/convergence"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model_path = resolve_model(args.model)
    model = load_checkpoint(model_path).build()
    # the (rho, alpha) scan and PDHG's long run on the first slice of every file and one synthetic slice
    records = [study(*case, model, args.rho, args.alpha, scan=case[0].endswith(":0")) for case in cases(args.data, args.synthetic)]
    table, worst = summary(records)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"provenance": provenance({args.model: str(model_path)}), "settings": {"rho": args.rho, "alpha": args.alpha},
              "records": records, "worst_energy_gap": worst}
    atomic_write_bytes(args.out / "convergence.json", json.dumps(result, indent=1).encode())
    atomic_write_bytes(args.out / "convergence.md", table.encode())
    plot(records, args.out / "convergence.png")
    print(table)


if __name__ == "__main__":
    main()
