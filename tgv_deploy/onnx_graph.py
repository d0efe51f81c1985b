"""Reading and stamping exported ONNX models (torch-free: used by the runtime too)."""

from __future__ import annotations

from pathlib import Path

import onnx

from tgv_deploy.contract import METADATA_KEY, Contract, sha256_bytes
from tgv_deploy.errors import ContractError, IntegrityError, InputError


def graph_sha256(model: onnx.ModelProto) -> str:
    """SHA-256 of the serialised graph (nodes and weights), independent of the metadata."""
    return sha256_bytes(model.graph.SerializeToString(deterministic=True))


def set_contract(model: onnx.ModelProto, contract: Contract) -> None:
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    model.metadata_props.add(key=METADATA_KEY, value=contract.to_json())


def get_contract(model: onnx.ModelProto, source: str = "model") -> Contract:
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return Contract.from_json(prop.value)
    raise ContractError(f"{source}: no tgv-deploy contract in the ONNX metadata (not exported by tgv-deploy?)")


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """An ONNX model with a graph, or one line on what the file is not."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model not found: {path}")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise IntegrityError(f"{path}: not a readable ONNX file ({type(exc).__name__})") from None
    if not model.graph.node:  # protobuf parses an empty file (and some garbage) as an empty model
        raise IntegrityError(f"{path}: not an ONNX model (no graph nodes)")
    return model


def load_verified(path: str | Path) -> tuple[onnx.ModelProto, Contract]:
    """Load an exported model, read its contract and check the graph against the recorded SHA-256."""
    model = load_onnx(path)
    contract = get_contract(model, str(path))
    if graph_sha256(model) != contract.graph_sha256:
        raise IntegrityError(f"{path}: graph SHA-256 does not match the contract (the file was modified after export)")
    return model, contract
