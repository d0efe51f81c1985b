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

from tgv_deploy.data.examples import example_inputs
from tgv_deploy.errors import InputError
from tgv_deploy.machine import machine_description, peak_mb
from tgv_deploy.runtime.session import Session


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
    peak_mb: float  # process peak resident memory after this model's runs (monotone across rows)
    ratio_to_torch: float | None = None


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
) -> list[BenchRow]:
    if runs < 1 or warmup < 0 or batch < 1:
        raise InputError("--runs must be >= 1, --warmup >= 0 and --batch >= 1")
    say = progress or (lambda message: None)
    sessions = []
    for name in models:
        exported = Path(name).suffix in (".onnx", ".plan")  # their T is fixed by the contract
        session = Session(name, backend=backend, iterations=None if exported else iterations)
        c = session.contract
        if c.height != -1:
            if (height or c.height, width or c.width) != (c.height, c.width):
                raise InputError(f"{name}: exported for {c.height}x{c.width}, not {height}x{width}")
            if iterations is not None and iterations != c.iterations:
                raise InputError(f"{name}: exported with T={c.iterations}, not --iterations {iterations}")
            if c.batch is not None and c.batch != batch:
                raise InputError(f"{name}: exported for batch {c.batch}, not --batch {batch}")
        sessions.append(session)
    tasks = {s.contract.task for s in sessions}
    if len(tasks) != 1:
        raise InputError("all models of one bench run must share a task (MRI or denoising)")
    sizes = {(s.contract.height, s.contract.width) for s in sessions if s.contract.height != -1}
    h, w = (height, width) if height and width else (next(iter(sizes)) if sizes else (None, None))
    if h is None:
        raise InputError("pass --height and --width (no exported model fixes the matrix size)")
    inputs = example_inputs(tasks.pop(), batch, h, w)
    times: list[list[float]] = [[] for _ in sessions]
    for session in sessions:
        say(f"warming up {session.path} ({session.backend}, T={session.contract.iterations})")
        for _ in range(warmup):
            session.run(inputs)
    peaks = [0.0] * len(sessions)
    for r in range(runs):
        for i, session in enumerate(sessions):
            start = time.perf_counter()
            session.run(inputs)
            _synchronise(session)
            times[i].append(time.perf_counter() - start)
            peaks[i] = peak_mb()
        say(f"run {r + 1}/{runs}")
    rows = []
    for name, session, samples, peak in zip(models, sessions, times, peaks):
        ms = np.array(samples) * 1e3
        rows.append(BenchRow(
            model=str(name), backend=session.backend, iterations=session.contract.iterations, height=h, width=w,
            batch=batch, p50_ms=float(np.percentile(ms, 50)), p90_ms=float(np.percentile(ms, 90)),
            p99_ms=float(np.percentile(ms, 99)), mean_ms=float(ms.mean()), throughput=float(batch / (ms.mean() / 1e3)), peak_mb=peak,
        ))
    torch_rows = [r for r in rows if r.backend == "torch"]
    if torch_rows:
        for row in rows:
            row.ratio_to_torch = row.p50_ms / torch_rows[0].p50_ms
    return rows


def _synchronise(session: Session) -> None:
    if session.backend == "torch":
        torch = session._impl.torch
        if torch.cuda.is_available() and next(session._impl.model.parameters()).is_cuda:
            torch.cuda.synchronize()


def rows_to_json(rows: list[BenchRow], command: str) -> dict[str, object]:
    return {"machine": machine_description(), "command": command, "results": [asdict(r) for r in rows]}


def rows_to_markdown(rows: list[BenchRow]) -> str:
    lines = ["| model | backend | T | H x W | batch | p50 ms | p90 ms | p99 ms | slices/s | peak MB | vs torch |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ratio = "" if r.ratio_to_torch is None else f"{r.ratio_to_torch:.2f}"
        lines.append(f"| {os.path.basename(r.model)} | {r.backend} | {r.iterations} | {r.height}x{r.width} | {r.batch} | "
                     f"{r.p50_ms:.1f} | {r.p90_ms:.1f} | {r.p99_ms:.1f} | {r.throughput:.2f} | {r.peak_mb:.0f} | {ratio} |")
    return "\n".join(lines)
