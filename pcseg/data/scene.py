"""The in-memory scene every reader and generator produces."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

IGNORE_INDEX = -1


@dataclass
class Scene:
    """One point cloud with per-point attributes (numpy, CPU).

    coord    (N, 3) float32, metres
    color    (N, 3) float32 in [0, 1] (zeros where the sensor has none)
    label    (N,) int64 class index, -1 = unlabeled / ignored
    scene_id str, unique within its dataset ("scene0000_00", "Area_5/office_1", "08/000123")
    normal   (N, 3) float32 or None
    instance (N,) int64 or None (-1 = no instance)
    strength (N, 1) float32 or None (lidar remission / intensity)
    extras   free-form per-scene data a method needs (camera images, calibration, ...)
    point_index (N,) int64 or None: index of every point in the scene as read (set by the dataset before
             transforms; crops keep it, so predictions and labels map back to the original points)
    """

    coord: np.ndarray
    color: np.ndarray
    label: np.ndarray
    scene_id: str
    normal: Optional[np.ndarray] = None
    instance: Optional[np.ndarray] = None
    strength: Optional[np.ndarray] = None
    extras: Dict[str, object] = field(default_factory=dict)
    point_index: Optional[np.ndarray] = None

    PER_POINT = ("coord", "color", "label", "normal", "instance", "strength", "point_index")

    def __post_init__(self) -> None:
        n = len(self.coord)
        if self.coord.ndim != 2 or self.coord.shape[1] != 3:
            raise ValueError(f"scene {self.scene_id!r}: coord must be (N, 3), got {self.coord.shape}")
        for name in self.PER_POINT[1:]:
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(
                    f"scene {self.scene_id!r}: {name} has {len(value)} entries but there are {n} points"
                )

    @property
    def num_points(self) -> int:
        return len(self.coord)

    def subset(self, index: np.ndarray) -> "Scene":
        """A new scene with every per-point array indexed by `index` ((K,) int64 or (N,) bool); extras shared."""
        return dataclasses.replace(self, **{
            name: getattr(self, name)[index] for name in self.PER_POINT if getattr(self, name) is not None
        })

    def replace(self, **changes) -> "Scene":
        """A new scene with some fields replaced (the others shared, not copied)."""
        return dataclasses.replace(self, **changes)
