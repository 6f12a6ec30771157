"""A small 2D encoder-decoder (U-Net style) for the image branch; plain torch, no torchvision."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 conv + BatchNorm + ReLU layers; (B, in, H, W) -> (B, out, H, W)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNet2d(nn.Module):
    """Encoder-decoder with skip connections: per-pixel features at the input resolution.

    in_channels  C_in of the image (3 for RGB)
    channels     channels per stage; stage s works at 1 / 2^s of the input size, so H and W must be divisible by
                 2^(len(channels) - 1)
    forward(image (B, C_in, H, W)) -> features (B, out_channels, H, W), out_channels = channels[0].
    `encode(image)` returns the per-stage encoder features, coarsest last.
    """

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (32, 64, 128)):
        super().__init__()
        if len(channels) < 1:
            raise ValueError("channels needs at least one stage")
        self.channels = tuple(channels)
        self.encoder = nn.ModuleList(
            conv_block(c_in, c_out) for c_in, c_out in zip((in_channels,) + self.channels[:-1], self.channels)
        )
        self.decoder = nn.ModuleList(
            conv_block(self.channels[s + 1] + self.channels[s], self.channels[s]) for s in range(len(channels) - 1)
        )
        self.out_channels = self.channels[0]

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        if image.dim() != 4:
            raise ValueError(f"image must be (B, C, H, W), got shape {tuple(image.shape)}")
        factor = 2 ** (len(self.channels) - 1)
        if image.shape[2] % factor or image.shape[3] % factor:
            raise ValueError(f"image size {tuple(image.shape[2:])} must be divisible by {factor}")
        feats, x = [], image
        for s, block in enumerate(self.encoder):
            x = block(x if s == 0 else F.max_pool2d(x, 2))
            feats.append(x)
        return feats

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feats = self.encode(image)
        x = feats[-1]
        for s in range(len(self.decoder) - 1, -1, -1):
            x = F.interpolate(x, size=feats[s].shape[2:], mode="bilinear", align_corners=False)
            x = self.decoder[s](torch.cat([x, feats[s]], dim=1))
        return x


MODELS2D = {"unet2d": UNet2d}
