"""Regenerate every results table in the documents from the result files, so no number can drift.

A document marks a generated table with ``<!-- table: KIND PATH [OPTION] -->`` on its own line and
ends it with ``<!-- /table -->``; this script rewrites what lies between from ``PATH`` (relative to
the repository root). ``--check`` rewrites nothing and fails when a table differs from its file
(a test runs it). Kinds:

* ``quality DIR``: mean PSNR / SSIM per setting and method, from ``DIR/results.csv`` (``tgv-deploy evaluate``);
* ``margins DIR``: per slice, U-TGV against the scalar TGV (PSNR margin, SSIM of both), from ``DIR/results.csv``;
* ``margins-pooled DIR [DIR ...]``: U-TGV's mean and worst margin over the scalar TGV per directory and over all their slices;
* ``bench FILE``: a ``tgv-deploy bench --json`` file;
* ``quality-speed FILE``: ``benchmarks/quality_speed.py``'s JSON;
* ``convergence FILE``: ``benchmarks/convergence.py``'s JSON (distance to the minimiser against T);
* ``convergence-scan FILE MAPS``: the same file's (rho, alpha) scan, worst relative energy gap
  over the cases with ``MAPS`` ("scalar" or "u-tgv");
* ``export FILE``: a ``tgv-deploy export --json`` record (graph size, export time, parity);
* ``convergence-sense FILE``: ``benchmarks/convergence_sense.py``'s JSON (multi-coil schemes against T);
* ``coil-gain FILE``: ``benchmarks/coil_gain.py``'s JSON (median PSNR per multi-coil map gain);
* ``rho-coil FILE``: ``benchmarks/rho_coil.py``'s JSON (mean PSNR per coil-splitting penalty at the models' T);
* ``rho-rule FILE``: ``benchmarks/rho_rule.py``'s JSON (the fitted rule, and the shipped default ADMM penalty against a fixed rho);
* ``oracle-gap FILE``: ``benchmarks/oracle_gap.py``'s JSON (energy gap of ``admm_tgv``'s defaults);
* ``multicoil-latency FILE``: ``benchmarks/multicoil_latency.py``'s JSON (latency against coils);
* ``map-scale FILE [psnr]``: ``benchmarks/map_scale.py``'s JSON (best factor on each model's maps per noise level;
  ``psnr`` adds the PSNR at factor 1);
* ``penalty-ratio FILE``: ``benchmarks/penalty_ratio.py``'s JSON (U-TGV by the penalty of its ``E v`` constraint);
* ``rho-ramp FILE``: ``benchmarks/rho_ramp.py``'s JSON (the default penalty's ramp against the constant rule);
* ``dft-op FILE``: ``benchmarks/dft_op.py``'s JSON (the graph's matmul DFT against the ONNX ``DFT`` operator);
* ``rho-schedule FILE``: ``benchmarks/rho_schedule.py``'s JSON (the learned rho against per-iteration schedules:
  the geometric ones nearest the minimiser and the best by SSIM, and every alternating one);
* ``noise-level FILE``: ``benchmarks/noise_level.py``'s JSON (the k-space noise estimate against the truth);
* ``rho-schedule-fit FILE``: ``benchmarks/rho_schedule_fit.py``'s JSON (a model's schedule against one fitted to its maps);
* ``background-kind FILE``: ``benchmarks/background_kind.py``'s JSON (U-TV and U-TGV on exact-zero and acquired backgrounds);
* ``map-ceiling FILE``: ``benchmarks/map_ceiling.py``'s JSON (each model's SSIM against that of per-pixel maps fitted
  to the ground truth through the same iteration);
* ``map-ceiling-schedule FILE``: the same script's ``--rho-schedule`` JSON (the penalty factors fitted with the maps);
* ``provenance FILE``: the commit, command and machine a JSON result file records.

Usage: ``python benchmarks/tables.py [--check]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ["README.md", "benchmarks/README.md", "docs/conventions.md", "docs/export.md", "tgv_deploy/bundled/*.md"]
BLOCK = re.compile(r"(<!-- table: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)
METHOD_ORDER = ("zero-filled", "noisy input", "scalar TV", "scalar TGV", "U-TV", "U-TGV")


def _csv_rows(directory: Path) -> list[dict[str, str]]:
    with open(directory / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _methods(rows: list[dict[str, str]]) -> list[str]:
    return [m for m in METHOD_ORDER if rows and f"{m} PSNR" in rows[0] and any(r[f"{m} PSNR"] != "nan" for r in rows)]


def quality(path: Path) -> str:
    rows = _csv_rows(path)
    methods = _methods(rows)
    lines = ["| setting | slices | " + " | ".join(f"{m}" for m in methods) + " |", "| --- | --- |" + " --- |" * len(methods)]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        group = [r for r in rows if r["setting"] == setting]
        cells = []
        best = max(methods, key=lambda m: np.mean([float(r[f"{m} PSNR"]) for r in group]))
        for m in methods:
            p = np.mean([float(r[f"{m} PSNR"]) for r in group])
            s = np.mean([float(r[f"{m} SSIM"]) for r in group])
            cell = f"{p:.2f} dB / {s:.3f}"
            cells.append(f"**{cell}**" if m == best else cell)
        lines.append(f"| {setting} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _scalar_vs_learned(path: Path) -> list[tuple[str, tuple[float, float], tuple[float, float]]]:
    """Per slice of ``DIR/results.csv``: the case, (PSNR, SSIM) of the scalar TGV and of U-TGV."""
    return [(r["case"], (float(r["scalar TGV PSNR"]), float(r["scalar TGV SSIM"])), (float(r["U-TGV PSNR"]), float(r["U-TGV SSIM"])))
            for r in _csv_rows(path)]


def margins(path: Path) -> str:
    record = json.loads((path / "results.json").read_text()) if (path / "results.json").is_file() else {"cases": []}
    triple = {c["case"]: c.get("lambda1_triple_edge") for c in record["cases"]}
    lines = ["| slice | scalar TGV | U-TGV | PSNR margin | SSIM higher | Lambda1 triple edge |", "| --- | --- | --- | --- | --- | --- |"]
    rows = _scalar_vs_learned(path)
    gaps = [utgv[0] - tgv[0] for _, tgv, utgv in rows]
    higher = sum(utgv[1] > tgv[1] for _, tgv, utgv in rows)
    for case, tgv, utgv in rows:
        edge = {True: "yes", False: "no", None: "-"}[triple.get(case)]
        lines.append(f"| {case} | {tgv[0]:.2f} / {tgv[1]:.3f} | {utgv[0]:.2f} / {utgv[1]:.3f} | {utgv[0] - tgv[0]:+.2f} dB | "
                     f"{'yes' if utgv[1] > tgv[1] else 'no'} | {edge} |")
    edges = sum(v is True for v in triple.values())
    lines.append(f"| mean | | | {np.mean(gaps):+.2f} dB (worst {min(gaps):+.2f}) | {higher} of {len(rows)} | "
                 f"{edges} of {len(triple) or '-'} |")
    return "\n".join(lines)


def margins_pooled(path: Path, *more: str) -> str:
    """U-TGV's margin over the scalar TGV per result directory, and over all their slices together."""
    lines = ["| results | slices | mean PSNR margin | worst | SSIM higher |", "| --- | --- | --- | --- | --- |"]
    everything: list[tuple[str, tuple[float, float], tuple[float, float]]] = []

    def row(label: str, rows: list) -> str:
        gaps = [utgv[0] - tgv[0] for _, tgv, utgv in rows]
        higher = sum(utgv[1] > tgv[1] for _, tgv, utgv in rows)
        return f"| {label} | {len(rows)} | {np.mean(gaps):+.2f} dB | {min(gaps):+.2f} dB | {higher} of {len(rows)} |"

    for directory in (path, *(ROOT / m for m in more)):
        rows = _scalar_vs_learned(directory)
        everything += rows
        lines.append(row(f"`{directory.relative_to(ROOT)}`", rows))
    lines.append(row("all", everything))
    return "\n".join(lines)


