"""Solvers of the TGV and TV problems: PDHG (SPEC section 2) and ADMM with an exact Fourier step (section 2b)."""

from tgv_deploy.solvers.admm import DEFAULT_ALPHA, DEFAULT_RHO, admm_tgv_channels, admm_tv_channels, shrink
from tgv_deploy.solvers.api import admm_tgv, admm_tv, data_scale, pdhg_tgv, pdhg_tv, tgv_energy, tv_energy
from tgv_deploy.solvers.pdhg import LK, clip, pdhg_tgv_channels, pdhg_tv_channels, step_sizes

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_RHO",
    "LK",
    "admm_tgv",
    "admm_tgv_channels",
    "admm_tv",
    "admm_tv_channels",
    "clip",
    "data_scale",
    "pdhg_tgv",
    "pdhg_tgv_channels",
    "pdhg_tv",
    "pdhg_tv_channels",
    "shrink",
    "step_sizes",
    "tgv_energy",
    "tv_energy",
]
