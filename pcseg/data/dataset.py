"""Torch datasets over scene sources, the seeded sampler and loader, and the public builder.

A *scene source* is any object with `scene_ids` (list of str), `class_names`, `num_classes`, `__len__` and
`__getitem__(i) -> Scene` (the readers and generators of this package). `PointDataset` turns one into voxelized
`Sample`s: label budget -> transforms -> voxelize; `make_loader` batches them into `PointBatch`es.
"""
from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pcseg.data.camera import KittiObject, NuScenesPairs, SemanticKITTICameras
from pcseg.data.collate import FEATURES, Sample, collate, voxelize_scene
from pcseg.data.folder import FolderDataset
from pcseg.data.ondisk import Preprocessed
from pcseg.data.s3dis import S3DIS
from pcseg.data.scannet import ScanNet
from pcseg.data.scene import Scene
from pcseg.data.semantickitti import SemanticKITTI
from pcseg.data.synthetic_indoor import SyntheticIndoor
from pcseg.data.synthetic_outdoor import SyntheticOutdoor
from pcseg.data.transforms import default_transforms
from pcseg.weak.budget import apply_budget, parse_budget, read_budget, sample_budget

BudgetArg = Union[None, str, os.PathLike, Mapping[str, torch.Tensor]]


class PointDataset(Dataset):
    """Voxelized scenes of a source, with a label budget and seeded augmentation.

    source          scene source (see module docstring)
    voxel_size      metres (float or 3 floats)
    transforms      callable (scene, rng) -> scene, e.g. `default_transforms()`; None for no augmentation
    budget          None (all labels), a budget file path, a spec "points:N" / "ratio:r" / "scenes:f" (sampled
                    here with `budget_seed`, reading every scene once), or a dict {scene_id: LongTensor}
    features        per-point features averaged into voxels: any of "color", "normal", "strength", "coord"
    seed            augmentation seed; item i of epoch e uses numpy Generator seeded with (seed, e, i)
    keep_raw_coord  put the untransformed coordinates (N, 3) float32 of the kept points in extras["raw_coord"]
                    (to project points into camera images after augmentation)

    Items are `Sample`s; `dataset[(index, epoch)]` selects the epoch's augmentation (what `SeededSampler` yields).
    `label` has the budget applied, `full_label` is the complete annotation (for evaluation and oracles).
    """

    def __init__(self, source, voxel_size: Union[float, Sequence[float]] = 0.05, transforms: Optional[Callable] = None,
                 budget: BudgetArg = None, budget_seed: int = 0, features: Sequence[str] = ("color",),
                 seed: int = 0, keep_raw_coord: bool = False) -> None:
        for name in features:
            if name not in FEATURES:
                raise ValueError(f"unknown feature {name!r}; choose from {sorted(FEATURES)}")
        self.source = source
        self.voxel_size = voxel_size if isinstance(voxel_size, (int, float)) else tuple(voxel_size)
        self.transforms = transforms
        self.features = tuple(features)
        self.seed, self.epoch, self.keep_raw_coord = seed, 0, keep_raw_coord
        self.budget_path: Optional[Path] = None
        if budget is None or isinstance(budget, Mapping):
            self.budget = budget
        elif isinstance(budget, str) and not Path(budget).exists() and ":" in budget:
            self.budget = sample_budget(source, parse_budget(budget), budget_seed)
        else:
            self.budget_path = Path(budget)
            self.budget = read_budget(self.budget_path)
            known = set(source.scene_ids)
            if self.budget and not known.intersection(self.budget):
                raise ValueError(f"budget file {self.budget_path} names none of the {len(known)} scenes of this "
                                 f"dataset (e.g. it has {next(iter(self.budget))!r}, the dataset "
                                 f"{source.scene_ids[0] if source.scene_ids else 'nothing'!r})")

    @property
    def class_names(self) -> Tuple[str, ...]:
        return tuple(self.source.class_names)

    @property
    def num_classes(self) -> int:
        return int(self.source.num_classes)

    @property
    def scene_ids(self):
        return self.source.scene_ids

    @property
    def in_channels(self) -> int:
        """C of `Sample.feat`."""
        return sum(FEATURES[name] for name in self.features)

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for plain integer indices (workers keep the value they were started with)."""
        self.epoch = epoch

    def scene(self, index: int) -> Scene:
        """The scene as read, with the budget applied to `label` (no transforms)."""
        scene = self.source[index]
        if self.budget is None:
            return scene
        return scene.replace(label=apply_budget(np.asarray(scene.label), self.budget, scene.scene_id,
                                                self.budget_path))

    def __getitem__(self, item: Union[int, Tuple[int, int]]) -> Sample:
        index, epoch = item if isinstance(item, tuple) else (item, self.epoch)
        raw = self.source[index]
        full_label = np.asarray(raw.label, dtype=np.int64)
        label = full_label if self.budget is None else apply_budget(full_label, self.budget, raw.scene_id,
                                                                    self.budget_path)
        scene = raw.replace(label=label, point_index=np.arange(raw.num_points))
        if self.transforms is not None:
            scene = self.transforms(scene, np.random.default_rng([self.seed, epoch, index]))
        extras = dict(scene.extras)
        if self.keep_raw_coord:
            extras["raw_coord"] = torch.from_numpy(np.ascontiguousarray(raw.coord[scene.point_index],
                                                                        dtype=np.float32))
        return voxelize_scene(scene, self.voxel_size, self.features, full_label=full_label[scene.point_index],
                              extras=extras)


class SeededSampler(Sampler):
    """Yields (index, epoch) pairs: a permutation seeded by (seed, epoch) when `shuffle`, sharded over
    `world_size` ranks (padded by wrapping so every rank gets the same count). The epoch advances by one on
    every pass unless `set_epoch` is called before it (the trainer does, for exact resume)."""

    def __init__(self, size: int, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"SeededSampler: rank {rank} outside world size {world_size}")
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch, self._explicit = 0, False

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._explicit = epoch, True

    def _order(self) -> np.ndarray:
        if self.shuffle:
            return np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        return np.arange(self.size)

    def __len__(self) -> int:
        if self.drop_last:
            return self.size // self.world_size
        return -(-self.size // self.world_size)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        order = self._order()
        per_rank = len(self)
        if not self.drop_last and len(order) and len(order) < per_rank * self.world_size:
            order = np.resize(order, per_rank * self.world_size)
        epoch = self.epoch
        if not self._explicit:
            self.epoch += 1
        self._explicit = False
        return iter([(int(i), epoch) for i in order[self.rank: per_rank * self.world_size: self.world_size]])


def seed_worker(worker_id: int) -> None:
    """DataLoader worker init: seed python, numpy and torch global RNGs from the loader's per-worker seed (for
    third-party code; the dataset's own augmentation is seeded per item)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_loader(dataset: PointDataset, batch_size: int = 2, shuffle: bool = False, workers: int = 0,
                seed: int = 0, drop_last: bool = False, device: Union[str, torch.device] = "cpu",
                rank: int = 0, world_size: int = 1) -> DataLoader:
    """DataLoader of `PointBatch`es with a `SeededSampler` (its `.sampler.set_epoch(e)` fixes the epoch),
    persistent seeded workers, and pinned memory when `device` is CUDA."""
    sampler = SeededSampler(len(dataset), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size,
                            drop_last=drop_last)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=torch.device(device).type == "cuda",
        drop_last=drop_last,
        worker_init_fn=seed_worker if workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=workers > 0,
    )