def bench(path: Path) -> str:
    data = json.loads(path.read_text())
    lines = ["| model | backend | T | H x W | p50 ms | p90 ms | vs first row |", "| --- | --- | --- | --- | --- | --- | --- |"]
    first = data["results"][0]["p50_ms"]
    for r in data["results"]:
        lines.append(f"| {Path(r['model']).name} | {r['backend']} | {r['iterations']} | {r['height']} x {r['width']} | "
                     f"{r['p50_ms']:.0f} | {r['p90_ms']:.0f} | {r['p50_ms'] / first:.2f} |")
    return "\n".join(lines)


def quality_speed(path: Path) -> str:
    data = json.loads(path.read_text())
    lines = ["| scheme | T | held-out real MR PSNR / SSIM | synthetic PSNR / SSIM | ms per slice (p50, " + f"{data['size']} x {data['size']})" + " |",
             "| --- | --- | --- | --- | --- |"]
    for r in data["rows"]:
        ms = f"{r['p50_ms']:.0f}" if r.get("p50_ms") else "-"
        held = f"{r['held-out'][0]:.2f} dB / {r['held-out'][1]:.3f}" if "held-out" in r else "-"
        lines.append(f"| {r['label']} | {r['T']} | {held} | {r['synthetic'][0]:.2f} dB / {r['synthetic'][1]:.3f} | {ms} |")
    return "\n".join(lines)


