"""mypy over the package as it is installed (``python tests/test_mypy.py`` prints the report).

``training/`` and ``export/`` ship as ``tgv_deploy.training`` and ``tgv_deploy.export``
(``[tool.setuptools] package-dir``), a mapping mypy cannot follow; so the sources are linked into
the installed layout in a temporary folder and mypy checks ``-p tgv_deploy`` there, with the
configuration in ``pyproject.toml``. Reported paths are mapped back to the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAPPING = {"tgv_deploy": ROOT / "tgv_deploy", "tgv_deploy/training": ROOT / "training", "tgv_deploy/export": ROOT / "export"}



def _link_tree(target: Path) -> None:
    for relative, source in MAPPING.items():
        directory = target / relative
        directory.mkdir(parents=True, exist_ok=True)
        for entry in source.iterdir():
            if entry.name in ("__pycache__",) or (entry.is_dir() and f"{relative}/{entry.name}" in MAPPING):
                continue
            (directory / entry.name).symlink_to(entry)


def _to_checkout(path: str) -> str:
    for relative in sorted(MAPPING, key=len, reverse=True):
        if path.startswith(relative + "/"):
            return str((MAPPING[relative] / path[len(relative) + 1 :]).relative_to(ROOT))
    return path


def mypy_errors() -> list[str]:
    """mypy's error lines, ``checkout/path.py:line: error: ...``."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        _link_tree(tree)
        command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(Path(tmp) / "cache"),
                   "--no-error-summary", "--show-error-codes", "-p", "tgv_deploy"]
        env = {k: v for k, v in os.environ.items() if k != "MYPYPATH"}
        result = subprocess.run(command, capture_output=True, text=True, cwd=tree, env=env, timeout=900)
    if result.returncode not in (0, 1) or (result.returncode == 1 and ": error:" not in result.stdout):
        raise RuntimeError(f"mypy did not run: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    errors = []
    for line in result.stdout.splitlines():
        if ": error:" in line:
            path, rest = line.split(":", 1)
            errors.append(f"{_to_checkout(path)}:{rest}")
    return errors


@pytest.fixture(scope="module")
def errors() -> list[str]:
    pytest.importorskip("mypy", reason="mypy (dev extra) is not installed")
    return mypy_errors()


def test_mypy_is_clean(errors):
    assert errors == [], "\n".join(errors)


def test_the_check_can_fail(tmp_path):
    """The linked layout resolves tgv_deploy.export: a wrong call into it is reported."""
    pytest.importorskip("mypy", reason="mypy (dev extra) is not installed")
    tree = tmp_path / "tree"
    _link_tree(tree)
    probe = tree / "tgv_deploy" / "probe.py"
    probe.write_text("from tgv_deploy.export.trt_build import BuildConfig\n\nBuildConfig(precision=3)\n")
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir",
                             str(tmp_path / "cache"), "--follow-imports", "silent", str(probe.relative_to(tree))],
                            capture_output=True, text=True, cwd=tree, timeout=900)
    assert 'Argument "precision" to "BuildConfig" has incompatible type "int"' in result.stdout, result.stdout


if __name__ == "__main__":
    found = mypy_errors()
    print("\n".join(found) or "mypy: no errors")
    sys.exit(1 if found else 0)
