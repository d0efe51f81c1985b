"""A small helper for writing ONNX graphs node by node, with constants stored once."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


class GraphBuilder:
    """Collects nodes and initializers; every constant is registered once under its name."""

    def __init__(self, prefix: str = ""):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self.prefix = prefix
        self._count = 0
        #: ``len(nodes)`` at the start of each unrolled iteration, and once after the last
        self.iteration_marks: list[int] = []

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, name: str, value: np.ndarray | float | list) -> str:
        """Register a float32 (or int64 for shapes/axes) constant once; returns its name."""
        if name not in self.initializers:
            array = np.asarray(value)
            array = array.astype(np.int64 if array.dtype.kind in "iu" else np.float32)
            self.initializers[name] = numpy_helper.from_array(array, name)
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs) -> str:
        output = self.fresh(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def mark_iteration(self) -> None:
        """Call at the start of every unrolled iteration and once after the last."""
        self.iteration_marks.append(len(self.nodes))

    def nodes_of_middle_iteration(self, kept: list[onnx.NodeProto]) -> int:
        """How many of ``kept`` (the nodes left after pruning) the middle iteration holds: a steady
        one from T = 3 (ADMM) or 4 (PDHG); the first iterations lack state that does not exist yet,
        the last's updates of that state are pruned as unused."""
        marks = self.iteration_marks
        if len(marks) < 2:
            raise ValueError("no iterations were marked")
        k = (len(marks) - 1) // 2
        survivors = {id(node) for node in kept}
        return sum(id(node) in survivors for node in self.nodes[marks[k]:marks[k + 1]])

    def rename_output(self, value: str, new_name: str) -> None:
        """Make the node that produces ``value`` write ``new_name`` instead (for graph outputs)."""
        for node in self.nodes:
            node.output[:] = [new_name if o == value else o for o in node.output]
            node.input[:] = [new_name if i == value else i for i in node.input]


def prune_dead_nodes(nodes: list[onnx.NodeProto], outputs: set[str]) -> list[onnx.NodeProto]:
    """Drop nodes none of whose outputs reach ``outputs`` (walks the list backwards)."""
    needed = set(outputs)
    kept = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    return list(reversed(kept))
