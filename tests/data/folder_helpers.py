"""Writers of tiny folder datasets for the folder tests: generated rooms saved as PLY / NPY / TXT / NPZ files with
raw label ids (class index + 1, 0 = unannotated) and 0-255 colours, a YAML describing them, and bad files."""
from pathlib import Path
from typing import Dict

import numpy as np
import yaml
from plyfile import PlyData, PlyElement

from pcseg.data.scene import Scene
from pcseg.data.synthetic_indoor import INDOOR_CLASSES, generate_indoor_scene

COLUMNS = ["x", "y", "z", "red", "green", "blue", "label"]
SPEC = {
    "classes": list(INDOOR_CLASSES),
    "columns": COLUMNS,
    "fields": {"color": ["red", "green", "blue"], "label": "label"},
    "color_max": 255,
    "label_map": {i + 1: name for i, name in enumerate(INDOOR_CLASSES)},
    "ignore": [0],
    "splits": {"train": ["train"], "val": ["val"]},
}


def room(seed: int, points: int = 2000) -> Scene:
    """A generated room whose colours are whole 0-255 steps and coordinates 6-decimal numbers (exact in TXT)."""
    scene = generate_indoor_scene(seed, points, f"room{seed}")
    return scene.replace(color=(np.round(scene.color * 255) / 255).astype(np.float32),
                         coord=np.round(scene.coord.astype(np.float64), 6).astype(np.float32))


def raw_labels(scene: Scene) -> np.ndarray:
    return np.where(scene.label >= 0, scene.label + 1, 0)


def table(scene: Scene, label: bool = True) -> np.ndarray:
    """(N, 7) float64 x y z red green blue label (label dropped when not `label`)."""
    columns = [scene.coord.astype(np.float64), np.round(scene.color * 255.0)]
    if label:
        columns.append(raw_labels(scene)[:, None])
    return np.concatenate(columns, axis=1)


def write_ply(path: Path, scene: Scene, label: bool = True, raw: np.ndarray = None) -> Path:
    names = [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertex = np.zeros(scene.num_points, dtype=names + ([("label", "u2")] if label else []))
    for name, values in zip("xyz", scene.coord.T):
        vertex[name] = values
    for name, values in zip(("red", "green", "blue"), np.round(scene.color * 255).T):
        vertex[name] = values
    if label:
        vertex["label"] = raw_labels(scene) if raw is None else raw
    path.parent.mkdir(parents=True, exist_ok=True)
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(path))
    return path


def write_npy(path: Path, scene: Scene, label: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, table(scene, label))
    return path


def write_txt(path: Path, scene: Scene, label: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, table(scene, label), fmt="%.6f")
    return path


def write_npz(path: Path, scene: Scene) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    values = table(scene)
    np.savez(path, **{name: values[:, i] for i, name in enumerate(COLUMNS)})
    return path


def write_spec(root: Path, **changes) -> Path:
    spec = {**SPEC, **changes}
    path = root / "pcseg_dataset.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in spec.items() if v is not None}))
    return path


def mixed_folder(root: Path, points: int = 2000) -> Dict[str, Scene]:
    """train/: a PLY, an NPY, a TXT and an NPZ room; val/: a PLY room; plus the YAML. -> {scene name: Scene}."""
    scenes = {"train/a": room(1, points), "train/b": room(2, points), "train/c": room(3, points),
              "train/d": room(4, points), "val/e": room(5, points)}
    write_ply(root / "train/a.ply", scenes["train/a"])
    write_npy(root / "train/b.npy", scenes["train/b"])
    write_txt(root / "train/c.txt", scenes["train/c"])
    write_npz(root / "train/d.npz", scenes["train/d"])
    write_ply(root / "val/e.ply", scenes["val/e"])
    write_spec(root)
    return scenes


def add_bad_files(root: Path, points: int = 500) -> Dict[str, str]:
    """Four bad training files -> {file name relative to root: a phrase of the reason reported}."""
    nan = table(room(11, points))
    nan[[3, 7], 1] = np.nan
    np.save(root / "train/nan_coords.npy", nan)
    scene = room(12, points)
    raw = raw_labels(scene)
    raw[:5] = 42
    write_ply(root / "train/bad_label.ply", scene, raw=raw)
    body = write_ply(root / "train/corrupt.ply", room(13, points)).read_bytes()
    (root / "train/corrupt.ply").write_bytes(body[: len(body) // 2])
    short = table(room(14, points))
    np.savetxt(root / "train/short.txt", np.delete(short, 5, axis=1), fmt="%.6f")  # the blue column is gone
    return {"train/nan_coords.npy": "2 of 500 points with NaN or infinite coordinates",
            "train/bad_label.ply": "label ids outside label_map and ignore: 42 (5 points)",
            "train/corrupt.ply": "unreadable or corrupt",
            "train/short.txt": "column count mismatch: 6 columns"}
