"""Export of ADMM models (SPEC 2b): parity with PyTorch, graph size, TensorRT operator support, contract."""

import numpy as np
import pytest
from onnx import TensorProto

from conftest import make_checkpoint
from tgv_deploy.contract import Contract
from tgv_deploy.data.examples import example_inputs
from tgv_deploy.errors import InputError
from tgv_deploy.export.exporter import ExportConfig, build_graph, torch_reference
from tgv_deploy.export.trt_check import check_model
from tgv_deploy.models import load_checkpoint
from tgv_deploy.onnx_graph import get_contract

ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime (the 'cpu' extra) is needed to run exported graphs")


def _run(model, inputs):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["image", "maps"], inputs)


@pytest.mark.parametrize("kind, task, size, row_dft, noise_gain", [
    ("utgv", "mri", (30, 21), "factorised", False), ("utgv", "mri", (30, 21), "dense", False), ("utv", "mri", (30, 21), "factorised", False),
    ("utgv", "mri", (17, 24), "auto", False),  # 17 rows have no two-stage split: dense
    ("utgv", "denoise", (30, 21), "factorised", False), ("utv", "denoise", (19, 16), "auto", False),
    # maps scaled by a learned power of the k-space noise level
    ("utgv", "mri", (30, 21), "factorised", True), ("utv", "mri", (17, 24), "auto", True),
    # the E v constraint with its own penalty (penalty_ratio 64)
    ("utgv-kappa", "mri", (30, 21), "factorised", True), ("utgv-kappa", "denoise", (19, 16), "auto", False),
])
def test_admm_export_matches_pytorch_with_at_most_64_nodes_per_iteration(tmp_path, kind, task, size, row_dft, noise_gain):
    kind, kappa = ("utgv", 64.0) if kind == "utgv-kappa" else (kind, 1.0)
    ckpt = load_checkpoint(make_checkpoint(tmp_path / "m.pt", kind=kind, task=task, iterations=24, height=size[0], width=size[1],
                                           solver="admm", noise_gain=noise_gain, penalty_ratio=kappa))
    result = build_graph(ckpt, ExportConfig(row_dft=row_dft))
    assert result.row_dft == ("two-stage 6 x 5" if row_dft == "factorised" else "dense")
    inputs = example_inputs(task, 1, *size, seed=7)
    image, maps = _run(result.model, inputs)
    ref_image, ref_maps = torch_reference(ckpt, inputs, 24)
    assert np.linalg.norm(image - ref_image) / np.linalg.norm(ref_image) < 1e-5
    assert np.linalg.norm(maps - ref_maps) / np.linalg.norm(ref_maps) < 1e-5
    assert result.nodes_per_iteration <= 64
    assert check_model(result.model, 10) == [] and check_model(result.model, 11) == []
    assert all(n.op_type != "DFT" for n in result.model.graph.node)
    assert all(i.data_type in (TensorProto.FLOAT, TensorProto.INT64) for i in result.model.graph.initializer)
    contract = get_contract(result.model)
    assert contract.solver == "admm" and contract.max_sampled_lines is None


@pytest.mark.parametrize("row_dft, column_dft", [("dense", "dense"), ("factorised", "dense"), ("dense", "factorised"),
                                                 ("factorised", "factorised")])
def test_admm_graph_grows_linearly_and_shares_constants(tmp_path, row_dft, column_dft):
    ckpt = load_checkpoint(make_checkpoint(tmp_path / "m.pt", iterations=4, height=32, width=24, solver="admm"))
    results = [build_graph(ckpt, ExportConfig(iterations=t, verify=False, row_dft=row_dft, column_dft=column_dft)) for t in (3, 8, 24)]
    small, large = results[1].model, results[2].model
    per_iteration = (len(large.graph.node) - len(small.graph.node)) / 16
    assert per_iteration == int(per_iteration) and per_iteration <= 64
    # the reported count is one steady iteration's, at any T from 3 (pre-loop nodes not spread over T)
    assert [r.nodes_per_iteration for r in results] == [per_iteration] * 3
    sense = [build_graph(ckpt, ExportConfig(iterations=t, verify=False, row_dft=row_dft, column_dft=column_dft, coils=2))
             for t in (3, 8)]
    sense_growth = (len(sense[1].model.graph.node) - len(sense[0].model.graph.node)) / 5
    assert [r.nodes_per_iteration for r in sense] == [sense_growth] * 2 and sense_growth <= 64
    assert len(large.graph.initializer) == len(small.graph.initializer)
    # the row DFT runs without a Transpose; a two-stage column DFT has one each way
    transposes = [sum(n.op_type == "Transpose" for n in m.graph.node) for m in (small, large)]
    assert (transposes[1] - transposes[0]) / 16 == (2 if column_dft == "factorised" else 0)
    dims = {i.name: list(i.dims) for i in large.graph.initializer}
    if row_dft == "dense":
        assert dims["admm/dft_rows"] == [64, 64]
    if column_dft == "dense":
        assert dims["admm/dft_cols"] == [48, 48]
        assert dims["admm/step_data"] == [1, 3, 3, 32, 2, 2, 24]  # per frequency, in the spectra's (H, 2, W) layout
    else:  # W = 24 = 4 x 6: stage matrices, and the constants on the grid (4 x 32 rows, 6 columns)
        assert "admm/dft_cols" not in dims
        assert dims["admm/dft_cols_stage1"] == [8, 8] and dims["admm/dft_cols_stage2"] == [4, 12, 12]
        assert dims["admm/step_data"] == [1, 3, 3, 128, 2, 2, 6]


