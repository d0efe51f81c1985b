"""The native TensorRT backend for ``.plan`` engines (TensorRT 10.x / 11.x Python API + cuda-python).

Written against the documented API without access to TensorRT (docs/tensorrt.md): UNCONFIRMED on
real hardware. Sequence: check the plan's SHA-256 against its contract, deserialize, create an
execution context, bind every I/O tensor by the contract's names with ``set_tensor_address``,
``execute_async_v3`` on a private stream, synchronise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tgv_deploy.errors import BackendUnavailableError, ContractError, IntegrityError
from tgv_deploy.trt_common import cuda_device, import_tensorrt, read_plan_contract, read_verified_plan


def _cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.8
        except ImportError:
            raise BackendUnavailableError("the TensorRT backend needs cuda-python (pip install cuda-python)") from None
    return cudart


def _check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise BackendUnavailableError(f"CUDA runtime error {err}")
    return rest[0] if len(rest) == 1 else rest


class TensorRTBackend:
    """Load a ``.plan`` checked against its contract.

    ``allow_host_code``: let TensorRT run host code stored in the plan (the lean runtime of a
    version-compatible plan). Only the caller can grant it, by name; the JSON beside the plan
    cannot, because whoever can replace a plan can replace its JSON too.
    """

    def __init__(self, path: Path, allow_host_code: bool = False):
        self.contract = read_plan_contract(path)
        # The bytes are checked before TensorRT or CUDA is touched, and the bytes checked are the
        # bytes deserialised.
        plan = read_verified_plan(path, self.contract)
        import_tensorrt()
        import tensorrt as trt

        gpu, capability = cuda_device()
        built_on = self.contract.engine
        version_compatible = bool(built_on.get("version_compatible"))
        if built_on.get("tensorrt_version") and built_on["tensorrt_version"] != trt.__version__ and not version_compatible:
            raise ContractError(f"{path} was built with TensorRT {built_on['tensorrt_version']}, this is {trt.__version__}")
        if built_on.get("compute_capability") and built_on["compute_capability"] != capability:
            raise ContractError(f"{path} was built for compute capability {built_on['compute_capability']}, this GPU ({gpu}) is {capability}")
        self.cudart = _cudart()
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.runtime.engine_host_code_allowed = bool(allow_host_code)
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            if version_compatible and not allow_host_code:
                raise ContractError(
                    f"{path} is a version-compatible plan, which carries host code; TensorRT loads it only when you "
                    "allow that by name (--allow-engine-host-code, or allow_host_code=True), for plans you trust"
                )
            raise IntegrityError(f"{path}: TensorRT could not deserialize the engine")
        names = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
        expected = {s.name for s in (*self.contract.inputs, *self.contract.outputs)}
        if names != expected:
            raise ContractError(f"{path}: engine tensors {sorted(names)} differ from the contract's {sorted(expected)}")
        self.context = self.engine.create_execution_context()
        self.stream = _check(self.cudart.cudaStreamCreate())
        self.providers = ["TensorRT " + trt.__version__]

    def synchronise(self) -> None:
        pass  # run synchronises its stream before it returns

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart, ctx = self.cudart, self.context
        buffers = []
        try:
            for spec in self.contract.inputs:
                array = np.ascontiguousarray(inputs[spec.name])
                if not ctx.set_input_shape(spec.name, self.trt.Dims(list(array.shape))):
                    raise ContractError(f"TensorRT refused input shape {array.shape} for {spec.name!r}")
                ptr = _check(cudart.cudaMalloc(array.nbytes))
                buffers.append(ptr)
                _check(cudart.cudaMemcpyAsync(ptr, array.ctypes.data, array.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
                if not ctx.set_tensor_address(spec.name, int(ptr)):
                    raise BackendUnavailableError(f"TensorRT refused the buffer of {spec.name!r}")
            outputs = {}
            for spec in self.contract.outputs:
                dims = ctx.get_tensor_shape(spec.name)
                shape = tuple(int(dims[i]) for i in range(len(dims)))
                outputs[spec.name] = np.empty(shape, dtype=np.float32)
                ptr = _check(cudart.cudaMalloc(outputs[spec.name].nbytes))
                buffers.append(ptr)
                if not ctx.set_tensor_address(spec.name, int(ptr)):
                    raise BackendUnavailableError(f"TensorRT refused the buffer of {spec.name!r}")
            if not ctx.execute_async_v3(stream_handle=int(self.stream)):
                raise BackendUnavailableError("TensorRT execute_async_v3 failed")
            for spec, ptr in zip(self.contract.outputs, buffers[len(self.contract.inputs):]):
                out = outputs[spec.name]
                _check(cudart.cudaMemcpyAsync(out.ctypes.data, ptr, out.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
            _check(cudart.cudaStreamSynchronize(self.stream))
            return outputs
        finally:
            for ptr in buffers:
                cudart.cudaFree(ptr)
