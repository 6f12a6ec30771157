"""The typed batch that flows from the data loader into models and methods."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Dict, List, Optional

import torch


@dataclass
class PointBatch:
    """B scenes packed along the first axis (N = N1 + ... + NB points, M = M1 + ... + MB voxels).

    coord        (N, 3) float32  point coordinates after transforms
    feat         (M, C) float32  voxel input features (mean of the point features in each voxel)
    grid_coord   (M, 4) int32    [batch, x, y, z] voxel coordinates, non-negative
    inverse      (N,) int64      voxel index of every point (into the M voxels of the batch)
    label        (N,) int64      per-point labels, -1 = ignore (after the label budget is applied)
    offset       (B,) int64      cumulative point counts: scene b owns points offset[b-1]:offset[b]
    voxel_offset (B,) int64      cumulative voxel counts
    point_index  (N,) int64      index of every point in its original scene (crops keep the mapping)
    scene_ids    list of B str
    full_label   (N,) int64 or None  labels before the budget (for evaluation and oracle selection)
    extras       per-batch data of methods (second views, images, ...)
    """

    coord: torch.Tensor
    feat: torch.Tensor
    grid_coord: torch.Tensor
    inverse: torch.Tensor
    label: torch.Tensor
    offset: torch.Tensor
    voxel_offset: torch.Tensor
    point_index: torch.Tensor
    scene_ids: List[str]
    full_label: Optional[torch.Tensor] = None
    extras: Dict[str, object] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return len(self.scene_ids)

    @property
    def point_batch(self) -> torch.Tensor:
        """(N,) int64 batch index of every point."""
        counts = torch.diff(self.offset, prepend=self.offset.new_zeros(1))
        return torch.repeat_interleave(torch.arange(len(counts), device=self.offset.device), counts)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "PointBatch":
        """Move every tensor (also inside extras) to `device`."""

        def move(value):
            if isinstance(value, torch.Tensor):
                return value.to(device, non_blocking=non_blocking)
            if isinstance(value, dict):
                return {k: move(v) for k, v in value.items()}
            return value

        return PointBatch(**{f.name: move(getattr(self, f.name)) for f in fields(self)})

    def pin_memory(self) -> "PointBatch":
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                setattr(self, f.name, value.pin_memory())
        return self
