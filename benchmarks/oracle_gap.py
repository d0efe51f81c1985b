"""The acceptance check of SPEC 2b's defaults on real slices: ``admm_tgv`` with its default rho and
alpha, scalar maps = each held-out slice's oracle scalar TGV parameters (from the held-out
evaluation's ``results.json``), relative energy gap ``(E(x_T) - E*) / E*`` at T = 128 and 2000, and
the same with the rule's rho held constant (``rho_ramp=(1, 1)``, the default before the ramp).

``admm_tgv``'s default penalty follows the weights (``tgv_deploy.solvers.admm.default_rho``) and
ramps over the run (``DEFAULT_RHO_RAMP``). ``E*``: the smallest of three long float64 ADMM runs of
the periodic problem (the fixed rho = 2, the baselines' per-weight penalty ``rho = 100 L1 / scale``,
and ``admm_tgv``'s own default, ramped over the long run); the relative change of each over its last
third is recorded, so the reference's own accuracy is visible.

Usage: ``python benchmarks/oracle_gap.py [--evaluation benchmarks/results/quality-mri-heldout]
[--data benchmarks/data/undersampled] [--out benchmarks/results/convergence/oracle_gap.json]``
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
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.machine import provenance
from tgv_deploy.solvers import DEFAULT_ALPHA, DEFAULT_RHO, admm_tgv, tgv_energy
from tgv_deploy.solvers.admm import DEFAULT_RHO_RAMP, RHO_PER_WEIGHT, admm_tgv_channels, default_rho, ramp_factors
from tgv_deploy.layout import complex_to_channels
from tgv_deploy.operators.fourier import MaskedFourierOp
from tgv_deploy.models.utgv import image_scale

CHECKPOINTS = (128, 2000)
REFERENCE_ITERATIONS = 9000


def reference_energy(f: torch.Tensor, mask: torch.Tensor, l0: float, l1: float, rho: float | None,
                     ramped: bool = False) -> tuple[float, float]:
    """Long run (``rho=None``: the baselines' per-weight penalty; ``ramped``: ``admm_tgv``'s default
    penalty and ramp instead); returns (energy, relative change over the last third)."""
    f_ch = complex_to_channels(f)
    mask_ch = mask.reshape(1, 1, 1, -1)
    factors = None
    if ramped:
        weight = torch.tensor([np.sqrt(l0 * l1)], dtype=torch.float64)
        rho, factors = float(default_rho(f_ch, mask_ch, weight, "tgv")[0]), ramp_factors(REFERENCE_ITERATIONS, *DEFAULT_RHO_RAMP)
    elif rho is None:
        scale = float(image_scale(MaskedFourierOp(mask_ch).adjoint(f_ch)))
        rho = float(np.clip(100.0 * l1 / scale, 0.05, 1000.0))
    energies: dict[int, float] = {}
    marks = (2 * REFERENCE_ITERATIONS // 3, REFERENCE_ITERATIONS)

    def callback(k, x, v):
        if k + 1 in marks:
            xc = torch.complex(x[:, 0], x[:, 1])
            vc = torch.complex(v[:, :, 0], v[:, :, 1])
            energies[k + 1] = float(tgv_energy(xc, vc, f, l0, l1, mask, periodic=True)[0])

    admm_tgv_channels(f_ch, torch.tensor(l0, dtype=torch.float64).reshape(1, 1, 1),
                      torch.tensor(l1, dtype=torch.float64).reshape(1, 1, 1), mask_ch, REFERENCE_ITERATIONS, rho,
                      DEFAULT_ALPHA, callback=callback, rho_factors=factors)
    return energies[marks[1]], abs(energies[marks[0]] - energies[marks[1]]) / energies[marks[1]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluation", default="benchmarks/results/quality-mri-heldout")
    parser.add_argument("--data", default="benchmarks/data/undersampled")
    parser.add_argument("--out", default="benchmarks/results/convergence/oracle_gap.json")
    parser.add_argument("--slices", type=int, default=1, help="slices per file (the first ones)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = json.loads(Path(args.evaluation, "results.json").read_text())
    rows = []
    for case in results["cases"]:
        if case["setting"] != "file":
            continue
        name, index = case["case"].rsplit(":", 1)
        if int(index) >= args.slices:
            continue
        volume = read_fastmri(Path(args.data) / name)
        f = torch.from_numpy(volume.kspace[int(index)].astype(np.complex128))[None]
        mask = torch.from_numpy(volume.mask[int(index)].astype(np.float64))
        params = case["params"]["scalar TGV"]
        l0, l1 = float(params["lambda0"]), float(params["lambda1"])
        start = time.perf_counter()
        runs = {"fixed_rho_2": reference_energy(f, mask, l0, l1, DEFAULT_RHO), "per_weight": reference_energy(f, mask, l0, l1, None),
                "default_ramped": reference_energy(f, mask, l0, l1, None, ramped=True)}
        e_star = min(energy for energy, _ in runs.values())
        change = max(c for _, c in runs.values())
        row = {"case": case["case"], "lambda0": l0, "lambda1": l1, "reference_energy": e_star,
               "reference_runs": {k: {"energy": e, "change_last_third": c} for k, (e, c) in runs.items()}}
        for t in CHECKPOINTS:
            for suffix, ramp in (("", None), ("_constant", (1.0, 1.0))):  # the default, and the rule's rho held constant
                x, v = admm_tgv(f, l0, l1, mask, iterations=t, return_v=True, rho_ramp=ramp)
                energy = float(tgv_energy(x, v, f, l0, l1, mask, periodic=True)[0])
                row[f"gap_T{t}{suffix}"] = (energy - e_star) / e_star
        rows.append(row)
        print(f"{case['case']}: gap T=128 {row['gap_T128']:.2e} (constant rho {row['gap_T128_constant']:.2e}), "
              f"T=2000 {row['gap_T2000']:.2e} ({row['gap_T2000_constant']:.2e}) "
              f"(reference change {change:.1e}, {time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    out = {"provenance": provenance(), "rho": f"default rule, RHO_PER_WEIGHT {RHO_PER_WEIGHT['tgv']:g}, ramped "
           f"{DEFAULT_RHO_RAMP[0]:g} -> {DEFAULT_RHO_RAMP[1]:g}", "alpha": DEFAULT_ALPHA,
           "reference_iterations": REFERENCE_ITERATIONS,
           "cases": rows}
    atomic_write_bytes(Path(args.out), (json.dumps(out, indent=2) + "\n").encode())
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
