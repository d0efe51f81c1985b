"""Torch-free multi-coil preprocessing (SPEC 1b): whitening, oversampling removal, coil compression, coil maps."""

from tgv_deploy.coils.compression import Compression, svd_compression
from tgv_deploy.coils.maps import CoilMaps, calibration_region, centre_lines, espirit_maps, estimate_maps, walsh_maps
from tgv_deploy.coils.oversampling import remove_readout_oversampling
from tgv_deploy.coils.whitening import noise_covariance, whiten, whitening_matrix

__all__ = [
    "CoilMaps",
    "Compression",
    "calibration_region",
    "centre_lines",
    "espirit_maps",
    "estimate_maps",
    "noise_covariance",
    "remove_readout_oversampling",
    "svd_compression",
    "walsh_maps",
    "whiten",
    "whitening_matrix",
]
