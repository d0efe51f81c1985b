"""A runtime session: one exported model (or checkpoint), one backend, inputs checked against the contract.

Torch-free: ``onnxruntime``, ``tensorrt`` and ``torch`` are imported inside their backends, and a
missing one raises :class:`BackendUnavailableError` naming what to install. Asking for a GPU
backend that does not end up active is an error, never a silent CPU run.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tgv_deploy.contract import Contract, TensorSpec, check_sha256
from tgv_deploy.errors import BackendUnavailableError, ContractError, InputError
from tgv_deploy.onnx_graph import load_verified
from tgv_deploy.registry import resolve_model

BACKENDS = ("auto", "onnxruntime", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt", "torch")
_ORT_PROVIDERS = {
    "onnxruntime": "CPUExecutionProvider",
    "onnxruntime-cuda": "CUDAExecutionProvider",
    "onnxruntime-tensorrt": "TensorrtExecutionProvider",
}


def backend_for(path: Path, backend: str) -> str:
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    suffix = path.suffix.lower()
    natural = {".onnx": "onnxruntime", ".plan": "tensorrt", ".engine": "tensorrt", ".pt": "torch"}.get(suffix)
    if natural is None:
        raise InputError(f"{path}: unknown model type {suffix!r} (expected .onnx, .plan or .pt)")
    chosen = natural if backend == "auto" else backend
    allowed = {"onnxruntime": {".onnx"}, "onnxruntime-cuda": {".onnx"}, "onnxruntime-tensorrt": {".onnx"},
               "tensorrt": {".plan", ".engine"}, "torch": {".pt"}}[chosen]
    if suffix not in allowed:
        raise InputError(f"backend {chosen!r} cannot run a {suffix} file (it runs {', '.join(sorted(allowed))})")
    return chosen


class Backend(Protocol):
    """What every backend offers the session."""

    contract: Contract

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def synchronise(self) -> None:
        """Return once all work issued so far has finished (a no-op where ``run`` already waits)."""


class Session:
    """Run an exported model: ``Session(path, backend="auto").run({name: array}) -> {name: array}``.

    ``path`` is an ``.onnx`` file (ONNX Runtime), a ``.plan`` (TensorRT), a ``.pt`` checkpoint or a
    bundled model name (PyTorch reference; needs torch). ``iterations`` applies to checkpoints only.

    ``expected_sha256``: refuse the model file unless its SHA-256 is this value (a hash the deployer
    pinned; the hash inside an exported model only detects corruption). ``allow_host_code``: let
    TensorRT run host code stored in a ``.plan`` (version-compatible plans); never implied by a file.
    """

    def __init__(self, path: str | Path, backend: str = "auto", iterations: int | None = None, cuda_graphs: bool = False,
                 expected_sha256: str | None = None, allow_host_code: bool = False):
        if iterations is not None and (not isinstance(iterations, int | np.integer) or isinstance(iterations, bool) or iterations < 1):
            raise InputError(f"iterations must be a positive integer, got {iterations!r}")
        iterations = None if iterations is None else int(iterations)
        path = resolve_model(str(path))
        self.path = path
        self.backend = backend_for(path, backend)
        if cuda_graphs and self.backend != "onnxruntime-cuda":
            raise InputError(f"CUDA graphs apply to the onnxruntime-cuda backend only, not {self.backend}")
        if iterations is not None and self.backend != "torch":
            raise InputError("--iterations applies to checkpoints only: an exported model's T is fixed by its contract")
        if allow_host_code and self.backend != "tensorrt":
            raise InputError("allowing engine host code applies to TensorRT .plan files only")
        if expected_sha256 is not None:
            check_sha256(path, expected_sha256)
        self._impl: Backend
        if self.backend.startswith("onnxruntime"):
            self._impl = _OrtBackend(path, self.backend, cuda_graphs)
        elif self.backend == "tensorrt":
            from tgv_deploy.runtime.trt_backend import TensorRTBackend

            self._impl = TensorRTBackend(path, allow_host_code=allow_host_code)
        else:
            from tgv_deploy.runtime.torch_backend import TorchBackend

            self._impl = TorchBackend(path, iterations)
        self.contract: Contract = self._impl.contract

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check ``inputs`` against the contract, then run; returns every output by name."""
        if not isinstance(inputs, dict):
            raise ContractError(f"inputs must be a dict of name -> numpy array, got {type(inputs).__name__}")
        self.contract.check_inputs(inputs)
        return self._impl.run(inputs)

    def synchronise(self) -> None:
        """Wait for the device: timings of asynchronous backends (torch on CUDA) need it."""
        self._impl.synchronise()

    @property
    def providers(self) -> list[str]:
        return getattr(self._impl, "providers", [self.backend])

    def __repr__(self) -> str:
        return f"Session({str(self.path)!r}, backend={self.backend!r}, {self.contract.iterations_text()})"


