import pickle
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import pytest
import torch

from tgv_deploy.data.fastmri import write_fastmri

pytest.importorskip("onnxruntime", reason="ONNX Runtime (the 'cpu' extra) is needed for the CLI tests")


# Subprocesses run outside the source tree: from the repository root, `python -m` would import the
# uninstalled ./tgv_deploy (which lacks tgv_deploy.training and tgv_deploy.export) instead of the
# installed package.
OUTSIDE = tempfile.gettempdir()


def run(*args):
    return subprocess.run([sys.executable, "-m", "tgv_deploy", *map(str, args)], capture_output=True, text=True, cwd=OUTSIDE)


def assert_user_error(result, code, match):
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and match in lines[0], result.stderr


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "demo.h5"
    result = run("synth", path, "--slices", 2, "--height", 32, "--width", 24, "--acceleration", 4, "--sigma", 0.05)
    assert result.returncode == 0, result.stderr
    return path


def test_infer_onnx_matches_torch_and_writes_the_documented_layout(tmp_path, mri_onnx, mri_checkpoint, demo_file):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert run("infer", mri_onnx, demo_file, "-o", a, "--png").returncode == 0
    assert run("infer", mri_checkpoint, demo_file, "-o", b, "--backend", "torch").returncode == 0
    with h5py.File(a) as ha, h5py.File(b) as hb:
        ra, rb = ha["reconstruction"][()], hb["reconstruction"][()]
        assert ra.dtype == np.complex64 and ra.shape == (2, 32, 24)
        assert ha["lambda0"].shape == ha["lambda1"].shape == (2, 32, 24) and ha["mask"].shape == (2, 24)
        assert '"iterations": 8' in ha.attrs["contract"]
    assert np.linalg.norm(ra - rb) / np.linalg.norm(rb) < 1e-5
    assert (tmp_path / "a.png").stat().st_size > 100


def test_infer_retrospective_mask_and_npy(tmp_path, mri_checkpoint):
    rng = np.random.default_rng(0)
    k = (rng.standard_normal((32, 24)) + 1j * rng.standard_normal((32, 24))).astype(np.complex64)
    np.save(tmp_path / "k.npy", k)
    result = run("infer", mri_checkpoint, tmp_path / "k.npy", "-o", tmp_path / "o.h5", "--iterations", 3, "--acceleration", 4, "--seed", 1)
    assert result.returncode == 0, result.stderr
    with h5py.File(tmp_path / "o.h5") as handle:
        mask = handle["mask"][()]
    assert mask.shape == (1, 24) and 4 <= mask.sum() <= 9