@pytest.mark.parametrize("kind, task, coils", [("utgv", "mri", 0), ("utv", "mri", 0), ("utgv", "denoise", 0), ("utgv", "mri", 3)])
def test_two_stage_columns_compute_the_dense_graphs_image(tmp_path, kind, task, coils):
    """W = 24 = 4 x 6: the factorised column DFT changes the frequencies' order on the grid, not the result."""
    ckpt = load_checkpoint(make_checkpoint(tmp_path / "m.pt", kind=kind, task=task, iterations=9, height=20, width=24, solver="admm"))
    factorised = build_graph(ckpt, ExportConfig(column_dft="factorised", coils=coils, verify=False, batch=None))
    dense = build_graph(ckpt, ExportConfig(column_dft="dense", coils=coils, verify=False, batch=None))
    assert (factorised.column_dft, dense.column_dft) == ("two-stage 4 x 6", "dense")
    assert factorised.nodes_per_iteration <= 64
    inputs = example_inputs(task, 2, 20, 24, seed=5, coils=coils)
    if task == "mri":
        inputs["mask"][1, ..., 1::3] = 1  # another mask per element: the division by m + rho s is per element too
        inputs["kspace"] = inputs["kspace"] * (inputs["mask"][:, None] if coils else inputs["mask"])
    a, _ = _run(factorised.model, inputs)
    b, _ = _run(dense.model, inputs)
    assert np.linalg.norm(a - b) / np.linalg.norm(b) < 1e-5
    assert check_model(factorised.model, 10) == [] and check_model(factorised.model, 11) == []


def test_column_dft_choices_are_checked(tmp_path):
    admm = load_checkpoint(make_checkpoint(tmp_path / "a.pt", iterations=3, height=16, width=21, solver="admm"))
    with pytest.raises(InputError, match="--column-dft factorised needs W"):
        build_graph(admm, ExportConfig(column_dft="factorised", verify=False))
    assert build_graph(admm, ExportConfig(verify=False)).column_dft == "dense"  # auto: 21 has no split
    pdhg = load_checkpoint(make_checkpoint(tmp_path / "p.pt", iterations=3, height=16, width=24))
    with pytest.raises(InputError, match="ADMM graphs"):
        build_graph(pdhg, ExportConfig(column_dft="factorised", verify=False))
    assert build_graph(pdhg, ExportConfig(verify=False)).column_dft == "none"


def test_dynamic_batch_admm_graph_runs_each_mask(tmp_path):
    """Masks differ per batch element; the per-frequency division is per element too."""
    ckpt = load_checkpoint(make_checkpoint(tmp_path / "m.pt", iterations=10, height=16, width=20, solver="admm"))
    result = build_graph(ckpt, ExportConfig(batch=None))
    inputs = example_inputs("mri", 3, 16, 20, seed=2)
    inputs["mask"][1, ..., ::2] = 1  # a denser mask for one element
    inputs["kspace"] *= inputs["mask"]
    image, _ = _run(result.model, inputs)
    ref_image, _ = torch_reference(ckpt, inputs, 10)
    assert np.linalg.norm(image - ref_image) / np.linalg.norm(ref_image) < 1e-5


def test_admm_contract_refuses_mask_without_centre(tmp_path):
    ckpt = load_checkpoint(make_checkpoint(tmp_path / "m.pt", iterations=3, height=16, width=20, solver="admm"))
    contract = Contract.from_json(build_graph(ckpt, ExportConfig(verify=False)).contract.to_json())
    inputs = example_inputs("mri", 1, 16, 20)
    inputs["mask"][..., 10] = 0
    with pytest.raises(InputError, match="k-space centre"):
        contract.check_inputs(inputs)


