import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import make_checkpoint
from tgv_deploy.contract import Contract
from tgv_deploy.data.examples import example_inputs
from tgv_deploy.errors import InputError
from tgv_deploy.export.exporter import ExportConfig, ParityError, build_graph, torch_reference, write_export
from tgv_deploy.export.trt_check import check_model
from tgv_deploy.models import load_checkpoint
from tgv_deploy.onnx_graph import get_contract, graph_sha256, load_verified

ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime (the 'cpu' extra) is needed to run exported graphs")


def _run(model, inputs):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["image", "maps"], inputs)


@pytest.mark.parametrize("kind, task, row_dft", [("utgv", "mri", "factorised"), ("utgv", "mri", "dense"), ("utv", "mri", "factorised"),
                                                ("utgv", "denoise", "auto"), ("utv", "denoise", "auto")])
def test_export_matches_pytorch_and_stays_lean(tmp_path, kind, task, row_dft):
    ckpt = load_checkpoint(make_checkpoint(tmp_path / "m.pt", kind=kind, task=task, iterations=12, height=30, width=21))
    result = build_graph(ckpt, ExportConfig(row_dft=row_dft))  # H = 30 = 6 x 5 factorises
    assert result.row_dft == {"factorised": "two-stage 6 x 5", "dense": "dense", "auto": "none"}[row_dft]
    assert result.parity is not None  # the check ran (build_graph itself refuses more than 1e-5); checked independently below
    inputs = example_inputs(task, 1, 30, 21, seed=7)
    image, maps = _run(result.model, inputs)
    ref_image, ref_maps = torch_reference(ckpt, inputs, 12)
    assert np.linalg.norm(image - ref_image) / np.linalg.norm(ref_image) < 1e-5
    assert np.linalg.norm(maps - ref_maps) / np.linalg.norm(ref_maps) < 1e-5
    # the two-stage row DFT costs six reshape/transpose nodes per iteration more than the dense one
    assert result.nodes_per_iteration <= (41 if row_dft == "factorised" else 35)
    assert check_model(result.model, 10) == [] and check_model(result.model, 11) == []


@pytest.mark.parametrize("row_dft, per_iteration_nodes, row_matrices", [
    ("dense", 34, {"pdhg/dft_rows": [64, 64], "pdhg/idft_rows": [64, 64]}),
    ("factorised", 40, {"pdhg/dft_rows_stage1": [8, 8], "pdhg/idft_rows_stage1": [8, 8],  # H = 32 = 4 x 8
                        "pdhg/dft_rows_stage2": [4, 16, 16], "pdhg/idft_rows_stage2": [4, 16, 16]}),
])
def test_graph_grows_linearly_and_shares_constants(tmp_path, row_dft, per_iteration_nodes, row_matrices):
    ckpt = load_checkpoint(make_checkpoint(tmp_path / "m.pt", iterations=4, height=32, width=24))
    results = [build_graph(ckpt, ExportConfig(iterations=t, verify=False, row_dft=row_dft)) for t in (4, 8, 24)]
    small, large = results[1].model, results[2].model
    assert (len(large.graph.node) - len(small.graph.node)) / 16 == per_iteration_nodes
    assert [r.nodes_per_iteration for r in results] == [per_iteration_nodes] * 3  # one steady iteration's, from T = 4
    assert len(large.graph.initializer) == len(small.graph.initializer)
    dims = {i.name: list(i.dims) for i in large.graph.initializer}
    # forward and adjoint row matrices, real and imaginary column matrices, line selector: each stored once
    assert {name: dims[name] for name in row_matrices} == row_matrices
    assert [dims[n] for n in ("pdhg/dft_cols_im", "pdhg/dft_cols_re", "pdhg/eye_w")] == [[24, 24]] * 3
    matrices = [n for n in dims if n.startswith(("pdhg/dft_rows", "pdhg/idft_rows")) and len(dims[n]) > 1]
    assert sorted(matrices) == sorted(row_matrices)
    for model in (small, large):
        for value in [*model.graph.input, *model.graph.output]:
            assert value.type.tensor_type.elem_type == TensorProto.FLOAT
        assert all(n.op_type != "DFT" for n in model.graph.node)
        assert all(i.data_type in (TensorProto.FLOAT, TensorProto.INT64) for i in model.graph.initializer)


