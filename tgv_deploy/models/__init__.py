"""The parameter-map U-Net and the unrolled U-TGV / U-TV models."""

from tgv_deploy.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from tgv_deploy.models.config import UNET_PRESETS, ModelConfig, UNetConfig, unet_preset
from tgv_deploy.models.unet import UNet
from tgv_deploy.models.utgv import UTGV, UTV, build_model, image_scale

__all__ = [
    "UNET_PRESETS",
    "UTGV",
    "UTV",
    "Checkpoint",
    "ModelConfig",
    "UNet",
    "UNetConfig",
    "build_model",
    "image_scale",
    "load_checkpoint",
    "save_checkpoint",
    "unet_preset",
]
