"""Torch-free multi-coil preprocessing (SPEC 1b): whitening, oversampling removal, coil compression, coil maps."""

from tgv_deploy.coils.compression import Compression, svd_compression
from tgv_deploy.coils.oversampling import remove_readout_oversampling
from tgv_deploy.coils.whitening import noise_covariance, whiten, whitening_matrix

__all__ = [
    "Compression",
    "noise_covariance",
    "remove_readout_oversampling",
    "svd_compression",
    "whiten",
    "whitening_matrix",
]