def convergence(path: Path) -> str:
    data = json.loads(path.read_text())
    ts = ("64", "256", "1024")
    lines = ["| case | maps | " + " | ".join(f"PDHG T={t}" for t in ts) + " | " + " | ".join(f"ADMM T={t}" for t in ("16", "32", "64", "128", "256"))
             + " | reference: energy change over its last 1000 iterations |", "| --- | --- |" + " --- |" * 9]
    for r in data["records"]:
        for label, e in r["maps"].items():
            lines.append(f"| {r['case']} | {label} | " + " | ".join(f"{e['pdhg'][t]:.3f}" for t in ts) + " | "
                         + " | ".join(f"{e['admm'][t]:.4f}" for t in ("16", "32", "64", "128", "256"))
                         + f" | {e['reference_last_third_energy_change']:.1e} |")
    return "\n".join(lines)


def convergence_scan(path: Path, maps: str) -> str:
    """Worst relative energy gap per (rho, alpha) over the scanned cases with ``maps`` ("scalar" or "u-tgv")."""
    data = json.loads(path.read_text())
    worst: dict[str, dict[str, float]] = {}
    for record in data["records"]:
        for setting, gaps in record["maps"][maps].get("energy_gap", {}).items():
            for t, gap in gaps.items():
                worst.setdefault(setting, {})[t] = max(worst.get(setting, {}).get(t, 0.0), gap)
    lines = ["| rho, alpha | worst gap T=32 | T=64 | T=128 |", "| --- | --- | --- | --- |"]
    for setting, gaps in sorted(worst.items(), key=lambda kv: kv[1]["128"]):
        lines.append(f"| {setting} | {gaps['32']:.1e} | {gaps['64']:.1e} | {gaps['128']:.1e} |")
    return "\n".join(lines)


def export(path: Path) -> str:
    d = json.loads(path.read_text())
    return ("| T | H x W | nodes | nodes per iteration | seconds (with parity check) | parity (relative L2) |\n"
            "| --- | --- | --- | --- | --- | --- |\n"
            f"| {d['iterations']} | {d['height']} x {d['width']} | {d['nodes']} | {d['nodes_per_iteration']:.1f} | {d['seconds']:.1f} | "
            f"{d['parity_rel_l2']:.1e} |")


