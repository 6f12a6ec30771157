"""Label budgets: which points of which scenes carry a label.

A budget is a dict {scene_id: LongTensor (K,) of point indices} saved with `torch.save`, the format of ScanNet's
data-efficient benchmark (`torch.load` gives the dict), so official files load unchanged. A dataset applies it
by setting every label not listed to -1; a scene missing from the dict has no labels at all.

Specs: "points:N" (N labeled points per scene), "ratio:r" (round(r * points of the scene), at least 1, per scene),
"scenes:f" (every labeled point of round(f * scenes), at least 1, scenes). Points are drawn among the points that
have a label (!= -1). Sampling is seeded per scene (seed, scene id), so a scene's draw does not depend on which
other scenes are in the source or in which order.
"""
from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from pcseg.atomic import write_atomic

Budget = Dict[str, torch.Tensor]
PathLike = Union[str, os.PathLike]

_SPEC = re.compile(r"^\s*(points|ratio|scenes)\s*:\s*([0-9.eE+-]+)\s*$")


@dataclass(frozen=True)
class BudgetSpec:
    """A parsed budget spec: kind "points" (value = points per scene), "ratio" or "scenes" (value in (0, 1])."""

    kind: str
    value: float

    def __str__(self) -> str:
        return f"{self.kind}:{int(self.value) if self.kind == 'points' else self.value:g}"


def parse_budget(spec: str) -> BudgetSpec:
    """Parse "points:N", "ratio:r" or "scenes:f" into a BudgetSpec (clear error on anything else)."""
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(f"budget spec {spec!r}: expected 'points:N', 'ratio:r' or 'scenes:f'")
    kind, text = match.groups()
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"budget spec {spec!r}: {text!r} is not a number") from None
    if kind == "points":
        if value != int(value) or value < 1:
            raise ValueError(f"budget spec {spec!r}: points per scene must be a positive integer")
        value = int(value)
    elif not 0 < value <= 1:
        raise ValueError(f"budget spec {spec!r}: {kind} must be a fraction in (0, 1]")
    return BudgetSpec(kind, value)


def _scene_rng(seed: int, scene_id: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(scene_id.encode("utf-8"))])


def sample_budget(source, spec: Union[str, BudgetSpec], seed: int = 0) -> Budget:
    """Draw a budget over every scene of `source` (anything with `scene_ids` and `__getitem__ -> Scene`).

    Returns {scene_id: sorted LongTensor (K,)}. A request for more points than a scene has labeled points is an
    error naming the scene.
    """
    spec = parse_budget(spec) if isinstance(spec, str) else spec
    scene_ids = list(source.scene_ids)
    if spec.kind == "scenes":
        count = max(1, int(round(spec.value * len(scene_ids))))
        chosen = set(np.random.default_rng(seed).choice(len(scene_ids), count, replace=False).tolist())
        indices = sorted(chosen)
    else:
        indices = range(len(scene_ids))
    budget: Budget = {}
    for i in indices:
        scene = source[i]
        labeled = np.flatnonzero(np.asarray(scene.label) >= 0)
        if spec.kind == "scenes":
            picked = labeled
        else:
            k = int(spec.value) if spec.kind == "points" else max(1, int(round(spec.value * scene.num_points)))
            if k > len(labeled):
                raise ValueError(
                    f"budget {spec}: scene {scene.scene_id!r} has only {len(labeled)} labeled points "
                    f"({scene.num_points} in all), fewer than the {k} requested"
                )
            picked = np.sort(_scene_rng(seed, scene.scene_id).choice(labeled, k, replace=False))
        budget[scene.scene_id] = torch.from_numpy(picked.astype(np.int64))
    return budget


