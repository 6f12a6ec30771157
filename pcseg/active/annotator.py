"""The annotator round trip: export picked points for labeling, import the labeled CSVs back into a budget.

Export (one pair of files per scene with picks, plus the class list):
    <dir>/<scene>.ply    the scene, greyed, with the picked points in orange (label property: the labels known so
                         far, -1 elsewhere; uncertainty property: 1 on picked points)
    <dir>/<scene>.csv    scene,index,x,y,z,label   one row per picked point, the label column left empty
    <dir>/classes.csv    id,name
Scene ids with "/" (S3DIS "Area_5/office_1") become "Area_5__office_1" in file names; the CSV keeps the real id.

Import reads any number of such CSVs with the label column filled by a class id or a class name (an empty label
leaves the point unlabeled); `classes.csv` among them is skipped. Every row is checked against the dataset: unknown scene, malformed or out-of-range
index, coordinates that do not match the point, unknown class id or name, a point listed twice, or a point that
the previous budget already labels are all refused, each message naming the file and line. Accepted labels go to
a NEW budget file (previous points + imported points) and to `<new>.labels.pt`, {scene_id: {"index": (K,) int64,
"label": (K,) int64}} with the labels the annotators gave (merged with the previous budget's own labels file).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from pcseg.atomic import write_atomic
from pcseg.weak.budget import Budget, merge_budgets, read_budget

PathLike = Union[str, Path]
COLUMNS = ("scene", "index", "x", "y", "z", "label")
PICK_COLOR = np.array([1.0, 0.45, 0.0], dtype=np.float32)
COORD_TOLERANCE = 1e-3  # metres: CSV coordinates are written with 4 decimals
MAX_REPORTED = 20


class AnnotationError(ValueError):
    """Annotator files that cannot be imported; the message lists every problem as `file:line: what`."""


def scene_file_stem(scene_id: str) -> str:
    """File-name stem of a scene id: "/" and "\\" become "__"."""
    return scene_id.replace("/", "__").replace("\\", "__")


def labels_path(budget_path: PathLike) -> Path:
    """`round_2.pt` -> `round_2.labels.pt`: the annotators' labels that go with a budget file."""
    path = Path(budget_path)
    return path.with_name(path.stem + ".labels.pt")


def export_picks(picks: Mapping[str, torch.Tensor], source, out_dir: PathLike,
                 previous: Optional[Mapping[str, torch.Tensor]] = None) -> List[Path]:
    """Write PLY + CSV per scene with picks and `classes.csv` to `out_dir` -> the written paths.

    picks     {scene_id: (K,) int64} points to label; source: the scene source they index
    previous  {scene_id: (J,) int64} points labeled so far (their labels go into the PLY's label property)
    """
    from pcseg.vis.ply import export_ply

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    position = {sid: i for i, sid in enumerate(source.scene_ids)}
    unknown = [sid for sid in picks if sid not in position]
    if unknown:
        raise ValueError(f"picks name {len(unknown)} scene(s) the dataset does not have, e.g. {unknown[0]!r}")
    chosen = [sid for sid in sorted(picks, key=position.get) if len(picks[sid])]
    taken = [out_dir / f"{scene_file_stem(sid)}{ext}" for sid in chosen for ext in (".csv", ".ply")]
    taken = [path for path in taken if path.exists()]
    if taken:
        raise ValueError(f"{taken[0]} exists; export to a new folder (files annotators may have edited are never "
                         "overwritten)")
    written = [_write_classes(out_dir / "classes.csv", source.class_names)]
    for scene_id in chosen:
        index = np.asarray(picks[scene_id], dtype=np.int64)
        scene = source[position[scene_id]]
        if index.max() >= scene.num_points:
            raise ValueError(f"picks of scene {scene_id!r} index point {index.max()} but it has "
                             f"{scene.num_points} points")
        stem = scene_file_stem(scene_id)
        color = 0.35 * np.asarray(scene.color, dtype=np.float32) + 0.45  # greyed scan, picks stand out
        color[index] = PICK_COLOR
        known = np.full(scene.num_points, -1, dtype=np.int64)
        if previous is not None and scene_id in previous and len(previous[scene_id]):
            done = np.asarray(previous[scene_id], dtype=np.int64)
            known[done] = np.asarray(scene.label)[done]
        picked = np.zeros(scene.num_points, dtype=np.float32)
        picked[index] = 1.0
        written.append(export_ply(out_dir / f"{stem}.ply", scene.coord, color, label=known, uncertainty=picked,
                                  meta={"scene_id": scene_id, "rgb": "picked"}))
        written.append(_write_csv(out_dir / f"{stem}.csv", scene_id, index, np.asarray(scene.coord)))
    return written


