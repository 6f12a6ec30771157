"""Tiny scene sources and models for the active-learning tests (milliseconds, no sparse convolution)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pcseg.data import Scene

CLASSES = ("floor", "wall", "chair")


class TinySource:
    """`num_scenes` scenes of `points` random points in a 3 x 3 x 1 m box; every 7th point has no label (-1)."""

    class_names = CLASSES
    num_classes = len(CLASSES)

    def __init__(self, num_scenes: int = 3, points: int = 500, seed: int = 0) -> None:
        self.scene_ids = [f"area_1/room_{i}" for i in range(num_scenes)]
        self.points, self.seed = points, seed

    def __len__(self) -> int:
        return len(self.scene_ids)

    def __getitem__(self, i: int) -> Scene:
        rng = np.random.default_rng([self.seed, i])
        coord = (rng.random((self.points, 3)) * [3.0, 3.0, 1.0]).astype(np.float32)
        label = rng.integers(0, len(CLASSES), self.points)
        label[::7] = -1
        color = rng.random((self.points, 3)).astype(np.float32)
        return Scene(coord=coord, color=color, label=label, scene_id=self.scene_ids[i])


class CoordModel(nn.Module):
    """Logits a fixed smooth function of the coordinates: margins vary across the room. No backbone/head."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([[2.0, -1.0, 0.5], [-1.0, 2.0, 0.3], [0.4, 0.2, -2.0]]))

    def predict(self, batch) -> torch.Tensor:
        return torch.sin(3 * batch.coord) @ self.weight


class LinearBackbone(nn.Module):
    """Per-voxel linear layer + BatchNorm acting on a SparseTensor (stands in for a SpUNet)."""

    out_channels = 6

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, self.out_channels)
        self.norm = nn.BatchNorm1d(self.out_channels)

    def forward(self, x):
        return x.replace_feature(torch.relu(self.norm(self.linear(x.feats))))
