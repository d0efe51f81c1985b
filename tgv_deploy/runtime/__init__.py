"""Torch-free runtime: :class:`Session` runs an exported model, :class:`Reconstructor` wraps it for k-space."""

from tgv_deploy.runtime.reconstructor import Reconstruction, Reconstructor
from tgv_deploy.runtime.session import BACKENDS, Session

__all__ = ["BACKENDS", "Reconstruction", "Reconstructor", "Session"]
