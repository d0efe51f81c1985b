import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from click.testing import CliRunner

import tgv_deploy
from tgv_deploy.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def test_version_and_help():
    runner = CliRunner()
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and tgv_deploy.__version__ in result.output
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0 and "Exit codes" in result.output


def test_console_script_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tgv_deploy", "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "tgv-deploy" in result.stdout


def _source_copy(target: Path) -> Path:
    """The project's sources without environments, build outputs or VCS data: setuptools writes
    ``build/`` and ``*.egg-info`` beside the sources it builds, so the build runs on a copy."""
    top_level = {".git", ".venv", "build", "dist", ".pytest_cache", "benchmarks"}

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
        return skipped | (top_level & set(names) if Path(directory) == ROOT else set())

    shutil.copytree(ROOT, target, ignore=ignore)
    return target


def test_wheel_has_one_top_level_package(tmp_path):
    before = sorted(p.name for p in ROOT.iterdir())
    source = _source_copy(tmp_path / "src")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(source)],
        check=True, cwd=tmp_path,
    )
    (wheel,) = (tmp_path / "dist").glob("tgv_deploy-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"tgv_deploy"}, top
    assert "tgv_deploy/training/__init__.py" in names and "tgv_deploy/export/__init__.py" in names
    assert {"tgv_deploy/bundled/utgv-mri.pt", "tgv_deploy/training/configs/utgv-mri.toml"} <= set(names)
    assert sorted(p.name for p in ROOT.iterdir()) == before  # the checkout gained no build/ or *.egg-info


def _exit_codes(text: str) -> list[int]:
    """The codes of the first 'Exit codes:' paragraph of ``text``."""
    paragraph = text[text.index("Exit codes:"):].split("\n\n")[0]
    return [int(c) for c in re.findall(r"(?<![\w-])(\d+) [A-Za-z]", paragraph)]


def test_help_and_readme_list_the_same_exit_codes():
    help_text = CliRunner().invoke(cli, ["--help"]).output
    readme = (ROOT / "README.md").read_text()
    assert _exit_codes(help_text) == _exit_codes(readme) == [*range(9), 70]


def test_every_subpackage_is_packaged():
    """The explicit package list of pyproject.toml names every package of the source tree."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "tgv_deploy").rglob("__init__.py")}
    assert found <= listed, f"not packaged: {sorted(found - listed)}"
