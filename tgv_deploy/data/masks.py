"""Cartesian line masks along the phase-encode axis (the last axis), seeded and reproducible.

``RandomLineMask`` and ``EquispacedLineMask`` follow fastMRI's ``subsample.py``; ``GaussianLineMask``
is the 1D variable-density mask of the paper. Each mask owns its generator: a call with a seed
never touches global random state. ``make_mask`` is the only string-to-class map.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np


def seed_from_string(text: str) -> int:
    """A stable 32-bit seed from text (e.g. file name and slice), via SHA-256."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


class LineMask:
    """A binary ``(W,)`` line mask with a fully sampled centre of ``round(W * center_fraction)`` lines."""

    name = "base"

    def __init__(self, center_fraction: float, acceleration: float):
        if not 0 < center_fraction < 1:
            raise ValueError(f"center_fraction must be in (0, 1), got {center_fraction}")
        if not (math.isfinite(acceleration) and acceleration >= 1):
            raise ValueError(f"acceleration must be a finite number >= 1, got {acceleration}")
        self.center_fraction = center_fraction
        self.acceleration = acceleration

    def __call__(self, width: int, seed: int | None = None) -> np.ndarray:
        """Float32 ``(W,)`` mask of 0/1 values."""
        rng = np.random.default_rng(seed)
        num_low = centre_line_count(width, self.center_fraction)
        mask = np.zeros(width, dtype=np.float32)
        pad = (width - num_low + 1) // 2
        mask[pad : pad + num_low] = 1
        outer = self._outer(width, num_low, rng)
        return np.maximum(mask, outer)

    def _outer(self, width: int, num_low: int, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(center_fraction={self.center_fraction}, acceleration={self.acceleration})"


class RandomLineMask(LineMask):
    """fastMRI "random": outer lines drawn independently so that the expected total is W / R."""

    name = "random"

    def _outer(self, width, num_low, rng):
        prob = (width / self.acceleration - num_low) / max(width - num_low, 1)
        return (rng.uniform(size=width) < prob).astype(np.float32)


class EquispacedLineMask(LineMask):
    """fastMRI "equispaced": outer lines at a fixed spacing from a random offset, total about W / R."""

    name = "equispaced"

    def _outer(self, width, num_low, rng):
        spacing = max(1.0, (width - num_low) / max(width / self.acceleration - num_low, 1e-9))
        offset = rng.integers(0, max(1, round(spacing)))
        positions = np.round(np.arange(offset, width - 1, spacing)).astype(int)
        mask = np.zeros(width, dtype=np.float32)
        mask[positions] = 1
        return mask


class GaussianLineMask(LineMask):
    """The paper's 1D Gaussian variable density: outer lines drawn without replacement with
    probability proportional to a Gaussian around the centre (std = W / 6) until W / R lines are sampled."""

    name = "gaussian"

    def _outer(self, width, num_low, rng):
        mask = np.zeros(width, dtype=np.float32)
        pad = (width - num_low + 1) // 2
        candidates = np.setdiff1d(np.arange(width), np.arange(pad, pad + num_low))
        wanted = int(round(width / self.acceleration)) - num_low
        if wanted <= 0 or candidates.size == 0:
            return mask
        density = np.exp(-0.5 * ((candidates - width / 2) / (width / 6)) ** 2)
        chosen = rng.choice(candidates, size=min(wanted, candidates.size), replace=False, p=density / density.sum())
        mask[chosen] = 1
        return mask


MASK_TYPES: dict[str, type[LineMask]] = {cls.name: cls for cls in (RandomLineMask, EquispacedLineMask, GaussianLineMask)}


def make_mask(kind: str, center_fraction: float, acceleration: float) -> LineMask:
    try:
        return MASK_TYPES[kind](center_fraction, acceleration)
    except KeyError:
        raise ValueError(f"unknown mask type {kind!r}; choose one of {sorted(MASK_TYPES)}") from None


def centre_line_count(width: int, center_fraction: float) -> int:
    """Lines of the fully sampled centre a line mask of ``width`` lines gets for ``center_fraction``."""
    return max(1, round(width * center_fraction))


def default_center_fraction(acceleration: float) -> float:
    """fastMRI's pairs: 0.08 at 4x, 0.04 at 8x; linear in 1/R in between."""
    return float(np.clip(0.32 / acceleration, 0.02, 0.5))
