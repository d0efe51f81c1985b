import pytest
import torch

from tgv_deploy.models import ModelConfig, UNetConfig, build_model, save_checkpoint

TINY_UNET = UNetConfig(depth=2, base_channels=4)


def make_checkpoint(path, kind="utgv", task="mri", iterations=8, height=32, width=24, seed=0, solver="pdhg", noise_gain=False,
                    penalty_ratio=1.0, multicoil_iterations=None, rho_schedule=0):
    torch.manual_seed(seed)
    model = build_model(ModelConfig(kind=kind, task=task, unet=TINY_UNET, iterations=iterations, solver=solver, noise_gain=noise_gain,
                                    penalty_ratio=penalty_ratio, multicoil_iterations=multicoil_iterations, rho_schedule=rho_schedule))
    with torch.no_grad():  # a learned solver parameter away from its initial value
        (model.log_step if solver == "pdhg" else model.log_rho).fill_(0.1)
        if noise_gain:
            model.noise_exponent.fill_(0.3)
    save_checkpoint(path, model, {"height": height, "width": width})
    return path


@pytest.fixture(scope="session")
def mri_checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "utgv.pt")


@pytest.fixture(scope="session")
def mri_onnx(tmp_path_factory, mri_checkpoint):
    from tgv_deploy.export.exporter import ExportConfig, build_graph, write_export
    from tgv_deploy.models import load_checkpoint

    out = tmp_path_factory.mktemp("onnx") / "utgv.onnx"
    write_export(build_graph(load_checkpoint(mri_checkpoint), ExportConfig()), out)
    return out
