"""S3DIS from the raw release: `Area_N/<room>/Annotations/<class>_<k>.txt`, one object per file, lines
"x y z r g b" (colours 0-255). 13 classes; `stairs` files map to clutter. Area 5 is the test area.

The raw release has a few damaged lines (a stray character inside a number in Area_5/hallway_6 ceiling_1, a
corrupt number in Area_5/office_19's ceiling). Lines are repaired when dropping non-numeric characters from a
number leaves a valid number, and skipped otherwise; each is reported as a `DataWarning` naming file and line.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

from pcseg.data.scene import Scene

S3DIS_CLASSES: Tuple[str, ...] = (
    "ceiling", "floor", "wall", "beam", "column", "window", "door", "table", "chair", "sofa", "bookcase", "board",
    "clutter",
)
ALIASES = {"stairs": "clutter"}

PathLike = Union[str, os.PathLike]
_NOT_NUMERIC = re.compile(r"[^0-9eE+\-.]")


class DataWarning(UserWarning):
    """A problem in a raw data file that was repaired or skipped (the message names file and line)."""


def _parse_line(line: str) -> Tuple[Optional[List[float]], bool]:
    """Parse 'x y z r g b' -> (6 floats or None if unusable, repaired?)."""
    tokens = line.split()
    if len(tokens) != 6:
        return None, False
    values, repaired = [], False
    for token in tokens:
        try:
            values.append(float(token))
            continue
        except ValueError:
            pass
        cleaned = _NOT_NUMERIC.sub("", token)
        try:
            values.append(float(cleaned))
            repaired = True
        except ValueError:
            return None, False
    return values, repaired


def read_annotation_file(path: PathLike, max_reports: int = 5) -> Tuple[np.ndarray, List[str]]:
    """Read one S3DIS annotation file -> (points (N, 6) float32 x y z r g b, problems).

    Damaged lines are repaired (stray characters dropped) or skipped; each problem is a message naming file and
    line, also issued as a `DataWarning` (the first `max_reports`, then one summary).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"S3DIS annotation file {path} does not exist")
    try:
        data = np.loadtxt(path, dtype=np.float32, ndmin=2, comments=None)
        if data.size == 0:
            data = data.reshape(0, 6)
        if data.shape[1] == 6:
            return data, []
    except ValueError:
        pass
    rows, problems = [], []
    with open(path, "r", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            values, repaired = _parse_line(line)
            if values is None:
                problems.append(f"{path}:{number}: skipped unreadable line {line.strip()[:60]!r}")
            else:
                rows.append(values)
                if repaired:
                    problems.append(f"{path}:{number}: repaired line {line.strip()[:60]!r} (dropped stray "
                                    f"characters)")
    for message in problems[:max_reports]:
        warnings.warn(message, DataWarning, stacklevel=2)
    if len(problems) > max_reports:
        warnings.warn(f"{path}: {len(problems) - max_reports} more damaged lines", DataWarning, stacklevel=2)
    if not rows:
        raise ValueError(f"S3DIS annotation file {path} has no readable 'x y z r g b' line")
    return np.asarray(rows, dtype=np.float32), problems


def annotation_class(path: PathLike) -> int:
    """Class index of an annotation file from its name '<class>_<k>.txt' (stairs -> clutter)."""
    name = Path(path).stem.rsplit("_", 1)[0]
    name = ALIASES.get(name, name)
    if name not in S3DIS_CLASSES:
        raise ValueError(f"S3DIS annotation file {path}: unknown class {name!r} (expected one of {S3DIS_CLASSES})")
    return S3DIS_CLASSES.index(name)


def read_s3dis_room(room_dir: PathLike, scene_id: Optional[str] = None) -> Scene:
    """Read `room_dir/Annotations/*.txt` -> Scene (label by file name, instance = file order); the problems found
    go to `extras["problems"]` (and out as warnings)."""
    room_dir = Path(room_dir)
    folder = room_dir / "Annotations"
    if not folder.is_dir():
        raise FileNotFoundError(f"S3DIS room {room_dir} has no Annotations/ folder")
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"S3DIS room {room_dir}: Annotations/ holds no .txt files")
    parts, labels, instances, problems = [], [], [], []
    for k, path in enumerate(files):
        label = annotation_class(path)
        points, found = read_annotation_file(path)
        parts.append(points)
        labels.append(np.full(len(points), label, dtype=np.int64))
        instances.append(np.full(len(points), k, dtype=np.int64))
        problems += found
    points = np.concatenate(parts)
    return Scene(
        coord=np.ascontiguousarray(points[:, :3]),
        color=np.ascontiguousarray(np.clip(points[:, 3:6] / 255.0, 0, 1)),
        label=np.concatenate(labels),
        scene_id=scene_id or f"{room_dir.parent.name}/{room_dir.name}",
        instance=np.concatenate(instances),
        extras={"problems": problems} if problems else {},
    )


class S3DIS:
    """Scene source over `root/Area_N/<room>/Annotations`; scene ids "Area_N/<room>".

    split      "train" (every area but `test_area`), "val" / "test" (the test area) or "all"
    test_area  1-6, default 5
    """

    class_names = S3DIS_CLASSES
    num_classes = len(S3DIS_CLASSES)

    def __init__(self, root: PathLike, split: str = "train", test_area: int = 5) -> None:
        if root is None:
            raise ValueError("s3dis needs root (the folder that holds Area_1 ... Area_6)")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"S3DIS root {self.root} does not exist")
        if split not in ("train", "val", "test", "all"):
            raise ValueError(f"s3dis: split must be train, val, test or all, got {split!r}")
        areas = sorted(p.name for p in self.root.glob("Area_*") if p.is_dir())
        if not areas:
            raise FileNotFoundError(f"S3DIS root {self.root} has no Area_N folders")
        test = f"Area_{test_area}"
        chosen = {"train": [a for a in areas if a != test], "val": [test], "test": [test], "all": areas}[split]
        self.split = split
        self.scene_ids = [f"{area}/{room.name}" for area in chosen
                          for room in sorted((self.root / area).iterdir()) if (room / "Annotations").is_dir()]

    def __len__(self) -> int:
        return len(self.scene_ids)

    def __getitem__(self, index: int) -> Scene:
        scene_id = self.scene_ids[index]
        return read_s3dis_room(self.root / scene_id, scene_id)
