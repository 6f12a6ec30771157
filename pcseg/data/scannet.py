"""ScanNet v2 from the official per-scene files.

`scans/<scene>/<scene>_vh_clean_2.ply`           vertices x, y, z float32 + red, green, blue, alpha uchar; faces
`scans/<scene>/<scene>_vh_clean_2.labels.ply`    the same vertices + `label` ushort = nyu40 id (0 = unannotated)
`scans/<scene>/<scene>_vh_clean_2.0.010000.segs.json`   {"segIndices": [segment id per vertex]}
`scans/<scene>/<scene>.aggregation.json`         {"segGroups": [{"objectId", "label", "segments": [...]}]}
Test scenes live in `scans_test/` and have no annotation. The 20 benchmark classes are the nyu40 ids
VALID_CLASS_IDS (ScanNet's evaluation script); every other id becomes -1. Without a labels.ply the semantic label
can come from the aggregation's raw category through the label TSV (`scannetv2-labels.combined.tsv`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from pcseg.data.scene import Scene

SCANNET_CLASSES: Tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
    "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub", "otherfurniture",
)
VALID_CLASS_IDS: Tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)

PathLike = Union[str, os.PathLike]


def nyu40_lookup(valid_ids: Sequence[int] = VALID_CLASS_IDS) -> np.ndarray:
    """(41,) int64: nyu40 id -> benchmark class index, -1 for every other id (0 = unannotated included)."""
    lut = np.full(41, -1, dtype=np.int64)
    lut[np.asarray(valid_ids)] = np.arange(len(valid_ids))
    return lut


def nyu40_to_class(nyu40: np.ndarray, valid_ids: Sequence[int] = VALID_CLASS_IDS) -> np.ndarray:
    """nyu40 ids (N,) -> benchmark class indices (N,) int64 (-1 outside the benchmark, ids > 40 included)."""
    nyu40 = np.asarray(nyu40, dtype=np.int64)
    lut = nyu40_lookup(valid_ids)
    return np.where((nyu40 >= 0) & (nyu40 <= 40), lut[np.clip(nyu40, 0, 40)], -1)


def read_label_tsv(path: PathLike, key: str = "raw_category", value: str = "nyu40id") -> Dict[str, int]:
    """Read the ScanNet label TSV -> {raw category: nyu40 id}. Tolerates CRLF and the doubled `\\r\\r\\n` line
    ends of some copies, and rows with trailing tabs dropped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ScanNet label TSV {path} does not exist")
    lines = [line.rstrip("\r") for line in path.read_bytes().decode("utf-8").split("\n")]
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise ValueError(f"ScanNet label TSV {path} is empty")
    header = lines[0].split("\t")
    if key not in header or value not in header:
        raise ValueError(f"ScanNet label TSV {path}: header lacks {key!r} or {value!r} (has {header[:6]}...)")
    k, v = header.index(key), header.index(value)
    mapping: Dict[str, int] = {}
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        if len(cells) <= max(k, v) or not cells[v].strip():
            raise ValueError(f"ScanNet label TSV {path}, line {number}: missing the {value!r} column")
        try:
            mapping[cells[k]] = int(cells[v])
        except ValueError:
            raise ValueError(f"ScanNet label TSV {path}, line {number}: {value} {cells[v]!r} is not an integer")
    return mapping


def read_ply(path: PathLike, properties: Sequence[str], faces: bool = False):
    """Read vertex properties of a PLY (plyfile, memory-mapped) -> dict name -> (N,) array, plus "faces" (F, 3)
    int64 when asked. Errors name the file: missing, corrupt header, truncated body, missing property."""
    from plyfile import PlyData, PlyHeaderParseError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PLY file {path} does not exist")
    try:
        ply = PlyData.read(str(path))
    except PlyHeaderParseError as error:
        raise ValueError(f"PLY file {path}: corrupt header ({error})") from None
    except Exception as error:  # plyfile raises several types for a truncated or malformed body
        raise ValueError(f"PLY file {path}: cannot read ({type(error).__name__}: {error})") from None
    names = [e.name for e in ply.elements]
    if "vertex" not in names:
        raise ValueError(f"PLY file {path} has no vertex element (elements: {names})")
    vertex = ply["vertex"].data
    have = vertex.dtype.names
    missing = [p for p in properties if p not in have]
    if missing:
        raise ValueError(f"PLY file {path}: vertex properties {missing} missing (has {list(have)})")
    out = {p: np.asarray(vertex[p]) for p in properties}
    if faces:
        if "face" not in names:
            raise ValueError(f"PLY file {path} has no face element")
        index = ply["face"].data["vertex_indices"]
        out["faces"] = np.stack(index).astype(np.int64) if len(index) else np.zeros((0, 3), np.int64)
    return out


