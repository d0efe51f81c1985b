"""The PyTorch reference backend for checkpoints (needs torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tgv_deploy import __version__
from tgv_deploy.contract import weights_sha256
from tgv_deploy.errors import BackendUnavailableError
from tgv_deploy.runtime.session import checkpoint_contract


class TorchBackend:
    def __init__(self, path: Path, iterations: int | None):
        try:
            import torch
        except ImportError:
            raise BackendUnavailableError("the torch backend needs PyTorch: pip install 'tgv-deploy[torch]'") from None
        from tgv_deploy.models.checkpoint import load_checkpoint

        self.torch = torch
        checkpoint = load_checkpoint(path)
        self.model = checkpoint.build()
        if iterations is not None and iterations < 1:
            from tgv_deploy.errors import InputError

            raise InputError(f"--iterations must be >= 1, got {iterations}")
        config = checkpoint.config
        # an asked-for T applies to every run; otherwise the checkpoint's defaults, multi-coil's own where set
        single = config.iterations if iterations is None else iterations
        multi = config.multicoil_iterations if iterations is None and config.multicoil_iterations != single else None
        state = {k: v.numpy() for k, v in checkpoint.state_dict.items()}
        self.contract = checkpoint_contract(config.task, config.kind, single, weights_sha256(state), __version__,
                                            config.solver, multicoil_iterations=multi)

    def synchronise(self) -> None:
        # CUDA kernels run asynchronously: a clock read needs them finished
        if self.torch.cuda.is_available() and next(self.model.parameters()).is_cuda:
            self.torch.cuda.synchronize()

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self.torch
        with torch.no_grad():
            iterations = self.contract.iterations_for("coil_maps" in inputs)
            if "coil_maps" in inputs:
                image, maps = self.model(torch.from_numpy(inputs["kspace"]), torch.from_numpy(inputs["mask"]),
                                         iterations=iterations, coil_maps=torch.from_numpy(inputs["coil_maps"]))
            elif self.contract.task == "mri":
                image, maps = self.model(torch.from_numpy(inputs["kspace"]), torch.from_numpy(inputs["mask"]), iterations=iterations)
            else:
                image, maps = self.model(torch.from_numpy(inputs["noisy"]), iterations=iterations)
        return {"image": image.numpy(), "maps": maps.numpy()}
