"""What the commands read and write: bad input refused in one line, its exit code, no output left and no
input harmed; the JSON report of `infer` for machines."""

import numpy as np
import pytest

from test_cli import assert_user_error, run
from tgv_deploy.contract import Contract
from tgv_deploy.data.examples import example_inputs
from tgv_deploy.data.fastmri import write_fastmri
from tgv_deploy.errors import ContractError, InputError
from tgv_deploy.io_utils import OpenOnFirstWrite, check_not_overwriting

pytest.importorskip("onnxruntime", reason="ONNX Runtime (the 'cpu' extra) is needed for the CLI tests")


def _kspace_file(path, nan=False):
    rng = np.random.default_rng(0)
    kspace = (rng.standard_normal((1, 32, 24)) + 1j * rng.standard_normal((1, 32, 24))).astype(np.complex64)
    if nan:
        kspace[0, 3, 4] = np.nan
    write_fastmri(path, kspace)
    return path


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, mri_checkpoint):
    source = _kspace_file(tmp_path / "k.h5")
    before = source.read_bytes()
    assert_user_error(run("infer", mri_checkpoint, source, "-o", source, "-T", 2), 3, "is also an input")
    assert source.read_bytes() == before


def test_inputs_that_would_write_one_output_are_refused_before_any_work(tmp_path, mri_checkpoint):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "out").mkdir()
    first, second = _kspace_file(tmp_path / "a" / "x.h5"), _kspace_file(tmp_path / "b" / "x.h5")
    assert_user_error(run("infer", mri_checkpoint, first, second, "-o", tmp_path / "out", "-T", 2), 3, "would both write")
    assert not any((tmp_path / "out").iterdir())


def test_a_bad_second_input_is_refused_before_the_first_is_reconstructed(tmp_path, mri_checkpoint):
    (tmp_path / "out").mkdir()
    good, bad = _kspace_file(tmp_path / "good.h5"), _kspace_file(tmp_path / "bad.h5", nan=True)
    assert_user_error(run("infer", mri_checkpoint, good, bad, "-o", tmp_path / "out", "-T", 2), 3, f"{bad}: k-space contains NaN")
    assert not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("option, value, match", [
    ("--acceleration", "nan", "not a finite number"), ("--acceleration", "inf", "not a finite number"),
    ("--center-fraction", "nan", "not a finite number"), ("--seed", "-1", "x>=0"), ("-T", "999999999999", "1<=x<=100000"),
])
def test_option_values_outside_their_range_are_refused(tmp_path, mri_checkpoint, option, value, match):
    source = _kspace_file(tmp_path / "k.h5")
    assert_user_error(run("infer", mri_checkpoint, source, "-o", tmp_path / "o.h5", option, value), 3, match)
    assert not (tmp_path / "o.h5").exists()


def test_synth_refuses_a_file_beyond_its_limit_before_generating(tmp_path):
    assert_user_error(run("synth", tmp_path / "s.h5", "--slices", 100000, "--height", 4096, "--width", 4096), 3, "beyond what one")
    assert_user_error(run("synth", tmp_path / "s.h5", "--height", 32, "--width", 32, "--acceleration", 4, "--sigma", "nan"), 3, "finite")
    assert not (tmp_path / "s.h5").exists()


def test_stream_commands_keep_their_input_and_write_nothing_for_an_unreadable_one(tmp_path):
    pytest.importorskip("mrd", reason="mrd-python (the 'mrd' extra) is needed for the stream commands")
    stream = tmp_path / "s.bin"
    stream.write_bytes(b"not an MRD stream at all")
    assert_user_error(run("mrd-undersample", "-i", stream, "-o", stream), 3, "is also an input")
    assert stream.read_bytes() == b"not an MRD stream at all"
    out = tmp_path / "o.bin"
    assert_user_error(run("mrd-undersample", "-i", stream, "-o", out), 3, "not an MRD v2")
    assert not out.exists()


