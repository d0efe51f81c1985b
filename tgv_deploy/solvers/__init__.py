"""PDHG solvers for the TGV and TV problems of SPEC section 2."""

from tgv_deploy.solvers.api import pdhg_tgv, pdhg_tv, tgv_energy, tv_energy
from tgv_deploy.solvers.pdhg import LK, clip, pdhg_tgv_channels, pdhg_tv_channels, step_sizes

__all__ = [
    "LK",
    "clip",
    "pdhg_tgv",
    "pdhg_tgv_channels",
    "pdhg_tv",
    "pdhg_tv_channels",
    "step_sizes",
    "tgv_energy",
    "tv_energy",
]
