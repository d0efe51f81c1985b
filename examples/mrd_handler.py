"""A scanner-side reconstruction handler in the style of an MRD/Gadgetron Python gadget.

It receives Cartesian readout lines (as MRD acquisitions would deliver them), assembles k-space
and the sampling mask per slice, calls the torch-free :class:`tgv_deploy.runtime.Reconstructor`
when a slice is complete, and returns magnitude images. Run it as a demo on a synthetic scan::

    python examples/mrd_handler.py utgv-mri.onnx

In a real Gadgetron/MRD server the ``on_acquisition`` / ``on_slice_complete`` calls come from
the stream; nothing else changes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from tgv_deploy.runtime import Reconstructor, Session


@dataclass
class SliceBuffer:
    kspace: np.ndarray
    mask: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.mask = np.zeros(self.kspace.shape[-1], dtype=np.float32)


class TgvHandler:
    """Accumulates readouts per slice; reconstructs each completed slice with the exported model."""

    def __init__(self, model_path: str, backend: str = "auto"):
        self.reconstructor = Reconstructor(Session(model_path, backend=backend))
        contract = self.reconstructor.contract
        self.shape = (contract.height, contract.width)
        self.slices: dict[int, SliceBuffer] = {}

    def on_acquisition(self, slice_index: int, line: int, readout: np.ndarray) -> None:
        """One readout ``(H,)`` complex, phase-encode index ``line`` (the W axis)."""
        buffer = self.slices.setdefault(slice_index, SliceBuffer(np.zeros(self.shape, dtype=np.complex64)))
        buffer.kspace[:, line] = readout
        buffer.mask[line] = 1

    def on_slice_complete(self, slice_index: int) -> np.ndarray:
        """Reconstruct and return the magnitude image ``(H, W)`` float32; frees the slice buffer."""
        buffer = self.slices.pop(slice_index)
        result = self.reconstructor.reconstruct(buffer.kspace[None], buffer.mask)
        return np.abs(result.image[0]).astype(np.float32)


def main() -> None:
    from tgv_deploy.data.examples import example_inputs

    handler = TgvHandler(sys.argv[1])
    h, w = handler.shape
    inputs = example_inputs("mri", 1, h, w, seed=3)
    kspace = inputs["kspace"][0, 0] + 1j * inputs["kspace"][0, 1]
    for line in np.flatnonzero(inputs["mask"][0, 0, 0]):  # the scanner streams sampled lines
        handler.on_acquisition(0, int(line), kspace[:, line])
    image = handler.on_slice_complete(0)
    print(f"reconstructed slice 0: {image.shape}, max {image.max():.3f}")


if __name__ == "__main__":
    main()
