"""Is the ONNX ``DFT`` operator a faster way to run the ADMM graph's transforms in ONNX Runtime (CPU)?

SPEC 5 allows graph variants with the ``DFT`` operator for ONNX Runtime (and TensorRT >= 11.2). This
times, in one ONNX Runtime process with the runtime's own session options, the 2D DFT of the three
complex images one ADMM iteration transforms (``(1, 3, H, W)``), forward and inverse:

* ``matmul``: exactly the nodes the exported graph uses (``export.admm_graph.ADMMGraph``'s DFT and
  inverse, real matrix products, the rows and the columns in two stages where H and W allow);
* ``dft-op``: two ``DFT`` nodes (opset 20, one per axis) forward and two inverse, on the
  ``(..., 2)`` real/imaginary layout the operator takes.

Rounds are interleaved (every variant once per round), medians reported with the ratio to
``matmul``; ``torch.fft.fft2`` + ``ifft2`` on the same images is shown for scale. Both graph
variants are checked against numpy's FFT first.

Usage: ``python benchmarks/dft_op.py [--sizes 256,320] [--rounds 30]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from tgv_deploy.dft import dft_factors
from tgv_deploy.export.admm_graph import ADMMGraph, ADMMSpec
from tgv_deploy.export.graph_builder import GraphBuilder
from tgv_deploy.io_utils import atomic_write_bytes
from tgv_deploy.machine import provenance
from tgv_deploy.runtime.session import _import_ort, session_options

IMAGES = 3  # x, v0, v1: what one ADMM iteration transforms each way


def matmul_graph(size: int) -> tuple[onnx.ModelProto, ADMMGraph]:
    """The exported graph's forward and inverse DFT: images ``(1, 6, H, W)`` -> spectra (on the graph's
    frequency grid, ``(1, 3, n1, H, 2 n2)``; ``n1 = 1`` with dense columns) and back; also the graph
    builder, which knows the grid's frequency order."""
    factors = dft_factors(size)
    spec = ADMMSpec(task="mri", kind="utgv", height=size, width=size, iterations=1, rho=1.0, alpha=1.5,
                    row_blocks=factors[0] if factors else 0, column_blocks=factors[0] if factors else 0)
    g = GraphBuilder()
    admm = ADMMGraph(g, spec)
    spectra = admm._dft("images")
    g.rename_output(spectra, "spectra")
    g.rename_output(admm._idft("spectra"), "back")
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 2 * IMAGES, size, size])]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("spectra", "back")]
    graph = helper.make_graph(g.nodes, "matmul_dft", inputs, outputs, list(g.initializers.values()))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), admm


def dft_op_graph(size: int) -> onnx.ModelProto:
    """Forward and inverse 2D DFT with the ONNX operator on ``(1, 3, H, W, 2)``."""
    axes = [helper.make_tensor(f"axis{a}", TensorProto.INT64, [], [a]) for a in (2, 3)]
    nodes = [
        helper.make_node("DFT", ["images", "", "axis2"], ["rows"]),
        helper.make_node("DFT", ["rows", "", "axis3"], ["spectra"]),
        helper.make_node("DFT", ["spectra", "", "axis2"], ["irows"], inverse=1),
        helper.make_node("DFT", ["irows", "", "axis3"], ["back"], inverse=1),
    ]
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, IMAGES, size, size, 2])]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("spectra", "back")]
    graph = helper.make_graph(nodes, "dft_op", inputs, outputs, axes)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,320")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--output", default="benchmarks/results/dft_op.json")
    args = parser.parse_args()
    ort = _import_ort()
    rng = np.random.default_rng(0)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        images = (rng.standard_normal((IMAGES, size, size)) + 1j * rng.standard_normal((IMAGES, size, size))).astype(np.complex64)
        reference = np.fft.fft2(images, norm="ortho")
        matmul, admm = matmul_graph(size)
        sessions = {name: ort.InferenceSession(model.SerializeToString(), session_options(ort), providers=["CPUExecutionProvider"])
                    for name, model in (("matmul", matmul), ("dft-op", dft_op_graph(size)))}
        feeds = {"matmul": {"images": np.stack([images.real, images.imag], 1).reshape(1, 2 * IMAGES, size, size)},
                 "dft-op": {"images": np.stack([images.real, images.imag], -1)[None]}}
        errors = {}
        for name, session in sessions.items():
            spectra, back = session.run(None, feeds[name])
            if name == "dft-op":  # unnormalised forward; the inverse divides by H W
                spectra = (spectra[..., 0] + 1j * spectra[..., 1])[0] / size
                back = (back[..., 0] + 1j * back[..., 1])[0]
                expected = reference
            else:  # (1, 3, n1, H, [Re | Im] x n2): rows and column blocks in the graph's own order
                n1, n2 = admm.column_blocks, admm.column_block_size
                spectra = spectra.reshape(IMAGES, n1, size, 2, n2)
                spectra = spectra[:, :, :, 0] + 1j * spectra[:, :, :, 1]
                back = back.reshape(IMAGES, 2, size, size)
                back = back[:, 0] + 1j * back[:, 1]
                expected = reference[:, admm.order][:, :, admm.column_order].reshape(IMAGES, size, n1, n2).transpose(0, 2, 1, 3)
            errors[name] = float(np.linalg.norm(spectra - expected) / np.linalg.norm(expected))
            round_trip = float(np.linalg.norm(back - images) / np.linalg.norm(images))
            if round_trip > 1e-4 or errors[name] > 1e-4:
                sys.exit(f"{name} at {size}: round trip {round_trip:.1e}, transform error {errors[name]:.1e}")
        tensor = torch.from_numpy(images)
        runs = {**{name: (lambda s=session, f=feeds[name]: s.run(None, f)) for name, session in sessions.items()},
                "torch.fft": lambda: torch.fft.ifft2(torch.fft.fft2(tensor, norm="ortho"), norm="ortho")}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for name, run in runs.items():  # warm-up
            run()
        for done in range(args.rounds):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - start) * 1e3)
            if (done + 1) % 10 == 0:
                print(f"{size}: round {done + 1}/{args.rounds}", file=sys.stderr)
        base = statistics.median(times["matmul"])
        for name, values in times.items():
            rows.append({"size": size, "variant": name, "median_ms": statistics.median(values),
                         "ratio_to_matmul": statistics.median(values) / base, "check_error": errors.get(name)})
            print(f"{size} {name}: {statistics.median(values):.2f} ms ({statistics.median(values) / base:.2f} x matmul)", file=sys.stderr)
    result = {"provenance": provenance(), "images": IMAGES, "rounds": args.rounds, "rows": rows}
    atomic_write_bytes(Path(args.output), (json.dumps(result, indent=1) + "\n").encode())
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
