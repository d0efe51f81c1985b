import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tgv_deploy.errors import InputError
from tgv_deploy.models import load_checkpoint
from tgv_deploy.training.config import config_from_dict, load_config
from tgv_deploy.training.trainer import lr_factor, train

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"

TINY = """
seed = 3
steps = {steps}
batch_size = 2
warmup_steps = 2
val_every = 2
checkpoint_every = 2
train_iterations = 3
iterations_schedule = [[2, 4]]

[model]
kind = "{kind}"
task = "{task}"
iterations = 5
unet = {{ depth = 1, base_channels = 4 }}

[data]
height = 24
width = 20
val_size = 2
"""


def _write(tmp_path, steps=4, kind="utgv", task="mri"):
    path = tmp_path / f"{kind}-{task}-{steps}.toml"
    path.write_text(TINY.format(steps=steps, kind=kind, task=task))
    return path


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.toml")))
def test_committed_configs_parse(name):
    config = load_config(CONFIGS / f"{name}.toml")
    assert config.steps > 0 and config.model.iterations >= config.iterations_at(0)


def test_config_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("stepz = 3\n")
    with pytest.raises(InputError, match="unknown keys"):
        load_config(bad)
    bad.write_text("steps = [\n")
    with pytest.raises(InputError, match="invalid TOML"):
        load_config(bad)
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(InputError, match=r"\[model\]"):
        config_from_dict({"model": {"kind": "tgv"}})
    assert config_from_dict({"iterations_schedule": [[10, 64]], "train_iterations": 8}).iterations_at(12) == 64


def test_lr_schedule_warms_up_then_decays():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100) == pytest.approx(0.05)
    assert lr_factor(50, 10, 100) < lr_factor(20, 10, 100)


@pytest.mark.parametrize("kind, task", [("utgv", "mri"), ("utv", "denoise")])
def test_training_runs_saves_and_resumes(tmp_path, kind, task):
    logs = []
    out = tmp_path / "run"
    first = train(load_config(_write(tmp_path, 4, kind, task)), out, log=logs.append)
    ckpt = load_checkpoint(first)
    assert ckpt.training["steps"] == 4 and ckpt.training["height"] == 24 and ckpt.training["train_iterations"] == 4
    assert len(ckpt.training["history"]) == 2 and all(h["psnr"] > 0 for h in ckpt.training["history"])
    assert any("validation at step 4" in line for line in logs)
    before = {k: v.clone() for k, v in ckpt.state_dict.items()}
    logs.clear()
    train(load_config(_write(tmp_path, 6, kind, task)), out, resume=True, log=logs.append)
    assert logs[0] == "resumed at step 4"
    resumed = load_checkpoint(out / "model.pt")
    assert resumed.training["steps"] == 6
    assert any(not torch.equal(before[k], resumed.state_dict[k]) for k in before)


def test_two_process_ddp_on_cpu_keeps_replicas_identical(tmp_path):
    config = _write(tmp_path, 3)
    env = {**os.environ, "TGV_DDP_BACKEND": "gloo", "OMP_NUM_THREADS": "1"}
    with socket.socket() as probe:  # a free port: a fixed one collides with lingering runs
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", port,
               "-m", "tgv_deploy.training", str(config), str(tmp_path / "ddp")]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "x2," in output  # both ranks joined
    line = next(l for l in output.splitlines() if "replicas agree" in l)
    assert line.endswith("0.0e+00"), line
    assert load_checkpoint(tmp_path / "ddp" / "model.pt").training["world_size"] == 2
