"""Convergence of the multi-coil (SENSE) solvers against T, and the choice of the coil-splitting ADMM's rho_coil.

The multi-coil counterpart of ``benchmarks/convergence.py``. Test images: the first slice of each
held-out real file in ``benchmarks/data/*.h5`` (fully sampled single-coil k-space; ground truth
``ifft2c(kspace[0])`` at peak 1) and one seeded synthetic slice (256 x 256). Each is made multi-coil
with 8 simulated coil maps (``simulate_coil_maps``, unit norm everywhere), sampled with an equispaced
line mask (R = 4, 8% calibration lines) and given k-space noise (sigma = 0.05 relative to the spread
of the sampled values, pooled over the coils). Two kinds of map (SPEC 1b) reconstruct each case:

* ``extended``: the simulated maps themselves (``sum_c |S_c|^2 = 1`` everywhere);
* ``cropped``: ESPIRiT maps estimated from the noisy undersampled data's calibration lines, 0 outside
  the object (real slices only).

Data are normalised as the models normalise them (f divided by the peak magnitude of ``A^H f``);
scalar maps ``L1 = 0.01``, ``L0 = 2 L1``; everything runs in float64. Per case and kind of map:

* the minimiser ``x*`` of the periodic SENSE-TGV energy: coil-splitting ADMM, 3000 iterations,
  rho = 2, alpha = 1.9, rho_coil = 1 (the relative energy change over the last 1000 is recorded);
* the relative distance ``||x_T - x*|| / ||x*||`` at T = 16 ... 512 of the coil-splitting ADMM for
  rho_coil in {0.25, 0.5, 1, 2, 4} (rho = 2, alpha = 1.9; rho_coil = 1 is read off the reference
  run's own first iterates) and of PDHG with the SENSE operator (sigma = tau = 1/LK). PDHG minimises
  the Neumann energy, so its distance also contains the boundary difference of the two minimisers;
  ``pdhg_2048`` (PDHG at 2048 iterations, real slices only) bounds it. The same distances restricted
  to the object (ESPIRiT's support) are recorded too: with cropped maps the image outside the object
  is set by the regulariser alone;
* the relative energy gap ``(E(x_T) - E*) / E*`` of the rho_coil grid at T = 64 and 128.

Cost per iteration in 2D DFTs (arithmetic, not timed), C coils: coil-splitting ADMM 6 + C/2 (the
(x, v) step's 3 + 3, and per coil a filter along each row: for line masks the coil step's row
transforms cancel, and the filter's 1D transform pair, or one 2W x 2W product in the exported
graph, is a quarter of a 2D DFT pair in real matrix flops; results recorded before this counted
6 + 2C, a 2D pair per coil); PDHG + SENSE 2C (A and A^H); conjugate gradients inside the (x, v)
step instead: 2C per CG step plus 6.

Reduced to fit about 25 minutes on one CPU thread (estimated from the per-iteration times; 31 minutes
measured on a busy two-core machine): cropped maps on the real slices only, PDHG's 2048-iteration run
on the real slices only, checkpoints up to T = 512 (no 1024).

The Markdown's conclusion picks rho_coil by the median distance to x* (whole image with extended maps,
on the object with cropped maps: there the whole-image distance is dominated by the image outside the
object, which only the regulariser determines, and favours the reference's own rho_coil) and by the
median energy gap.

Usage: ``python benchmarks/convergence_sense.py [--data benchmarks/data] [--out benchmarks/results/convergence_sense]``
(``--summarise`` rewrites the Markdown and the figure from an existing JSON).
Writes ``convergence_sense.json`` (with provenance), ``convergence_sense.md`` and ``convergence_sense.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tgv_deploy.coils import estimate_maps
from tgv_deploy.data.coil_sim import simulate_coil_maps
from tgv_deploy.data.fastmri import read_fastmri
from tgv_deploy.data.masks import make_mask, seed_from_string
from tgv_deploy.data.noise import add_kspace_noise
from tgv_deploy.data.synthetic import synthetic_image
from tgv_deploy.dft import fft2c, ifft2c
from tgv_deploy.evaluation.cases import TEST_SEED
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.machine import provenance
from tgv_deploy.models.utgv import image_scale
from tgv_deploy.operators.sense import SenseOp
from tgv_deploy.solvers import LK, pdhg_tgv_channels
from tgv_deploy.solvers.admm_sense import admm_tgv_sense_channels
from tgv_deploy.solvers.pdhg import tgv_energy_channels

CHECKPOINTS = (16, 32, 64, 128, 256, 512)
RHO_COILS = (0.25, 0.5, 1.0, 2.0, 4.0)
REFERENCE_RHO_COIL = 1.0
GAP_T = (64, 128)
RHO, ALPHA = 2.0, 1.9
REFERENCE_ITERATIONS = 3000
PDHG_FAR = 2048
COILS, CENTER_FRACTION, ACCELERATION, SIGMA = 8, 0.08, 4.0, 0.05
L1 = 0.01
L0 = 2 * L1
KINDS = ("extended", "cropped")


def dft_per_iteration(coils: int) -> dict[str, object]:
    return {"admm_coil_split": 6 + coils / 2, "pdhg_sense": 2 * coils, "cg_in_xv_step": f"6 + {2 * coils} per CG step"}


def images(data: Path) -> list[tuple[str, np.ndarray, bool]]:
    """(name, image (H, W) complex128 at peak 1, real)."""
    out = []
    for path in sorted(data.glob("*.h5")):
        image = ifft2c(read_fastmri(path).kspace[0].astype(np.complex128))
        out.append((f"{path.stem}:0", image / np.abs(image).max(), True))
    image = synthetic_image(np.random.default_rng([TEST_SEED, 0]), 256, 256).astype(np.complex128)
    out.append(("synthetic:0", image / np.abs(image).max(), False))
    return out


def multicoil(name: str, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulated maps ``(C, H, W)``, mask ``(W,)`` and noisy masked coil k-space ``(C, H, W)``."""
    height, width = image.shape
    seed = seed_from_string(name)
    maps = simulate_coil_maps(np.random.default_rng([TEST_SEED, seed, 1]), COILS, height, width)
    mask = make_mask("equispaced", CENTER_FRACTION, ACCELERATION)(width, seed=seed)
    kspace = add_kspace_noise(fft2c(maps * image[None]), mask, SIGMA, np.random.default_rng([TEST_SEED, seed, 2]))
    return maps, mask, kspace