def convergence_sense(path: Path) -> str:
    data = json.loads(path.read_text())
    ts = [str(t) for t in data["settings"]["checkpoints"]]
    per_iteration = data["settings"]["dft_per_iteration"]
    lines = ["| scheme (extended maps) | DFTs per iteration | " + " | ".join(f"T={t}" for t in ts) + " |",
             "| --- | --- |" + " --- |" * len(ts)]
    for scheme, distances in data["median_distance"]["extended"].items():
        dfts = per_iteration["pdhg_sense"] if scheme.startswith("PDHG") else per_iteration["admm_coil_split"]
        lines.append(f"| {scheme} | {dfts} | " + " | ".join(f"{distances[t]:.4f}" for t in ts) + " |")
    lines += ["", "| rho_coil | extended: median / worst gap T=128 | cropped: median / worst gap T=128 |", "| --- | --- | --- |"]
    for rho in data["energy_gap"]["extended"]:
        e, c = data["energy_gap"]["extended"][rho], data["energy_gap"]["cropped"].get(rho, {})
        lines.append(f"| {rho} | {e['median_128']:.1e} / {e['worst_128']:.1e} | "
                     + (f"{c['median_128']:.1e} / {c['worst_128']:.1e} |" if c else "- |"))
    return "\n".join(lines)


def coil_gain(path: Path) -> str:
    data = json.loads(path.read_text())
    medians = data["median_psnr_by_gain"]
    lines = ["| gain | " + " | ".join(medians) + " |", "| --- |" + " --- |" * len(medians)]
    lines.append("| median PSNR (dB) | " + " | ".join(f"{v:.2f}" for v in medians.values()) + " |")
    return "\n".join(lines)


def rho_coil(path: Path) -> str:
    data = json.loads(path.read_text())
    groups: dict[tuple, list[float]] = {}
    for r in data["rows"]:
        groups.setdefault((r["model"], r["acceleration"], r["rho_coil"], r["iterations"]), []).append(r["psnr"])
    settings, columns, grid = _pivot([{"key": k, "psnr": float(np.mean(v))} for k, v in groups.items()],
                                     lambda r: r["key"][:2], lambda r: r["key"][2:])
    header = [f"rho_coil {rc:g}, T={t}" for rc, t in columns]
    lines = ["| model | R | " + " | ".join(header) + " |", "| --- | --- |" + " --- |" * len(columns)]
    for model, acceleration in settings:
        lines.append(f"| {model} | {acceleration} | " + " | ".join(f"{grid[(model, acceleration), c]['psnr']:.2f}" for c in columns) + " |")
    overall = {c: float(np.mean([p for k, v in groups.items() if k[2:] == c for p in v])) for c in columns}
    lines.append("| both | 4 and 8 | " + " | ".join(f"{overall[c]:.2f}" for c in columns) + " |")
    return "\n".join(lines)