def test_factorised_rows_need_an_even_factorisation(tmp_path):
    ckpt = load_checkpoint(make_checkpoint(tmp_path / "m.pt", iterations=4, height=26, width=24))  # 26 = 2 x 13
    with pytest.raises(InputError, match="row-dft factorised"):
        build_graph(ckpt, ExportConfig(row_dft="factorised"))
    auto = build_graph(ckpt, ExportConfig(iterations=6))  # falls back to the dense product
    assert auto.parity < 1e-5 and "pdhg/dft_rows" in {i.name for i in auto.model.graph.initializer}


def test_contract_in_metadata_and_sidecar(tmp_path, mri_checkpoint):
    result = build_graph(load_checkpoint(mri_checkpoint), ExportConfig(iterations=5))
    onnx_path, json_path = write_export(result, tmp_path / "m.onnx")
    model, contract = load_verified(onnx_path)
    assert contract == Contract.from_json(json_path.read_text()) == result.contract
    assert contract.iterations == 5 and (contract.height, contract.width) == (32, 24) and contract.batch == 1
    assert [s.name for s in contract.inputs] == ["kspace", "mask"] and contract.dft == "matrix"
    assert contract.graph_sha256 == graph_sha256(model) and len(contract.weights_sha256) == 64
    assert contract.max_sampled_lines == 12  # half of W = 24 by default
    assert get_contract(onnx.load(str(onnx_path))).task == "mri"
    data = json.loads(json_path.read_text())
    assert data["kspace_convention"].startswith("centred") and data["opset"] == 17


def test_dynamic_batch(tmp_path, mri_checkpoint):
    ckpt = load_checkpoint(mri_checkpoint)
    result = build_graph(ckpt, ExportConfig(iterations=6, batch=None))
    assert result.contract.batch is None and result.contract.inputs[0].shape[0] == -1
    for batch in (1, 3):
        inputs = example_inputs("mri", batch, 32, 24, seed=batch)
        image, _ = _run(result.model, inputs)
        ref, _ = torch_reference(ckpt, inputs, 6)
        assert image.shape == (batch, 2, 32, 24)
        assert np.linalg.norm(image - ref) / np.linalg.norm(ref) < 1e-5


def test_parity_failure_is_reported(tmp_path, mri_checkpoint, monkeypatch):
    import tgv_deploy.export.exporter as exporter

    monkeypatch.setattr(exporter, "PARITY_TOLERANCE", 1e-12)
    with pytest.raises(ParityError, match="relative L2"):
        build_graph(load_checkpoint(mri_checkpoint), ExportConfig(iterations=3))


def _graph(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_trt_checker_finds_violations():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    c = helper.make_tensor_value_info("c", TensorProto.COMPLEX64, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    axes = helper.make_tensor_value_info("axes", TensorProto.INT64, [1])
    model = _graph(
        [
            helper.make_node("DFT", ["x"], ["d"], name="dft"),
            helper.make_node("Slice", ["x", "s", "e", "axes"], ["sl"], name="slice"),
            helper.make_node("StringNormalizer", ["x"], ["sn"], name="strings"),
            helper.make_node("Resize", ["x", "", "sc"], ["r"], name="resize", mode="cubic", antialias=1),
            helper.make_node("Identity", ["x"], ["y"], name="id"),
        ],
        [x, c, axes],
        [y],
        [helper.make_tensor("s", TensorProto.INT64, [1], [0]), helper.make_tensor("e", TensorProto.INT64, [1], [2])],
        opset=26,
    )
    problems = [str(v) for v in check_model(model, 10)]
    text = "\n".join(problems)
    for expected in ("opset 26", "DFT", "axes", "StringNormalizer", "cubic", "antialias", "complex64"):
        assert expected in text, (expected, text)
    eleven = "\n".join(str(v) for v in check_model(model, 11, allow_dft=True))
    assert "dft (DFT)" not in eleven and "StringNormalizer" in eleven
    with pytest.raises(ValueError):
        check_model(model, 9)


def test_trt_checker_finds_tensors_of_rank_above_eight():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2] * 8)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nine = helper.make_tensor("nine", TensorProto.INT64, [9], [2] * 7 + [1, 2])
    model = _graph([helper.make_node("Reshape", ["x", "nine"], ["wide"], name="wide"), helper.make_node("Relu", ["wide"], ["y"], name="relu")],
                   [x], [y], [nine])
    problems = [str(v) for v in check_model(model, 10)]
    assert len(problems) == 2 and all("rank 9 exceeds TensorRT's 8" in p for p in problems), problems  # "wide" and the output "y"
    eight = helper.make_tensor("nine", TensorProto.INT64, [8], [2] * 8)
    assert check_model(_graph([helper.make_node("Reshape", ["x", "nine"], ["y"], name="same")], [x], [y], [eight]), 10) == []


