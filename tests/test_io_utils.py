"""Atomic outputs: the umask decides the mode, the data is on disk before the rename, failures leave nothing."""

import os
import stat
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from tgv_deploy import io_utils
from tgv_deploy.io_utils import atomic_output, atomic_write_bytes


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    yield lambda value: os.umask(value)
    os.umask(previous)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_files_follow_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    target = atomic_write_bytes(tmp_path / "out.bin", b"data")
    assert target.read_bytes() == b"data"
    assert _mode(target) == expected


def test_data_and_directory_are_synced_around_the_rename(tmp_path, monkeypatch):
    events = []
    real_replace = os.replace
    monkeypatch.setattr(io_utils, "_fsync_path", lambda path, directory=False: events.append(("fsync", os.path.basename(path), directory)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", os.path.basename(b), None)), real_replace(a, b)))
    atomic_write_bytes(tmp_path / "out.bin", b"data")
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"]
    assert events[0][1].startswith(".out.bin.") and events[0][2] is False  # the temporary file, before the rename
    assert events[2] == ("fsync", tmp_path.name, True)  # its directory, after


def test_failure_leaves_neither_target_nor_temporary(tmp_path):
    (tmp_path / "out.bin").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "out.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert (tmp_path / "out.bin").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_export_and_infer_outputs_honour_a_022_umask(tmp_path, mri_checkpoint):
    pytest.importorskip("onnxruntime")
    from tgv_deploy.data.fastmri import write_fastmri

    rng = np.random.default_rng(0)
    data = tmp_path / "k.h5"
    write_fastmri(data, (rng.standard_normal((1, 32, 24)) + 1j * rng.standard_normal((1, 32, 24))).astype(np.complex64))

    def run(*args):
        result = subprocess.run([sys.executable, "-m", "tgv_deploy", *map(str, args)], capture_output=True, text=True,
                                cwd=tempfile.gettempdir(), preexec_fn=lambda: os.umask(0o022))
        assert result.returncode == 0, result.stderr

    run("export", mri_checkpoint, "-o", tmp_path / "m.onnx", "--iterations", 2, "--no-verify")
    run("infer", tmp_path / "m.onnx", data, "-o", tmp_path / "r.h5", "--png")
    written = ["m.onnx", "m.json", "r.h5", "r.png"]
    assert {name: oct(_mode(tmp_path / name)) for name in written} == {name: oct(0o644) for name in written}