# ---------------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class DatasetDefaults:
    """Per-dataset defaults of `build_dataset`: voxel size (m), features, augmentation kind."""

    voxel_size: float
    features: Tuple[str, ...]
    kind: str


DATASETS: Dict[str, type] = {
    "synthetic_indoor": SyntheticIndoor,
    "synthetic_outdoor": SyntheticOutdoor,
    "scannet": ScanNet,
    "s3dis": S3DIS,
    "semantickitti": SemanticKITTI,
    "semantickitti_cameras": SemanticKITTICameras,
    "preprocessed": Preprocessed,
    "kitti_object": KittiObject,
    "nuscenes": NuScenesPairs,
    "folder": FolderDataset,
}

DEFAULTS: Dict[str, DatasetDefaults] = {
    "synthetic_indoor": DatasetDefaults(0.08, ("color",), "indoor"),
    "synthetic_outdoor": DatasetDefaults(0.1, ("strength",), "outdoor"),
    "scannet": DatasetDefaults(0.02, ("color",), "indoor"),
    "s3dis": DatasetDefaults(0.05, ("color",), "indoor"),
    "semantickitti": DatasetDefaults(0.05, ("strength",), "outdoor"),
    "semantickitti_cameras": DatasetDefaults(0.05, ("strength",), "outdoor"),
    "kitti_object": DatasetDefaults(0.05, ("strength",), "outdoor"),
    "nuscenes": DatasetDefaults(0.1, ("strength",), "outdoor"),
    "folder": DatasetDefaults(0.05, ("color",), "indoor"),  # refined per folder by its YAML (features, kind)
}