def rho_rule(path: Path) -> str:
    data = json.loads(path.read_text())
    best_gap = lambda r: r["gap_T128"][f"{r['best_rho']:g}"]  # noqa: E731
    lines = ["| case | regulariser | weights | best rho (c) | gap T=128, best | default rho | gap T=128, default | gap T=128, rho 2 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in data["rows"]:
        lines.append(f"| {r['case']} | {r['regulariser']} | {', '.join(f'{w:g}' for w in r['weights'])} | {r['best_rho']:g} "
                     f"({r['constant']:.0f}) | {best_gap(r):.1e} | {r['rule_rho']:.2f} | {r['rule_gap_T128']:.1e} | {r['gap_T128']['2']:.1e} |")
    shipped = data.get("shipped_constant", data["fitted_constant"])  # recorded since the default columns run the solver's default
    for regulariser, c in data["fitted_constant"].items():
        own = [r for r in data["rows"] if r["regulariser"] == regulariser]
        fit = f"c = {c:.0f}" + ("" if shipped[regulariser] == c else f" (shipped {shipped[regulariser]:g})")
        lines.append(f"| worst, {regulariser} | | | {fit} | {max(map(best_gap, own)):.1e} | | "
                     f"{max(r['rule_gap_T128'] for r in own):.1e} | {max(r['gap_T128']['2'] for r in own):.1e} |")
    return "\n".join(lines)


def rho_ramp(path: Path) -> str:
    data = json.loads(path.read_text())
    rows = data["rows"]
    worst_constant = max(r["gap_T128"]["1->1"] for r in rows)
    lines = [f"| penalty over the run (x the rule's rho) | worst gap T={data['iterations']} | gap / constant rule's: worst | geometric mean |",
             "| --- | --- | --- | --- |", f"| constant (1 -> 1) | {worst_constant:.1e} | 1 | 1 |"]
    chosen = tuple(data["chosen"])
    for r in data["summary"][:6]:
        mark = " (chosen)" if (r["start"], r["end"]) == chosen else ""
        lines.append(f"| {r['start']:g} -> {r['end']:g}{mark} | {r['worst_gap']:.1e} | {r['worst_ratio']:.2f} | {r['geometric_mean_ratio']:.2f} |")
    long = data["long_iterations"]
    lower = sum(r["gap_T2000_chosen"] < r["gap_T2000_constant"] for r in rows)
    below = sum(r["gap_T2000_chosen"] < 0 for r in rows)
    lines += ["", f"At T = {long}: the constant rule's worst gap {max(r['gap_T2000_constant'] for r in rows):.1e}; the chosen ramp ends at "
                  f"the lower energy in {lower} of {len(rows)} problems, within {max(abs(r['gap_T2000_chosen']) for r in rows):.1e} of E*"
              + (f" and below it in {below} (E* is the best of {data['reference_iterations']}-iteration runs, less converged than the "
                 f"ramp at T = {long})" if below else "") + "."]
    return "\n".join(lines)


def oracle_gap(path: Path) -> str:
    data = json.loads(path.read_text())
    constant = "gap_T128_constant" in data["cases"][0]  # files before the ramp hold the constant rule only
    lines = ["| slice | gap T=128 | gap T=2000 |" + (" constant rho: T=128 | T=2000 |" if constant else "")
             + " reference: largest energy change over its last third |", "| --- | --- | --- |" + (" --- | --- |" if constant else "") + " --- |"]
    for case in data["cases"]:
        change = max(run["change_last_third"] for run in case["reference_runs"].values())
        extra = f" {case['gap_T128_constant']:.2e} | {case['gap_T2000_constant']:.2e} |" if constant else ""
        lines.append(f"| {case['case']} | {case['gap_T128']:.2e} | {case['gap_T2000']:.2e} |{extra} {change:.1e} |")
    return "\n".join(lines)


def _pivot(rows: list[dict], row_of: Callable[[dict], Any], column_of: Callable[[dict], Any]) -> tuple[list, list, dict]:
    """Records as a grid: the row keys and the column keys in first-seen order, and each (row, column)'s record."""
    grid = {(row_of(r), column_of(r)): r for r in rows}
    return list(dict.fromkeys(k[0] for k in grid)), list(dict.fromkeys(k[1] for k in grid)), grid


def map_scale(path: Path, show: str = "") -> str:
    """``show = "psnr"`` adds each cell's PSNR at factor 1 (the model as it is)."""
    models, settings, grid = _pivot(json.loads(path.read_text())["rows"], lambda r: r["model"],
                                    lambda r: (r["sigma"], r["acceleration"]))
    lines = ["| model | " + " | ".join(f"sigma {s:g}, R={a}" for s, a in settings) + " |", "| --- |" + " --- |" * len(settings)]
    for model in models:
        cells = []
        for setting in settings:
            r = grid[model, setting]
            best = str(r["best_factor"])
            at_one = f"; {r['psnr']['1.0']:.2f} dB at 1" if show == "psnr" else ""
            cells.append(f"{float(best):g} ({r['psnr'][best] - r['psnr']['1.0']:+.2f} dB{at_one})")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def noise_level(path: Path) -> str:
    data = json.loads(path.read_text())
    sources, sigmas, grid = _pivot(data["estimate_over_truth"], lambda r: r["source"], lambda r: r["sigma"])
    lines = ["| estimate / truth (median, p10-p90) | " + " | ".join(f"sigma {s:g}" for s in sigmas) + " |",
             "| --- |" + " --- |" * len(sigmas)]
    for source in sources:
        cells = [f"{grid[source, s]['median']:.2f} ({grid[source, s]['p10']:.2f}-{grid[source, s]['p90']:.2f})" for s in sigmas]
        lines.append(f"| {source} ({grid[source, sigmas[0]]['images']} images) | " + " | ".join(cells) + " |")
    if "signal_floor" in data:
        lines += ["", "| noise-free estimate (median, p10-p90) | signal floor |", "| --- | --- |"]
        lines += [f"| {r['source']} ({r['images']} images) | {r['median']:.4f} ({r['p10']:.4f}-{r['p90']:.4f}) |"
                  for r in data["signal_floor"]]
    per_file: dict[str, list[float]] = {}
    for r in data["image_noise_at_R4_sigma0.05"]:
        per_file.setdefault(r["slice"].split(":")[0], []).append(r["image_noise_per_pixel"])
    lines += ["", "| held-out file | noise per pixel of the normalised zero-filled image at R = 4, sigma = 0.05 |", "| --- | --- |"]
    lines += [f"| {name} | {np.min(v):.4f}-{np.max(v):.4f} |" if len(v) > 1 else f"| {name} | {v[0]:.4f} |" for name, v in per_file.items()]
    return "\n".join(lines)


def rho_schedule(path: Path) -> str:
    rows = json.loads(path.read_text())["rows"]
    learned = [r for r in rows if r["schedule"].startswith("learned")]
    geometric = sorted((r for r in rows if r["schedule"].startswith("geometric")), key=lambda r: r["distance"])
    best_ssim = max(geometric, key=lambda r: r["ssim"])
    shown = learned + geometric[:4] + ([best_ssim] if best_ssim not in geometric[:4] else [])
    shown += [r for r in rows if r["schedule"].startswith("alternating")]
    lines = ["| schedule (T = 64) | distance to the minimiser | PSNR | SSIM |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['schedule']} | {r['distance']:.2e} | {r['psnr']:.2f} dB | {r['ssim']:.3f} |" for r in shown]
    return "\n".join(lines)


def penalty_ratio(path: Path) -> str:
    solvers, sigmas, grid = _pivot(json.loads(path.read_text())["rows"], lambda r: (r["solver"], r["iterations"]),
                                   lambda r: r["sigma"])
    lines = ["| solver | T | " + " | ".join(f"sigma {s:g}: PSNR / SSIM (background / object)" for s in sigmas) + " |",
             "| --- | --- |" + " --- |" * len(sigmas)]
    for solver, iterations in solvers:
        cells = [f"{r['psnr']:.2f} / {r['ssim']:.3f} ({r['ssim_background']:.3f} / {r['ssim_object']:.3f})"
                 for r in (grid[(solver, iterations), s] for s in sigmas)]
        name = solver if solver == "U-TV" else f"U-TGV, {solver}"
        lines.append(f"| {name} | {iterations} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rho_schedule_fit(path: Path) -> str:
    """A model's schedule against the one fitted to its maps: PSNR / SSIM (background / object) per setting."""
    data = json.loads(path.read_text())
    schedules, settings, grid = _pivot(data["rows"], lambda r: r["schedule"], lambda r: r["setting"])
    lines = [f"| schedule (T = {data['iterations']}) | " + " | ".join(settings) + " |", "| --- |" + " --- |" * len(settings)]
    for schedule in schedules:
        cells = [f"{r['psnr']:.2f} / {r['ssim']:.3f} ({r['ssim_background']:.3f} / {r['ssim_object']:.3f})"
                 for r in (grid[schedule, setting] for setting in settings)]
        lines.append(f"| {schedule} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def background_kind(path: Path) -> str:
    """U-TV and U-TGV by the kind of background: PSNR / SSIM (background / object), and U-TGV's SSIM wins."""
    data = json.loads(path.read_text())
    lines = ["| images | exact zeros | U-TV | U-TGV | U-TGV's SSIM higher |", "| --- | --- | --- | --- | --- |"]
    for row in data["rows"]:
        cells = [f"{r['psnr']:.2f} dB / {r['ssim']:.3f} ({r['ssim_background']:.3f} / {r['ssim_object']:.3f})"
                 for r in (row["U-TV"], row["U-TGV"])]
        lines.append(f"| {row['images']} | {row['exact_zero_fraction']:.0%} of pixels | {cells[0]} | {cells[1]} | "
                     f"{row['utgv_ssim_higher']} of {row['count']} |")
    return "\n".join(lines)


def map_ceiling(path: Path) -> str:
    """Per slice, SSIM (background / object) of each model, of the maps fitted through its iteration
    and, where recorded, of those maps solved on to a larger T; with two models, the fitted first
    minus the fitted second."""
    data = json.loads(path.read_text())
    names = {"utgv-mri": "U-TGV", "utv-mri": "U-TV"}
    models, cases = data["models"], data["cases"]
    compare = len(models) == 2
    kinds = ("model", "fitted") + (("fitted_converged",) if "fitted_converged" in cases[0][models[0]] else ())
    iterations = cases[0][models[0]]["iterations"]
    titles = {"model": f"model (T = {iterations})", "fitted": f"fitted maps (T = {iterations})",
              "fitted_converged": f"fitted maps at T = {cases[0][models[0]].get('converged_iterations')}"}

    def cell(scores) -> str:
        return f"{scores[1]:.3f} ({scores[2]:.3f} / {scores[3]:.3f})"

    def difference(case: dict) -> float:
        return case[models[0]]["fitted"][1] - case[models[1]]["fitted"][1]

    header = [f"{names.get(m, m)} {titles[k]}" for m in models for k in kinds]
    header += [f"fitted: {names.get(models[0])} - {names.get(models[1])}"] if compare else []
    lines = ["| slice | " + " | ".join(header) + " |", "| --- |" + " --- |" * len(header)]
    for case in cases:
        cells = [cell(case[m][k]) for m in models for k in kinds] + ([f"{difference(case):+.3f}"] if compare else [])
        lines.append(f"| {case['case']} | " + " | ".join(cells) + " |")
    means = [cell(np.mean([case[m][k] for case in cases], axis=0)) for m in models for k in kinds]
    means += [f"{np.mean([difference(case) for case in cases]):+.3f}"] if compare else []
    lines.append("| mean | " + " | ".join(means) + " |")
    return "\n".join(lines)


def map_ceiling_schedule(path: Path) -> str:
    """The penalty factors fitted with the maps (``--rho-schedule``) at a few iterations, per slice."""
    cases = json.loads(path.read_text())["cases"]
    factors = {case["case"]: case["utgv-mri"]["fitted_rho_factors"] for case in cases}
    count = len(next(iter(factors.values())))
    shown = sorted({1, 2, 3, 4, count // 8, count // 4, count // 2, 3 * count // 4, count - 3, count - 2, count - 1, count} - {0})
    lines = ["| slice | " + " | ".join(f"k = {k}" for k in shown) + " |", "| --- |" + " --- |" * len(shown)]
    for name, values in factors.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[k - 1]:.3g}" for k in shown) + " |")
    return "\n".join(lines)


def multicoil_latency(path: Path) -> str:
    data = json.loads(path.read_text())
    # one T per row: multi-coil data may have a default T of their own
    lines = [f"| backend | coils | compressed to | T | ms per slice (median, {data['size']} x {data['size']}) | "
             "of which preprocessing | vs single-coil ONNX Runtime |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in data["rows"]:
        lines.append(f"| {r['backend']} | {r['coils']} | {r['compressed_to'] or '-'} | {r['iterations']} | {r['median_ms']:.0f} | "
                     f"{r['preprocess_ms']:.0f} | {r['ratio_to_single_coil_ort']:.2f} |")
    pipe = data.get("mrd_pipe")
    if pipe:
        lines += ["", f"`mrd` pipe ({pipe['model']}): {pipe['images']} images in {pipe['seconds']:.1f} s, "
                      f"{pipe['seconds_per_image']:.1f} s per image including start-up"]
    return "\n".join(lines)


def dft_op(path: Path) -> str:
    data = json.loads(path.read_text())
    lines = [f"| H x W | variant | ms, DFT + inverse of {data['images']} complex images (median of {data['rounds']}) | vs the graph's matmul DFT |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {r['size']} x {r['size']} | {r['variant']} | {r['median_ms']:.2f} | {r['ratio_to_matmul']:.2f} |" for r in data["rows"]]
    return "\n".join(lines)


def quality_vs_t(path: Path) -> str:
    """PSNR / SSIM per (coils, R) against T: one row per setting, one column per T."""
    data = json.loads(path.read_text())
    ts = data["iterations"]
    lines = ["| data | R | " + " | ".join(f"T={t}" for t in ts) + " |", "| --- | --- |" + " --- |" * len(ts)]
    settings = dict.fromkeys((r["coils"], r["acceleration"]) for r in data["rows"])
    for coils, acceleration in settings:
        cells = {r["T"]: r for r in data["rows"] if (r["coils"], r["acceleration"]) == (coils, acceleration)}
        name = f"{coils} coils" if coils > 1 else "single-coil"
        lines.append(f"| {name} | {acceleration} | " + " | ".join(f"{cells[t]['psnr']:.2f} dB / {cells[t]['ssim']:.3f}" for t in ts) + " |")
    return "\n".join(lines)


def provenance(path: Path) -> str:
    data = json.loads(path.read_text())
    data = data.get("provenance", data)  # nested by the newer scripts, top level in the older ones
    machine = data.get("machine", {})
    return (f"`{data.get('command', '?')}` at commit `{str(data.get('commit', '?'))[:12]}`, on {machine.get('cpu_model', '?')} "
            f"({machine.get('cpus', '?')} CPUs), torch {machine.get('torch', '-')}, onnxruntime {machine.get('onnxruntime', '-')}")


KINDS = {"quality": quality, "margins": margins, "margins-pooled": margins_pooled, "bench": bench, "quality-speed": quality_speed, "convergence": convergence,
         "convergence-scan": convergence_scan, "export": export, "provenance": provenance, "convergence-sense": convergence_sense,
         "coil-gain": coil_gain, "rho-coil": rho_coil, "rho-rule": rho_rule, "oracle-gap": oracle_gap, "multicoil-latency": multicoil_latency,
         "map-scale": map_scale, "noise-level": noise_level, "penalty-ratio": penalty_ratio,
         "rho-schedule": rho_schedule, "rho-schedule-fit": rho_schedule_fit, "background-kind": background_kind, "map-ceiling": map_ceiling,
         "map-ceiling-schedule": map_ceiling_schedule, "dft-op": dft_op, "rho-ramp": rho_ramp, "quality-vs-t": quality_vs_t}


def render(spec: str) -> str:
    kind, path, *options = spec.split()
    if kind not in KINDS:
        raise ValueError(f"unknown table kind {kind!r} (known: {', '.join(KINDS)})")
    return KINDS[kind](ROOT / path, *options) + "\n"


def update(document: Path, check: bool) -> list[str]:
    """Rewrite ``document``'s tables; return the specs whose table was out of date."""
    text = document.read_text()
    stale: list[str] = []

    def replace(match: re.Match) -> str:
        body = render(match.group("spec"))
        if body != match.group("body"):
            stale.append(match.group("spec"))
        return match.group(1) + body + match.group(4)

    new = BLOCK.sub(replace, text)
    if not check and new != text:
        document.write_text(new)
    return stale


def documents() -> list[Path]:
    return sorted({p for pattern in DOCUMENTS for p in ROOT.glob(pattern)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a table differs from its result file; write nothing")
    args = parser.parse_args()
    stale = {str(d.relative_to(ROOT)): s for d in documents() if (s := update(d, args.check))}
    for document, specs in stale.items():
        print(f"{'stale' if args.check else 'updated'}: {document}: {', '.join(specs)}")
    if args.check and stale:
        sys.exit(1)


if __name__ == "__main__":
    main()