def _channels(array: np.ndarray) -> torch.Tensor:
    """``(C, H, W)`` complex -> ``(1, C, 2, H, W)`` float64."""
    return torch.from_numpy(np.stack((array.real, array.imag), 1)[None].astype(np.float64))


def _distance(x: torch.Tensor, reference: torch.Tensor, weight: torch.Tensor | None = None) -> float:
    if weight is None:
        return float((x - reference).norm() / reference.norm())
    return float((weight * (x - reference)).norm() / (weight * reference).norm())


def study(f: torch.Tensor, maps: torch.Tensor, mask: torch.Tensor, support: torch.Tensor, far: bool) -> dict:
    """One case with one kind of map; ``support (1, 1, H, W)`` is the object (ESPIRiT's support)."""
    op = SenseOp(maps, mask)
    scale = image_scale(op.adjoint(f)).reshape(())
    f = f / scale
    shape = (1, *f.shape[-2:])
    l1, l0 = torch.full(shape, L1, dtype=torch.float64), torch.full(shape, L0, dtype=torch.float64)

    def energy(x, v) -> float:
        return tgv_energy_channels(x, v, f, l0, l1, op, periodic=True).item()

    entry: dict = {"scale": float(scale), "map_norm_max": float(maps.square().sum((1, 2)).max())}
    t0 = time.perf_counter()

    # the reference: ADMM with rho_coil = 1 run long; its first iterates are the rho_coil = 1 row
    snapshots: dict[int, torch.Tensor] = {}
    energies: dict[int, float] = {}
    last = (REFERENCE_ITERATIONS - 1000, REFERENCE_ITERATIONS)

    def reference_callback(k, x, v):
        if k + 1 in CHECKPOINTS:
            snapshots[k + 1] = x.clone()
        if k + 1 in GAP_T or k + 1 in last:
            energies[k + 1] = energy(x, v)

    x_star, _ = admm_tgv_sense_channels(f, maps, mask, l0, l1, REFERENCE_ITERATIONS, RHO, ALPHA, REFERENCE_RHO_COIL,
                                        callback=reference_callback)
    e_star = energies[REFERENCE_ITERATIONS]
    entry["reference"] = {"iterations": REFERENCE_ITERATIONS, "rho": RHO, "alpha": ALPHA, "rho_coil": REFERENCE_RHO_COIL,
                          "energy": e_star, "last_1000_relative_energy_change": abs(energies[last[0]] - e_star) / abs(e_star)}

    def gap(e: float) -> float:
        return (e - e_star) / abs(e_star)

    admm: dict[str, dict] = {}
    for rho_coil in RHO_COILS:
        if rho_coil == REFERENCE_RHO_COIL:
            xs, gaps = snapshots, {t: gap(energies[t]) for t in GAP_T}
        else:
            xs, gaps = {}, {}

            def callback(k, x, v, xs=xs, gaps=gaps):
                if k + 1 in CHECKPOINTS:
                    xs[k + 1] = x.clone()
                if k + 1 in GAP_T:
                    gaps[k + 1] = gap(energy(x, v))

            admm_tgv_sense_channels(f, maps, mask, l0, l1, max(CHECKPOINTS), RHO, ALPHA, rho_coil, callback=callback)
        admm[f"{rho_coil:g}"] = {
            "distance": {str(t): _distance(x, x_star) for t, x in sorted(xs.items())},
            "distance_support": {str(t): _distance(x, x_star, support) for t, x in sorted(xs.items())},
            "energy_gap": {str(t): g for t, g in sorted(gaps.items())},
        }
    entry["admm"] = admm

    pdhg: dict[str, dict] = {"distance": {}, "distance_support": {}}

    def pdhg_callback(k, x, _v):
        if k + 1 in CHECKPOINTS:
            pdhg["distance"][str(k + 1)] = _distance(x, x_star)
            pdhg["distance_support"][str(k + 1)] = _distance(x, x_star, support)

    x_pdhg, _ = pdhg_tgv_channels(f, l0, l1, op, PDHG_FAR if far else max(CHECKPOINTS), 1 / LK, 1 / LK, callback=pdhg_callback)
    entry["pdhg"] = pdhg
    if far:
        entry[f"pdhg_{PDHG_FAR}"] = _distance(x_pdhg, x_star)
        entry[f"pdhg_{PDHG_FAR}_support"] = _distance(x_pdhg, x_star, support)
    entry["seconds"] = time.perf_counter() - t0
    return entry


