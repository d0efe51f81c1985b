"""Integrity and security: pinned hashes, .plan hashes, host code only by name, bundled checkpoints."""

import ast
import json
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import onnx
import pytest

from tgv_deploy import registry
from tgv_deploy.contract import sha256_bytes, sha256_file
from tgv_deploy.errors import ContractError, InputError, IntegrityError
from tgv_deploy.onnx_graph import get_contract, graph_sha256, load_verified, set_contract
from tgv_deploy.trt_common import PLAN_SHA256, plan_contract_path

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = tempfile.gettempdir()


def run(*args):
    return subprocess.run([sys.executable, "-m", "tgv_deploy", *map(str, args)], capture_output=True, text=True, cwd=OUTSIDE)


def _one_error_line(result, code, match):
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and match in lines[0], result.stderr


def _rehashed_tamper(source: Path, target: Path) -> Path:
    """Change a weight and recompute the graph hash in the metadata, as an attacker would."""
    model = onnx.load(str(source))
    weight = next(i for i in model.graph.initializer if i.name == "pdhg/grad_kernel")
    array = onnx.numpy_helper.to_array(weight).copy()
    array.flat[np.abs(array).argmax()] *= 1.01
    weight.CopyFrom(onnx.numpy_helper.from_array(array, weight.name))
    contract = get_contract(model)
    set_contract(model, type(contract)(**{**contract.__dict__, "graph_sha256": graph_sha256(model)}))
    onnx.save(model, str(target))
    return target


def test_pinned_sha256_catches_what_the_metadata_hash_cannot(tmp_path, mri_onnx):
    pytest.importorskip("onnxruntime")
    from tgv_deploy.runtime import Session

    tampered = _rehashed_tamper(mri_onnx, tmp_path / "tampered.onnx")
    load_verified(tampered)  # the self-contained hash accepts it: it only detects corruption
    pinned = sha256_file(mri_onnx)
    Session(mri_onnx, expected_sha256=pinned.upper())  # the deployed file passes, hex in any case
    with pytest.raises(IntegrityError, match="differs from the expected"):
        Session(tampered, expected_sha256=pinned)
    with pytest.raises(InputError, match="64 hexadecimal"):
        Session(mri_onnx, expected_sha256="abc")


def test_cli_expect_sha256_on_infer_and_bench(tmp_path, mri_onnx):
    pytest.importorskip("onnxruntime")
    from tgv_deploy.data.fastmri import write_fastmri

    rng = np.random.default_rng(0)
    data = tmp_path / "k.h5"
    write_fastmri(data, (rng.standard_normal((1, 32, 24)) + 1j * rng.standard_normal((1, 32, 24))).astype(np.complex64))
    tampered = _rehashed_tamper(mri_onnx, tmp_path / "tampered.onnx")
    pinned = sha256_file(mri_onnx)
    out = tmp_path / "o.h5"
    _one_error_line(run("infer", tampered, data, "-o", out, "--expect-sha256", pinned), 5, "differs from the expected")
    assert not out.exists()
    _one_error_line(run("bench", tampered, "--runs", 1, "--expect-sha256", pinned), 5, "differs from the expected")
    _one_error_line(run("bench", mri_onnx, mri_onnx, "--runs", 1, "--expect-sha256", pinned), 3, "once per model")
    ok = run("infer", mri_onnx, data, "-o", out, "--expect-sha256", pinned)
    assert ok.returncode == 0, ok.stderr
    assert out.exists()


def _fake_plan(tmp_path: Path, mri_onnx: Path, version_compatible: bool, record_hash: bool = True) -> Path:
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"serialized engine bytes")
    engine = {"tensorrt_version": "10.99", "compute_capability": "9.0", "version_compatible": version_compatible}
    if record_hash:
        engine[PLAN_SHA256] = sha256_bytes(plan.read_bytes())
    contract = load_verified(mri_onnx)[1].with_engine(**engine)
    plan_contract_path(plan).write_text(contract.to_json())
    return plan


class _FakeTensorRT(types.ModuleType):
    """Just enough of the TensorRT API to see what the backend asks of it (TensorRT cannot run here)."""

    def __init__(self, names):
        super().__init__("tensorrt")
        self.__version__ = "10.99"
        self.runtimes = []
        names_ = names

        class Logger:
            WARNING = 2

            def __init__(self, level):
                pass

        class Engine:
            num_io_tensors = len(names_)

            def get_tensor_name(self, i):
                return names_[i]

            def create_execution_context(self):
                return object()

        fake = self

        class Runtime:
            def __init__(self, logger):
                self.engine_host_code_allowed = False
                self.loaded = None
                fake.runtimes.append(self)

            def deserialize_cuda_engine(self, data):
                self.loaded = bytes(data)
                # like TensorRT: a version-compatible plan needs host code allowed
                return Engine() if self.engine_host_code_allowed or not fake.needs_host_code else None

        self.Builder = object
        self.Logger = Logger
        self.Runtime = Runtime
        self.needs_host_code = False