def test_check_trt_refuses_an_empty_file(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert_user_error(run("check-trt", empty), 5, "no graph nodes")


def test_a_triton_repository_path_that_cannot_be_made_is_refused_before_export(tmp_path, mri_checkpoint):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "m_onnx").write_text("a file where a model folder belongs")
    out = tmp_path / "m.onnx"
    assert_user_error(run("export", mri_checkpoint, "-o", out, "-T", 2, "--no-verify", "--triton-repo", repo), 3, "not a directory")
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_a_triton_repository_write_that_fails_leaves_nothing_it_made(tmp_path, monkeypatch):
    import errno
    import shutil

    from tgv_deploy.export import triton

    contract = Contract(task="mri", kind="utgv", height=32, width=24, batch=1, iterations=4, inputs=(), outputs=(), opset=17,
                        package_version="0", weights_sha256="")
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"graph")
    repo = tmp_path / "repo"
    (repo / "m_onnx" / "2").mkdir(parents=True)  # a version the user serves, with its config: both must survive
    (repo / "m_onnx" / "2" / "model.onnx").write_bytes(b"served")
    (repo / "m_onnx" / "config.pbtxt").write_text("the served config")

    def disk_full(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", disk_full)
    with pytest.raises(OSError, match="No space left"):
        triton.write_triton_repo(repo, onnx_file, contract, "m")
    assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*")) == ["m_onnx", "m_onnx/2", "m_onnx/2/model.onnx",
                                                                              "m_onnx/config.pbtxt"]
    assert (repo / "m_onnx" / "config.pbtxt").read_text() == "the served config"
    monkeypatch.undo()
    written = triton.write_triton_repo(tmp_path / "fresh" / "repo", onnx_file, contract, "m")
    assert [p.name for p in written] == ["config.pbtxt", "config.pbtxt", "model.onnx", "README.txt"]
    assert (tmp_path / "fresh" / "repo" / "m_onnx" / "1" / "model.onnx").read_bytes() == b"graph"


