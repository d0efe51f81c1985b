"""High-level reconstruction: centred k-space and a mask in, complex images and maps out (torch-free)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tgv_deploy.coils.maps import MAP_NORM_TOLERANCE
from tgv_deploy.errors import ContractError, InputError, TgvDeployError
from tgv_deploy.runtime.session import Session


@dataclass
class Reconstruction:
    """``image (S, H, W)`` complex64 (float32 for denoising), maps ``(S, H, W)`` float32, ``mask (S, W)``,
    and the T the model ran."""

    image: np.ndarray
    lambda0: np.ndarray | None
    lambda1: np.ndarray
    mask: np.ndarray | None
    iterations: int


class Reconstructor:
    """Batches slices to the session's batch size, validates, runs, and unpacks the outputs.

    ``reconstruct(kspace (..., H, W) complex, mask (W,) or one per slice (..., W))`` for MRI models;
    ``denoise(images (..., H, W) real)`` for denoising models. Leading axes are slices.
    """

    def __init__(self, session: Session, progress: Callable[[int, int], None] | None = None):
        self.session = session
        self.contract = session.contract
        self.progress = progress

    def check_size(self, height: int, width: int) -> None:
        """Raise :class:`ContractError` unless the model runs ``height x width`` images."""
        c = self.contract
        if c.height not in (-1, height) or c.width not in (-1, width):
            raise ContractError(
                f"input matrix {height}x{width} differs from the model's contract {c.height}x{c.width}: an exported model "
                f"runs one size; export the checkpoint for this one (tgv-deploy export CHECKPOINT --height {height} --width {width})"
            )

    def reconstruct(self, kspace: np.ndarray, mask: np.ndarray) -> Reconstruction:
        lead, sampled, mask = self._checked_kspace(kspace, mask)
        height, width = sampled.shape[-2:]
        channels = np.stack((sampled.real, sampled.imag), axis=1).astype(np.float32)
        outputs = self._run_batched({"kspace": channels, "mask": mask[:, None, None, :]})
        image = (outputs["image"][:, 0] + 1j * outputs["image"][:, 1]).astype(np.complex64)
        return self._unpack(image.reshape(*lead, height, width), outputs["maps"], lead, mask.reshape(*lead, width), multicoil=False)

    def check_kspace(self, kspace: np.ndarray, mask: np.ndarray) -> None:
        """Every check :meth:`reconstruct` makes before it runs a slice, for callers that validate all
        their inputs before any work."""
        self._checked_kspace(kspace, mask)

    def _checked_kspace(self, kspace: np.ndarray, mask: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray]:
        """The leading axes, masked k-space ``(S, H, W)`` and masks ``(S, W)`` of valid input."""
        if self.contract.task != "mri":
            raise InputError("this is a denoising model: use denoise(images), not reconstruct(kspace, mask)")
        self.contract.input_specs(multicoil=False)
        kspace = np.asarray(kspace)
        if kspace.ndim < 2 or not np.iscomplexobj(kspace) or 0 in kspace.shape:
            raise InputError(f"k-space must be complex (..., H, W) with no empty axis, got {kspace.dtype} {kspace.shape}")
        *lead, height, width = kspace.shape
        kspace = kspace.reshape(-1, height, width)
        slices = kspace.shape[0]
        mask = self._masks(mask, slices, width, tuple(lead))
        if not np.isfinite(kspace).all():
            raise InputError("k-space contains NaN or Inf")
        self.check_size(height, width)
        self.contract.check_masks(mask)
        sampled = kspace * mask[:, None, :]
        empty = np.flatnonzero(~np.any(sampled != 0, axis=(1, 2)))
        if empty.size:
            raise InputError(f"slice {int(empty[0])}: all sampled k-space values are zero")
        return lead, sampled, mask

    def reconstruct_multicoil(self, kspace: np.ndarray, mask: np.ndarray, maps: np.ndarray) -> Reconstruction:
        """Multi-coil SENSE reconstruction (SPEC 1b): ``kspace (S, C, H, W)`` and coil ``maps (S, C, H, W)``
        complex, ``mask (S, W)`` or ``(W,)``; returns the coil-combined image ``(S, H, W)``.

        A graph exported for more coils than the data has gets zero coils appended (a coil with a
        zero map and zero data adds nothing to the energy, so the result is exact); fewer is refused.
        """
        if self.contract.task != "mri":
            raise InputError("this is a denoising model: it takes no coil data")
        kspace, maps = np.asarray(kspace), np.asarray(maps)
        if kspace.ndim != 4 or not np.iscomplexobj(kspace):
            raise InputError(f"multi-coil k-space must be complex (slices, coils, H, W), got {kspace.dtype} {kspace.shape}")
        if maps.shape != kspace.shape or 0 in kspace.shape:
            raise InputError(f"coil maps {maps.shape} must have the k-space's shape {kspace.shape}, with no empty axis")
        slices, coils, height, width = kspace.shape
        mask = self._masks(mask, slices, width)
        if not np.isfinite(kspace).all() or not np.isfinite(maps).all():
            raise InputError("k-space or coil maps contain NaN or Inf")
        weight = np.square(np.abs(maps)).sum(1)  # (S, H, W): SPEC 1b's maps have sum_c |S_c|^2 <= 1
        if weight.max() > 1 + MAP_NORM_TOLERANCE:
            raise InputError(f"coil maps must satisfy sum_c |S_c|^2 <= 1 (SPEC 1b), found {weight.max():.4g}")
        if not weight.reshape(slices, -1).max(1).all():
            raise InputError("coil maps are zero everywhere in a slice")
        self.check_size(height, width)
        self.contract.check_masks(mask)
        self.contract.check_coils(coils, multicoil=True)
        graph_coils = self.contract.coils
        if graph_coils > 0:
            pad = ((0, 0), (0, graph_coils - coils), (0, 0), (0, 0))
            kspace, maps = np.pad(kspace, pad), np.pad(maps, pad)
        sampled = kspace * mask[:, None, None, :]
        empty = np.flatnonzero(~np.any(sampled != 0, axis=(1, 2, 3)))
        if empty.size:
            raise InputError(f"slice {int(empty[0])}: all sampled k-space values are zero")
        inputs = {"kspace": np.stack((sampled.real, sampled.imag), axis=2).astype(np.float32),
                  "coil_maps": np.stack((maps.real, maps.imag), axis=2).astype(np.float32),
                  "mask": mask[:, None, None, :]}
        outputs = self._run_batched(inputs)
        image = (outputs["image"][:, 0] + 1j * outputs["image"][:, 1]).astype(np.complex64)
        return self._unpack(image, outputs["maps"], [slices], mask, multicoil=True)

    @staticmethod
    def _masks(mask: np.ndarray, slices: int, width: int, lead: tuple[int, ...] = ()) -> np.ndarray:
        """Binary line masks as ``(S, W)`` float32: one for all slices (``(W,)``, any singleton axes
        before it) or one per slice (``(S, W)`` or the k-space's leading axes ``(*lead, W)``, singleton
        axes allowed, e.g. the graph's ``(S, 1, 1, W)``); masks whose axes order the slices
        differently are refused, not guessed."""
        given = np.asarray(mask)
        if given.dtype.kind not in "biuf":
            raise InputError(f"mask must be real 0/1 values, got {given.dtype}")
        axes = tuple(d for d in given.shape[:-1] if d != 1)
        per_slice = {(slices,), tuple(d for d in lead if d != 1)} - {()}
        if given.ndim == 0 or given.shape[-1] != width or (axes and axes not in per_slice):
            raise InputError(f"mask must be (W,) = ({width},) or one per slice, (slices, W) = ({slices}, {width}), "
                             f"got {given.shape}")
        mask = np.broadcast_to(given.reshape(width), (slices, width)) if not axes else given.reshape(slices, width)
        if not np.isfinite(mask).all() or not np.isin(mask, (0, 1)).all():
            raise InputError("mask must contain only 0 and 1")
        return mask.astype(np.float32)

    def denoise(self, images: np.ndarray) -> Reconstruction:
        if self.contract.task != "denoise":
            raise InputError("this is an MRI model: use reconstruct(kspace, mask), not denoise(images)")
        images = np.asarray(images)
        if images.ndim < 2 or np.iscomplexobj(images) or images.dtype.kind != "f":
            raise InputError(f"images must be real floating (..., H, W), got {images.dtype} {images.shape}")
        if not np.isfinite(images).all():
            raise InputError("images contain NaN or Inf")
        *lead, height, width = images.shape
        self.check_size(height, width)
        outputs = self._run_batched({"noisy": images.reshape(-1, 1, height, width).astype(np.float32)})
        return self._unpack(outputs["image"][:, 0].reshape(*lead, height, width), outputs["maps"], lead, None, multicoil=False)

    def _unpack(self, image, maps, lead, mask, multicoil: bool) -> Reconstruction:
        shape = (*lead, *maps.shape[-2:])
        iterations = self.contract.iterations_for(multicoil)
        if maps.shape[1] == 2:
            return Reconstruction(image, maps[:, 0].reshape(shape), maps[:, 1].reshape(shape), mask, iterations)
        return Reconstruction(image, None, maps[:, 0].reshape(shape), mask, iterations)

    def _run_batched(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        total = next(iter(inputs.values())).shape[0]
        if total == 0:
            raise InputError("no slices to reconstruct")
        batch = self.contract.batch or total
        results: dict[str, list[np.ndarray]] = {}
        for start in range(0, total, batch):
            chunk = {k: v[start : start + batch] for k, v in inputs.items()}
            count = next(iter(chunk.values())).shape[0]
            if count < batch:  # a fixed-batch engine: repeat the last slice, drop it afterwards
                chunk = {k: np.concatenate([v, np.repeat(v[-1:], batch - count, axis=0)]) for k, v in chunk.items()}
            out = self.session.run({k: np.ascontiguousarray(v) for k, v in chunk.items()})
            for name, value in out.items():
                results.setdefault(name, []).append(value[:count])
            if self.progress is not None:
                self.progress(min(start + batch, total), total)
        outputs = {name: np.concatenate(parts) for name, parts in results.items()}
        if not all(np.isfinite(value).all() for value in outputs.values()):
            # never passed on as an image (a viewer shows NaN as black): input magnitudes near float32's
            # limit overflow on the way, and so can a float16 U-Net
            raise TgvDeployError("the model produced NaN or Inf: input magnitudes near single precision's limit "
                                 "(rescale the data), or a float16 U-Net overflowing")
        return outputs
