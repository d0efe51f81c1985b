import re
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


def test_wheel_has_one_top_level_package(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("tgv_deploy-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"tgv_deploy"}, top
    assert "tgv_deploy/training/__init__.py" in names and "tgv_deploy/export/__init__.py" in names


def _exit_codes(text: str) -> list[int]:
    """The codes of the first 'Exit codes:' paragraph of ``text``."""
    paragraph = text[text.index("Exit codes:"):].split("\n\n")[0]
    return [int(c) for c in re.findall(r"(?<![\w-])(\d+) [A-Za-z]", paragraph)]


def test_help_and_readme_list_the_same_exit_codes():
    help_text = CliRunner().invoke(cli, ["--help"]).output
    readme = (ROOT / "README.md").read_text()
    assert _exit_codes(help_text) == _exit_codes(readme) == [*range(9), 70]