def test_check_not_overwriting_and_open_on_first_write(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    a.touch()
    check_not_overwriting([a], [b])
    with pytest.raises(InputError, match="also an input"):
        check_not_overwriting([a], [tmp_path / "." / "a.h5"])
    sink = OpenOnFirstWrite(b)
    sink.flush()
    sink.close()
    assert not b.exists()
    sink = OpenOnFirstWrite(b)
    sink.write(b"x")
    sink.close()
    assert b.read_bytes() == b"x"


def test_a_multicoil_graph_says_what_runs_one_coil():
    contract = Contract(task="mri", kind="utgv", height=32, width=24, batch=1, iterations=4, inputs=(), outputs=(), opset=17,
                        package_version="0", weights_sha256="", coils=2)
    with pytest.raises(ContractError, match="single-coil export"):
        contract.check_coils(1)
    with pytest.raises(ContractError, match="exported for 2 coils, not 3"):
        contract.check_coils(3)
    contract.check_coils(2)


def test_example_inputs_respect_a_line_limit_and_keep_the_centre():
    for limit in (1, 3, 7, 40):
        mask = example_inputs("mri", 1, 16, 64, max_lines=limit)["mask"][0, 0, 0]
        assert 1 <= mask.sum() <= limit and mask[32] == 1
    assert example_inputs("mri", 1, 16, 64, max_lines=64)["mask"].sum() == example_inputs("mri", 1, 16, 64)["mask"].sum()


def test_a_pdhg_export_with_few_lines_verifies_on_a_mask_it_can_run(tmp_path):
    from conftest import make_checkpoint
    from tgv_deploy.export.exporter import ExportConfig, build_graph
    from tgv_deploy.models import load_checkpoint

    ckpt = load_checkpoint(make_checkpoint(tmp_path / "m.pt", solver="pdhg"))
    result = build_graph(ckpt, ExportConfig(iterations=2, max_lines=3))  # verified: parity within 1e-5
    assert result.contract.max_sampled_lines == 3 and result.parity is not None


def test_infer_json_reports_every_output_and_nothing_else_on_stdout(tmp_path, mri_checkpoint):
    import json

    (tmp_path / "out").mkdir()
    first, second = _kspace_file(tmp_path / "a.h5"), _kspace_file(tmp_path / "b.h5")
    result = run("infer", mri_checkpoint, first, second, "-o", tmp_path / "out", "-T", 2, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [o["input"] for o in report["outputs"]] == [str(first), str(second)]
    assert all(o["slices"] == 1 and o["iterations"] == 2 and o["backend"] == "torch" for o in report["outputs"])
    assert all((tmp_path / "out" / name).exists() for name in ("a.h5", "b.h5"))


def test_infer_json_names_the_outputs_written_when_a_later_write_fails(tmp_path, mri_checkpoint, monkeypatch, capsys):
    import errno
    import json

    import tgv_deploy.cli_io
    from tgv_deploy.cli import main
    from tgv_deploy.io_utils import atomic_output

    (tmp_path / "out").mkdir()
    first, second = _kspace_file(tmp_path / "a.h5"), _kspace_file(tmp_path / "b.h5")
    write_output = tgv_deploy.cli_io.write_output

    def disk_full_on_b(path, *args):
        if path.name == "b.h5":
            with atomic_output(path):
                raise OSError(errno.ENOSPC, "No space left on device")  # as an fsync raises it: no file name
        return write_output(path, *args)

    monkeypatch.setattr(tgv_deploy.cli_io, "write_output", disk_full_on_b)
    with pytest.raises(SystemExit) as exit_info:
        main(["infer", str(mri_checkpoint), str(first), str(second), "-o", str(tmp_path / "out"), "-T", "2", "--json"])
    captured = capsys.readouterr()
    assert exit_info.value.code == 1  # the machine's state, not a bug (70) and not the input (3)
    assert "Traceback" not in captured.err
    assert [l for l in captured.err.splitlines() if l.startswith("error:")] == [f"error: {tmp_path / 'out' / 'b.h5'}: No space left on device"]
    report = json.loads(captured.out)
    assert [o["input"] for o in report["outputs"]] == [str(first)] and (tmp_path / "out" / "a.h5").exists()
    assert report["failed"] == {"input": str(second), "error": f"{tmp_path / 'out' / 'b.h5'}: No space left on device"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.h5"]  # no b.h5, no temporary left


def test_png_previews_may_not_replace_an_input(tmp_path):
    from conftest import make_checkpoint
    from PIL import Image

    denoiser = make_checkpoint(tmp_path / "d.pt", task="denoise", height=32, width=24)
    noisy = tmp_path / "noisy.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 24), dtype=np.uint8)).save(noisy)
    before = noisy.read_bytes()
    assert_user_error(run("infer", denoiser, noisy, "-o", tmp_path / "noisy.h5", "--png", "-T", 2), 3, "is also an input")
    assert noisy.read_bytes() == before and not (tmp_path / "noisy.h5").exists()


def test_training_configs_with_impossible_values_are_refused_before_training():
    from tgv_deploy.training.config import config_from_dict

    for data in ({"batch_size": 0}, {"steps": -3}, {"learning_rate": float("nan")}, {"data": {"height": 3}},
                 {"data": {"accelerations": [0, 4]}}, {"data": {"sigma_range": [0.1, 0.05]}}):
        with pytest.raises(InputError):
            config_from_dict(data)
    assert config_from_dict({"batch_size": 1, "steps": 1}).batch_size == 1


def test_evaluate_takes_r_zero_for_denoising_only(tmp_path):
    pytest.importorskip("matplotlib", reason="evaluate needs the 'plots' extra")
    out = tmp_path / "ev"
    assert_user_error(run("evaluate", "--synthetic", 1, "--size", 16, "--setting", "0,0.05", "-o", out), 3, "MRI settings need R >= 1")
    assert_user_error(run("evaluate", "--synthetic", 1, "--setting", "nan,0.05", "-o", out), 3, "finite numbers")
    assert not out.exists()
