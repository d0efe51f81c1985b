"""Every generated table in README, docs and model cards equals what its result file says."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_document_tables_match_their_result_files():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tables.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_documents_hold_generated_tables():
    """The quality and speed claims are generated blocks, not hand-typed numbers."""
    readme = (ROOT / "README.md").read_text()
    assert readme.count("<!-- table: ") >= 3


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_results_and_docs_written_after_a_commit_do_not_make_a_result_dirty(tmp_path):
    """Benchmarks write results and tables; only changes to what a result depends on count as dirty."""
    from tgv_deploy.machine import RESULT_INDEPENDENT_PATHS

    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path / "pkg"), *args], capture_output=True, text=True, check=True).stdout

    for name in ("code.py", "README.md", "benchmarks/results/r.json", "pkg/inner.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("0\n")
    subprocess.run(["git", "-C", str(tmp_path), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"], check=True)
    status = ("status", "--porcelain", "--untracked-files=no", "--", *RESULT_INDEPENDENT_PATHS)  # from a subfolder, as provenance runs it
    (tmp_path / "README.md").write_text("1\n")
    (tmp_path / "benchmarks/results/r.json").write_text("1\n")
    assert git(*status) == ""
    (tmp_path / "code.py").write_text("1\n")
    assert "code.py" in git(*status)
