"""What a new user meets: missing extras, run folders, size hints, bench, Triton, previews, denoising from the CLI."""

import json
import subprocess
import sys
import tempfile
import textwrap
import time

import h5py
import numpy as np
import pytest

from tgv_deploy.data.fastmri import write_fastmri
from tgv_deploy.errors import InputError

pytest.importorskip("onnxruntime", reason="ONNX Runtime (the 'cpu' extra) is needed for the CLI tests")

OUTSIDE = tempfile.gettempdir()


def run(*args, blocked=()):
    """``tgv-deploy ARGS`` in a fresh interpreter; ``blocked`` modules fail to import there, as on a host without them."""
    code = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)
    code += "from tgv_deploy.cli import main\nmain(sys.argv[1:])\n"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, cwd=OUTSIDE)


def assert_user_error(result, code, match):
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and match in lines[0], result.stderr


def _kspace(slices, h=32, w=24, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((slices, h, w)) + 1j * rng.standard_normal((slices, h, w))).astype(np.complex64)


def test_missing_optional_dependencies_fail_before_any_work(tmp_path, mri_checkpoint):
    start = time.perf_counter()
    result = run("evaluate", "--synthetic", 2, "-o", tmp_path / "ev", blocked=["matplotlib"])
    assert_user_error(result, 2, "pip install 'tgv-deploy[plots]'")
    assert time.perf_counter() - start < 60 and not (tmp_path / "ev").exists()
    result = run("export", mri_checkpoint, "-o", tmp_path / "m.onnx", blocked=["onnxruntime"])
    assert_user_error(result, 2, "pip install 'tgv-deploy[cpu]'")
    assert not (tmp_path / "m.onnx").exists()
    result = run("train", tmp_path / "any.toml", "-o", tmp_path / "run", blocked=["torch"])
    assert_user_error(result, 2, "pip install 'tgv-deploy[torch]'")


TINY = """
seed = 3
steps = 2
batch_size = 2
warmup_steps = 1
val_every = 2
checkpoint_every = 2
train_iterations = 2

[model]
kind = "utgv"
task = "mri"
iterations = 3
unet = { depth = 1, base_channels = 4 }

[data]
height = 24
width = 20
val_size = 2
"""


def test_train_refuses_a_non_empty_run_folder(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "model.pt").write_bytes(b"an earlier run")
    (folder / "state.pt").write_bytes(b"its state")
    assert_user_error(run("train", config, "-o", folder), 3, "--overwrite")
    assert_user_error(run("train", config, "-o", folder, "--resume", "--overwrite"), 3, "choose one")
    torchrun_entry = subprocess.run([sys.executable, "-m", "tgv_deploy.training", config, folder], capture_output=True,
                                    text=True, cwd=OUTSIDE)
    assert_user_error(torchrun_entry, 3, "--overwrite")
    assert (folder / "model.pt").read_bytes() == b"an earlier run"
    result = run("train", config, "-o", folder, "--overwrite")
    assert result.returncode == 0, result.stderr
    from tgv_deploy.models import load_checkpoint

    assert load_checkpoint(folder / "model.pt").training["steps"] == 2  # a real checkpoint replaced the old file
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("train", tmp_path / "missing.toml", "-o", empty).returncode == 3  # an empty folder is not refused for being there
    assert "not empty" not in run("train", tmp_path / "missing.toml", "-o", empty).stderr


def test_size_mismatch_names_the_export_option(tmp_path, mri_onnx):
    write_fastmri(tmp_path / "k.h5", _kspace(1, 16, 24))
    assert_user_error(run("infer", mri_onnx, tmp_path / "k.h5", "-o", tmp_path / "o.h5"), 4, "--height 16 --width 24")


def test_bench_checks_contracts_before_creating_any_session(monkeypatch, mri_onnx, mri_checkpoint):
    from tgv_deploy import bench as bench_module

    def no_session(*args, **kwargs):
        raise AssertionError("a session was created before the contracts were checked")

    monkeypatch.setattr(bench_module, "Session", no_session)
    with pytest.raises(InputError, match="T=8, not --iterations 4"):
        bench_module.bench([str(mri_checkpoint), str(mri_onnx)], iterations=4, runs=1)
    with pytest.raises(InputError, match="exported for 32x24"):
        bench_module.bench([str(mri_onnx)], height=64, width=64, runs=1)


def test_bench_success_path_writes_every_field(tmp_path, mri_onnx, mri_checkpoint):
    out = tmp_path / "bench.json"
    result = run("bench", mri_checkpoint, mri_onnx, "--runs", 2, "--warmup", 1, "--json", out)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["command"].startswith("tgv-deploy bench") and report["machine"]["cpus"] >= 1
    rows = {r["backend"]: r for r in report["results"]}
    assert set(rows) == {"torch", "onnxruntime"}
    for row in rows.values():
        # the checkpoint runs at the exported model's T, so both rows compute the same thing
        assert (row["iterations"], row["height"], row["width"], row["batch"]) == (8, 32, 24, 1)
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["throughput"] == pytest.approx(1e3 / row["mean_ms"])
        assert "peak_mb" not in row
    assert rows["torch"]["ratio_to_torch"] == 1.0
    assert rows["onnxruntime"]["ratio_to_torch"] == pytest.approx(rows["onnxruntime"]["p50_ms"] / rows["torch"]["p50_ms"])
    table = result.stdout.splitlines()
    assert table[0].startswith("| model | backend") and len([l for l in table if l.startswith("| ")]) == 4


