"""``tgv-deploy bench``: interleaved latency measurement of several models on the same inputs.

Every model sees the same input; after warm-up the runs are interleaved (model A, B, C, A, B, C,
...) so that machine noise affects all rows alike. CPU timings use ``perf_counter``; the torch
backend on CUDA is synchronised before each clock read. Each row reports its ratio to the torch
eager row of the same run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tgv_deploy.contract import Contract, check_sha256
from tgv_deploy.data.examples import example_inputs
from tgv_deploy.errors import InputError
from tgv_deploy.machine import provenance
from tgv_deploy.onnx_graph import load_verified
from tgv_deploy.registry import resolve_model
from tgv_deploy.runtime.session import Session
from tgv_deploy.trt_common import read_plan_contract


@dataclass
class BenchRow:
    model: str
    backend: str
    iterations: int
    height: int
    width: int
    batch: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput: float  # slices per second
    # No memory column: every backend runs in this one process, so its peak resident memory is
    # the largest of all rows so far, not this row's.
    ratio_to_torch: float | None = None
    ratio_to_first: float | None = None  # p50 against the first model of the same run (the baseline)


def _exported_contract(name: str) -> Contract | None:
    """The contract of an exported model, read without creating a backend (cheap); None for checkpoints."""
    suffix = Path(name).suffix.lower()
    if suffix == ".onnx":
        return load_verified(name)[1]
    if suffix in (".plan", ".engine"):
        return read_plan_contract(name)
    return None


def bench(
    models: list[str],
    backend: str = "auto",
    iterations: int | None = None,
    height: int | None = None,
    width: int | None = None,
    batch: int = 1,
    runs: int = 10,
    warmup: int = 2,
    progress: Callable[[str], None] | None = None,
    expected_sha256: list[str] | None = None,
    allow_host_code: bool = False,
    coils: int | None = None,
) -> list[BenchRow]:
    """Time ``models`` on one input. ``expected_sha256``: one pinned hash per model, in order.

    Checkpoints run at ``iterations``, else at the T of the exported models, so that every row
    computes the same number of iterations.
    """
    if runs < 1 or warmup < 0 or batch < 1:
        raise InputError("--runs must be >= 1, --warmup >= 0 and --batch >= 1")
    if expected_sha256 and len(expected_sha256) != len(models):
        raise InputError(f"give --expect-sha256 once per model, in order: {len(expected_sha256)} hashes for {len(models)} models")
    say = progress or (lambda message: None)
    # Every contract is checked before any backend is created: a session of a large graph takes
    # seconds to minutes to build, a wrong T or size should not wait for that.
    pinned: list[str | None] = list(expected_sha256) if expected_sha256 else [None] * len(models)
    for name, expected in zip(models, pinned):
        if expected is not None:
            check_sha256(resolve_model(name), expected)
    contracts = {name: _exported_contract(name) for name in models}
    exported_ts = {c.iterations for c in contracts.values() if c is not None}
    has_checkpoints = any(c is None for c in contracts.values())
    if len(exported_ts) > 1 and has_checkpoints and iterations is None:
        # exported models each run at their own T (comparing schemes at equal quality needs that);
        # a checkpoint then needs to be told which T to run
        raise InputError(f"the exported models have different T ({', '.join(map(str, sorted(exported_ts)))}): "
                         "give checkpoints their T with --iterations")
    for name, c in contracts.items():
        if c is None:
            continue
        if (height or c.height, width or c.width) != (c.height, c.width):
            raise InputError(f"{name}: exported for {c.height}x{c.width}, not {height}x{width}")
        # with one exported T, --iterations must match it (a likely mistake otherwise); with several,
        # it must be one of them (checkpoints join one scheme's T)
        if iterations is not None and iterations not in exported_ts:
            raise InputError(f"{name}: exported with T={c.iterations}, not --iterations {iterations}")
        if c.batch is not None and c.batch != batch:
            raise InputError(f"{name}: exported for batch {c.batch}, not --batch {batch}")
    graph_coils = {c.coils for c in contracts.values() if c is not None}
    if len(graph_coils) > 1:
        raise InputError(f"the exported models take different coil counts {sorted(graph_coils)}; bench one at a time")
    exported_coils = next(iter(graph_coils), None)
    if exported_coils is not None and coils is not None and coils != exported_coils:
        raise InputError(f"--coils {coils} differs from the exported models' {exported_coils}")
    coil_count = (exported_coils or 0) if coils is None else coils
    tasks = {c.task for c in contracts.values() if c is not None}
    if len(tasks) > 1:
        raise InputError("all models of one bench run must share a task (MRI or denoising)")
    checkpoint_t = iterations if iterations is not None else next(iter(exported_ts), None)  # one T when unspecified
    sessions = []
    for name in models:
        exported = contracts[name] is not None  # their T is fixed by the contract
        plan = Path(name).suffix.lower() in (".plan", ".engine")
        sessions.append(Session(name, backend=backend, iterations=None if exported else checkpoint_t,
                                allow_host_code=allow_host_code and plan))
    tasks = {s.contract.task for s in sessions}
    if len(tasks) != 1:
        raise InputError("all models of one bench run must share a task (MRI or denoising)")
    sizes = {(s.contract.height, s.contract.width) for s in sessions if s.contract.height != -1}
    h, w = (height, width) if height and width else (next(iter(sizes)) if sizes else (None, None))
    if h is None or w is None:
        raise InputError("pass --height and --width (no exported model fixes the matrix size)")
    line_limits = [s.contract.max_sampled_lines for s in sessions if s.contract.max_sampled_lines]
    inputs = example_inputs(tasks.pop(), batch, h, w, coils=coil_count, max_lines=min(line_limits, default=None))
    multicoil = "coil_maps" in inputs  # a checkpoint runs these at its multi-coil default T unless told one
    times: list[list[float]] = [[] for _ in sessions]
    for session in sessions:
        say(f"warming up {session.path} ({session.backend}, T={session.contract.iterations_for(multicoil)})")
        for _ in range(warmup):
            session.run(inputs)
    for r in range(runs):
        for i, session in enumerate(sessions):
            start = time.perf_counter()
            session.run(inputs)
            session.synchronise()
            times[i].append(time.perf_counter() - start)
        say(f"run {r + 1}/{runs}")
    rows = []
    for name, session, samples in zip(models, sessions, times):
        ms = np.array(samples) * 1e3
        rows.append(BenchRow(
            model=str(name), backend=session.backend, iterations=session.contract.iterations_for(multicoil), height=h, width=w,
            batch=batch, p50_ms=float(np.percentile(ms, 50)), p90_ms=float(np.percentile(ms, 90)),
            p99_ms=float(np.percentile(ms, 99)), mean_ms=float(ms.mean()), throughput=float(batch / (ms.mean() / 1e3)),
        ))
    for row in rows:
        row.ratio_to_first = row.p50_ms / rows[0].p50_ms
    torch_rows = [r for r in rows if r.backend == "torch"]
    if torch_rows:
        for row in rows:
            row.ratio_to_torch = row.p50_ms / torch_rows[0].p50_ms
    return rows


def rows_to_json(rows: list[BenchRow], command: str) -> dict[str, object]:
    """The result file: rows plus provenance (command, commit, versions, machine, each model file's SHA-256)."""
    files = {r.model: str(resolve_model(r.model)) for r in rows}
    return {**provenance(files), "command": command, "results": [asdict(r) for r in rows]}


def rows_to_markdown(rows: list[BenchRow]) -> str:
    lines = ["| model | backend | T | H x W | batch | p50 ms | p90 ms | p99 ms | slices/s | vs torch | vs first |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ratio = "" if r.ratio_to_torch is None else f"{r.ratio_to_torch:.2f}"
        first = "" if r.ratio_to_first is None else f"{r.ratio_to_first:.2f}"
        lines.append(f"| {os.path.basename(r.model)} | {r.backend} | {r.iterations} | {r.height}x{r.width} | {r.batch} | "
                     f"{r.p50_ms:.1f} | {r.p90_ms:.1f} | {r.p99_ms:.1f} | {r.throughput:.2f} | {ratio} | {first} |")
    return "\n".join(lines)
