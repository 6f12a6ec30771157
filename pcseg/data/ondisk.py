"""The preprocessed on-disk format: one folder of .npy files per scene, plus a meta.json for the dataset.

```
DST/meta.json                  {"format": 1, "dataset": "scannet", "class_names": [...], "splits": {"train": [ids]},
                                "defaults": {"features": [...], "kind": "indoor"} (optional, see Preprocessed)}
DST/scenes/<scene_id>/coord.npy     (N, 3) float32        color.npy (N, 3) float32   label.npy (N,) int64
                      normal.npy / instance.npy / strength.npy   when the scene has them
```
Scene ids may contain "/" ("Area_5/office_1", "08/000123"), giving nested folders. A scene folder is written
under a temporary name and renamed into place, so a folder that exists is complete.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from pcseg.atomic import temp_folder, write_text_atomic
from pcseg.data.scene import Scene

FORMAT_VERSION = 1
FIELDS = ("coord", "color", "label", "normal", "instance", "strength")
PathLike = Union[str, os.PathLike]


def scene_folder(root: PathLike, scene_id: str) -> Path:
    """Folder of `scene_id` under a preprocessed root (rejects ids that would leave it)."""
    parts = Path(scene_id).parts
    if not parts or any(p in ("..", ".", "") for p in parts) or Path(scene_id).is_absolute():
        raise ValueError(f"scene id {scene_id!r} cannot be used as a folder name")
    return Path(root) / "scenes" / Path(*parts)


def write_scene(scene: Scene, root: PathLike) -> Path:
    """Write `scene` atomically (temporary folder + rename) -> its folder; an existing folder is replaced."""
    final = scene_folder(root, scene.scene_id)
    tmp = temp_folder(final)
    try:
        for name in FIELDS:
            value = getattr(scene, name)
            if value is not None:
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(value))
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_scene(root: PathLike, scene_id: str) -> Scene:
    """Read one preprocessed scene (errors name the folder and the missing or damaged file)."""
    folder = scene_folder(root, scene_id)
    if not folder.is_dir():
        raise FileNotFoundError(f"preprocessed scene {scene_id!r} not found at {folder} (run preprocess to finish)")
    arrays: Dict[str, np.ndarray] = {}
    for name in FIELDS:
        path = folder / f"{name}.npy"
        if path.is_file():
            try:
                arrays[name] = np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError) as error:
                raise ValueError(f"preprocessed file {path} is damaged: {error}") from None
        elif name in ("coord", "color", "label"):
            raise FileNotFoundError(f"preprocessed scene {scene_id!r}: {path} is missing")
    return Scene(scene_id=scene_id, **arrays)


def write_meta(root: PathLike, dataset: str, class_names: Sequence[str], splits: Dict[str, List[str]],
               defaults: Optional[Mapping[str, object]] = None) -> Path:
    """Write DST/meta.json atomically; `defaults` (features, kind) are the source's own, when it has some."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT_VERSION, "dataset": dataset, "class_names": list(class_names), "splits": splits}
    if defaults:
        meta["defaults"] = {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}
    return write_text_atomic(root / "meta.json", json.dumps(meta, indent=1))


def read_meta(root: PathLike) -> dict:
    path = Path(root) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {root} is not a preprocessed dataset")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is malformed: {error}") from None
    for key in ("format", "dataset", "class_names", "splits"):
        if key not in meta:
            raise ValueError(f"{path} lacks {key!r}")
    if meta["format"] != FORMAT_VERSION:
        raise ValueError(f"{path}: format {meta['format']} is not supported (expected {FORMAT_VERSION})")
    return meta


class Preprocessed:
    """Scene source over a preprocessed folder (see module docstring).

    `dataset` is the name of the dataset it was made from (for its defaults in `build_dataset`); `defaults` the
    refinements its source had (a folder dataset's features and kind), {} for the others.
    """

    def __init__(self, root: PathLike, split: str = "train") -> None:
        if root is None:
            raise ValueError("preprocessed needs root (the folder `pcseg preprocess` wrote)")
        self.root = Path(root)
        meta = read_meta(self.root)
        if split not in meta["splits"]:
            raise ValueError(f"preprocessed {self.root}: no split {split!r} (has {sorted(meta['splits'])})")
        self.split, self.dataset = split, meta["dataset"]
        self.class_names = tuple(meta["class_names"])
        self.num_classes = len(self.class_names)
        self.scene_ids: List[str] = list(meta["splits"][split])
        self.defaults = dict(meta.get("defaults") or {})

    def __len__(self) -> int:
        return len(self.scene_ids)

    def __getitem__(self, index: int) -> Scene:
        return read_scene(self.root, self.scene_ids[index])

    def missing(self) -> List[str]:
        """Scene ids of the split that have no folder yet."""
        return [sid for sid in self.scene_ids if not scene_folder(self.root, sid).is_dir()]


def is_done(root: PathLike, scene_id: str) -> bool:
    return scene_folder(root, scene_id).is_dir()


def clean_partial(root: PathLike) -> int:
    """Remove leftover temporary folders of interrupted writes -> how many."""
    count = 0
    scenes = Path(root) / "scenes"
    if scenes.is_dir():
        for tmp in scenes.rglob(".*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)
            count += 1
    return count

