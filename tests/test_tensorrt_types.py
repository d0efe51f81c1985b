"""The TensorRT code is type-checked against tensorrt-stubs (TensorRT itself cannot run here).

tensorrt-stubs ships bare ``.pyi`` trees without ``py.typed``, so mypy ignores them in
site-packages; the test copies them into a private stub directory first.
"""

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "export" / "trt_build.py", ROOT / "tgv_deploy" / "runtime" / "trt_backend.py", ROOT / "tgv_deploy" / "trt_common.py"]


def _stubs(tmp_path: Path) -> Path:
    try:
        files = importlib.metadata.files("tensorrt-stubs")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("tensorrt-stubs is not installed (the README test command installs it: pip install --no-deps tensorrt-stubs)")
    pytest.importorskip("mypy", reason="mypy is not installed")
    stub_dir = tmp_path / "stubs"
    for f in files or []:
        if f.suffix == ".pyi":
            target = stub_dir / f.as_posix()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("\n".join(_repair(line) for line in Path(f.locate()).read_text().splitlines()))
    return stub_dir


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def _repair(line: str) -> str:
    """Two syntax errors of the generated stubs: a parameter named ``in`` (a keyword) and
    parameters without defaults after ones with defaults. Renaming and defaulting them changes
    no type the project relies on."""
    line = re.sub(r"([(,] ?)in: ", r"\1in_: ", line)
    match = re.match(r"(\s*def \w+\()(.*)(\) -> .*)$", line)
    if not match:
        return line
    params, seen_default = [], False
    for param in _split_top_level(match.group(2)):
        if "=" in param:
            seen_default = True
        elif seen_default and ":" in param and not param.strip().startswith("*"):
            param += " = ..."
        params.append(param)
    return match.group(1) + ",".join(params) + match.group(3)


def _mypy(stub_dir: Path, *files: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--follow-imports", "silent", "--check-untyped-defs",
               "--no-incremental", *map(str, files)]
    return subprocess.run(command, capture_output=True, text=True, env={"MYPYPATH": str(stub_dir), "PATH": ""}, cwd=ROOT)


def _errors_in(result: subprocess.CompletedProcess, *files: Path) -> list[str]:
    """mypy's errors in our files (the generated stubs have errors of their own, e.g. a class
    attribute ``bool`` shadowing the builtin, which are not ours to fix)."""
    names = {str(f.relative_to(ROOT)) if f.is_relative_to(ROOT) else str(f) for f in files}
    return [line for line in result.stdout.splitlines() if line.split(":")[0] in names and ": error:" in line]


def test_tensorrt_code_type_checks_against_the_stubs(tmp_path):
    stub_dir = _stubs(tmp_path)
    result = _mypy(stub_dir, *SOURCES)
    assert "error: " not in result.stdout or _errors_in(result, *SOURCES) == [], result.stdout[-3000:]
    assert "Revealed" not in result.stdout
    # the check can fail: a misspelt API call on a real TensorRT object is caught
    broken = tmp_path / "broken_trt_build.py"
    broken.write_text(SOURCES[0].read_text().replace("build_serialized_network(", "build_serialised_network("))
    errors = _errors_in(_mypy(stub_dir, broken), broken)
    assert any("build_serialised_network" in e for e in errors), errors
