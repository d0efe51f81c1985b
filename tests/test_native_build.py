"""export/cpp: configuring without ONNX Runtime fails loudly instead of building nothing."""

import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "export" / "cpp"

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")


def _configure(tmp_path: Path, root: Path, *options: str) -> subprocess.CompletedProcess:
    build = tmp_path / f"build-{root.name}"
    return subprocess.run(["cmake", "-S", str(SOURCE), "-B", str(build), f"-DONNXRUNTIME_ROOT={root}", *options],
                          capture_output=True, text=True, timeout=300)


def _has_compiler() -> bool:
    return any(shutil.which(c) for c in ("c++", "g++", "clang++"))


def test_configure_fails_naming_what_is_missing(tmp_path):
    if not _has_compiler():
        pytest.skip("no C++ compiler: CMake's project() fails before the ONNX Runtime check")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _configure(tmp_path, empty)
    assert result.returncode != 0
    assert "onnxruntime_cxx_api.h" in result.stderr and "libonnxruntime.so" in result.stderr, result.stderr
    # what the Python wheel provides: a versioned library, no headers
    wheel = tmp_path / "wheel"
    (wheel / "lib").mkdir(parents=True)
    (wheel / "lib" / "libonnxruntime.so.1.32.0").write_bytes(b"")
    result = _configure(tmp_path, wheel)
    assert result.returncode != 0 and "onnxruntime_cxx_api.h" in result.stderr, result.stderr
    # nothing at all asked for
    result = _configure(tmp_path, empty, "-DTGV_ORT_RUNNER=OFF")
    assert result.returncode != 0 and "nothing to build" in result.stderr, result.stderr


def test_configure_succeeds_with_a_complete_package(tmp_path):
    """The check is not unconditional: a package layout with header and library configures."""
    if not _has_compiler():
        pytest.skip("no C++ compiler")
    package = tmp_path / "onnxruntime-linux-x64"
    (package / "include").mkdir(parents=True)
    (package / "lib").mkdir()
    (package / "include" / "onnxruntime_cxx_api.h").write_text("")
    (package / "lib" / "libonnxruntime.so").write_bytes(b"")
    result = _configure(tmp_path, package)
    assert result.returncode == 0, result.stderr
    assert f"library {package / 'lib' / 'libonnxruntime.so'}" in result.stdout
