"""The default penalty schedule of ``admm_tgv``: the rule's rho ramped geometrically over the run.

SPEC 2b allows a per-iteration penalty. For scalar TGV weights on the seeded synthetic slices of
``benchmarks/rho_rule.py`` (``synthetic_image_v3``, its own seed range, 128 x 128, R = 4,
sigma = 0.05, the same eight weight pairs per slice), this runs ``admm_tgv`` with the penalty moving
from ``start`` to ``end`` times the rule's rho (``default_rho``) over T = 128 iterations, on a grid
of (start, end), and records the relative energy gap ``(E(x_T) - E*) / E*`` (``E*``: the smallest of
three 3000-iteration runs: the constant rule's rho, rho = 2, and the grid's steepest ramp) against
the constant rule's. The
chosen ramp is the one with the smallest worst-case ratio to the constant rule (ties: the smaller
geometric mean), to be written into ``tgv_deploy.solvers.admm.DEFAULT_RHO_RAMP`` (the file records
the one shipped when it ran); it also holds each case's gap at T = 2000 for the constant rule and
the chosen ramp (a ramp over 2000 iterations rises more slowly). The held-out real slices are not used for the choice; see
``benchmarks/oracle_gap.py`` for them.

Usage: ``python benchmarks/rho_ramp.py [--images 2] [--out benchmarks/results/convergence/rho_ramp.json]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
import torch

from rho_rule import TGV_WEIGHTS, synthetic_problems, tgv_energy_after  # the slices and weights of rho_rule.py (a sibling script)
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.machine import provenance
from tgv_deploy.solvers.admm import DEFAULT_RHO_RAMP

T = 128
LONG_T = 2000
REFERENCE_ITERATIONS = 3000
STARTS = (0.125, 0.25, 0.5, 1.0)
ENDS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/convergence/rho_ramp.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ramps = [(a, b) for a, b in itertools.product(STARTS, ENDS) if (a, b) != (1.0, 1.0)]
    constant = (1.0, 1.0)
    cases = []
    for name, f, mask in synthetic_problems(args.images):
        for weights in TGV_WEIGHTS:
            reference = min(tgv_energy_after(f, mask, weights, REFERENCE_ITERATIONS, ramp=constant), tgv_energy_after(f, mask, weights, REFERENCE_ITERATIONS, rho=2.0),
                            tgv_energy_after(f, mask, weights, REFERENCE_ITERATIONS, ramp=(min(STARTS), max(ENDS))))
            gaps = {ramp: (tgv_energy_after(f, mask, weights, T, ramp=ramp) - reference) / reference for ramp in [constant, *ramps]}
            cases.append({"case": name, "weights": list(weights), "reference_energy": reference, "f": f, "mask": mask,
                          "gaps": gaps})
            best = min(gaps, key=lambda r: gaps[r])
            print(f"{name} {weights}: constant rule {gaps[constant]:.2e}, best ramp {best[0]:g} -> {best[1]:g} {gaps[best]:.2e}",
                  file=sys.stderr, flush=True)
    summary = []
    for ramp in ramps:
        ratios = [c["gaps"][ramp] / c["gaps"][constant] for c in cases]
        summary.append({"start": ramp[0], "end": ramp[1], "worst_ratio": max(ratios),
                        "geometric_mean_ratio": float(np.exp(np.mean(np.log(ratios)))),
                        "worst_gap": max(c["gaps"][ramp] for c in cases)})
    summary.sort(key=lambda r: (r["worst_ratio"], r["geometric_mean_ratio"]))
    chosen = (summary[0]["start"], summary[0]["end"])
    if chosen != tuple(DEFAULT_RHO_RAMP):
        print(f"the choice {chosen} differs from the shipped DEFAULT_RHO_RAMP {DEFAULT_RHO_RAMP}", file=sys.stderr)
    rows = []
    for c in cases:
        long = {label: (tgv_energy_after(c["f"], c["mask"], tuple(c["weights"]), LONG_T, ramp=ramp) - c["reference_energy"]) / c["reference_energy"]
                for label, ramp in (("constant", constant), ("chosen", chosen))}
        rows.append({"case": c["case"], "weights": c["weights"], "reference_energy": c["reference_energy"],
                     "gap_T128": {f"{a:g}->{b:g}": g for (a, b), g in c["gaps"].items()},
                     "gap_T2000_constant": long["constant"], "gap_T2000_chosen": long["chosen"]})
        print(f"{c['case']} {c['weights']}: T = {LONG_T} constant {long['constant']:.1e}, chosen ramp {long['chosen']:.1e}",
              file=sys.stderr, flush=True)
    payload = {"provenance": provenance(), "iterations": T, "long_iterations": LONG_T, "reference_iterations": REFERENCE_ITERATIONS,
               "acceleration": 4, "sigma": 0.05, "chosen": list(chosen), "shipped": list(DEFAULT_RHO_RAMP),
               "summary": summary, "rows": rows}
    atomic_write_bytes(Path(args.out), (json.dumps(payload, indent=1) + "\n").encode())
    print(f"wrote {args.out}; chosen ramp {chosen[0]:g} -> {chosen[1]:g}", file=sys.stderr)


if __name__ == "__main__":
    main()