def test_two_stage_rows_keep_block_order_without_a_permutation(tmp_path):
    """H = 32 = 4 x 8: stage matrices stored once, no Gather inside the loop, same image as dense."""
    ckpt = load_checkpoint(make_checkpoint(tmp_path / "m.pt", iterations=6, height=32, width=24, solver="admm"))
    factorised = build_graph(ckpt, ExportConfig(row_dft="factorised"))
    dense = build_graph(ckpt, ExportConfig(row_dft="dense"))
    dims = {i.name: list(i.dims) for i in factorised.model.graph.initializer}
    assert dims["admm/dft_rows_stage1"] == [8, 8] and dims["admm/dft_rows_stage2"] == [4, 16, 16]
    assert "admm/dft_rows" not in dims
    assert sum(n.op_type == "Gather" for n in factorised.model.graph.node) == sum(n.op_type == "Gather" for n in dense.model.graph.node)
    inputs = example_inputs("mri", 1, 32, 24, seed=3)
    a, _ = _run(factorised.model, inputs)
    b, _ = _run(dense.model, inputs)
    assert np.linalg.norm(a - b) / np.linalg.norm(b) < 1e-5


@pytest.mark.parametrize("kind, size, row_dft, noise_gain", [
    ("utgv", (30, 21), "factorised", False), ("utgv", (17, 24), "auto", False), ("utv", (30, 21), "dense", False),
    ("utgv", (30, 21), "factorised", True), ("utv", (17, 24), "dense", True), ("utgv-kappa", (30, 21), "factorised", True),
])
def test_multicoil_export_matches_pytorch(tmp_path, kind, size, row_dft, noise_gain):
    """SENSE graphs (SPEC 1b): k-space and coil maps as inputs, coils batched through the matrix products."""
    kind, kappa = ("utgv", 64.0) if kind == "utgv-kappa" else (kind, 1.0)
    ckpt = load_checkpoint(make_checkpoint(tmp_path / "m.pt", kind=kind, iterations=12, height=size[0], width=size[1], solver="admm",
                                           noise_gain=noise_gain, penalty_ratio=kappa))
    result = build_graph(ckpt, ExportConfig(row_dft=row_dft, coils=4))
    inputs = example_inputs("mri", 1, *size, seed=3, coils=4)
    image, maps = _run(result.model, inputs)
    ref_image, ref_maps = torch_reference(ckpt, inputs, 12)
    assert np.linalg.norm(image - ref_image) / np.linalg.norm(ref_image) < 1e-5
    assert np.linalg.norm(maps - ref_maps) / np.linalg.norm(ref_maps) < 1e-5
    assert check_model(result.model, 10) == [] and check_model(result.model, 11) == []
    assert result.nodes_per_iteration <= 64
    contract = get_contract(result.model)
    assert contract.coils == 4 and [s.name for s in contract.inputs] == ["kspace", "coil_maps", "mask"]
    assert contract.inputs[0].shape == (1, 4, 2, *size)
    # fewer coils run zero-padded, exactly: a coil with zero map and zero data adds nothing
    three = {name: value.copy() for name, value in inputs.items()}
    three["kspace"][:, 3] = 0
    three["coil_maps"][:, 3] = 0
    three["coil_maps"] /= np.sqrt((three["coil_maps"] ** 2).sum((1, 2), keepdims=True))
    padded, _ = _run(result.model, three)
    reference, _ = torch_reference(ckpt, {k: (v[:, :3] if k != "mask" else v) for k, v in three.items()}, 12)
    assert np.linalg.norm(padded - reference) / np.linalg.norm(reference) < 1e-5


def test_multicoil_export_writes_the_models_own_coil_penalty(tmp_path):
    """The learned rho_coil goes into the graph: parity with a value neither the start nor the solver default."""
    import math

    import torch

    ckpt = load_checkpoint(make_checkpoint(tmp_path / "m.pt", iterations=12, height=30, width=21, solver="admm"))
    ckpt.state_dict["log_rho_coil"] = torch.tensor(math.log(0.6))
    result = build_graph(ckpt, ExportConfig(coils=3))
    inputs = example_inputs("mri", 1, 30, 21, seed=4, coils=3)
    image, _ = _run(result.model, inputs)
    reference, _ = torch_reference(ckpt, inputs, 12)
    assert np.linalg.norm(image - reference) / np.linalg.norm(reference) < 1e-5
    ckpt.state_dict["log_rho_coil"] = torch.tensor(math.log(0.06))
    other, _ = torch_reference(ckpt, inputs, 12)
    assert np.linalg.norm(other - reference) / np.linalg.norm(reference) > 1e-3  # the penalty matters at T = 12


