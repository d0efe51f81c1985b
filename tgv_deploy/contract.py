"""The export contract (SPEC section 5): what an exported graph computes and how to feed it.

One :class:`Contract` travels checkpoint -> exported graph -> engine -> runtime session: it is
written beside the ONNX file as JSON, stored in the ONNX metadata under ``tgv_deploy.contract``,
extended by the engine build, and checked by every runtime before it runs anything.
Torch-free on purpose.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tgv_deploy.errors import ContractError, InputError, IntegrityError

CONTRACT_VERSION = 1
METADATA_KEY = "tgv_deploy.contract"

KSPACE_CONVENTION = "centred: k = fftshift(fft2(ifftshift(x), norm='ortho')) over (H, W); lines along W (phase encode)"
NORMALISATION = "scale = max |A^H f| per image; network and solver see f / scale; outputs multiplied by scale"
LAYOUT = "channel-first (B, C, H, W); C = 2 is (real, imaginary), C = 1 a real image"


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one graph input or output.

    ``-1`` as the first dimension is a dynamic batch; elsewhere it means any size (checkpoints run
    by the torch backend accept any matrix size).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def check(self, array: Any, batch: int | None = None) -> None:
        """Raise :class:`ContractError` unless ``array`` matches this spec."""
        if not isinstance(array, np.ndarray):
            raise ContractError(f"input {self.name!r} must be a numpy array, got {type(array).__name__}")
        if str(array.dtype) != self.dtype:
            raise ContractError(f"input {self.name!r} has dtype {array.dtype}, the contract expects {self.dtype}")
        first = batch if (self.shape and self.shape[0] == -1 and batch is not None) else self.shape[0]
        expected = (first, *self.shape[1:])  # -1 elsewhere: any size (checkpoint sessions)
        if array.ndim != len(expected) or any(e not in (-1, a) for e, a in zip(expected, array.shape)):
            raise ContractError(f"input {self.name!r} has shape {array.shape}, the contract expects {self.shape_text()}")

    def shape_text(self) -> str:
        dims = ["B" if self.shape[0] == -1 else str(self.shape[0])]
        dims += ["*" if d == -1 else str(d) for d in self.shape[1:]]
        return "(" + ", ".join(dims) + ")"


@dataclass(frozen=True)
class Contract:
    """Everything a runtime must know and check about an exported U-TGV / U-TV model."""

    task: str
    kind: str
    height: int
    width: int
    batch: int | None  # None = dynamic
    iterations: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opset: int
    package_version: str
    weights_sha256: str
    graph_sha256: str = ""
    dft: str = "matrix"
    max_sampled_lines: int | None = None  # MRI graphs transform only this many phase-encode lines
    precision: str = "fp32"  # "fp32", or "fp16-unet": the U-Net runs in float16 inside the graph
    solver: str = "pdhg"  # the unrolled iteration: "pdhg" (SPEC 2) or "admm" (SPEC 2b); older contracts are PDHG
    #: Receive coils of the graph's k-space (SPEC 1b): 0 single-coil ``kspace (B, 2, H, W)``; C > 0 a
    #: multi-coil graph with ``kspace`` and ``coil_maps`` ``(B, C, 2, H, W)``; -1 either (checkpoints run by torch).
    coils: int = 0
    #: Checkpoints run by torch (``coils = -1``): the T of multi-coil runs where it differs from
    #: ``iterations`` (``ModelConfig.multicoil_iterations``); an exported graph has one T.
    multicoil_iterations: int | None = None
    layout: str = LAYOUT
    kspace_convention: str = KSPACE_CONVENTION
    normalisation: str = NORMALISATION
    contract_version: int = CONTRACT_VERSION
    engine: dict[str, Any] = field(default_factory=dict)

    def iterations_for(self, multicoil: bool) -> int:
        """The T a single- or multi-coil run of this model takes."""
        if multicoil and self.multicoil_iterations is not None:
            return self.multicoil_iterations
        return self.iterations

    def iterations_text(self) -> str:
        """``T=64``, or ``T=64, multi-coil T=96`` where the two differ."""
        if self.multicoil_iterations is None or self.multicoil_iterations == self.iterations:
            return f"T={self.iterations}"
        return f"T={self.iterations}, multi-coil T={self.multicoil_iterations}"

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise ContractError(f"the contract has no input {name!r}; it has {[s.name for s in self.inputs]}")

    def input_specs(self, multicoil: bool) -> tuple[TensorSpec, ...]:
        """The inputs of a single- or multi-coil run (they differ only for a ``coils = -1`` contract)."""
        if multicoil and self.coils == 0:
            raise ContractError("this model was exported for single-coil k-space; export it with --coils C for multi-coil data")
        if not multicoil and self.coils > 0:
            raise ContractError(f"this model was exported for {self.coils}-coil k-space and coil maps; data with one coil "
                                "(or compressed to one) runs on a single-coil export")
        if self.coils != -1 or not multicoil:
            return self.inputs
        coil = TensorSpec("kspace", (-1, -1, 2, -1, -1))
        return (coil, TensorSpec("coil_maps", coil.shape), TensorSpec("mask", (-1, 1, 1, -1)))

    def check_coils(self, coils: int, multicoil: bool | None = None) -> None:
        """Refuse data with ``coils`` receive coils this model cannot run: multi-coil data (by default,
        more than one coil) on a single-coil graph, more coils than a multi-coil graph was exported
        for (fewer are zero-padded)."""
        multicoil = coils > 1 if multicoil is None else multicoil
        self.input_specs(multicoil)
        if multicoil and self.coils > 0 and coils > self.coils:
            raise ContractError(f"the model was exported for {self.coils} coils, not {coils}: "
                                f"compress the data to at most that many (--coils {self.coils})")

    def check_inputs(self, inputs: dict[str, np.ndarray]) -> int:
        """Validate names, dtypes, shapes and values of ``inputs``; return the batch size."""
        specs = self.input_specs("coil_maps" in inputs) if self.coils == -1 else self.inputs
        expected, given = {s.name for s in specs}, set(inputs)
        if expected != given:
            raise ContractError(f"inputs {sorted(given)} do not match the contract's {sorted(expected)}")
        first = specs[0]
        array = inputs[first.name]
        batch = array.shape[0] if isinstance(array, np.ndarray) and array.ndim else None
        if self.batch is not None and batch != self.batch:
            raise ContractError(f"batch {batch} differs from the contract's fixed batch {self.batch}")
        for spec in specs:
            spec.check(inputs[spec.name], batch)
            if not np.isfinite(inputs[spec.name]).all():
                raise InputError(f"input {spec.name!r} contains NaN or Inf")
        if "coil_maps" in inputs and inputs["coil_maps"].shape != inputs["kspace"].shape:
            raise ContractError(f"coil maps {inputs['coil_maps'].shape} and k-space {inputs['kspace'].shape} differ in shape")
        if batch is None:  # not reached: spec.check refuses a first input without a batch axis
            raise ContractError(f"input {first.name!r} has no batch dimension")
        if "mask" in inputs:
            self.check_masks(np.asarray(inputs["mask"]).reshape(batch, -1))  # the mask's own width: a checkpoint's contract has none
        return int(batch)

    def check_masks(self, masks: np.ndarray) -> None:
        """Refuse line masks ``(B, W)`` this model cannot run: one without the k-space centre (ADMM)
        or with more sampled lines than a PDHG graph transforms."""
        if self.solver == "admm" and not (masks[:, masks.shape[1] // 2] != 0).all():
            raise InputError(f"the mask does not sample the k-space centre (column {masks.shape[1] // 2}); this ADMM model needs it")
        if self.max_sampled_lines and masks.size:
            lines = int((masks != 0).sum(axis=1).max())
            if lines > self.max_sampled_lines:
                raise ContractError(
                    f"the mask samples {lines} lines, the model was exported for at most {self.max_sampled_lines} "
                    "(export again with a larger --max-lines)"
                )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [asdict(s) for s in self.inputs]
        data["outputs"] = [asdict(s) for s in self.outputs]
        if data["multicoil_iterations"] is None:  # absent unless set, so that earlier versions still read exported contracts
            del data["multicoil_iterations"]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Contract:
        try:
            version = data.get("contract_version")
            if version != CONTRACT_VERSION:
                raise ContractError(f"contract version {version!r}, this package reads {CONTRACT_VERSION}")
            fields = dict(data)
            fields["inputs"] = tuple(TensorSpec(s["name"], tuple(s["shape"]), s["dtype"]) for s in data["inputs"])
            fields["outputs"] = tuple(TensorSpec(s["name"], tuple(s["shape"]), s["dtype"]) for s in data["outputs"])
            return cls(**fields)
        except ContractError:
            raise
        except (KeyError, TypeError, AttributeError) as exc:
            raise ContractError(f"malformed contract ({type(exc).__name__}: {exc})") from None

    @classmethod
    def from_json(cls, text: str) -> Contract:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError(f"contract is not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise ContractError("contract JSON must be an object")
        return cls.from_dict(data)

    def with_engine(self, **engine: Any) -> Contract:
        return replace(self, engine={**self.engine, **engine})


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: str | Path, expected: str) -> None:
    """Refuse ``path`` unless its SHA-256 is ``expected`` (64 hex digits, e.g. pinned by a deployer).

    Unlike the graph hash inside an exported model's own metadata, which anyone who edits the
    file can recompute, a hash the deployer holds elsewhere catches tampering too.
    """
    wanted = expected.strip().lower()
    if len(wanted) != 64 or any(c not in "0123456789abcdef" for c in wanted):
        raise InputError(f"expected SHA-256 must be 64 hexadecimal digits, got {expected!r}")
    actual = sha256_file(path)
    if actual != wanted:
        raise IntegrityError(f"{path}: SHA-256 {actual} differs from the expected {wanted}")


def weights_sha256(arrays: dict[str, np.ndarray]) -> str:
    """Order-independent SHA-256 of named arrays: name, dtype, shape and raw bytes of each."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