@pytest.mark.parametrize("batch", [1, None])
def test_triton_repository_parses_with_tritons_own_protobuf(tmp_path, mri_checkpoint, batch):
    model_config = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] (dev extra) not installed")
    from google.protobuf import text_format

    from tgv_deploy.export.triton import write_triton_repo

    result = build_graph(load_checkpoint(mri_checkpoint), ExportConfig(iterations=3, batch=batch, verify=False))
    onnx_path, _ = write_export(result, tmp_path / "m.onnx")
    write_triton_repo(tmp_path / "repo", onnx_path, result.contract, "utgv")
    for suffix, platform in (("onnx", "onnxruntime_onnx"), ("trt", "tensorrt_plan")):
        text = (tmp_path / "repo" / f"utgv_{suffix}" / "config.pbtxt").read_text()
        config = text_format.Parse(text, model_config.ModelConfig())
        assert config.platform == platform and config.name == f"utgv_{suffix}"
        assert [i.name for i in config.input] == ["kspace", "mask"] and [o.name for o in config.output] == ["image", "maps"]
        expected = [1, 2, 32, 24] if batch == 1 else [2, 32, 24]
        assert list(config.input[0].dims) == expected
        assert config.max_batch_size == (0 if batch == 1 else 8)
        assert config.input[0].data_type == model_config.TYPE_FP32
    assert (tmp_path / "repo" / "utgv_onnx" / "1" / "model.onnx").read_bytes() == onnx_path.read_bytes()


@pytest.mark.parametrize("max_lines", [9, 24])
def test_sampled_line_graph_matches_any_mask_within_its_budget(tmp_path, mri_checkpoint, max_lines):
    ckpt = load_checkpoint(mri_checkpoint)
    result = build_graph(ckpt, ExportConfig(iterations=6, batch=2, max_lines=max_lines, verify=False))
    rng = np.random.default_rng(max_lines)
    inputs = example_inputs("mri", 2, 32, 24, seed=3)
    mask = np.zeros((2, 1, 1, 24), np.float32)
    mask[0, ..., rng.choice(24, 9, replace=False)] = 1  # exactly 9 lines, scattered
    mask[1, ..., 10:14] = 1  # fewer lines: the rest of the budget is padding
    inputs = {"kspace": inputs["kspace"] * mask, "mask": mask}
    image, _ = _run(result.model, inputs)
    ref, _ = torch_reference(ckpt, inputs, 6)
    assert np.linalg.norm(image - ref) / np.linalg.norm(ref) < 1e-5


def test_masks_beyond_the_line_budget_are_refused(mri_checkpoint, tmp_path):
    from tgv_deploy.errors import ContractError
    from tgv_deploy.runtime import Session

    result = build_graph(load_checkpoint(mri_checkpoint), ExportConfig(iterations=2, max_lines=6, verify=False))
    path, _ = write_export(result, tmp_path / "m.onnx")
    inputs = example_inputs("mri", 1, 32, 24)
    inputs["mask"][:] = 1
    with pytest.raises(ContractError, match="at most 6"):
        Session(path).run(inputs)


def test_fp16_unet_graph_within_its_stated_tolerance(tmp_path, mri_checkpoint):
    from tgv_deploy.export.exporter import FP16_UNET_TOLERANCE

    result = build_graph(load_checkpoint(mri_checkpoint), ExportConfig(iterations=6, unet_fp16=True))
    assert result.contract.precision == "fp16-unet"
    assert 1e-7 < result.parity < FP16_UNET_TOLERANCE  # really float16 somewhere, and still close
    fp16 = [i.name for i in result.model.graph.initializer if i.data_type == TensorProto.FLOAT16]
    assert fp16 and all("pdhg" not in name for name in fp16)  # only U-Net weights are float16
    assert check_model(result.model, 10) == [] and check_model(result.model, 11) == []
