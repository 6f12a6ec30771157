"""Heads on per-voxel (or per-point) features (M, C): segmentation logits and contrastive projections."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SegHead(nn.Linear):
    """Per-voxel class logits: (M, in_channels) -> (M, num_classes), a linear layer with bias."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        if in_channels < 1 or num_classes < 1:
            raise ValueError(f"SegHead: in_channels and num_classes must be positive, got {in_channels}, {num_classes}")
        super().__init__(in_channels, num_classes)


class ProjectionHead(nn.Module):
    """Two-layer MLP projection for contrastive losses: (M, in_channels) -> (M, dim).

    Linear -> BatchNorm1d -> ReLU -> Linear; with `normalize` the rows are L2-normalised (unit length).
    hidden_channels defaults to in_channels.
    """

    def __init__(self, in_channels: int, dim: int, hidden_channels: int = 0, normalize: bool = True) -> None:
        super().__init__()
        hidden = hidden_channels or in_channels
        if min(in_channels, dim, hidden) < 1:
            raise ValueError(f"ProjectionHead: sizes must be positive, got in={in_channels} hidden={hidden} dim={dim}")
        self.mlp = nn.Sequential(nn.Linear(in_channels, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
                                 nn.Linear(hidden, dim))
        self.normalize = normalize

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        out = self.mlp(feats)
        return F.normalize(out, dim=1) if self.normalize else out
