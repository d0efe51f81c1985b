"""A Triton Inference Server model repository for an exported model (torch-free).

Two models are written: ``<name>_onnx`` (platform ``onnxruntime_onnx``, ``1/model.onnx``) and
``<name>_trt`` (platform ``tensorrt_plan``; put the plan from ``tgv-deploy build``, built on the
serving GPU, at ``1/model.plan``, as ``1/README.txt`` there says). Tensor names, dims and types come from the contract. A
fixed-batch contract gives ``max_batch_size: 0`` with the batch in ``dims``; a dynamic one gives
``max_batch_size`` with per-item ``dims``.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from tgv_deploy.contract import Contract, TensorSpec
from tgv_deploy.errors import InputError
from tgv_deploy.io_utils import atomic_output

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


def trt_instructions(name: str, contract: Contract) -> str:
    """What the user must add to ``<name>_trt/1/``: this package cannot build the plan for them,
    because a plan is tied to the GPU and TensorRT version of the serving host."""
    batch = "dynamic batch (1 to 8)" if contract.batch is None else f"batch {contract.batch}"
    return (
        f"Put the TensorRT engine of this model here as model.plan, built on the serving GPU with the\n"
        f"TensorRT version of the Triton server ({contract.height}x{contract.width}, T={contract.iterations}, {batch}):\n\n"
        f"    tgv-deploy build {name}_onnx/1/model.onnx -o {name}_trt/1/model.plan\n\n"
        f"(run in the repository folder). Until model.plan is here, Triton fails to load {name}_trt;\n"
        f"{name}_onnx is served as it is.\n"
    )


def check_triton_repo(directory: str | Path, name: str) -> Path:
    """Refuse, before any work, a repository path where the model folders cannot be made."""
    directory = Path(directory)
    for folder in (directory, *(directory / f"{name}_{suffix}" / sub for suffix in ("onnx", "trt") for sub in ("", "1"))):
        if folder.exists() and not folder.is_dir():
            raise InputError(f"--triton-repo: {folder} exists and is not a directory")
    return directory


def write_triton_repo(directory: str | Path, onnx_path: str | Path, contract: Contract, name: str) -> list[Path]:
    """Write both models' ``config.pbtxt``, ``<name>_onnx/1/model.onnx`` and ``<name>_trt/1/README.txt``
    (what to add there); returns the files written.

    Every file is written under a temporary name first and renamed only once all are on disk, so
    a write that fails (a full disk) leaves the repository's files as they were, and removes the
    folders it made: never a half repository for Triton to load, nor a model version's lost config."""
    directory = check_triton_repo(directory, name)
    contents: list[tuple[Path, bytes | Path]] = []
    for suffix, platform in (("onnx", "onnxruntime_onnx"), ("trt", "tensorrt_plan")):
        contents.append((directory / f"{name}_{suffix}" / "config.pbtxt", config_pbtxt(f"{name}_{suffix}", platform, contract).encode()))
    contents.append((directory / f"{name}_onnx" / "1" / "model.onnx", Path(onnx_path)))
    contents.append((directory / f"{name}_trt" / "1" / "README.txt", trt_instructions(name, contract).encode()))
    made: list[Path] = []  # folders this call creates, outermost first
    try:
        for folder in (directory / f"{name}_{suffix}" / "1" for suffix in ("onnx", "trt")):
            missing = [p for p in (folder, *folder.parents) if not p.exists()]
            made.extend(reversed(missing))  # before mkdir: a failure part-way leaves some of them
            folder.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as renames:  # each temporary file is renamed on a clean exit, deleted on an error
            for target, content in contents:
                temporary = renames.enter_context(atomic_output(target))
                if isinstance(content, Path):
                    shutil.copyfile(content, temporary)
                else:
                    temporary.write_bytes(content)
    except BaseException:
        for folder in reversed(made):
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return [target for target, _ in contents]