def write_budget(budget: Mapping[str, object], path: PathLike, overwrite: bool = False) -> Path:
    """Save `budget` ({scene_id: indices}) atomically (temp file + rename) as {str: LongTensor}.

    An existing file is never replaced unless `overwrite`; active-learning rounds go to new files.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"budget file {path} exists; label rounds are written to new files")
    clean = {str(k): _as_index_tensor(v, str(k), path) for k, v in budget.items()}
    write_atomic(path, lambda handle: torch.save(clean, handle))
    return path


def _as_index_tensor(value, scene_id: str, path) -> torch.Tensor:
    array = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if array.ndim != 1:
        raise ValueError(f"budget {path}: scene {scene_id!r} has indices of shape {array.shape}, expected (K,)")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"budget {path}: scene {scene_id!r} has {array.dtype} indices, expected integers")
    array = array.astype(np.int64)
    if array.size and array.min() < 0:
        raise ValueError(f"budget {path}: scene {scene_id!r} has a negative point index ({array.min()})")
    return torch.from_numpy(np.unique(array))


def _numpy_safe_globals() -> list:
    """Globals numpy arrays need to unpickle under `torch.load(weights_only=True)`, also under the module names
    of numpy 1.x (`numpy.core`), which files written before numpy 2 refer to."""
    core = getattr(np, "_core", None) or np.core
    allowed = [np.ndarray, np.dtype, core.multiarray._reconstruct,
               (core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct")]
    allowed += [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType")]
    return allowed


def read_budget(path: PathLike) -> Budget:
    """Load and validate a budget file -> {scene_id: sorted unique LongTensor (K,)}.

    Accepts values as tensors, numpy arrays or lists of ints (official files); anything else is an error naming
    the file and the scene.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"budget file {path} does not exist")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a file that is not a torch pickle
        raise ValueError(f"budget file {path} could not be read as a torch-saved dict: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"budget file {path} holds a {type(data).__name__}, expected a dict scene_id -> indices")
    return {str(k): _as_index_tensor(v, str(k), path) for k, v in data.items()}


def check_indices(budget: Mapping[str, torch.Tensor], scene_id: str, num_points: int,
                  path: Optional[PathLike] = None) -> None:
    """Raise if the budget's indices for `scene_id` do not fit a scene of `num_points` points."""
    index = budget.get(scene_id)
    if index is not None and len(index) and int(index.max()) >= num_points:
        where = f"budget file {path}" if path is not None else "budget"
        raise ValueError(
            f"{where}: scene {scene_id!r} lists point index {int(index.max())} but the scene has only "
            f"{num_points} points (was the file made for another version of the data?)"
        )


def apply_budget(label: np.ndarray, budget: Mapping[str, torch.Tensor], scene_id: str,
                 path: Optional[PathLike] = None) -> np.ndarray:
    """label (N,) int64 -> (N,) int64 with every point not listed for `scene_id` set to -1."""
    check_indices(budget, scene_id, len(label), path)
    out = np.full(len(label), -1, dtype=np.int64)
    index = budget.get(scene_id)
    if index is not None and len(index):
        idx = index.numpy()
        out[idx] = label[idx]
    return out


def merge_budgets(old: Union[PathLike, Mapping[str, object]], new: Mapping[str, object], dst: PathLike) -> Path:
    """Write the union of `old` (a file or dict) and `new` to the new file `dst` (never in place)."""
    dst = Path(dst)
    if not isinstance(old, Mapping):
        old_path = Path(old)
        if dst.resolve() == old_path.resolve():
            raise ValueError(f"merge_budgets: destination {dst} is the old budget file; write rounds to a new file")
        old = read_budget(old_path)
    return write_budget(union_budgets(old, new, where=dst), dst)


def union_budgets(old: Mapping[str, object], new: Mapping[str, object], where: object = "in memory") -> Budget:
    """{scene_id: sorted unique LongTensor}: the points of `old` and of `new` (bad indices raise, naming `where`)."""
    merged: Dict[str, np.ndarray] = {}
    for source in (old, new):
        for scene_id, index in source.items():
            index = _as_index_tensor(index, str(scene_id), where).numpy()
            merged[str(scene_id)] = np.union1d(merged.get(str(scene_id), np.empty(0, np.int64)), index)
    return {scene_id: torch.from_numpy(index) for scene_id, index in merged.items()}


def budget_stats(budget: Mapping[str, torch.Tensor], source=None,
                 class_names: Optional[Sequence[str]] = None) -> dict:
    """Summary of a budget: scenes, labeled points, per-scene min / max; with `source` also labeled points per
    class (reading every listed scene) and the fraction of labeled points among all points of those scenes."""
    counts = np.array([len(v) for v in budget.values()], dtype=np.int64)
    stats = {
        "scenes": len(budget),
        "points": int(counts.sum()),
        "min_per_scene": int(counts.min()) if len(counts) else 0,
        "max_per_scene": int(counts.max()) if len(counts) else 0,
    }
    if source is not None:
        names = list(class_names or source.class_names)
        per_class = np.zeros(len(names), dtype=np.int64)
        position = {sid: i for i, sid in enumerate(source.scene_ids)}
        missing = [sid for sid in budget if sid not in position]
        if missing:
            raise ValueError(f"budget lists {len(missing)} scenes the dataset does not have, e.g. {missing[0]!r}")
        total = 0
        for scene_id, index in budget.items():
            scene = source[position[scene_id]]
            labels = apply_budget(np.asarray(scene.label), budget, scene_id)
            labels = labels[labels >= 0]
            per_class += np.bincount(labels, minlength=len(names))[: len(names)]
            total += scene.num_points
        stats["per_class"] = dict(zip(names, per_class.tolist()))
        stats["fraction"] = stats["points"] / max(total, 1)
    return stats


def format_budget_stats(stats: dict) -> str:
    """Human-readable lines for `budget_stats` output (what `pcseg labels stats` prints)."""
    lines = [f"scenes: {stats['scenes']}", f"labeled points: {stats['points']} "
             f"(per scene {stats['min_per_scene']}..{stats['max_per_scene']})"]
    if "fraction" in stats:
        lines.append(f"fraction of the listed scenes' points: {stats['fraction']:.4%}")
    if "per_class" in stats:
        width = max(len(name) for name in stats["per_class"])
        lines += [f"  {name:<{width}}  {count}" for name, count in stats["per_class"].items()]
    return "\n".join(lines)