def dataset_defaults(source, name: str) -> DatasetDefaults:
    """DEFAULTS of the dataset `source` holds (a preprocessed folder: the dataset it was made from), refined by the
    source's own `defaults` mapping when it has one (a folder dataset: features and kind from its YAML)."""
    base = DEFAULTS[source.dataset if isinstance(source, Preprocessed) else name]
    own = dict(getattr(source, "defaults", None) or {})
    if "features" in own:
        own["features"] = tuple(own["features"])
    return dataclasses.replace(base, **own)


def build_source(name: str, root: Optional[str] = None, split: str = "train", **options):
    """The scene source `DATASETS[name](root, split, **options)` (clear error for an unknown name)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}")
    return DATASETS[name](root=root, split=split, **options)


def build_dataset(name: str, root: Optional[str] = None, split: str = "train", *,
                  voxel_size: Optional[float] = None, transforms: Union[str, Callable, None] = "default",
                  max_points: Optional[int] = None, elastic: bool = False, budget: BudgetArg = None,
                  budget_seed: int = 0, features: Optional[Sequence[str]] = None, seed: int = 0,
                  keep_raw_coord: bool = False, **source_options) -> PointDataset:
    """Build a `PointDataset` by name.

    name            a key of DATASETS ("preprocessed" takes the defaults of the dataset it was made from)
    root            dataset folder (None for the synthetic generators)
    split           "train" / "val" / "test" (and what the source accepts)
    voxel_size      metres; default per dataset (DEFAULTS)
    transforms      "default" (standard augmentation on the train split, none otherwise), "none" / None, or a
                    callable (scene, rng) -> scene
    max_points      crop training scenes to at most this many points (with "default" transforms)
    elastic         add elastic distortion to the "default" transforms
    budget, budget_seed, features, seed, keep_raw_coord   see PointDataset
    source_options  passed to the source (e.g. num_scenes, points_per_scene for the generators)
    """
    source = build_source(name, root, split, **source_options)
    defaults = dataset_defaults(source, name)
    if transforms == "default":
        transforms = default_transforms(defaults.kind, max_points, elastic) if split == "train" else None
    elif transforms == "none":
        transforms = None
    elif isinstance(transforms, str):
        raise ValueError(f"transforms must be 'default', 'none', None or a callable, got {transforms!r}")
    return PointDataset(
        source,
        voxel_size=defaults.voxel_size if voxel_size is None else voxel_size,
        transforms=transforms,
        budget=budget,
        budget_seed=budget_seed,
        features=defaults.features if features is None else tuple(features),
        seed=seed,
        keep_raw_coord=keep_raw_coord,
    )


__all__ = ["PointDataset", "SeededSampler", "make_loader", "seed_worker", "DATASETS", "DEFAULTS",
           "DatasetDefaults", "dataset_defaults", "build_source", "build_dataset"]
