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
    import json

    assert [json.loads((tmp_path / f"eval{t}" / "results.json").read_text())["model_iterations"] for t in (None, 1)] == [
        {"U-TGV": 4}, {"U-TGV": 1}]


def test_multicoil_evaluation_runs_and_records_the_multicoil_default_T(tmp_path):
    import json

    utgv = make_checkpoint(tmp_path / "utgv.pt", solver="admm", iterations=3, multicoil_iterations=5)
    utv = make_checkpoint(tmp_path / "utv.pt", kind="utv", solver="admm", iterations=3)
    scores = {}
    for t in (None, 5):
        outcomes = run_evaluation([], 1, (24, 24), [(4.0, 0.05)], str(utgv), str(utv), tmp_path / f"eval{t}",
                                  baseline_max_iterations=40, say=lambda m: None, iterations=t, coils=3, center_fraction=0.25)
        scores[t] = outcomes[0].scores["U-TGV"]
    assert scores[None] == scores[5]
    recorded = json.loads((tmp_path / "evalNone" / "results.json").read_text())["model_iterations"]
    assert recorded == {"U-TGV": 5, "U-TV": 3}


@pytest.mark.parametrize("task", ["mri", "denoise"])
def test_recorded_baselines_are_solved_again_not_searched(tmp_path, task):
    from tgv_deploy.errors import InputError

    utgv = make_checkpoint(tmp_path / "utgv.pt", task=task, iterations=4)
    first = run_evaluation([], 2, (24, 24), [(4.0, 0.05)], str(utgv), None, tmp_path / "a", baseline_max_iterations=100, say=lambda m: None)
    recorded = tmp_path / "a" / "results.json"
    again = run_evaluation([], 2, (24, 24), [(4.0, 0.05)], str(utgv), None, tmp_path / "b", baseline_max_iterations=100,
                           say=lambda m: None, baselines_from=recorded)
    for old, new in zip(first, again):
        for method in ("scalar TV", "scalar TGV"):  # "iterations": this one solve's, the search's most of any
            assert {k: v for k, v in new.params[method].items() if k != "iterations"} == {
                k: v for k, v in old.params[method].items() if k != "iterations"}
        for method in ("scalar TV", "scalar TGV"):
            assert abs(new.scores[method][0] - old.scores[method][0]) < 1e-3
            np.testing.assert_allclose(new.images[method], old.images[method], atol=1e-4)
    assert '"baselines_from"' in (tmp_path / "b" / "results.json").read_text()
    # a record of other data (its corrupted input scores otherwise), another convergence criterion,
    # missing cases or a file that is no record: refused
    import json

    data = json.loads(recorded.read_text())
    data["cases"][1]["scores"]["zero-filled" if task == "mri" else "noisy input"][0] += 0.01
    (tmp_path / "other.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="synthetic:1 .* not the same case"):
        run_evaluation([], 2, (24, 24), [(4.0, 0.05)], str(utgv), None, tmp_path / "c", baseline_max_iterations=100,
                       say=lambda m: None, baselines_from=tmp_path / "other.json")
    with pytest.raises(InputError, match="stop at"):
        run_evaluation([], 2, (24, 24), [(4.0, 0.05)], str(utgv), None, tmp_path / "d", baseline_max_iterations=50,
                       say=lambda m: None, baselines_from=recorded)
    with pytest.raises(InputError, match="no record of synthetic:2"):
        run_evaluation([], 3, (24, 24), [(4.0, 0.05)], str(utgv), None, tmp_path / "d", baseline_max_iterations=100,
                       say=lambda m: None, baselines_from=recorded)
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(InputError, match="not an evaluate results.json"):
        run_evaluation([], 2, (24, 24), [(4.0, 0.05)], str(utgv), None, tmp_path / "d", baseline_max_iterations=100,
                       say=lambda m: None, baselines_from=tmp_path / "bad.json")
    assert not (tmp_path / "d").exists()  # refused before any work: no output directory
