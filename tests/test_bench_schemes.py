"""bench compares schemes at their own T in one interleaved run (ADMM at T = 32 vs PDHG at T = 256)."""

import pytest

from conftest import make_checkpoint
from tgv_deploy.bench import bench, rows_to_json
from tgv_deploy.errors import InputError
from tgv_deploy.export.exporter import ExportConfig, build_graph, write_export
from tgv_deploy.models import load_checkpoint

pytest.importorskip("onnxruntime", reason="ONNX Runtime (the 'cpu' extra) runs the exported graphs")


def _export(tmp_path, name, solver, iterations):
    ckpt = make_checkpoint(tmp_path / f"{name}.pt", iterations=iterations, height=16, width=12, solver=solver)
    out, _ = write_export(build_graph(load_checkpoint(ckpt), ExportConfig(verify=False)), tmp_path / f"{name}.onnx")
    return str(out), str(ckpt)


def test_exported_models_of_different_t_run_at_their_own_t(tmp_path):
    pdhg, _ = _export(tmp_path, "pdhg", "pdhg", 6)
    admm, admm_ckpt = _export(tmp_path, "admm", "admm", 3)
    rows = bench([pdhg, admm], runs=2, warmup=1)
    assert [(r.iterations, r.backend) for r in rows] == [(6, "onnxruntime"), (3, "onnxruntime")]
    assert rows[0].ratio_to_first == 1.0 and rows[1].ratio_to_first == pytest.approx(rows[1].p50_ms / rows[0].p50_ms)
    report = rows_to_json(rows, "tgv-deploy bench ...")
    assert set(report["model_sha256"]) == {pdhg, admm} and report["commit"]
    with pytest.raises(InputError, match="--iterations"):  # a checkpoint beside them needs its T
        bench([pdhg, admm, admm_ckpt], runs=1, warmup=0)
    rows = bench([pdhg, admm, admm_ckpt], iterations=3, runs=1, warmup=0)
    assert [r.iterations for r in rows] == [6, 3, 3]


def test_a_checkpoint_benched_on_multicoil_inputs_runs_and_reports_its_multicoil_t(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.pt", iterations=2, multicoil_iterations=3, solver="admm")
    rows = bench([str(ckpt)], backend="torch", height=16, width=12, runs=1, warmup=0, coils=2)
    single = bench([str(ckpt)], backend="torch", height=16, width=12, runs=1, warmup=0)
    told = bench([str(ckpt)], backend="torch", iterations=4, height=16, width=12, runs=1, warmup=0, coils=2)
    assert [r.iterations for r in rows + single + told] == [3, 2, 4]
