"""Sparse-voxel backbones and heads.

MODELS maps a name to a backbone constructor `(in_channels, base_channels=32, channels=..., layers=...,
backend="auto") -> SpUNet`; channels and layers default to the preset's. Presets follow the MinkUNet / SpUNet
sizes: 14 and 18 (channels 32-64-128-256 / 128-128-96-96, one or two blocks per stage), 34 (Pointcept's SpUNet:
32-64-128-256 / 256-128-96-96, blocks 2-3-4-6 / 2-2-2-2), and depthwise-separable twins ("spunet-dw*").
"""
from functools import partial
from typing import Callable, Dict

from pcseg.models.heads import ProjectionHead, SegHead
from pcseg.models.image_encoder import ImageEncoder, load_image_encoder, save_image_encoder
from pcseg.models.spunet import BasicBlock, DepthwiseSeparableBlock, SpUNet

_CHANNELS_A = (32, 64, 128, 256, 128, 128, 96, 96)
_CHANNELS_C = (32, 64, 128, 256, 256, 128, 96, 96)

MODELS: Dict[str, Callable[..., SpUNet]] = {
    "spunet14": partial(SpUNet, channels=_CHANNELS_A, layers=(1,) * 8),
    "spunet18": partial(SpUNet, channels=_CHANNELS_A, layers=(2,) * 8),
    "spunet34": partial(SpUNet, channels=_CHANNELS_C, layers=(2, 3, 4, 6, 2, 2, 2, 2)),
    "spunet-dw18": partial(SpUNet, channels=_CHANNELS_A, layers=(2,) * 8, depthwise=True),
    "spunet-dw34": partial(SpUNet, channels=_CHANNELS_C, layers=(2, 3, 4, 6, 2, 2, 2, 2), depthwise=True),
}

__all__ = ["BasicBlock", "DepthwiseSeparableBlock", "MODELS", "ProjectionHead", "SegHead", "SpUNet", "ImageEncoder",
           "load_image_encoder", "save_image_encoder"]