def _write_classes(path: Path, class_names: Sequence[str]) -> Path:
    return write_atomic(path, lambda handle: csv.writer(handle).writerows([("id", "name"), *enumerate(class_names)]),
                        text=True)


def _write_csv(path: Path, scene_id: str, index: np.ndarray, coord: np.ndarray) -> Path:
    rows = [COLUMNS] + [[scene_id, i, *(f"{v:.4f}" for v in coord[i]), ""] for i in index.tolist()]
    return write_atomic(path, lambda handle: csv.writer(handle).writerows(rows), text=True)


@dataclass
class Annotations:
    """Labels read from annotator CSVs: {scene_id: (index (K,) int64, label (K,) int64)} and rows skipped."""

    labels: Dict[str, Tuple[np.ndarray, np.ndarray]]
    skipped: int

    @property
    def num_labeled(self) -> int:
        return sum(len(index) for index, _ in self.labels.values())


def read_annotations(paths: Sequence[PathLike], source,
                     previous: Optional[Mapping[str, torch.Tensor]] = None) -> Annotations:
    """Read and validate annotator CSVs against `source` (see the module docstring); raises AnnotationError
    listing every problem (up to 20) as `file:line: what`."""
    names = [str(n) for n in source.class_names]
    by_name = {n.lower(): k for k, n in enumerate(names)}
    position = {sid: i for i, sid in enumerate(source.scene_ids)}
    scenes: Dict[str, object] = {}
    seen: Dict[Tuple[str, int], str] = {}
    rows: Dict[str, List[Tuple[int, int]]] = {}
    errors: List[str] = []
    skipped = 0
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"annotation file not found: {path}")
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames == ["id", "name"]:
                continue  # the class list export writes next to the CSVs (so `DIR/*.csv` can be imported)
            missing = [c for c in ("scene", "index", "label") if c not in (reader.fieldnames or [])]
            if missing:
                errors.append(f"{path}:1: missing column(s) {', '.join(missing)} (expected {','.join(COLUMNS)})")
                continue
            for row in reader:
                where = f"{path}:{reader.line_num}"
                problem, item = _check_row(row, names, by_name, position, scenes, source, previous)
                if problem:
                    errors.append(f"{where}: {problem}")
                    continue
                if item is None:
                    skipped += 1
                    continue
                scene_id, index, label = item
                if (scene_id, index) in seen:
                    errors.append(f"{where}: duplicate: point {index} of scene {scene_id!r} is already labeled at "
                                  f"{seen[(scene_id, index)]}")
                    continue
                seen[(scene_id, index)] = where
                rows.setdefault(scene_id, []).append((index, label))
    if errors:
        more = f"\n... and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
        raise AnnotationError(f"refused {len(errors)} annotation row(s):\n" + "\n".join(errors[:MAX_REPORTED])
                              + more)
    labels = {}
    for scene_id, items in rows.items():
        items.sort()
        labels[scene_id] = (np.array([i for i, _ in items], dtype=np.int64),
                            np.array([k for _, k in items], dtype=np.int64))
    return Annotations(labels, skipped)


