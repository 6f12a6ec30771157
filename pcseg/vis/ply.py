"""Binary PLY export of a scene with colours, labels and predictions as vertex properties, and its reader.

Vertex properties: x, y, z float32; red, green, blue uchar; then, where given, nx, ny, nz float32, label int32,
pred int32, uncertainty float32. Header comments record what the colours show and the scene's identity
("pcseg rgb=pred", "pcseg scene_id=scene0000_00", "pcseg dataset=scannet"), so `pcseg visualize` can reopen the
file with the right palette and budget entries. MeshLab shows the colours; CloudCompare and Open3D also read the
scalar properties.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

from pcseg.atomic import write_atomic

from .layers import SceneLayers
from .palettes import Palette

_COMMENT = "pcseg "


def _rgb_u8(color: np.ndarray) -> np.ndarray:
    color = np.asarray(color)
    if color.dtype == np.uint8:
        return color
    if np.issubdtype(color.dtype, np.floating):
        return np.round(np.clip(color, 0.0, 1.0) * 255).astype(np.uint8)
    raise ValueError(f"color must be float in [0, 1] or uint8, got {color.dtype}")


def export_ply(
    path: Union[str, Path],
    coord: np.ndarray,
    color: Optional[np.ndarray] = None,
    label: Optional[np.ndarray] = None,
    pred: Optional[np.ndarray] = None,
    uncertainty: Optional[np.ndarray] = None,
    normal: Optional[np.ndarray] = None,
    *,
    meta: Optional[Dict[str, str]] = None,
) -> Path:
    """Write a binary little-endian PLY atomically (temp file in the same folder, then rename).

    coord (N, 3); color (N, 3) float in [0, 1] or uint8 (None: grey); label, pred (N,) int (-1 = ignored);
    uncertainty (N,) float; normal (N, 3) float; meta: str -> str written as "pcseg key=value" header comments.
    Returns the path.
    """
    from plyfile import PlyData, PlyElement

    coord = np.asarray(coord)
    if coord.ndim != 2 or coord.shape[1] != 3:
        raise ValueError(f"export_ply {path}: coord must be (N, 3), got {coord.shape}")
    n = len(coord)
    rgb = np.full((n, 3), 128, np.uint8) if color is None else _rgb_u8(color)
    fields = [("x", "f4", coord[:, 0]), ("y", "f4", coord[:, 1]), ("z", "f4", coord[:, 2]),
              ("red", "u1", rgb[:, 0]), ("green", "u1", rgb[:, 1]), ("blue", "u1", rgb[:, 2])]
    if normal is not None:
        normal = np.asarray(normal)
        fields += [("nx", "f4", normal[:, 0]), ("ny", "f4", normal[:, 1]), ("nz", "f4", normal[:, 2])]
    for name, dtype, value in (("label", "i4", label), ("pred", "i4", pred), ("uncertainty", "f4", uncertainty)):
        if value is not None:
            fields.append((name, dtype, np.asarray(value)))
    for name, _, value in fields:
        if value.shape != (n,):
            raise ValueError(f"export_ply {path}: {name} must have {n} entries (one per point), got {value.shape}")
    vertex = np.empty(n, dtype=[(name, "<" + dtype) for name, dtype, _ in fields])
    for name, _, value in fields:
        vertex[name] = value
    comments = []
    for key, value in (meta or {}).items():
        if any(c in f"{key}{value}" for c in "\r\n") or "=" in key or " " in key:
            raise ValueError(f"export_ply {path}: meta {key!r}={value!r} must be one line, key without '=' or spaces")
        comments.append(f"{_COMMENT}{key}={value}")
    ply = PlyData([PlyElement.describe(vertex, "vertex")], text=False, byte_order="<", comments=comments)

    return write_atomic(path, ply.write)


def class_names_comment(names) -> Dict[str, str]:
    """{"classes": "a,b,c"} for the PLY header, or {} when a name contains a comma or a line break."""
    if any(c in name for name in names for c in ",\r\n"):
        return {}
    return {"classes": ",".join(names)}


def export_scene_ply(
    path: Union[str, Path],
    scene,
    *,
    pred: Optional[np.ndarray] = None,
    uncertainty: Optional[np.ndarray] = None,
    dataset: Optional[str] = None,
    palette: Optional[Palette] = None,
    color_by: Optional[str] = None,
) -> Path:
    """Export a `pcseg.data.Scene` (+ predictions) with the colours of one layer.

    color_by  "pred", "gt", "error", "uncertainty" or "color" (the scan's own colours); default "pred" when
              predictions are given, else "gt". The label/pred properties are written either way.
    palette   class colours (default: the standard palette of `dataset`, else a generated one); the header
              records the class names, the scene id, the dataset and what the colours show.
    """
    layers = SceneLayers.from_scene(scene, pred=pred, uncertainty=uncertainty, palette=palette, dataset=dataset)
    color_by = color_by or ("pred" if pred is not None else "gt")
    rgb, _ = layers.colors(color_by)
    meta = {"rgb": color_by, "scene_id": str(scene.scene_id), **class_names_comment(layers.palette.class_names)}
    if dataset:
        meta["dataset"] = dataset
    return export_ply(
        path, layers.coord, rgb, label=layers.label, pred=layers.pred, uncertainty=layers.uncertainty,
        normal=getattr(scene, "normal", None), meta=meta,
    )


def read_ply(path: Union[str, Path]) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Read a point PLY (ours or any with x, y, z) -> (arrays, meta).

    arrays: "coord" (N, 3) float32 and, where present, "rgb" (N, 3) float32 in [0, 1], "normal" (N, 3) float32,
    "label", "pred" (N,) int64, "uncertainty" (N,) float32. meta: the "pcseg key=value" header comments.
    """
    from plyfile import PlyData

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PLY file {path} does not exist")
    ply = PlyData.read(str(path))  # binary files are memory-mapped: fast even for millions of points
    if "vertex" not in ply:
        raise ValueError(f"{path}: no 'vertex' element (elements: {[e.name for e in ply.elements]})")
    v = ply["vertex"].data
    names = v.dtype.names
    missing = [k for k in ("x", "y", "z") if k not in names]
    if missing:
        raise ValueError(f"{path}: vertex element lacks {missing} (has {list(names)})")
    arrays = {"coord": np.stack([v["x"], v["y"], v["z"]], axis=1).astype(np.float32)}
    if all(k in names for k in ("red", "green", "blue")):
        rgb = np.stack([v["red"], v["green"], v["blue"]], axis=1)
        arrays["rgb"] = (rgb.astype(np.float32) / 255.0) if rgb.dtype == np.uint8 else rgb.astype(np.float32)
    if all(k in names for k in ("nx", "ny", "nz")):
        arrays["normal"] = np.stack([v["nx"], v["ny"], v["nz"]], axis=1).astype(np.float32)
    for key in ("label", "pred"):
        if key in names:
            arrays[key] = np.asarray(v[key]).astype(np.int64)
    if "uncertainty" in names:
        arrays["uncertainty"] = np.asarray(v["uncertainty"]).astype(np.float32)
    meta = {}
    for comment in ply.comments:
        if comment.startswith(_COMMENT) and "=" in comment:
            key, value = comment[len(_COMMENT):].split("=", 1)
            meta[key] = value
    return arrays, meta
