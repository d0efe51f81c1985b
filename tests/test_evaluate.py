import numpy as np
import pytest

from conftest import make_checkpoint
from tgv_deploy.evaluate import run_evaluation, triple_edge_profile


def test_triple_edge_detection():
    target = np.zeros((20, 30))
    target[:, 15:] = 1.0
    high_low_high = np.full((20, 30), 0.05)
    high_low_high[:, 13:15] = 0.2  # high on both sides of the edge
    high_low_high[:, 16:18] = 0.2
    high_low_high[:, 15] = 0.01
    assert triple_edge_profile(target, high_low_high)["triple_edge"] is True
    assert triple_edge_profile(target, np.full((20, 30), 0.05))["triple_edge"] is False


@pytest.mark.parametrize("task", ["mri", "denoise"])
def test_evaluation_writes_tables_and_figures(tmp_path, task):
    utgv = make_checkpoint(tmp_path / "utgv.pt", task=task, iterations=4)
    utv = make_checkpoint(tmp_path / "utv.pt", kind="utv", task=task, iterations=4)
    outcomes = run_evaluation([], 2, (24, 24), [(4.0, 0.05)], str(utgv), str(utv), tmp_path / "eval", baseline_max_iterations=100, say=lambda m: None)
    assert len(outcomes) == 2
    first = "zero-filled" if task == "mri" else "noisy input"
    for outcome in outcomes:
        assert set(outcome.scores) == {first, "scalar TV", "scalar TGV", "U-TV", "U-TGV"}
        # the scalar searches are tuned on the target: they cannot lose to the corrupted input
        assert outcome.scores["scalar TGV"][0] >= outcome.scores[first][0]
    table = (tmp_path / "eval" / "results.md").read_text()
    assert "U-TGV PSNR / SSIM" in table and "| 2 |" in table
    assert len((tmp_path / "eval" / "results.csv").read_text().splitlines()) == 3
    assert len(list((tmp_path / "eval").glob("*.png"))) == 2


def test_evaluation_runs_the_models_at_the_requested_T(tmp_path):
    utgv = make_checkpoint(tmp_path / "utgv.pt", iterations=4)
    scores = {}
    for t in (None, 4, 1):
        outcomes = run_evaluation([], 1, (24, 24), [(4.0, 0.05)], str(utgv), None, tmp_path / f"eval{t}",
                                  baseline_max_iterations=40, say=lambda m: None, iterations=t)
        scores[t] = outcomes[0].scores["U-TGV"]
    assert scores[None] == scores[4]  # the default is the checkpoint's own T
    assert scores[1] != scores[4]