def _check_row(row, names, by_name, position, scenes, source, previous):
    """(problem or None, (scene_id, index, label) or None for an empty label)."""
    scene_id = (row.get("scene") or "").strip()
    if scene_id not in position:
        return f"unknown scene {scene_id!r}", None
    if scene_id not in scenes:
        scenes[scene_id] = source[position[scene_id]]
    scene = scenes[scene_id]
    text = (row.get("index") or "").strip()
    try:
        index = int(text)
    except ValueError:
        return f"index {text!r} is not an integer", None
    if not 0 <= index < scene.num_points:
        return f"index {index} out of range: scene {scene_id!r} has {scene.num_points} points", None
    given = [(row.get(axis) or "").strip() for axis in "xyz"]
    if all(given):
        try:
            xyz = np.array([float(v) for v in given])
        except ValueError:
            return f"coordinates {given} are not numbers", None
        actual = np.asarray(scene.coord[index], dtype=np.float64)
        if np.abs(xyz - actual).max() > COORD_TOLERANCE:
            return (f"coordinates {xyz.round(4).tolist()} do not match point {index} of scene {scene_id!r} at "
                    f"{actual.round(4).tolist()} (was the file made for another version of the data?)"), None
    if previous is not None and scene_id in previous and bool((previous[scene_id] == index).any()):
        return f"duplicate: point {index} of scene {scene_id!r} is already labeled in the previous budget", None
    text = (row.get("label") or "").strip()
    if not text:
        return None, None
    try:
        label = int(text)
    except ValueError:
        label = by_name.get(text.lower())
        if label is None:
            return f"unknown class name {text!r} (valid: {', '.join(names)})", None
    else:
        if not 0 <= label < len(names):
            return f"unknown class id {label} (valid: 0..{len(names) - 1}, see classes.csv)", None
    return None, (scene_id, index, label)


def read_labels(path: PathLike) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """A `.labels.pt` file -> {scene_id: (index (K,) int64, label (K,) int64)} ({} when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return {}
    data = torch.load(path, map_location="cpu", weights_only=True)
    return {sid: (v["index"].numpy(), v["label"].numpy()) for sid, v in data.items()}


def import_annotations(paths: Sequence[PathLike], source, previous: Union[PathLike, Mapping[str, torch.Tensor]],
                       out: PathLike) -> Tuple[Path, Annotations]:
    """Validate the CSVs, then write the NEW budget `out` = previous + labeled points, and `<out>.labels.pt`.

    previous  the budget file (or dict) labeled so far; when a file, its own `.labels.pt` is carried over
    returns   (path of the new budget file, the annotations read)
    """
    from pcseg.engine.checkpoint import save_atomic

    out = Path(out)
    for target in (out, labels_path(out)):
        if target.exists():
            raise FileExistsError(f"{target} exists; label rounds are written to new files")
    old_labels: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
    if isinstance(previous, Mapping):
        budget: Budget = dict(previous)
    else:
        if Path(previous).resolve() == out.resolve():
            raise ValueError(f"the new budget {out} is the previous one; write rounds to a new file")
        budget = read_budget(previous)
        old_labels = read_labels(labels_path(previous))
    annotations = read_annotations(paths, source, budget)
    new = {sid: torch.from_numpy(index) for sid, (index, _) in annotations.labels.items()}
    merged: Dict[str, Tuple[np.ndarray, np.ndarray]] = dict(old_labels)
    for sid, (index, label) in annotations.labels.items():
        old_index, old_label = merged.get(sid, (np.empty(0, np.int64), np.empty(0, np.int64)))
        all_index, all_label = np.concatenate([old_index, index]), np.concatenate([old_label, label])
        order = np.argsort(all_index, kind="stable")
        merged[sid] = (all_index[order], all_label[order])
    labels_out = {sid: {"index": torch.from_numpy(i), "label": torch.from_numpy(k)} for sid, (i, k) in merged.items()}
    path = merge_budgets(budget, new, out)
    try:
        save_atomic(labels_out, labels_path(out))
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return path, annotations
