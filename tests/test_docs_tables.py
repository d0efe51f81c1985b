"""Every generated table in README, docs and model cards equals what its result file says."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_document_tables_match_their_result_files():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tables.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_documents_hold_generated_tables():
    """The quality and speed claims are generated blocks, not hand-typed numbers."""
    readme = (ROOT / "README.md").read_text()
    assert readme.count("<!-- table: ") >= 3
