"""Torch-free runtime: :class:`Session` runs an exported model, :class:`Reconstructor` wraps it for k-space,
:class:`MultiCoilPipeline` takes raw multi-coil slices through SPEC 1b's preprocessing to it."""

from tgv_deploy.runtime.multicoil import MultiCoilPipeline, SliceReconstruction
from tgv_deploy.runtime.reconstructor import Reconstruction, Reconstructor
from tgv_deploy.runtime.session import BACKENDS, Session

__all__ = ["BACKENDS", "MultiCoilPipeline", "Reconstruction", "Reconstructor", "Session", "SliceReconstruction"]