def test_multicoil_export_keeps_parity_with_a_small_coil_penalty(tmp_path):
    """The coil step's data filter has gain 1 / (1 + rho_coil) on the sampled lines; written as
    1 / (m + rho_coil) it would have 1 / rho_coil on the others and scale the float32 round-off of
    its own construction by that (1.3e-5 here with rho_coil = 0.01)."""
    import math

    import torch

    ckpt = load_checkpoint(make_checkpoint(tmp_path / "m.pt", iterations=12, height=64, width=64, solver="admm"))
    ckpt.state_dict["log_rho_coil"] = torch.tensor(math.log(0.01))
    result = build_graph(ckpt, ExportConfig(coils=4, verify=False))
    inputs = example_inputs("mri", 1, 64, 64, seed=4, coils=4)
    image, _ = _run(result.model, inputs)
    reference, _ = torch_reference(ckpt, inputs, 12)
    assert np.linalg.norm(image - reference) / np.linalg.norm(reference) < 1e-5


def test_multicoil_export_follows_each_slices_sampled_fraction(tmp_path):
    """The multi-coil gain's power of the sampled fraction is computed in the graph from each slice's
    mask (not frozen at the traced example's): two slices at R of about 3.4 and 8 in one dynamic
    batch (7 and 3 of 24 lines), exponents that differ per map, parity with PyTorch for both."""
    import math

    import torch

    ckpt = load_checkpoint(make_checkpoint(tmp_path / "m.pt", iterations=12, height=30, width=24, solver="admm"))
    ckpt.state_dict["coil_acceleration_exponent"] = torch.tensor([0.5, 1.5])
    ckpt.state_dict["log_coil_gain"] = torch.tensor([math.log(0.3), math.log(0.6)])
    result = build_graph(ckpt, ExportConfig(coils=3, batch=None))
    inputs = example_inputs("mri", 2, 30, 24, seed=5, coils=3)
    sparse = np.zeros(24, dtype=np.float32)
    sparse[::12] = 1
    sparse[11:13] = 1  # with the centre column 12: 3 of 24 lines
    inputs["mask"][1, 0, 0] = sparse
    inputs["kspace"][1] *= sparse
    assert inputs["mask"][0].mean() > 1.5 * inputs["mask"][1].mean()
    image, maps = _run(result.model, inputs)
    ref_image, ref_maps = torch_reference(ckpt, inputs, 12)
    assert np.linalg.norm(image - ref_image) / np.linalg.norm(ref_image) < 1e-5
    assert np.linalg.norm(maps - ref_maps) / np.linalg.norm(ref_maps) < 1e-5
    # the exponent acts: with gamma = 0 the maps of the sparser slice differ
    ckpt.state_dict["coil_acceleration_exponent"] = torch.zeros(2)
    _, flat = torch_reference(ckpt, inputs, 12)
    assert np.linalg.norm(flat[1] - ref_maps[1]) / np.linalg.norm(ref_maps[1]) > 0.1


def test_multicoil_graph_grows_linearly(tmp_path):
    ckpt = load_checkpoint(make_checkpoint(tmp_path / "m.pt", iterations=4, height=32, width=24, solver="admm"))
    small = build_graph(ckpt, ExportConfig(iterations=8, verify=False, coils=2)).model
    large = build_graph(ckpt, ExportConfig(iterations=16, verify=False, coils=2)).model
    per_iteration = (len(large.graph.node) - len(small.graph.node)) / 8
    # single-coil TGV iteration (38 nodes with two-stage rows) plus the coil step: the same count for any C
    assert per_iteration == int(per_iteration) and per_iteration <= 64
    assert len(large.graph.initializer) == len(small.graph.initializer)


def test_multicoil_export_refusals(tmp_path):
    pdhg = load_checkpoint(make_checkpoint(tmp_path / "p.pt", iterations=4, height=16, width=16))
    with pytest.raises(InputError, match="ADMM MRI"):
        build_graph(pdhg, ExportConfig(coils=4, verify=False))


