"""What the TensorRT engine build and the ``.plan`` runtime share (torch-free).

It lives here, not in ``tgv_deploy.export``, so that the runtime never depends on the export
stage: a deployment host may carry only the runtime.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from tgv_deploy.contract import Contract, sha256_bytes
from tgv_deploy.errors import BackendUnavailableError, InputError, IntegrityError

#: The key of the engine section of a plan's contract that holds the plan's SHA-256 at build time.
PLAN_SHA256 = "plan_sha256"


def import_tensorrt() -> None:
    """Raise :class:`BackendUnavailableError` unless the TensorRT Python bindings are importable.

    Callers then ``import tensorrt as trt`` themselves, so that type checkers see the real API
    (``tensorrt-stubs``). A stubs-only install imports as an empty namespace package: not TensorRT.
    """
    try:
        import tensorrt as trt
    except ImportError:
        raise BackendUnavailableError("TensorRT is not installed (pip install tensorrt on a CUDA host)") from None
    if not hasattr(trt, "Builder"):
        raise BackendUnavailableError("TensorRT is not installed (only type stubs were found)")


def cuda_device() -> tuple[str, str]:
    """Name and compute capability of CUDA device 0 through the CUDA runtime; raises if there is none."""
    for name in ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"):
        try:
            cudart = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        raise BackendUnavailableError("no CUDA runtime library found: a GPU with CUDA is required")
    count = ctypes.c_int(0)
    if cudart.cudaGetDeviceCount(ctypes.byref(count)) != 0 or count.value < 1:
        raise BackendUnavailableError("no CUDA GPU is available")
    major, minor = ctypes.c_int(), ctypes.c_int()
    cudart.cudaDeviceGetAttribute(ctypes.byref(major), 75, 0)  # cudaDevAttrComputeCapabilityMajor
    cudart.cudaDeviceGetAttribute(ctypes.byref(minor), 76, 0)  # cudaDevAttrComputeCapabilityMinor
    props = ctypes.create_string_buffer(4096)  # cudaDeviceProp starts with char name[256]
    cudart.cudaGetDeviceProperties(props, 0)
    return props.value.decode(errors="replace"), f"{major.value}.{minor.value}"


def plan_contract_path(plan: Path) -> Path:
    return Path(str(plan) + ".json")


def read_plan_contract(plan: str | Path) -> Contract:
    path = plan_contract_path(Path(plan))
    if not path.is_file():
        raise InputError(f"{plan}: no contract {path.name} beside the plan (built by tgv-deploy build?)")
    return Contract.from_json(path.read_text())


def read_verified_plan(plan: str | Path, contract: Contract) -> bytes:
    """The plan's bytes, refused unless their SHA-256 is the one the build recorded in ``contract``.

    The bytes returned are the bytes hashed, so the file cannot change between check and use. A
    plan is native code for TensorRT to load: one that does not match its contract is never loaded.
    """
    if not Path(plan).is_file():
        raise InputError(f"model not found: {plan}")
    recorded = contract.engine.get(PLAN_SHA256)
    if not recorded:
        raise IntegrityError(f"{plan}: its contract records no plan SHA-256 (built by an older tgv-deploy?): rebuild it with tgv-deploy build")
    data = Path(plan).read_bytes()
    if sha256_bytes(data) != recorded:
        raise IntegrityError(f"{plan}: SHA-256 differs from the one recorded at build time (the plan was modified or replaced)")
    return data