def vertex_normals(coord: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals of a triangle mesh: coord (N, 3), faces (F, 3) -> (N, 3) float32 unit
    vectors (zeros for vertices without a face)."""
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"vertex_normals needs triangles (F, 3), got {faces.shape}")
    v = coord.astype(np.float64)
    face_normal = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    normal = np.zeros_like(v)
    for corner in range(3):
        for axis in range(3):
            normal[:, axis] += np.bincount(faces[:, corner], face_normal[:, axis], minlength=len(v))
    length = np.linalg.norm(normal, axis=1, keepdims=True)
    return (normal / np.where(length > 0, length, 1)).astype(np.float32)


def _read_json(path: Path) -> dict:
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"JSON file {path} is malformed: {error}") from None


def read_instances(segs_path: PathLike, aggregation_path: PathLike, num_points: int
                   ) -> Tuple[np.ndarray, Dict[int, str]]:
    """Per-vertex instance ids from segs.json + aggregation.json -> (instance (N,) int64, -1 = none;
    {instance id: raw category})."""
    segs_path, aggregation_path = Path(segs_path), Path(aggregation_path)
    for p in (segs_path, aggregation_path):
        if not p.is_file():
            raise FileNotFoundError(f"ScanNet annotation file {p} does not exist")
    segs = _read_json(segs_path)
    if "segIndices" not in segs:
        raise ValueError(f"{segs_path}: no 'segIndices'")
    seg = np.asarray(segs["segIndices"], dtype=np.int64)
    if len(seg) != num_points:
        raise ValueError(f"{segs_path}: {len(seg)} segment indices but the mesh has {num_points} vertices")
    groups = _read_json(aggregation_path).get("segGroups")
    if groups is None:
        raise ValueError(f"{aggregation_path}: no 'segGroups'")
    order = np.argsort(seg, kind="stable")
    sorted_seg = seg[order]
    instance = np.full(num_points, -1, dtype=np.int64)
    categories: Dict[int, str] = {}
    for group in groups:
        object_id = int(group.get("objectId", group.get("id")))
        categories[object_id] = group.get("label", "")
        segments = np.asarray(group.get("segments", []), dtype=np.int64)
        lo, hi = np.searchsorted(sorted_seg, segments, "left"), np.searchsorted(sorted_seg, segments, "right")
        for a, b in zip(lo, hi):
            instance[order[a:b]] = object_id
    return instance, categories


def read_scannet_scene(scene_dir: PathLike, scene_id: Optional[str] = None, label_tsv: Optional[PathLike] = None,
                       normals: bool = False, require_labels: bool = False) -> Scene:
    """Read one ScanNet scene folder -> Scene (coord, color, label in SCANNET_CLASSES or -1, instance when the
    segs/aggregation files exist, normal from the mesh when `normals`).

    The label comes from `<id>_vh_clean_2.labels.ply`; without it, from the aggregation's categories through
    `label_tsv`; without either, every label is -1 unless `require_labels` (then: an error naming the file).
    """
    scene_dir = Path(scene_dir)
    scene_id = scene_id or scene_dir.name
    mesh = read_ply(scene_dir / f"{scene_id}_vh_clean_2.ply", ("x", "y", "z", "red", "green", "blue"), normals)
    coord = np.stack([mesh["x"], mesh["y"], mesh["z"]], 1).astype(np.float32)
    color = np.stack([mesh["red"], mesh["green"], mesh["blue"]], 1).astype(np.float32) / 255.0
    n = len(coord)
    segs = scene_dir / f"{scene_id}_vh_clean_2.0.010000.segs.json"
    aggregation = scene_dir / f"{scene_id}.aggregation.json"
    instance, categories = (read_instances(segs, aggregation, n) if segs.is_file() and aggregation.is_file()
                            else (None, {}))
    labels_ply = scene_dir / f"{scene_id}_vh_clean_2.labels.ply"
    if labels_ply.is_file():
        labeled = read_ply(labels_ply, ("label",))["label"]
        if len(labeled) != n:
            raise ValueError(f"{labels_ply}: {len(labeled)} labeled vertices but {n} in the mesh")
        label = nyu40_to_class(labeled)
    elif instance is not None and label_tsv is not None:
        tsv = read_label_tsv(label_tsv)
        unknown = sorted({c for c in categories.values() if c not in tsv})
        if unknown:
            raise ValueError(f"{aggregation}: categories {unknown[:5]} are not in the label TSV {label_tsv}")
        class_of = {obj: int(nyu40_to_class(np.array([tsv[cat]]))[0]) for obj, cat in categories.items()}
        ids, inverse = np.unique(instance, return_inverse=True)
        label = np.array([class_of.get(int(i), -1) for i in ids], dtype=np.int64)[inverse]
    elif require_labels:
        raise FileNotFoundError(f"ScanNet scene {scene_id}: label file {labels_ply} does not exist")
    else:
        label = np.full(n, -1, dtype=np.int64)
    return Scene(coord=coord, color=color, label=label, scene_id=scene_id,
                 normal=vertex_normals(coord, mesh["faces"]) if normals else None, instance=instance)


def read_split(path: PathLike) -> list:
    """Scene ids of an official split file (one per line, blank lines and CR ignored)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ScanNet split file {path} does not exist")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class ScanNet:
    """Scene source over a ScanNet v2 release: `root/scans/<scene>/` (train, val) and `root/scans_test/`.

    split      "train" | "val" | "test" (official lists `scannetv2_<split>.txt`, looked up in `split_dir`, else
               in root) or "all" (every folder of scans/)
    label_tsv  the label TSV, used only when a scene lacks its labels.ply
    normals    compute vertex normals from the mesh faces
    """

    class_names = SCANNET_CLASSES
    num_classes = len(SCANNET_CLASSES)

    def __init__(self, root: PathLike, split: str = "train", split_dir: Optional[PathLike] = None,
                 label_tsv: Optional[PathLike] = None, normals: bool = False) -> None:
        if root is None:
            raise ValueError("scannet needs root (the folder that holds scans/)")
        self.root, self.split, self.label_tsv, self.normals = Path(root), split, label_tsv, normals
        if split == "all":
            scans = self.root / "scans"
            if not scans.is_dir():
                raise FileNotFoundError(f"ScanNet root {self.root} has no scans/ folder")
            self.scene_ids = sorted(p.name for p in scans.iterdir() if p.is_dir())
        elif split in ("train", "val", "test"):
            name = f"scannetv2_{split}.txt"
            candidates = [Path(split_dir) / name] if split_dir is not None else [self.root / name]
            found = [p for p in candidates if p.is_file()]
            if not found:
                raise FileNotFoundError(f"ScanNet split file {candidates[0]} does not exist (pass split_dir=)")
            self.scene_ids = read_split(found[0])
        else:
            raise ValueError(f"scannet: split must be train, val, test or all, got {split!r}")

    def scene_dir(self, scene_id: str) -> Path:
        for folder in ("scans", "scans_test"):
            path = self.root / folder / scene_id
            if path.is_dir():
                return path
        raise FileNotFoundError(f"ScanNet scene folder {self.root / 'scans' / scene_id} does not exist")

    def __len__(self) -> int:
        return len(self.scene_ids)

    def __getitem__(self, index: int) -> Scene:
        scene_id = self.scene_ids[index]
        return read_scannet_scene(self.scene_dir(scene_id), scene_id, self.label_tsv, self.normals,
                                  require_labels=self.split in ("train", "val"))
