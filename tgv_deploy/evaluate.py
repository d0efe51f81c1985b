"""``tgv-deploy evaluate``: zero-filled, converged oracle scalar TV and TGV, U-TV and U-TGV side by side.

The pipeline: cases (:mod:`tgv_deploy.evaluation.cases`) -> scores (:mod:`.scoring`) -> tables,
figures and a JSON record with provenance (:mod:`.report`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from tgv_deploy.baselines import CHECK_EVERY, MAX_ITERATIONS, TOLERANCE
from tgv_deploy.errors import InputError
from tgv_deploy.evaluation.cases import Case, corrupt, corrupt_images, corrupt_multicoil, ground_truth_images, undersampled_cases
from tgv_deploy.evaluation.report import figures, maps_figure, tables, triple_edge_profile
from tgv_deploy.evaluation.scoring import Outcome, evaluate_case, evaluate_denoise_case, load_model
from tgv_deploy.io_utils import atomic_write_bytes

__all__ = ["Case", "Outcome", "maps_figure", "run_evaluation", "triple_edge_profile"]


def _recorded_baselines(path: Path, cases: list[Case], criterion: str) -> tuple[dict[tuple[str, str], dict], dict]:
    """The case records of an earlier ``results.json``, checked to cover ``cases`` with the same
    convergence criterion before any work starts, and where they come from (for the new record)."""
    try:
        data = json.loads(path.read_text())
        records = {(c["setting"], c["case"]): c for c in data["cases"]}
        for c in records.values():
            float(c["params"]["scalar TV"]["lambda"]), float(c["params"]["scalar TGV"]["lambda0"]), float(c["params"]["scalar TGV"]["lambda1"])
            float(c["scores"]["scalar TGV"][0])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"--baselines-from {path}: not an evaluate results.json ({type(exc).__name__})") from None
    if data.get("baseline_convergence") != criterion:
        raise InputError(f"--baselines-from {path}: its baselines stop at {data.get('baseline_convergence')!r}, this run at {criterion!r}")
    missing = [f"{c.name} ({c.setting})" for c in cases if (c.setting, c.name) not in records]
    if missing:
        raise InputError(f"--baselines-from {path}: no record of {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    return records, {"file": path.name, "commit": data.get("provenance", data).get("commit")}


@torch.no_grad()
def run_evaluation(
    files: list[Path], synthetic: int, size: tuple[int, int], settings: list[tuple[float, float]], utgv: str | None,
    utv: str | None, out_dir: Path, baseline_max_iterations: int = MAX_ITERATIONS, say: Callable[[str], None] = print,
    iterations: int | None = None, record: dict | None = None, coils: int = 1, center_fraction: float | None = None,
    max_slices: int | None = None, baselines_from: Path | None = None,
) -> list[Outcome]:
    """Score every case; write ``results.csv``, ``results.md``, ``results.json`` and figures into ``out_dir``.

    ``iterations`` is the models' T (None: each checkpoint's own); the scalar baselines run to
    convergence (at most ``baseline_max_iterations``). ``record`` (e.g. provenance) is stored in the JSON.
    ``coils`` above 1: multi-coil cases (:func:`corrupt_multicoil`, ``center_fraction`` calibration
    lines) from the fully sampled inputs instead of single-coil ones. ``max_slices``: the first slices of each file only.
    ``baselines_from``: an earlier run's ``results.json`` whose tuned scalar parameters are solved again
    instead of searched (every case must be in it, and must reproduce its recorded scores).
    """
    models = load_model(utgv), load_model(utv)
    for option, expected, model in (("--utgv", "utgv", models[0]), ("--utv", "utv", models[1])):
        if model is not None and model.config.kind != expected:
            raise InputError(f"{option} is a {model.config.kind} model")
    if all(m is not None for m in models) and models[0].config.task != models[1].config.task:
        raise InputError(f"--utgv is a {models[0].config.task} model, --utv a {models[1].config.task} one: compare models of one task")
    denoising = any(m is not None and m.config.task == "denoise" for m in models)
    if not denoising and any(r < 1 for r, _ in settings):
        raise InputError(f"--setting: MRI settings need R >= 1, got {[r for r, _ in settings if r < 1]}")
    images = ground_truth_images(files, synthetic, size, max_slices)
    if denoising:
        groups = [corrupt_images(images, s) for _, s in settings]
    elif coils > 1:
        from tgv_deploy.data.masks import default_center_fraction

        groups = [corrupt_multicoil(images, coils, r, center_fraction or default_center_fraction(r), s) for r, s in settings]
    else:
        groups = [corrupt(images, r, s) for r, s in settings] + [undersampled_cases(files)]
    cases = [c for group in groups for c in group]
    if not cases:
        raise InputError("nothing to evaluate: give files or --synthetic N")
    criterion = f"ADMM until the relative change of x over {CHECK_EVERY} iterations < {TOLERANCE:g} (at most {baseline_max_iterations})"
    known, origin = _recorded_baselines(baselines_from, cases, criterion) if baselines_from else ({}, None)
    out_dir.mkdir(parents=True, exist_ok=True)  # after every check: a refused run leaves no directory behind
    evaluate_one = evaluate_denoise_case if denoising else evaluate_case
    outcomes = []
    for i, case in enumerate(cases):
        say(f"[{i + 1}/{len(cases)}] {case.setting} {case.name}")
        outcomes.append(evaluate_one(case, *models, baseline_max_iterations, iterations=iterations,
                                     known=known.get((case.setting, case.name))))
        best = outcomes[-1].scores
        say("    " + ", ".join(f"{m} {p:.2f} dB {s:.3f}" for m, (p, s) in best.items()))
    csv_text, markdown = tables(outcomes)
    atomic_write_bytes(out_dir / "results.csv", csv_text.encode())
    atomic_write_bytes(out_dir / "results.md", (markdown + "\n").encode())
    payload = {
        **(record or {}), "coils": coils,
        **({"baselines_from": origin} if origin else {}),
        "models": {"U-TGV": utgv, "U-TV": utv},
        # the T each model ran: the one asked for, else its default for these cases (multi-coil ones may have their own)
        "model_iterations": {name: iterations or model.config.default_iterations(coils > 1)
                             for name, model in zip(("U-TGV", "U-TV"), models) if model is not None},
        "baseline_convergence": criterion,
        "cases": [{"setting": o.case.setting, "case": o.case.name, "scores": {m: list(v) for m, v in o.scores.items()},
                   "params": o.params,
                   "lambda1_triple_edge": None if o.maps is None else triple_edge_profile(o.case.target, o.maps[-1])["triple_edge"]}
                  for o in outcomes],
    }
    atomic_write_bytes(out_dir / "results.json", json.dumps(payload, indent=1).encode())
    for setting in dict.fromkeys(o.case.setting for o in outcomes):
        first = next(o for o in outcomes if o.case.setting == setting)
        stem = setting.replace(", ", "_").replace("=", "").replace(" ", "_")
        figures(first, out_dir, stem)
    return outcomes

