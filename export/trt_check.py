"""Offline check of an ONNX graph against the TensorRT ONNX parser's operator support.

The tables come from onnx-tensorrt ``docs/operators.md`` ("TensorRT 10.15" edition: opsets 9-24,
per-operator restrictions). No 11.x edition of that file was available; for 11.x the 10.15 table
is used plus the documented additions (DFT from 11.2, opset 25 from 11.5). Rules for 11.x are
therefore UNCONFIRMED beyond those notes. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import TensorProto

# Operators marked "N" in the 10.15 table, plus anything absent from it (checked by membership).
SUPPORTED_10 = frozenset(
    """Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool BatchNormalization
    BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum
    DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather
    GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample
    GroupNormalization GRU HammingWindow HannWindow HardSigmoid HardSwish Hardmax Identity If ImageScaler
    InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM
    LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression
    NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
    RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin
    ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RMSNormalization RNN RoiAlign
    RotaryEmbedding Round STFT ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin
    Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh TensorScatter
    ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor""".split()
)
SUPPORTED = {10: SUPPORTED_10, 11: SUPPORTED_10 | {"DFT"}}
OPSET_RANGE = {10: (9, 24), 11: (9, 25)}

# Operators whose listed inputs must be build-time constants (initializers or Constant nodes).
CONSTANT_INPUTS = {
    "Conv": {1: "weights W"},
    "ConvTranspose": {1: "weights W"},
    "Slice": {3: "axes"},
    "Squeeze": {1: "axes"},
    "Unsqueeze": {1: "axes"},
    "TopK": {1: "K"},
    "CumSum": {1: "axis"},
    **{op: {1: "axes"} for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
                                  "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare")},
}
RESIZE_MODES = {"nearest", "linear"}
RESIZE_TRANSFORMS = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
# nvinfer1::Dims64::MAX_DIMS (NvInferRuntimeBase.h, TensorRT 10.x API reference): the largest tensor rank.
MAX_RANK = 8
FORBIDDEN_TYPES = {TensorProto.COMPLEX64: "complex64", TensorProto.COMPLEX128: "complex128", TensorProto.STRING: "string"}


@dataclass(frozen=True)
class Violation:
    node: str
    op_type: str
    problem: str

    def __str__(self) -> str:
        return f"{self.node} ({self.op_type}): {self.problem}"


def _attr(node: onnx.NodeProto, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def check_model(model: onnx.ModelProto, trt_major: int = 10, allow_dft: bool = False) -> list[Violation]:
    """Every way ``model`` breaks the TensorRT ``trt_major`` parser's rules (empty list: none found)."""
    if trt_major not in SUPPORTED:
        raise ValueError(f"TensorRT major version must be one of {sorted(SUPPORTED)}, got {trt_major}")
    violations: list[Violation] = []
    lo, hi = OPSET_RANGE[trt_major]
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and not lo <= opset.version <= hi:
            violations.append(Violation("<model>", "opset", f"opset {opset.version} outside TensorRT {trt_major}.x's {lo}-{hi}"))
        elif opset.domain not in ("", "ai.onnx"):
            violations.append(Violation("<model>", "opset", f"custom domain {opset.domain!r} needs a plugin"))
    graph = model.graph
    constants = {init.name for init in graph.initializer}
    constants |= {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    # ranks of intermediate tensors are known only after shape inference (it adds value_info, keeps the graph)
    inferred = onnx.shape_inference.infer_shapes(model).graph
    for value in [*inferred.input, *inferred.output, *inferred.value_info]:
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type in FORBIDDEN_TYPES:
            violations.append(Violation(value.name, "tensor", f"{FORBIDDEN_TYPES[tensor_type.elem_type]} tensors are not supported"))
        if tensor_type.HasField("shape") and len(tensor_type.shape.dim) > MAX_RANK:
            violations.append(Violation(value.name, "tensor", f"rank {len(tensor_type.shape.dim)} exceeds TensorRT's {MAX_RANK}"))
    for init in graph.initializer:
        if init.data_type in FORBIDDEN_TYPES:
            violations.append(Violation(init.name, "initializer", f"{FORBIDDEN_TYPES[init.data_type]} initializer"))
        if len(init.dims) > MAX_RANK:
            violations.append(Violation(init.name, "initializer", f"rank {len(init.dims)} exceeds TensorRT's {MAX_RANK}"))
    supported = SUPPORTED[trt_major]
    for index, node in enumerate(graph.node):
        name = node.name or f"node{index}"
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            violations.append(Violation(name, op, f"operator from custom domain {node.domain!r}"))
            continue
        if op not in supported:
            violations.append(Violation(name, op, f"not supported by the TensorRT {trt_major}.x ONNX parser"))
            continue
        if op == "DFT" and not allow_dft:
            violations.append(Violation(name, op, "DFT needs TensorRT >= 11.2 and is excluded by the graph rules (pass --allow-dft)"))
        for position, what in CONSTANT_INPUTS.get(op, {}).items():
            if len(node.input) > position and node.input[position] and node.input[position] not in constants:
                violations.append(Violation(name, op, f"{what} (input {position}) must be a build-time constant"))
        if op in ("MaxPool", "AveragePool", "LpPool"):
            if op == "MaxPool" and len(node.output) > 1 and node.output[1]:
                violations.append(Violation(name, op, "the Indices output is not supported"))
            if any(d != 1 for d in _attr(node, "dilations", []) or []):
                violations.append(Violation(name, op, "dilations must be empty or all ones"))
            if len(_attr(node, "kernel_shape", [])) not in (2, 3):
                violations.append(Violation(name, op, "only 2D or 3D pooling"))
        if op == "Resize":
            mode = _attr(node, "mode", b"nearest")
            mode = mode.decode() if isinstance(mode, bytes) else mode
            transform = _attr(node, "coordinate_transformation_mode", b"half_pixel")
            transform = transform.decode() if isinstance(transform, bytes) else transform
            if mode not in RESIZE_MODES:
                violations.append(Violation(name, op, f"resize mode {mode!r} unsupported (nearest, linear only)"))
            if transform not in RESIZE_TRANSFORMS:
                violations.append(Violation(name, op, f"coordinate transformation {transform!r} unsupported"))
            if _attr(node, "antialias", 0):
                violations.append(Violation(name, op, "antialiasing is not supported"))
        if op == "TopK" and _attr(node, "sorted", 1) != 1:
            violations.append(Violation(name, op, "sorted must be 1"))
        if op == "Loop":
            violations.extend(_check_loop(node, name, constants))
    return violations


def _check_loop(node: onnx.NodeProto, name: str, constants: set[str]) -> list[Violation]:
    problems = []
    if not node.input or not node.input[0] or node.input[0] not in constants:
        problems.append(Violation(name, "Loop", "trip count M must be a constant (scan outputs cannot have dynamic length)"))
    return problems