def _import_ort():
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailableError("onnxruntime is not installed: pip install 'tgv-deploy[cpu]' (or [gpu] on a CUDA host)") from None
    return ort


def session_options(ort: Any) -> Any:
    """The ONNX Runtime ``SessionOptions`` every session of an exported model uses."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # Worker threads spin while a run is in flight (each PDHG node is a few microseconds of
    # work, so waking sleeping threads per node costs ~12%) but stop when the run ends: a
    # pool left spinning steals the cores from whatever runs next in the process (the scanner
    # software, or the torch row of an interleaved bench, once 100x slower).
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    # ORT_ENABLE_ALL adds the NCHWc layout transform, which speeds the U-Net up but wraps
    # every few-channel PDHG convolution in reorders: 15% slower in total from T = 16 on.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    return options


class _OrtBackend:
    def __init__(self, path: Path, backend: str, cuda_graphs: bool):
        model, self.contract = load_verified(path)
        ort = _import_ort()
        wanted = _ORT_PROVIDERS[backend]
        available = ort.get_available_providers()
        if wanted not in available:
            raise BackendUnavailableError(
                f"backend {backend!r} needs ONNX Runtime's {wanted}, this installation has {', '.join(available)}"
            )
        options = session_options(ort)
        provider_options: dict[str, Any] = {}
        if backend == "onnxruntime-cuda" and cuda_graphs:
            provider_options["enable_cuda_graph"] = "1"
        providers = [(wanted, provider_options)] if backend != "onnxruntime" else [wanted]
        try:
            self.session = ort.InferenceSession(model.SerializeToString(), options, providers=providers)
        except Exception as exc:
            raise BackendUnavailableError(f"ONNX Runtime could not create a {backend} session: {str(exc).splitlines()[0]}") from None
        self.providers = self.session.get_providers()
        # onnxruntime-gpu falls back to CPU when CUDA libraries are missing: that is an error here.
        if self.providers[0] != wanted:
            raise BackendUnavailableError(f"asked for {wanted} but ONNX Runtime activated {self.providers}: check the CUDA/TensorRT libraries")
        self.outputs = [spec.name for spec in self.contract.outputs]
        self.cuda = backend == "onnxruntime-cuda"
        self.cuda_graphs = cuda_graphs
        self._device_inputs: dict[str, Any] = {}
        self._lock = threading.Lock() if backend != "onnxruntime" else None

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._lock is None:  # InferenceSession.run is thread-safe on CPU
            return dict(zip(self.outputs, self.session.run(self.outputs, inputs)))
        with self._lock:
            if self.cuda:
                return self._run_cuda(inputs)
            return dict(zip(self.outputs, self.session.run(self.outputs, inputs)))

    def synchronise(self) -> None:
        pass  # run returns host arrays, so the device work has finished

    def _run_cuda(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """IOBinding on the GPU. With CUDA graphs the input buffers must stay the same between
        runs (the graph replays fixed addresses), so they are allocated once and updated in place.
        Not run here (no GPU in this workplace): UNCONFIRMED on real hardware."""
        ort = _import_ort()
        binding = self.session.io_binding()
        for name, array in inputs.items():
            array = np.ascontiguousarray(array)
            value = self._device_inputs.get(name)
            if value is None or value.shape() != list(array.shape):
                value = ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0)
                if self.cuda_graphs:
                    self._device_inputs[name] = value
            else:
                value.update_inplace(array)
            binding.bind_ortvalue_input(name, value)
        for name in self.outputs:
            binding.bind_output(name, "cuda", 0)
        self.session.run_with_iobinding(binding)
        return dict(zip(self.outputs, binding.copy_outputs_to_cpu()))


def checkpoint_contract(
    task: str, kind: str, iterations: int, weights_sha256: str, package_version: str, solver: str = "pdhg",
    multicoil_iterations: int | None = None,
) -> Contract:
    """The contract of a checkpoint run by the torch backend: any H, W, batch and (MRI) coil count; the checkpoint's solver."""
    channels, maps = (2, 2 if kind == "utgv" else 1) if task == "mri" else (1, 2 if kind == "utgv" else 1)
    inputs: tuple[TensorSpec, ...]
    if task == "mri":
        inputs = (TensorSpec("kspace", (-1, 2, -1, -1)), TensorSpec("mask", (-1, 1, 1, -1)))
    else:
        inputs = (TensorSpec("noisy", (-1, 1, -1, -1)),)
    outputs = (TensorSpec("image", (-1, channels, -1, -1)), TensorSpec("maps", (-1, maps, -1, -1)))
    return Contract(task=task, kind=kind, height=-1, width=-1, batch=None, iterations=iterations, inputs=inputs,
                    outputs=outputs, opset=0, package_version=package_version, weights_sha256=weights_sha256, dft="fft",
                    solver=solver, coils=-1 if task == "mri" else 0, multicoil_iterations=multicoil_iterations)
