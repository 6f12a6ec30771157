"""SpUNet: residual sparse-voxel U-Net (the MinkUNet / Pointcept SpUNet design) and its depthwise-separable twin.

    stem      SubMConv k=5 -> BN -> ReLU                                            (M, base_channels)
    encoder   4 stages: SparseConv k=2 s=2 -> BN -> ReLU, then layers[s] residual blocks   channels[0..3]
    decoder   4 stages: SparseInverseConv k=2 -> BN -> ReLU, concat the skip of the same
              resolution, then layers[4 + s] residual blocks                                channels[4..7]
    output    per-voxel features (M, channels[7]) on the input voxels (spatial_shape rounded up to a multiple
              of 16, so that no stride-2 level drops a voxel)

Residual block: two 3x3x3 submanifold convs with BN, ReLU after the first and after the sum with the
(1x1-projected when the width changes) input. The depthwise-separable block (Li et al., "Less is More", CVPR 2023:
sparse depthwise separable convolution) replaces each 3x3x3 conv by a per-channel 3x3x3 conv followed by a
pointwise linear map, cutting the parameters of a block from 27 C^2 to about C^2 + 27 C.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from pcseg.sparse import (
    BatchNorm,
    DepthwiseSubMConv3d,
    Linear,
    ReLU,
    SparseConv3d,
    SparseInverseConv3d,
    SparseTensor,
    SubMConv3d,
)


class BasicBlock(nn.Module):
    """Residual block of two 3x3x3 submanifold convs.   SparseTensor (M, in_channels) -> (M, out_channels)"""

    def __init__(self, in_channels: int, out_channels: int, backend: str = "auto") -> None:
        super().__init__()
        self.conv1 = SubMConv3d(in_channels, out_channels, 3, backend=backend)
        self.bn1 = BatchNorm(out_channels)
        self.conv2 = SubMConv3d(out_channels, out_channels, 3, backend=backend)
        self.bn2 = BatchNorm(out_channels)
        self.proj = _projection(in_channels, out_channels)
        self.relu = ReLU()

    def forward(self, x: SparseTensor) -> SparseTensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out.replace_feature(out.feats + self.proj(x).feats))


class DepthwiseSeparableBlock(nn.Module):
    """Residual block of two sparse depthwise-separable convs (depthwise 3x3x3 -> pointwise linear).

    SparseTensor (M, in_channels) -> (M, out_channels). The depthwise convs always run on the native backend.
    """

    def __init__(self, in_channels: int, out_channels: int, backend: str = "auto") -> None:
        super().__init__()
        self.dw1 = DepthwiseSubMConv3d(in_channels, 3)
        self.pw1 = Linear(in_channels, out_channels, bias=False)
        self.bn1 = BatchNorm(out_channels)
        self.dw2 = DepthwiseSubMConv3d(out_channels, 3)
        self.pw2 = Linear(out_channels, out_channels, bias=False)
        self.bn2 = BatchNorm(out_channels)
        self.proj = _projection(in_channels, out_channels)
        self.relu = ReLU()

    def forward(self, x: SparseTensor) -> SparseTensor:
        out = self.relu(self.bn1(self.pw1(self.dw1(x))))
        out = self.bn2(self.pw2(self.dw2(out)))
        return self.relu(out.replace_feature(out.feats + self.proj(x).feats))


def _projection(in_channels: int, out_channels: int) -> nn.Module:
    if in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(Linear(in_channels, out_channels, bias=False), BatchNorm(out_channels))


class SpUNet(nn.Module):
    """Residual sparse U-Net backbone.   forward: SparseTensor (M, in_channels) -> SparseTensor (M, out_channels)

    in_channels     input feature channels (e.g. 3 for colour, 6 for colour + normal)
    base_channels   width of the stem
    channels        8 widths: 4 encoder stages (strides 2, 4, 8, 16) then 4 decoder stages (back to stride 1)
    layers          8 numbers of residual blocks, one per stage
    depthwise       use depthwise-separable residual blocks
    backend         sparse conv backend: "auto", "native" or "spconv"
    out_channels    = channels[-1]
    """

    def __init__(
        self,
        in_channels: int,
        base_channels: int = 32,
        channels: Sequence[int] = (32, 64, 128, 256, 256, 128, 96, 96),
        layers: Sequence[int] = (2, 3, 4, 6, 2, 2, 2, 2),
        depthwise: bool = False,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        channels, layers = tuple(int(c) for c in channels), tuple(int(n) for n in layers)
        if len(channels) != 8 or len(layers) != 8:
            raise ValueError(f"SpUNet: channels and layers need 8 entries each, got {len(channels)} and {len(layers)}")
        if min(channels) < 1 or min(layers) < 1 or in_channels < 1 or base_channels < 1:
            raise ValueError(f"SpUNet: channels, layers, in_channels and base_channels must be positive")
        self.in_channels, self.out_channels = int(in_channels), channels[-1]
        block = DepthwiseSeparableBlock if depthwise else BasicBlock
        self.stem = nn.Sequential(SubMConv3d(in_channels, base_channels, 5, backend=backend),
                                  BatchNorm(base_channels), ReLU())
        self.down, self.enc, self.up, self.dec = nn.ModuleList(), nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        enc_widths: List[int] = [base_channels]  # widths of the skips, by stride level
        for s in range(4):
            self.down.append(nn.Sequential(
                SparseConv3d(enc_widths[-1], channels[s], 2, 2, indice_key=f"down{s}", backend=backend),
                BatchNorm(channels[s]), ReLU()))
            self.enc.append(nn.Sequential(*[block(channels[s], channels[s], backend) for _ in range(layers[s])]))
            enc_widths.append(channels[s])
        width = channels[3]
        for s in range(4):  # decoder stage s goes from stride level 4 - s to 3 - s
            level, out = 3 - s, channels[4 + s]
            self.up.append(nn.Sequential(
                SparseInverseConv3d(width, out, 2, indice_key=f"down{level}", backend=backend),
                BatchNorm(out), ReLU()))
            blocks = [block(out + enc_widths[level], out, backend)]
            blocks += [block(out, out, backend) for _ in range(layers[4 + s] - 1)]
            self.dec.append(nn.Sequential(*blocks))
            width = out

    def forward(self, x: SparseTensor) -> SparseTensor:
        if not isinstance(x, SparseTensor):
            raise ValueError(f"SpUNet expects a SparseTensor, got {type(x).__name__}")
        if x.feats.shape[1] != self.in_channels:
            raise ValueError(f"SpUNet: input has {x.feats.shape[1]} channels, model expects {self.in_channels}")
        # a k=2 s=2 conv drops voxels at the last index of an odd-sized axis: make every level's extent even
        shape = tuple(-(-d // 16) * 16 for d in x.spatial_shape)
        x = self.stem(SparseTensor._trusted(x.feats, x.coords, shape, x.batch_size, x.cache))
        skips = [x]
        for down, enc in zip(self.down, self.enc):
            x = enc(down(x))
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = up(x)
            skip = skips.pop()
            x = dec(x.replace_feature(torch.cat([x.feats, skip.feats], 1)))
        return x