@pytest.mark.parametrize("task, size, column_dft, iterations", [
    ("mri", (30, 24), "factorised", 24), ("mri", (17, 21), "dense", 7), ("denoise", (19, 16), "auto", 12),
])
def test_a_learned_penalty_schedule_exports_and_matches_pytorch(tmp_path, task, size, column_dft, iterations):
    """A scheduled model's graph follows its schedule (learned at 6 factors, run at T = 24, 7, 12:
    interpolated), within SPEC 5's 64 nodes per iteration, TensorRT-clean; its multi-coil graph keeps
    the one rho, as coil splitting does in PyTorch."""
    import torch

    from tgv_deploy.models import ModelConfig, UNetConfig, build_model, save_checkpoint

    torch.manual_seed(3)
    model = build_model(ModelConfig(task=task, unet=UNetConfig(depth=2, base_channels=4), iterations=iterations, solver="admm",
                                    rho_schedule=6))
    with torch.no_grad():
        model.log_rho.fill_(0.1)
        # penalties from e^-1 to e^1.5 of rho. At e^-2 ... e^3 (T = 7, 17 x 21) the float32 graph is
        # about 1.1e-5 from PyTorch in float64 and float32 alike (PyTorch float32: 5.7e-6 from float64),
        # at the parity limit; the bundled model's wider range at its own T and real sizes: the test below
        model.log_rho_factors.copy_(torch.tensor([1.5, 0.5, -0.5, 0.0, 1.0, -1.0]))
    save_checkpoint(tmp_path / "s.pt", model, {"height": size[0], "width": size[1]})
    ckpt = load_checkpoint(tmp_path / "s.pt")
    result = build_graph(ckpt, ExportConfig(column_dft=column_dft))
    inputs = example_inputs(task, 1, *size, seed=5)
    image, _ = _run(result.model, inputs)
    ref_image, _ = torch_reference(ckpt, inputs, iterations)
    assert np.linalg.norm(image - ref_image) / np.linalg.norm(ref_image) < 1e-5
    assert result.nodes_per_iteration <= 64
    assert check_model(result.model, 10) == [] and check_model(result.model, 11) == []
    # the schedule matters: the same graph without it is another reconstruction
    flat = build_graph(load_checkpoint(make_checkpoint(tmp_path / "f.pt", task=task, iterations=iterations, height=size[0], width=size[1],
                                                       solver="admm")), ExportConfig(column_dft=column_dft, verify=False))
    assert flat.nodes_per_iteration < result.nodes_per_iteration
    if task == "mri" and column_dft == "factorised":
        sense = build_graph(ckpt, ExportConfig(coils=2))  # verified against PyTorch's coil splitting (one rho)
        assert sense.nodes_per_iteration <= 64


def test_bench_feeds_multicoil_graphs_their_coils(tmp_path):
    from tgv_deploy.bench import bench
    from tgv_deploy.export.exporter import write_export

    ckpt_path = make_checkpoint(tmp_path / "m.pt", iterations=2, height=16, width=16, solver="admm")
    onnx_path, _ = write_export(build_graph(load_checkpoint(ckpt_path), ExportConfig(coils=3, verify=False)), tmp_path / "m3.onnx")
    rows = bench([str(onnx_path), str(ckpt_path)], runs=1, warmup=0, iterations=2)
    assert [r.backend for r in rows] == ["onnxruntime", "torch"]
    with pytest.raises(InputError, match="differs"):
        bench([str(onnx_path)], runs=1, warmup=0, coils=4)


@pytest.mark.parametrize("size, nodes", [((48, 40), 62), ((37, 44), 58)])
def test_the_bundled_schedule_model_matches_pytorch_at_its_default_t(size, nodes):
    """The bundled U-TGV's own 64 learned factors (about e^-3.9 ... e^3.9 of rho, wider than the synthetic
    schedule test's) through its default T, at an even and an odd size."""
    from tgv_deploy.registry import resolve_model

    ckpt = load_checkpoint(resolve_model("utgv-mri"))
    assert ckpt.config.rho_schedule == 64
    result = build_graph(ckpt, ExportConfig(height=size[0], width=size[1], verify=False))
    # two-stage rows and columns: README's and docs/export.md's count; 37 rows (a prime) are one dense product
    assert result.nodes_per_iteration == nodes
    inputs = example_inputs("mri", 1, *size, seed=7)
    image, _ = _run(result.model, inputs)
    ref_image, _ = torch_reference(ckpt, inputs, ckpt.config.iterations)
    assert np.linalg.norm(image - ref_image) / np.linalg.norm(ref_image) < 1e-5
