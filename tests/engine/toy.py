"""A tiny dataset and method for trainer tests: no voxelization, no sparse convolution, milliseconds per step."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pcseg.data import Sample, collate
from pcseg.methods import MethodConfig

NUM_CLASSES, CHANNELS, POINTS = 3, 4, 16


class ToyData(torch.utils.data.Dataset):
    """Items keyed (index, epoch); features are class centres plus noise, 'augmented' by an rng seeded with
    (seed, epoch, index) like PointDataset. Every point is its own voxel; every item has POINTS points."""

    def __init__(self, n: int = 5, seed: int = 0) -> None:
        self.n, self.seed = n, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key):
        index, epoch = key
        base = np.random.default_rng([99, index])
        label = base.integers(0, NUM_CLASSES, POINTS)
        centres = np.eye(NUM_CLASSES, CHANNELS) * 2.0
        feat = centres[label] + base.normal(0, 0.7, (POINTS, CHANNELS))
        feat = feat * np.random.default_rng([self.seed, epoch, index]).uniform(0.8, 1.2)  # the "augmentation"
        grid = np.stack([np.arange(POINTS), np.zeros(POINTS), np.zeros(POINTS)], 1)
        return Sample(
            coord=torch.from_numpy(grid.astype(np.float32)), feat=torch.from_numpy(feat.astype(np.float32)),
            grid_coord=torch.from_numpy(grid.astype(np.int32)), inverse=torch.arange(POINTS),
            label=torch.from_numpy(label), full_label=torch.from_numpy(label), point_index=torch.arange(POINTS),
            scene_id=f"toy_{index}")


class ToyMethod(nn.Module):
    """Two linear layers on voxel features; optional dropout (draws from torch's global generator)."""

    @dataclass
    class Config(MethodConfig):
        name: str = "toy"

    def __init__(self, dropout: float = 0.0, nan_at_call: int = 0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(CHANNELS, 8), nn.ReLU(), nn.Dropout(dropout), nn.Linear(8, NUM_CLASSES))
        self.calls, self.nan_at_call = 0, nan_at_call

    def predict(self, batch):
        return self.net(batch.feat)[batch.inverse]

    def forward(self, batch):
        self.calls += 1
        loss = F.cross_entropy(self.predict(batch), batch.label)
        if self.calls == self.nan_at_call:
            loss = loss * float("nan")
        return {"ce": loss, "l2": 1e-3 * sum((p ** 2).sum() for p in self.parameters())}


__all__ = ["ToyData", "ToyMethod", "collate", "NUM_CLASSES"]
