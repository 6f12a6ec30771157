"""Voxelize one scene into a `Sample` and pack samples into a `PointBatch`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from pcseg.data.batch import PointBatch
from pcseg.data.scene import Scene

FEATURES = {"color": 3, "normal": 3, "strength": 1, "coord": 3}


@dataclass
class Sample:
    """One voxelized scene (torch, CPU), what a dataset item is.

    coord       (N, 3) float32  point coordinates after transforms
    feat        (M, C) float32  mean of the point features in each voxel
    grid_coord  (M, 3) int32    voxel coordinates, >= 0
    inverse     (N,) int64      voxel of every point
    label       (N,) int64      labels after the budget, -1 = ignore
    full_label  (N,) int64      labels before the budget
    point_index (N,) int64      index of every point in the scene as read
    scene_id    str
    extras      per-scene data passed through to `PointBatch.extras` (one list entry per scene)
    """

    coord: torch.Tensor
    feat: torch.Tensor
    grid_coord: torch.Tensor
    inverse: torch.Tensor
    label: torch.Tensor
    full_label: torch.Tensor
    point_index: torch.Tensor
    scene_id: str
    extras: Dict[str, object] = field(default_factory=dict)


def point_features(scene: Scene, features: Sequence[str]) -> np.ndarray:
    """Stack the named per-point features of `scene` -> (N, C) float32.

    "color" (3), "normal" (3), "strength" (1), "coord" (3, metres relative to the scene's minimum corner).
    """
    parts = []
    for name in features:
        if name not in FEATURES:
            raise ValueError(f"unknown feature {name!r}; choose from {sorted(FEATURES)}")
        if name == "coord":
            value = scene.coord - scene.coord.min(0) if scene.num_points else scene.coord
        else:
            value = getattr(scene, name)
        if value is None:
            raise ValueError(f"scene {scene.scene_id!r} has no {name!r}, but the features ask for it")
        parts.append(np.asarray(value, dtype=np.float32).reshape(scene.num_points, FEATURES[name]))
    if not parts:
        raise ValueError("features must name at least one of " + ", ".join(sorted(FEATURES)))
    return np.concatenate(parts, axis=1)


def voxelize_scene(
    scene: Scene,
    voxel_size: Union[float, Tuple[float, float, float]],
    features: Sequence[str] = ("color",),
    full_label: Optional[np.ndarray] = None,
    extras: Optional[Dict[str, object]] = None,
) -> Sample:
    """Voxelize `scene` with `pcseg.ops.voxelize`, keeping the point -> voxel inverse; voxel features are the mean
    of the point features. `full_label` (N,) defaults to `scene.label`; `scene.point_index` defaults to arange(N)."""
    from pcseg.ops import voxelize  # the op module is imported on first use

    coord = torch.from_numpy(np.ascontiguousarray(scene.coord, dtype=np.float32))
    vox = voxelize(coord, voxel_size)
    feat_point = torch.from_numpy(point_features(scene, features))
    num_voxels = len(vox.grid_coord)
    feat = torch.zeros(num_voxels, feat_point.shape[1], dtype=torch.float32)
    feat.index_add_(0, vox.inverse, feat_point)
    feat /= vox.counts.clamp(min=1).unsqueeze(1).to(feat.dtype)
    n = scene.num_points
    point_index = scene.point_index if scene.point_index is not None else np.arange(n)
    return Sample(
        coord=coord,
        feat=feat,
        grid_coord=vox.grid_coord.to(torch.int32),
        inverse=vox.inverse.to(torch.int64),
        label=torch.from_numpy(np.asarray(scene.label, dtype=np.int64)),
        full_label=torch.from_numpy(np.asarray(scene.label if full_label is None else full_label, dtype=np.int64)),
        point_index=torch.from_numpy(np.asarray(point_index, dtype=np.int64)),
        scene_id=scene.scene_id,
        extras=dict(extras or {}),
    )


def collate(samples: List[Sample]) -> PointBatch:
    """Pack B samples into one `PointBatch`: points and voxels concatenated, voxel indices shifted, the batch
    index prepended to `grid_coord`, cumulative `offset` / `voxel_offset`. Every key of the samples' `extras`
    becomes a list with one entry per scene (None where a sample lacks it)."""
    if not samples:
        raise ValueError("collate: got an empty list of samples")
    voxel_counts = torch.tensor([len(s.grid_coord) for s in samples], dtype=torch.int64)
    point_counts = torch.tensor([len(s.coord) for s in samples], dtype=torch.int64)
    voxel_start = torch.cumsum(voxel_counts, 0) - voxel_counts
    grid_coord = torch.cat([
        torch.cat([torch.full((len(s.grid_coord), 1), b, dtype=torch.int32), s.grid_coord], dim=1)
        for b, s in enumerate(samples)
    ])
    keys = sorted({key for s in samples for key in s.extras})
    return PointBatch(
        coord=torch.cat([s.coord for s in samples]),
        feat=torch.cat([s.feat for s in samples]),
        grid_coord=grid_coord,
        inverse=torch.cat([s.inverse + start for s, start in zip(samples, voxel_start.tolist())]),
        label=torch.cat([s.label for s in samples]),
        offset=torch.cumsum(point_counts, 0),
        voxel_offset=torch.cumsum(voxel_counts, 0),
        point_index=torch.cat([s.point_index for s in samples]),
        scene_ids=[s.scene_id for s in samples],
        full_label=torch.cat([s.full_label for s in samples]),
        extras={key: [s.extras.get(key) for s in samples] for key in keys},
    )