def run_case(name: str, image: np.ndarray, real: bool) -> dict:
    sim_maps, mask_line, kspace = multicoil(name, image)
    estimated = estimate_maps(kspace, mask_line, method="espirit", outside="crop")
    cropped = estimated.maps.astype(np.complex128)
    norm = np.sum(np.abs(cropped) ** 2, axis=0)
    cropped = cropped / np.sqrt(np.maximum(norm, 1.0))[None]  # float32 round-off above 1
    support = torch.from_numpy(estimated.support.astype(np.float64))[None, None]
    f = _channels(kspace.astype(np.complex128))
    mask = torch.from_numpy(mask_line.astype(np.float64)).reshape(1, 1, 1, -1)
    record: dict = {"case": name, "shape": list(image.shape), "coils": COILS, "sampled_lines": int(mask_line.sum()),
                    "support_fraction": float(estimated.support.mean()), "espirit_norm_max": float(norm.max()), "maps": {}}
    kinds = {"extended": sim_maps, "cropped": cropped} if real else {"extended": sim_maps}
    with torch.no_grad():
        for kind, maps in kinds.items():
            entry = study(f, _channels(maps), mask, support, far=real)
            record["maps"][kind] = entry
            a, p = entry["admm"], entry["pdhg"]["distance"]
            print(f"{name} {kind}: reference change {entry['reference']['last_1000_relative_energy_change']:.1e}, "
                  f"ADMM T=64 " + " ".join(f"{r}:{a[r]['distance']['64']:.4f}" for r in a)
                  + f", PDHG T=64 {p['64']:.4f} T=512 {p['512']:.4f} ({entry['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return record


def _schemes(records: list[dict], kind: str) -> dict[str, list[dict]]:
    """Scheme label -> per-case entries holding "distance", "distance_support" (and "energy_gap")."""
    entries = [r["maps"][kind] for r in records if kind in r["maps"]]
    out = {f"ADMM rho_coil={rc:g}": [e["admm"][f"{rc:g}"] for e in entries] for rc in RHO_COILS}
    out["PDHG+SENSE"] = [e["pdhg"] for e in entries]
    return out


def medians(records: list[dict], kind: str, key: str = "distance") -> dict[str, dict[int, float]]:
    return {label: {t: float(np.median([e[key][str(t)] for e in es])) for t in CHECKPOINTS}
            for label, es in _schemes(records, kind).items() if es}


def summary(records: list[dict]) -> tuple[str, dict]:
    coils = records[0]["coils"]
    cost = dft_per_iteration(coils)
    header = "| scheme | DFTs/it | " + " | ".join(f"T={t}" for t in CHECKPOINTS) + " |"
    rule = "| --- | --- | " + " | ".join("---" for _ in CHECKPOINTS) + " |"
    lines = [f"Multi-coil SENSE-TGV, C = {coils}, R = 4, sigma = 0.05, L1 = {L1:g}, L0 = {L0:g} on data normalised to peak |A^H f| = 1, "
             f"float64. Reference x*: coil-split ADMM, {REFERENCE_ITERATIONS} iterations (rho = {RHO:g}, alpha = {ALPHA:g}, "
             f"rho_coil = {REFERENCE_RHO_COIL:g}), periodic energy.", ""]
    meds: dict = {}
    for kind in KINDS:
        n = sum(kind in r["maps"] for r in records)
        if not n:
            continue
        for key, what in (("distance", "||x_T - x*|| / ||x*||"), ("distance_support", "the same on the object (ESPIRiT support)")):
            med = medians(records, kind, key)
            meds.setdefault(kind, {})[key] = med
            lines += [f"Median over {n} cases, {kind} maps: {what}", "", header, rule]
            for label, row in med.items():
                dfts = cost["pdhg_sense"] if label.startswith("PDHG") else cost["admm_coil_split"]
                lines.append(f"| {label} | {dfts} | " + " | ".join(f"{row[t]:.4f}" for t in CHECKPOINTS) + " |")
            lines.append("")
    lines += ["Relative energy gap (E(x_T) - E*) / E* of the coil-split ADMM, median and worst over cases:", "",
              "| maps | rho_coil | median T=64 | median T=128 | worst T=64 | worst T=128 |", "| --- | --- | --- | --- | --- | --- |"]
    gaps: dict = {}
    for kind in KINDS:
        entries = [r["maps"][kind] for r in records if kind in r["maps"]]
        for rc in RHO_COILS:
            g = {t: [e["admm"][f"{rc:g}"]["energy_gap"][str(t)] for e in entries] for t in GAP_T}
            if not entries:
                continue
            gaps.setdefault(kind, {})[f"{rc:g}"] = {f"median_{t}": float(np.median(g[t])) for t in GAP_T} | {f"worst_{t}": float(max(g[t])) for t in GAP_T}
            row = gaps[kind][f"{rc:g}"]
            lines.append(f"| {kind} | {rc:g} | {row['median_64']:.2e} | {row['median_128']:.2e} | {row['worst_64']:.2e} | {row['worst_128']:.2e} |")
    lines += ["", "Per case: the reference's relative energy change over its last 1000 iterations, and PDHG's distance at "
              f"T = 512 and {PDHG_FAR} (the latter bounds the periodic/Neumann boundary difference):", "",
              f"| case | maps | reference change | PDHG T=512 | PDHG T={PDHG_FAR} | PDHG T={PDHG_FAR} on object | seconds |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in records:
        for kind, e in r["maps"].items():
            lines.append(f"| {r['case']} | {kind} | {e['reference']['last_1000_relative_energy_change']:.1e} | {e['pdhg']['distance']['512']:.4f} | "
                         f"{e.get(f'pdhg_{PDHG_FAR}', float('nan')):.4f} | {e.get(f'pdhg_{PDHG_FAR}_support', float('nan')):.4f} | {e['seconds']:.0f} |")
    lines += ["", f"Cost per iteration in 2D DFTs (arithmetic, C = {coils}): coil-split ADMM 6 + C/2 = {cost['admm_coil_split']:g}; "
              f"PDHG + SENSE 2C = {cost['pdhg_sense']}; conjugate gradients inside the (x, v) step: 2C = {2 * coils} per CG step plus 6.",
              "", conclusion(records, meds, gaps, cost)]
    return "\n".join(lines) + "\n", {"median_distance": {k: {s: {str(t): v for t, v in row.items()} for s, row in m["distance"].items()}
                                                          for k, m in meds.items()}, "energy_gap": gaps}


def conclusion(records: list[dict], meds: dict, gaps: dict, cost: dict) -> str:
    """The best rho_coil at T = 64 and 128 and the comparison with PDHG + SENSE.

    Criteria: the median distance to x* (on the whole image for extended maps, on the object for
    cropped maps, where the whole-image distance is dominated by the image outside the object, which
    only the regulariser determines) and the median energy gap, both kinds of map.
    """
    kinds = [k for k in KINDS if k in meds]
    key = {"extended": "distance", "cropped": "distance_support"}
    name = {"distance": "whole image", "distance_support": "on the object"}
    labels = {rc: f"ADMM rho_coil={rc:g}" for rc in RHO_COILS}
    criteria = {f"{k} maps, distance ({name[key[k]]}), T = {t}": {rc: meds[k][key[k]][labels[rc]][t] for rc in RHO_COILS}
                for k in kinds for t in (64, 128)}
    criteria |= {f"{k} maps, energy gap, T = {t}": {rc: gaps[k][f"{rc:g}"][f"median_{t}"] for rc in RHO_COILS}
                 for k in kinds for t in (64, 128)}

    def regret(rc: float) -> float:
        return max(values[rc] / min(values.values()) for values in criteria.values())

    chosen = min(RHO_COILS, key=regret)
    best = "; ".join(f"{c}: {min(v, key=v.get):g}" for c, v in criteria.items())
    text = [f"**Conclusion.** Best rho_coil in {{{', '.join(f'{rc:g}' for rc in RHO_COILS)}}} by median over cases -- {best}. "
            f"Recommended: rho_coil = {chosen:g} ("
            + ("best on every criterion" if regret(chosen) == 1 else f"at most {regret(chosen):.2f} times the best value of any criterion")
            + ")."]
    if "cropped" in kinds:
        whole = {t: min(RHO_COILS, key=lambda rc: meds["cropped"]["distance"][labels[rc]][t]) for t in (64, 128)}
        worst_512 = max(meds["cropped"]["distance"][labels[rc]][512] for rc in RHO_COILS)
        far = [(e[f"pdhg_{PDHG_FAR}"], e[f"pdhg_{PDHG_FAR}_support"]) for r in records
               for kind, e in r["maps"].items() if kind == "cropped" and f"pdhg_{PDHG_FAR}" in e]
        text.append(f"With cropped maps the whole-image distance stalls for every scheme (median up to {worst_512:.4f} at T = 512; "
                    f"it would pick rho_coil = {whole[64]:g} at T = 64 and {whole[128]:g} at T = 128, the reference's own value "
                    f"{REFERENCE_RHO_COIL:g} following the reference's own path): outside the object only the regulariser acts, "
                    f"so the minimiser is only weakly determined there"
                    + (f" (PDHG at T = {PDHG_FAR}: {min(f for f, _ in far):.4f} to {max(f for f, _ in far):.4f} from x* on the "
                       f"whole image, {min(s for _, s in far):.4f} to {max(s for _, s in far):.4f} on the object)" if far else "")
                    + f"; on the object it converges as with extended maps, but the energy gap decreases more slowly (median "
                    f"{gaps['cropped'][f'{chosen:g}']['median_128']:.1e} against {gaps['extended'][f'{chosen:g}']['median_128']:.1e} "
                    f"with extended maps at T = 128, rho_coil = {chosen:g}).")
    label = labels[chosen]
    compare = []
    for k in kinds:
        a, p = meds[k][key[k]][label], meds[k][key[k]]["PDHG+SENSE"]
        reach = next((t for t in CHECKPOINTS if a[t] <= p[512]), None)
        compare.append(f"{k} maps ({name[key[k]]}): ADMM {a[64]:.4f} / {a[128]:.4f} at T = 64 / 128, PDHG {p[64]:.4f} / {p[128]:.4f} / "
                       f"{p[256]:.4f} at T = 64 / 128 / 256; PDHG's T = 512 value {p[512]:.4f} is reached by ADMM "
                       + (f"at T = {reach}" if reach else "not by T = 512"))
    per_t = cost["admm_coil_split"] / cost["pdhg_sense"]
    text.append(f"At rho_coil = {chosen:g} the coil split against PDHG + SENSE (sigma = tau = 1/LK): " + "; ".join(compare)
                + f". An iteration costs {per_t:.3g} times PDHG's DFTs ({cost['admm_coil_split']:g} against {cost['pdhg_sense']}), "
                f"so ADMM at T = 64 ({64 * cost['admm_coil_split']:g} DFTs) costs what PDHG does at T = {64 * per_t:.0f}.")
    far_ext = [e[f"pdhg_{PDHG_FAR}"] for r in records for kind, e in r["maps"].items() if kind == "extended" and f"pdhg_{PDHG_FAR}" in e]
    if far_ext:
        text.append(f"The periodic/Neumann boundary difference bounds what PDHG can reach: with extended maps PDHG at T = {PDHG_FAR} "
                    f"is {min(far_ext):.4f} to {max(far_ext):.4f} from x* (real slices), against its median "
                    f"{meds['extended']['distance']['PDHG+SENSE'][256]:.4f} at T = 256.")
    return " ".join(text)


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in KINDS if any(k in r["maps"] for r in records)]
    cost = dft_per_iteration(records[0]["coils"])
    panels = (("distance", None), ("distance_support", None), ("distance", cost))
    fig, axes = plt.subplots(len(kinds), len(panels), figsize=(15, 4.2 * len(kinds)), sharey=True, squeeze=False)
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(RHO_COILS)))
    admm_labels = [f"ADMM rho_coil={rc:g}" for rc in RHO_COILS]
    for row, kind in zip(axes, kinds):
        n = sum(kind in r["maps"] for r in records)
        for ax, (key, per_iteration) in zip(row, panels):
            for label, values in medians(records, kind, key).items():
                pdhg = label.startswith("PDHG")
                dfts = 1 if per_iteration is None else per_iteration["pdhg_sense" if pdhg else "admm_coil_split"]
                colour = "tab:red" if pdhg else colours[admm_labels.index(label)]
                ax.loglog([t * dfts for t in CHECKPOINTS], [values[t] for t in CHECKPOINTS], "--" if pdhg else "-",
                          color=colour, marker="o", markersize=3, label=label)
            where = "on the object" if key == "distance_support" else "whole image"
            ax.set_title(f"{kind} maps, {where}, median of {n} cases", fontsize=10)
            if per_iteration is None:
                ax.set_xticks(CHECKPOINTS, [str(t) for t in CHECKPOINTS])
                ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
                ax.set_xlabel("iterations T")
            else:
                ax.set_xlabel(f"2D DFTs (C = {records[0]['coils']})")
            ax.grid(True, which="both", alpha=0.3)
        row[0].set_ylabel("||x_T - x*|| / ||x*||")
        row[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write(result: dict, out: Path) -> None:
    table, medians_and_gaps = summary(result["records"])
    result = result | medians_and_gaps
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "convergence_sense.json", json.dumps(result, indent=1).encode())
    atomic_write_bytes(out / "convergence_sense.md", table.encode())
    plot(result["records"], out / "convergence_sense.png")
    print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("benchmarks/data"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/convergence_sense"))
    parser.add_argument("--only", default="", help="run only the cases whose name contains this text (trials)")
    parser.add_argument("--summarise", action="store_true", help="rewrite the Markdown and figure from the existing JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.summarise:
        result = json.loads((args.out / "convergence_sense.json").read_text())
        write({k: result[k] for k in ("provenance", "settings", "records")}, args.out)
        return
    settings = {"coils": COILS, "mask": f"equispaced {CENTER_FRACTION:g}, R = {ACCELERATION:g}", "sigma": SIGMA, "lambda1": L1,
                "lambda0": L0, "rho": RHO, "alpha": ALPHA, "rho_coils": list(RHO_COILS), "reference_iterations": REFERENCE_ITERATIONS,
                "checkpoints": list(CHECKPOINTS), "pdhg_steps": "sigma = tau = 1/LK", "dtype": "float64",
                "dft_per_iteration": dft_per_iteration(COILS)}
    records = []
    for name, image, real in images(args.data):
        if args.only in name:
            records.append(run_case(name, image, real))
    write({"provenance": provenance(), "settings": settings, "records": records}, args.out)


if __name__ == "__main__":
    main()
