"""A Triton Inference Server model repository for an exported model (torch-free).

Two models are written: ``<name>_onnx`` (platform ``onnxruntime_onnx``, ``1/model.onnx``) and
``<name>_trt`` (platform ``tensorrt_plan``; put the plan from ``tgv-deploy build``, built on the
serving GPU, at ``1/model.plan``). Tensor names, dims and types come from the contract. A
fixed-batch contract gives ``max_batch_size: 0`` with the batch in ``dims``; a dynamic one gives
``max_batch_size`` with per-item ``dims``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tgv_deploy.contract import Contract, TensorSpec
from tgv_deploy.errors import InputError
from tgv_deploy.io_utils import atomic_write_bytes

DYNAMIC_MAX_BATCH = 8


def _tensor(spec: TensorSpec, dynamic: bool) -> str:
    dims = spec.shape[1:] if dynamic else spec.shape
    return f'  {{\n    name: "{spec.name}"\n    data_type: TYPE_FP32\n    dims: [ {", ".join(str(d) for d in dims)} ]\n  }}'


def config_pbtxt(name: str, platform: str, contract: Contract) -> str:
    dynamic = contract.batch is None
    lines = [
        f'name: "{name}"',
        f'platform: "{platform}"',
        f"max_batch_size: {DYNAMIC_MAX_BATCH if dynamic else 0}",
        "input [\n" + ",\n".join(_tensor(s, dynamic) for s in contract.inputs) + "\n]",
        "output [\n" + ",\n".join(_tensor(s, dynamic) for s in contract.outputs) + "\n]",
        "instance_group [ { kind: KIND_GPU, count: 1 } ]",
        f'parameters {{ key: "tgv_deploy_iterations" value: {{ string_value: "{contract.iterations}" }} }}',
    ]
    return "\n".join(lines) + "\n"


def write_triton_repo(directory: str | Path, onnx_path: str | Path, contract: Contract, name: str) -> list[Path]:
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"--triton-repo must be a directory: {directory}")
    written = []
    for suffix, platform in (("onnx", "onnxruntime_onnx"), ("trt", "tensorrt_plan")):
        model_dir = directory / f"{name}_{suffix}"
        (model_dir / "1").mkdir(parents=True, exist_ok=True)
        written.append(atomic_write_bytes(model_dir / "config.pbtxt", config_pbtxt(f"{name}_{suffix}", platform, contract).encode()))
    target = directory / f"{name}_onnx" / "1" / "model.onnx"
    shutil.copyfile(onnx_path, target)
    written.append(target)
    return written
