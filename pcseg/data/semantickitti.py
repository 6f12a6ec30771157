"""SemanticKITTI read directly from `sequences/NN/velodyne/*.bin` and `sequences/NN/labels/*.label`.

`.bin`: float32 (N, 4) x, y, z, remission. `.label`: uint32 (N,), semantic id = low 16 bits, instance = high 16.
Raw semantic ids map to 19 classes with the `learning_map` of the official `semantic-kitti.yaml` (moving classes
onto their static class); its class 0 ("unlabeled", "outlier", "other-structure", "other-object") becomes -1.
The mapping is built in (the facts of the official yaml); pass `yaml_path` to use a yaml file instead.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from pcseg.data.scene import Scene

SEMANTICKITTI_CLASSES: Tuple[str, ...] = (
    "car", "bicycle", "motorcycle", "truck", "other-vehicle", "person", "bicyclist", "motorcyclist", "road",
    "parking", "sidewalk", "other-ground", "building", "fence", "vegetation", "trunk", "terrain", "pole",
    "traffic-sign",
)

# raw id -> learning id (0 = ignored), as in the official semantic-kitti.yaml
LEARNING_MAP: Dict[int, int] = {
    0: 0, 1: 0, 10: 1, 11: 2, 13: 5, 15: 3, 16: 5, 18: 4, 20: 5, 30: 6, 31: 7, 32: 8, 40: 9, 44: 10, 48: 11,
    49: 12, 50: 13, 51: 14, 52: 0, 60: 9, 70: 15, 71: 16, 72: 17, 80: 18, 81: 19, 99: 0,
    252: 1, 253: 7, 254: 6, 255: 8, 256: 5, 257: 5, 258: 4, 259: 5,
}

SPLITS: Dict[str, Tuple[str, ...]] = {
    "train": ("00", "01", "02", "03", "04", "05", "06", "07", "09", "10"),
    "val": ("08",),
    "test": tuple(f"{i:02d}" for i in range(11, 22)),
}

_MISSING = -2  # lookup value of raw ids the map does not know


def read_learning_map(yaml_path: Union[str, os.PathLike]) -> Tuple[Dict[int, int], Tuple[str, ...]]:
    """Read `learning_map` and the class names (from `learning_map_inv` + `labels`) of a semantic-kitti yaml.

    Returns (learning_map {raw id: learning id, 0 = ignore}, class names of learning ids 1..K).
    """
    import yaml

    path = Path(yaml_path)
    if not path.is_file():
        raise FileNotFoundError(f"SemanticKITTI config {path} does not exist")
    with open(path, "r", encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    for key in ("labels", "learning_map", "learning_map_inv"):
        if key not in (config or {}):
            raise ValueError(f"SemanticKITTI config {path} has no {key!r} section")
    learning_map = {int(k): int(v) for k, v in config["learning_map"].items()}
    inverse = {int(k): int(v) for k, v in config["learning_map_inv"].items()}
    names = tuple(config["labels"][inverse[i]] for i in range(1, max(inverse) + 1))
    return learning_map, names


def label_lookup(learning_map: Mapping[int, int]) -> np.ndarray:
    """Lookup table (max raw id + 1,) int64: raw id -> class index (learning id - 1), -1 for ignored ids and
    -2 for ids the map does not list."""
    lut = np.full(max(learning_map) + 1, _MISSING, dtype=np.int64)
    for raw, learned in learning_map.items():
        lut[raw] = learned - 1
    return lut


def read_points(bin_path: Union[str, os.PathLike], columns: int = 4) -> np.ndarray:
    """Read a float32 lidar scan -> (N, columns) float32; a size that is not a whole number of points is an
    error (a truncated download)."""
    path = Path(bin_path)
    if not path.is_file():
        raise FileNotFoundError(f"lidar scan {path} does not exist")
    size = path.stat().st_size
    if size % (4 * columns):
        raise ValueError(f"lidar scan {path}: {size} bytes is not a multiple of {4 * columns} "
                         f"({columns} float32 per point); the file is truncated or not a scan")
    return np.fromfile(path, dtype=np.float32).reshape(-1, columns)


def read_labels(label_path: Union[str, os.PathLike], num_points: int, lut: np.ndarray
                ) -> Tuple[np.ndarray, np.ndarray]:
    """Read a `.label` file -> (label (N,) int64 class index or -1, instance (N,) int64 or -1 for none).

    Errors name the file: a size that is not N uint32, or raw ids missing from the learning map.
    """
    path = Path(label_path)
    if not path.is_file():
        raise FileNotFoundError(f"label file {path} does not exist")
    size = path.stat().st_size
    if size != 4 * num_points:
        raise ValueError(f"label file {path}: {size} bytes = {size / 4:g} labels, but the scan has {num_points} "
                         f"points (expected {4 * num_points} bytes)")
    raw = np.fromfile(path, dtype=np.uint32)
    semantic = (raw & 0xFFFF).astype(np.int64)
    instance = (raw >> 16).astype(np.int64)
    unknown = semantic >= len(lut)
    mapped = np.where(unknown, _MISSING, lut[np.minimum(semantic, len(lut) - 1)])
    if (mapped == _MISSING).any():
        missing = np.unique(semantic[mapped == _MISSING])
        raise ValueError(f"label file {path}: raw ids {missing.tolist()[:10]} are not in the learning map "
                         f"({int((mapped == _MISSING).sum())} points)")
    return mapped, np.where(instance > 0, instance, -1)


def read_scan(bin_path: Union[str, os.PathLike], label_path: Optional[Union[str, os.PathLike]] = None,
              scene_id: Optional[str] = None, learning_map: Mapping[int, int] = LEARNING_MAP) -> Scene:
    """One scan -> Scene (coord, strength = remission (N, 1), label / instance from `label_path` or -1;
    colour zeros)."""
    points = read_points(bin_path)
    n = len(points)
    if label_path is not None:
        label, instance = read_labels(label_path, n, label_lookup(learning_map))
    else:
        label, instance = np.full(n, -1, dtype=np.int64), None
    return Scene(
        coord=np.ascontiguousarray(points[:, :3]),
        color=np.zeros((n, 3), dtype=np.float32),
        label=label,
        scene_id=scene_id if scene_id is not None else Path(bin_path).stem,
        instance=instance,
        strength=np.ascontiguousarray(points[:, 3:4]),
    )


class SemanticKITTI:
    """Scene source over `root/sequences/NN/velodyne/*.bin` (+ `labels/*.label`); scene ids "NN/XXXXXX".

    split      "train" (00-07, 09-10), "val" (08), "test" (11-21, no labels) or "all"
    sequences  explicit sequence folder names, overriding the split's
    yaml_path  a semantic-kitti.yaml whose learning_map replaces the built-in one
    """

    def __init__(self, root: Union[str, os.PathLike], split: str = "train",
                 sequences: Optional[Sequence[str]] = None, yaml_path: Optional[str] = None) -> None:
        if root is None:
            raise ValueError("semantickitti needs root (the folder that holds sequences/)")
        self.root = Path(root)
        base = self.root / "sequences"
        if not base.is_dir():
            raise FileNotFoundError(f"SemanticKITTI root {self.root} has no sequences/ folder")
        if sequences is None:
            if split == "all":
                sequences = sorted(p.name for p in base.iterdir() if (p / "velodyne").is_dir())
            elif split in SPLITS:
                sequences = SPLITS[split]
            else:
                raise ValueError(f"semantickitti: split must be train, val, test or all, got {split!r}")
        self.split = split
        if yaml_path is not None:
            self.learning_map, self.class_names = read_learning_map(yaml_path)
        else:
            self.learning_map, self.class_names = dict(LEARNING_MAP), SEMANTICKITTI_CLASSES
        self.num_classes = len(self.class_names)
        self.scene_ids, self._files = [], []
        for seq in sequences:
            folder = base / seq / "velodyne"
            if not folder.is_dir():
                raise FileNotFoundError(f"SemanticKITTI sequence folder {folder} does not exist")
            for scan in sorted(folder.glob("*.bin")):
                label = base / seq / "labels" / (scan.stem + ".label")
                self.scene_ids.append(f"{seq}/{scan.stem}")
                self._files.append((scan, label))

    def __len__(self) -> int:
        return len(self.scene_ids)

    def __getitem__(self, index: int) -> Scene:
        scan, label = self._files[index]
        if label.is_file():
            return read_scan(scan, label, self.scene_ids[index], self.learning_map)
        if self.split in ("train", "val"):
            raise FileNotFoundError(f"label file {label} for scan {scan} does not exist")
        return read_scan(scan, None, self.scene_ids[index], self.learning_map)  # test scans have no labels