@pytest.fixture
def fake_tensorrt(monkeypatch, mri_onnx):
    from tgv_deploy.runtime import trt_backend

    names = [s.name for s in (*load_verified(mri_onnx)[1].inputs, *load_verified(mri_onnx)[1].outputs)]
    fake = _FakeTensorRT(names)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(trt_backend, "cuda_device", lambda: ("fake GPU", "9.0"))
    cudart = types.SimpleNamespace(cudaStreamCreate=lambda: (0, 1))
    monkeypatch.setattr(trt_backend, "_cudart", lambda: cudart)
    return fake


def test_plan_json_cannot_allow_host_code(tmp_path, mri_onnx, fake_tensorrt):
    from tgv_deploy.runtime.trt_backend import TensorRTBackend

    plan = _fake_plan(tmp_path, mri_onnx, version_compatible=True)
    fake_tensorrt.needs_host_code = True
    with pytest.raises(ContractError, match="--allow-engine-host-code"):
        TensorRTBackend(plan)
    assert [r.engine_host_code_allowed for r in fake_tensorrt.runtimes] == [False]
    backend = TensorRTBackend(plan, allow_host_code=True)  # asked for by name
    assert backend.runtime.engine_host_code_allowed is True
    assert backend.runtime.loaded == plan.read_bytes()


def test_plan_with_other_bytes_than_recorded_is_never_loaded(tmp_path, mri_onnx, fake_tensorrt):
    from tgv_deploy.runtime.trt_backend import TensorRTBackend

    plan = _fake_plan(tmp_path, mri_onnx, version_compatible=False)
    assert TensorRTBackend(plan).runtime.engine_host_code_allowed is False
    plan.write_bytes(b"a hostile engine")
    with pytest.raises(IntegrityError, match="recorded at build time"):
        TensorRTBackend(plan, allow_host_code=True)
    unrecorded = _fake_plan(tmp_path, mri_onnx, version_compatible=False, record_hash=False)
    with pytest.raises(IntegrityError, match="no plan SHA-256"):
        TensorRTBackend(unrecorded)
    assert len(fake_tensorrt.runtimes) == 1  # neither refused plan reached TensorRT


def test_cli_refuses_a_replaced_plan_without_tensorrt(tmp_path, mri_onnx):
    plan = _fake_plan(tmp_path, mri_onnx, version_compatible=True)
    plan.write_bytes(b"replaced")
    from tgv_deploy.data.fastmri import write_fastmri

    write_fastmri(tmp_path / "k.h5", np.ones((1, 32, 24), np.complex64))
    _one_error_line(run("infer", plan, tmp_path / "k.h5", "-o", tmp_path / "o.h5"), 5, "recorded at build time")


def test_runtime_does_not_import_the_export_stage():
    """The runtime is deployed alone: no module of it may import tgv_deploy.export."""
    offenders = []
    for path in sorted((ROOT / "tgv_deploy" / "runtime").glob("*.py")) + [ROOT / "tgv_deploy" / "trt_common.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(("tgv_deploy.export", "tgv_deploy.training"))]
    assert offenders == []


def test_bundled_sha256_table_matches_the_files():
    assert set(registry.BUNDLED_SHA256) == set(registry.BUNDLED)
    for model in registry.bundled_models():
        if not model.available:
            continue
        actual = sha256_file(model.checkpoint)
        assert actual == registry.BUNDLED_SHA256[model.name], (
            f"{model.checkpoint.name} changed: if it was replaced on purpose, set BUNDLED_SHA256[{model.name!r}] "
            f"in tgv_deploy/registry.py to {actual!r}"
        )


def test_modified_bundled_checkpoint_is_refused(tmp_path, monkeypatch):
    source = registry.bundled_dir()
    if not (source / "utgv-mri.pt").is_file():
        pytest.skip("bundled model utgv-mri is not installed in this checkout")
    copy = tmp_path / "bundled"
    shutil.copytree(source, copy)
    monkeypatch.setattr(registry, "bundled_dir", lambda: copy)
    assert registry.resolve_model("utgv-mri") == copy / "utgv-mri.pt"
    with open(copy / "utgv-mri.pt", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(IntegrityError, match="known-good"):
        registry.resolve_model("utgv-mri")


def test_built_plan_records_its_hash_and_loads(tmp_path, monkeypatch, mri_onnx, fake_tensorrt):
    """build_engine against a mock TensorRT (none can run here): the contract it writes records the
    SHA-256 of the plan bytes it writes, and the runtime accepts exactly that plan."""
    from unittest import mock

    from tgv_deploy.export import trt_build
    from tgv_deploy.runtime.trt_backend import TensorRTBackend

    builder_api = mock.MagicMock(__version__="10.99")
    builder_api.Builder.return_value.build_serialized_network.return_value = b"the engine"
    builder_api.OnnxParser.return_value.parse.return_value = True
    monkeypatch.setitem(sys.modules, "tensorrt", builder_api)
    monkeypatch.setattr(trt_build, "cuda_device", lambda: ("fake GPU", "9.0"))
    plan = tmp_path / "built.plan"
    contract = trt_build.build_engine(mri_onnx, plan, trt_build.BuildConfig(), say=lambda m: None)
    assert plan.read_bytes() == b"the engine"
    assert contract.engine[PLAN_SHA256] == sha256_bytes(b"the engine")
    assert json.loads(plan_contract_path(plan).read_text())["engine"][PLAN_SHA256] == sha256_bytes(b"the engine")
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt)
    assert TensorRTBackend(plan).runtime.loaded == b"the engine"
