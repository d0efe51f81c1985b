"""Linear operators of the TGV model, each with an explicit, tested adjoint."""

from tgv_deploy.operators.base import IdentityOp, LinearOperator, euclidean_inner
from tgv_deploy.operators.finite_differences import (
    Gradient,
    SymGradient,
    backward_difference,
    div,
    div2,
    forward_difference,
    symmetric_tensor_inner,
)
from tgv_deploy.dft import centred_dft_matrix
from tgv_deploy.operators.fourier import DFT_IMPLS, CentredDFT, MaskedFourierOp
from tgv_deploy.operators.tgv import TGVOperator, TVOperator

__all__ = [
    "DFT_IMPLS",
    "CentredDFT",
    "Gradient",
    "IdentityOp",
    "LinearOperator",
    "MaskedFourierOp",
    "SymGradient",
    "TGVOperator",
    "TVOperator",
    "backward_difference",
    "centred_dft_matrix",
    "div",
    "div2",
    "euclidean_inner",
    "forward_difference",
    "symmetric_tensor_inner",
]