def test_export_tells_what_the_triton_repository_needs(tmp_path, mri_checkpoint):
    result = run("export", mri_checkpoint, "-o", tmp_path / "my-model.onnx", "-T", 2, "--no-verify", "--triton-repo", tmp_path / "repo")
    assert result.returncode == 0, result.stderr
    readme = tmp_path / "repo" / "my_model_trt" / "1" / "README.txt"
    assert str(tmp_path / "repo") in result.stdout and str(readme.parent / "model.plan") in result.stdout
    assert "tgv-deploy build my_model_onnx/1/model.onnx -o my_model_trt/1/model.plan" in result.stdout
    assert readme.read_text() in textwrap.dedent(result.stdout.replace("\n  ", "\n")) + "\n"
    assert (tmp_path / "repo" / "my_model_onnx" / "1" / "model.onnx").read_bytes() == (tmp_path / "my-model.onnx").read_bytes()


def test_png_previews_every_slice_with_a_caption(tmp_path, mri_onnx):
    from PIL import Image

    write_fastmri(tmp_path / "k.h5", _kspace(3))
    assert run("infer", mri_onnx, tmp_path / "k.h5", "-o", tmp_path / "o.h5", "--png").returncode == 0
    sheet = np.asarray(Image.open(tmp_path / "o.png"))
    caption = sheet.shape[0] // 3 - 32
    assert sheet.shape == (3 * (32 + caption), 3 * 24) and caption > 0  # image, Lambda0, Lambda1 for each of 3 slices
    rows = [sheet[s * (32 + caption) : (s + 1) * (32 + caption)] for s in range(3)]
    assert all((row[:caption] < 128).any() for row in rows)  # every row has its caption text
    assert not np.array_equal(rows[0][:caption], rows[1][:caption])  # which differs: the slice index
    with h5py.File(tmp_path / "o.h5") as handle:
        first = np.abs(handle["reconstruction"][0])
    assert np.array_equal(rows[0][caption:, :24], (255 * first / first.max()).astype(np.uint8))


def test_denoising_model_runs_on_image_files(tmp_path):
    from PIL import Image

    from tgv_deploy.registry import bundled_models

    if not next(m for m in bundled_models() if m.name == "utgv-denoise").available:
        pytest.skip("bundled model utgv-denoise is not installed in this checkout")
    rng = np.random.default_rng(0)
    clean = np.zeros((2, 32, 28), np.float32)
    clean[:, 8:24, 6:20] = 1.0
    noisy = clean + 0.1 * rng.standard_normal(clean.shape).astype(np.float32)
    np.save(tmp_path / "noisy.npy", noisy)
    result = run("infer", "utgv-denoise", tmp_path / "noisy.npy", "-o", tmp_path / "d.h5", "-T", 32)
    assert result.returncode == 0, result.stderr
    with h5py.File(tmp_path / "d.h5") as handle:
        denoised = handle["reconstruction"][()]
        assert denoised.dtype == np.float32 and denoised.shape == (2, 32, 28)
        assert handle["lambda0"].shape == handle["lambda1"].shape == (2, 32, 28) and "mask" not in handle
        assert '"task": "denoise"' in handle.attrs["contract"]
    assert np.linalg.norm(denoised - clean) < 0.7 * np.linalg.norm(noisy - clean)  # it denoised
    png = np.clip(noisy[0] * 200, 0, 255).astype(np.uint8)
    Image.fromarray(png).save(tmp_path / "noisy.png")
    with h5py.File(tmp_path / "noisy_image.h5", "w") as handle:
        handle.create_dataset("image", data=noisy[0])
    for source in ("noisy.png", "noisy_image.h5"):
        result = run("infer", "utgv-denoise", tmp_path / source, "-o", tmp_path / f"{source}.out.h5", "-T", 4)
        assert result.returncode == 0, result.stderr
        with h5py.File(tmp_path / f"{source}.out.h5") as handle:
            assert handle["reconstruction"].shape == (1, 32, 28)
    write_fastmri(tmp_path / "k.h5", _kspace(1))
    assert_user_error(run("infer", "utgv-denoise", tmp_path / "k.h5", "-o", tmp_path / "x.h5", "-T", 2), 3, "denoising model, it takes images")
    assert_user_error(run("infer", "utgv-mri", tmp_path / "noisy.npy", "-o", tmp_path / "x.h5", "-T", 2), 3, "MRI model, it takes k-space")
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("exported", [False, True], ids=["checkpoint-torch", "exported-onnx"])
def test_admm_model_refuses_a_mask_without_the_centre_in_one_line(tmp_path, exported):
    """ADMM divides by the mask at the k-space centre: both backends refuse such a file as bad input."""
    from conftest import make_checkpoint
    from tgv_deploy.dft import fft2c

    model = make_checkpoint(tmp_path / "admm.pt", iterations=3, height=16, width=12, solver="admm")
    if exported:
        assert run("export", model, "-o", tmp_path / "admm.onnx", "--no-verify").returncode == 0
        model = tmp_path / "admm.onnx"
    mask = np.zeros(12, dtype=np.float32)
    mask[::2] = 1
    mask[6] = 0
    image = np.random.default_rng(0).random((1, 16, 12)).astype(np.float32)
    write_fastmri(tmp_path / "k.h5", fft2c(image.astype(np.complex64)) * mask, mask=mask, target=image)
    extra = [] if exported else ["--backend", "torch"]
    assert_user_error(run("infer", model, tmp_path / "k.h5", "-o", tmp_path / "o.h5", *extra), 3, "k-space centre")
    assert not (tmp_path / "o.h5").exists()