def test_models_and_help():
    assert "utgv-mri" in run("models").stdout
    for command in ("export", "infer", "build", "check-trt", "train", "synth"):
        result = run(command, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout


def _hostile_checkpoint(path):
    class Evil:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('ran')" % str(path.parent / "pwned"),))

    torch.save({"format": "tgv-deploy-checkpoint", "x": Evil()}, path)
    return path


@pytest.mark.parametrize(
    "make, code, match",
    [
        (lambda d: d / "missing.h5", 3, "input not found"),
        (lambda d: (d / "trunc.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 20) and d / "trunc.h5", 3, "HDF5"),
        (lambda d: write_fastmri(d / "nan.h5", np.full((1, 32, 24), np.nan, np.complex64)), 3, "NaN"),
        (lambda d: write_fastmri(d / "zero.h5", np.zeros((1, 32, 24), np.complex64)), 3, "zero"),
        (lambda d: write_fastmri(d / "size.h5", np.ones((1, 16, 24), np.complex64)), 4, "32x24"),
        (lambda d: write_fastmri(d / "multi.h5", np.ones((1, 2, 32, 24), np.complex64)), 4, "single-coil k-space; export it with --coils"),
    ],
)
def test_infer_bad_inputs(tmp_path, mri_onnx, make, code, match):
    source = make(tmp_path)
    out = tmp_path / "out.h5"
    assert_user_error(run("infer", mri_onnx, source, "-o", out), code, match)
    assert not out.exists() and not list(tmp_path.glob(".out.h5*"))


def test_bad_models_and_outputs(tmp_path, mri_onnx, demo_file):
    out = tmp_path / "o.h5"
    assert_user_error(run("infer", "no-such-model", demo_file, "-o", out), 3, "unknown model")
    evil = _hostile_checkpoint(tmp_path / "evil.pt")
    assert_user_error(run("infer", evil, demo_file, "-o", out), 5, "refused")
    assert_user_error(run("export", evil, "-o", tmp_path / "e.onnx"), 5, "refused")
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "e.onnx").exists()
    (tmp_path / "raw.pt").write_bytes(pickle.dumps({"a": 1}))
    assert_user_error(run("export", tmp_path / "raw.pt", "-o", tmp_path / "r.onnx"), 5, "raw.pt")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not onnx")
    assert_user_error(run("infer", corrupt, demo_file, "-o", out), 5, "ONNX")
    assert_user_error(run("infer", mri_onnx, demo_file, "-o", tmp_path / "nodir" / "o.h5"), 3, "does not exist")
    assert_user_error(run("infer", mri_onnx, demo_file, "-o", out, "--iterations", 5), 3, "fixed by its contract")
    assert_user_error(run("infer", mri_onnx, demo_file, "-o", out, "--backend", "onnxruntime-cuda"), 2, "CUDAExecutionProvider")
    assert not out.exists()


def test_export_bad_arguments(tmp_path, mri_checkpoint):
    out = tmp_path / "m.onnx"
    assert_user_error(run("export", mri_checkpoint, "-o", out, "--iterations", 0), 3, "iterations")
    assert_user_error(run("export", mri_checkpoint, "-o", out, "--height", 3), 3, "height")
    assert_user_error(run("export", mri_checkpoint, "-o", out, "--batch", "many"), 3, "batch")
    assert_user_error(run("export", "utgv-nothing", "-o", out), 3, "unknown model")
    assert_user_error(run("export", mri_checkpoint, "-o", out, "--column-dft", "factorised"), 3, "ADMM graphs")  # a PDHG checkpoint
    assert not out.exists()


def test_export_column_dft_option_reaches_the_graph(tmp_path):
    import json

    from conftest import make_checkpoint

    admm = make_checkpoint(tmp_path / "admm.pt", iterations=3, height=16, width=24, solver="admm")
    reports = {}
    for choice in ("dense", "auto"):
        result = run("export", admm, "-o", tmp_path / f"{choice}.onnx", "--column-dft", choice, "--no-verify", "--json")
        assert result.returncode == 0, result.stderr
        reports[choice] = json.loads(result.stdout)
    assert reports["dense"]["column_dft"] == "dense" and reports["auto"]["column_dft"] == "two-stage 4 x 6"  # W = 24
    assert reports["auto"]["nodes_per_iteration"] > reports["dense"]["nodes_per_iteration"]


def test_export_check_trt_and_build(tmp_path, mri_checkpoint):
    out = tmp_path / "m.onnx"
    result = run("export", mri_checkpoint, "-o", out, "--iterations", 4, "--json")
    assert result.returncode == 0, result.stderr
    assert '"nodes_per_iteration"' in result.stdout and out.exists() and out.with_suffix(".json").exists()
    assert '"column_dft": "none"' in result.stdout  # PDHG graphs transform only the sampled lines
    check = run("check-trt", out, "--trt", "10")
    assert check.returncode == 0 and check.stdout.strip().splitlines()[-1].startswith("PASSED")
    try:
        import tensorrt

        if hasattr(tensorrt, "Builder"):
            pytest.skip("TensorRT is installed: the missing-TensorRT exit is tested where it is not")
    except ImportError:
        pass
    build = run("build", out, "-o", tmp_path / "m.plan")
    assert_user_error(build, 2, "TensorRT is not installed")
    assert not (tmp_path / "m.plan").exists()


@pytest.mark.parametrize("name", ["utgv-mri", "utv-mri", "utgv-denoise"])
def test_bundled_models_export_cleanly_for_tensorrt(tmp_path, name):
    from tgv_deploy.registry import bundled_models

    if not next(m for m in bundled_models() if m.name == name).available:
        pytest.skip(f"bundled model {name} is not installed in this checkout")
    out = tmp_path / f"{name}.onnx"
    result = run("export", name, "-o", out, "--iterations", 8, "--height", 40, "--width", 36)
    assert result.returncode == 0, result.stderr
    for major in ("10", "11"):
        check = run("check-trt", out, "--trt", major)
        assert check.returncode == 0, check.stdout


def test_every_command_refuses_bad_input_in_one_line(tmp_path, mri_onnx):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 not a model")
    (tmp_path / "bad.toml").write_text("steps = 'many'\n")
    plan = tmp_path / "engine.plan"
    plan.write_bytes(b"not an engine")
    cases = [
        (("check-trt", garbage), 5, "ONNX"),
        (("check-trt", tmp_path / "missing.onnx"), 3, "not found"),
        (("bench", "no-such-model", "--runs", 1), 3, "unknown model"),
        (("bench", mri_onnx, "--runs", 0), 3, "--runs"),
        (("train", tmp_path / "bad.toml", "-o", tmp_path / "run"), 3, "bad.toml"),
        (("evaluate", tmp_path / "missing.h5", "-o", tmp_path / "ev"), 3, "not found"),
        (("evaluate", "--synthetic", 1, "--setting", "four", "-o", tmp_path / "ev"), 3, "--setting"),
        (("synth", tmp_path / "s.h5", "--slices", 0), 3, "--slices"),
        (("export", mri_onnx, "-o", tmp_path / "e.onnx", "--height", 0), 3, "--height"),  # click's 2 would read "no backend"
        (("frobnicate",), 3, "No such command"),
        (("infer", plan, tmp_path / "missing.h5", "-o", tmp_path / "o.h5"), 3, "input not found"),
        (("build", garbage), 5, "ONNX"),
    ]
    for args, code, match in cases:
        assert_user_error(run(*args), code, match)
    write_fastmri(tmp_path / "k.h5", np.ones((1, 32, 24), np.complex64))
    assert_user_error(run("infer", plan, tmp_path / "k.h5", "-o", tmp_path / "o.h5"), 3, "no contract")
    assert not (tmp_path / "o.h5").exists() and not (tmp_path / "s.h5").exists()


def test_contract_version_mismatch_is_refused(tmp_path, mri_onnx, demo_file):
    import onnx

    from tgv_deploy.contract import METADATA_KEY

    model = onnx.load(str(mri_onnx))
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = prop.value.replace('"contract_version": 1', '"contract_version": 99')
    future = tmp_path / "future.onnx"
    onnx.save(model, str(future))
    assert_user_error(run("infer", future, demo_file, "-o", tmp_path / "o.h5"), 4, "contract version 99")

