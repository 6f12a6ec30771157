"""A small ResNet-style image encoder for image-to-lidar distillation (plain torch, no torchvision).

SLidR distils a frozen, self-supervised image network into the 3D backbone. This encoder is the small stand-in:
a stride-2 stem, then stages of basic residual blocks (two 3x3 convs + BatchNorm, identity or 1x1 projection
shortcut), each stage after the first halving the resolution. Weights are saved and loaded as local checkpoint
files (`save_image_encoder` / `load_image_encoder`); nothing is downloaded.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from pcseg.atomic import write_atomic

PathLike = Union[str, os.PathLike]
CHECKPOINT_KIND = "pcseg-image-encoder"
# per-channel statistics the input is standardised with (those of ImageNet; any fixed values would do)
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """image (B, 3, H, W) uint8 (0..255) -> float32 standardised with IMAGE_MEAN / IMAGE_STD."""
    if image.dim() != 4 or image.shape[1] != 3:
        raise ValueError(f"image must be (B, 3, H, W), got shape {tuple(image.shape)}")
    if image.dtype != torch.uint8:
        raise ValueError(f"image must be uint8 (0..255), got {image.dtype}")
    mean = torch.tensor(IMAGE_MEAN, device=image.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD, device=image.device).view(1, 3, 1, 1)
    return (image.float() / 255.0 - mean) / std


class BasicBlock(nn.Module):
    """x (B, C_in, H, W) -> relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)) (B, C_out, H / stride, W / stride)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x), inplace=True)


class ImageEncoder(nn.Module):
    """ResNet-style encoder: stem (3x3 conv, stride 2) + one stage per entry of `channels`.

    channels  output channels per stage; stage s > 0 has stride 2, so the output stride is 2^len(channels)
    layers    basic blocks per stage (same length as channels)
    forward(image (B, 3, H, W) float, standardised) -> (B, out_channels, ceil(H / stride), ceil(W / stride))
    `dense(image)` upsamples the features bilinearly to (B, out_channels, H, W).
    """

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (32, 64, 128),
                 layers: Sequence[int] = (1, 1, 1)) -> None:
        super().__init__()
        if not channels or len(channels) != len(layers) or min(channels) < 1 or min(layers) < 1:
            raise ValueError(f"ImageEncoder: channels {tuple(channels)} and layers {tuple(layers)} must be "
                             "non-empty positive sequences of the same length")
        self.in_channels = in_channels
        self.channels, self.layers = tuple(int(c) for c in channels), tuple(int(n) for n in layers)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, self.channels[0], 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(self.channels[0]), nn.ReLU(inplace=True))
        stages = []
        previous = self.channels[0]
        for s, (width, depth) in enumerate(zip(self.channels, self.layers)):
            blocks = [BasicBlock(previous, width, stride=1 if s == 0 else 2)]
            blocks += [BasicBlock(width, width) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            previous = width
        self.stages = nn.ModuleList(stages)
        self.out_channels = self.channels[-1]
        self.stride = 2 ** len(self.channels)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[1] != self.in_channels:
            raise ValueError(f"ImageEncoder: image must be (B, {self.in_channels}, H, W), got {tuple(image.shape)}")
        x = self.stem(image)
        for stage in self.stages:
            x = stage(x)
        return x

    def dense(self, image: torch.Tensor) -> torch.Tensor:
        """(B, out_channels, H, W) features at the input resolution (bilinear upsampling)."""
        return F.interpolate(self(image), size=image.shape[2:], mode="bilinear", align_corners=False)

    def config(self) -> Dict[str, Any]:
        return {"in_channels": self.in_channels, "channels": list(self.channels), "layers": list(self.layers)}


def save_image_encoder(encoder: ImageEncoder, path: PathLike, meta: Dict[str, Any] | None = None) -> Path:
    """Write {kind, config, model (state dict), meta} atomically (temporary file + rename) to `path`."""
    state = {"kind": CHECKPOINT_KIND, "config": encoder.config(),
             "model": {k: v.detach().cpu() for k, v in encoder.state_dict().items()}, "meta": dict(meta or {})}
    return write_atomic(path, lambda handle: torch.save(state, handle))


def load_image_encoder(path: PathLike) -> ImageEncoder:
    """The ImageEncoder stored at `path` by `save_image_encoder` (clear errors for a missing or foreign file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image encoder checkpoint not found: {path} (train one with `pcseg pretrain-2d`)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(f"image encoder checkpoint {path} cannot be read: {error}") from None
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{path} is not an image encoder checkpoint written by `pcseg pretrain-2d` "
                         f"(expected kind {CHECKPOINT_KIND!r})")
    encoder = ImageEncoder(**state["config"])
    try:
        encoder.load_state_dict(state["model"])
    except RuntimeError as error:  # missing / unexpected keys or shapes, all listed by torch
        raise ValueError(f"image encoder checkpoint {path} does not match its own config: {error}") from None
    return encoder


__all__ = ["ImageEncoder", "BasicBlock", "normalize_image", "save_image_encoder", "load_image_encoder",
           "IMAGE_MEAN", "IMAGE_STD"]
