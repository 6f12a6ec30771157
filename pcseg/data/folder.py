"""Your own point clouds: a folder of scene files described by a small YAML file (`data.dataset=folder`).

Every PLY, LAS/LAZ, NPY, NPZ and whitespace-separated TXT file under the folder (recursively; hidden files and
folders skipped) is one scene, named by its path relative to the folder without the extension ("area1/room_3").
The YAML file, `pcseg_dataset.yaml` in the folder unless another path is given, says how to read them:

```yaml
classes: [floor, wall, chair, table]       # class index = position in this list
columns: [x, y, z, red, green, blue, label] # TXT files and plain (N, C) NPY arrays: the name of every column
fields:                                     # where each attribute lives: a PLY vertex property, a LAS dimension
  x: x                                      # (x, y, z are the scaled coordinates), an NPZ array or a column
  y: y                                      # name; name[i] takes column i of an (N, C) array ("coord[0]")
  z: z                                      # (x, y, z default to "x", "y", "z")
  color: [red, green, blue]                 # optional
  intensity: intensity                      # optional; becomes Scene.strength
  normal: [nx, ny, nz]                      # optional
  label: label                              # optional; without it every scene is unlabeled
color_max: 255            # required with color: 255 for 0-255 values, 1 for 0-1, 65535 for 16-bit LAS colour
intensity_max: 1.0        # intensity values lie in [.., intensity_max] and are divided by it (default 1)
label_map: {1: floor, 2: wall, 5: chair, 7: 3, 0: -1}  # raw id -> class name or index, -1 (or null) = ignore;
                          # without it the raw ids are the class indices
ignore: [0, 99]           # more raw ids meaning "unlabeled" (-1 always does)
splits:                   # scene names, subfolders or fnmatch patterns (a * also crosses "/"); "all" is implicit;
  train: [area1, area2]   # without splits every scene is in "train"
  val: ["area3/*"]
unlabeled: [scans_new]    # scenes without labels: their label field is not read, and their TXT / NPY files may
                          # lack the label column
exclude: ["notes*"]       # files to leave out (patterns over scene names)
features: [color]         # model input (default: color when named, strength when intensity is, else coord)
kind: indoor              # training augmentation: indoor (adds colour jitter) or outdoor
```

Scenes come out as `Scene`s: label -1 = ignored or unlabeled (an unlabeled scene is all -1), strength =
intensity / intensity_max, colour / color_max. Coordinates farther than 8 km from the origin (float32 would lose
millimetres) are shifted by the scene's minimum corner in whole metres, kept in `extras["offset"]` (float64 (3,);
`pcseg preprocess` writes the shifted coordinates, not the offset). TXT lines starting with "#" or "//" are comments.

A file that breaks the YAML's promises (missing or non-numeric field, column count, label outside the class list or
map, NaN or infinite coordinates, colour outside [0, color_max], no points, unreadable or corrupt) raises
`FolderFileError` naming the file and every problem found. `validate_folder` checks all files and reports the bad
ones by name while the good ones stay usable; `pcseg preprocess folder SRC DST` does the same and writes the good
scenes to the on-disk format. LAS/LAZ needs laspy (the `las` extra: pip install 'pcseg[las]').
"""
from __future__ import annotations

import difflib
import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from pcseg.data.collate import FEATURES
from pcseg.data.scene import IGNORE_INDEX, Scene

PathLike = Union[str, os.PathLike]
SPEC_NAME = "pcseg_dataset.yaml"
FORMATS = {".ply": "ply", ".las": "las", ".laz": "las", ".npy": "npy", ".npz": "npz", ".txt": "txt"}
FIELDS = ("x", "y", "z", "color", "intensity", "normal", "label")
KEYS = ("classes", "columns", "fields", "color_max", "intensity_max", "label_map", "ignore", "splits", "unlabeled",
        "exclude", "features", "kind")
SHIFT_BEYOND = 8192.0  # metres: float32 spacing there is about 1 mm
_INDEXED = re.compile(r"(.+)\[(\d+)\]")


class FolderSpecError(ValueError):
    """A dataset YAML that cannot be used (the message names the file and the key)."""


class FolderFileError(ValueError):
    """A scene file that does not match its YAML: `path` and the list of `problems` (the message has both)."""

    def __init__(self, path: PathLike, problems: Sequence[str]) -> None:
        self.path, self.problems = Path(path), list(problems)
        super().__init__(f"{self.path}: {'; '.join(self.problems)}")


# ------------------------------------------------------------------------------------------------------ the YAML
@dataclass(frozen=True)
class FolderSpec:
    """A parsed dataset YAML (see the module docstring). `fields` maps x, y, z, intensity, label to one reference
    and color, normal to three; absent attributes are missing from it. `label_lut` maps raw id -> class index
    (-1 = ignore); None means raw ids are class indices."""

    path: Path
    classes: Tuple[str, ...]
    fields: Dict[str, Union[str, Tuple[str, ...]]]
    columns: Optional[Tuple[str, ...]] = None
    color_max: Optional[float] = None
    intensity_max: float = 1.0
    label_lut: Optional[Dict[int, int]] = None
    ignore: Tuple[int, ...] = ()
    splits: Dict[str, Tuple[str, ...]] = field(default_factory=dict)
    unlabeled: Tuple[str, ...] = ()
    exclude: Tuple[str, ...] = ()
    features: Tuple[str, ...] = ()
    kind: str = "indoor"

    def labeled(self, scene_id: str) -> bool:
        """Whether the scene's label field is read (the YAML names one and the scene is not listed unlabeled)."""
        return "label" in self.fields and not any(matches(scene_id, p) for p in self.unlabeled)


def matches(scene_id: str, pattern: str) -> bool:
    """A scene name matches a pattern equal to it, naming a folder above it, or matching it as an fnmatch glob."""
    folder = pattern.rstrip("/")
    return scene_id == pattern or scene_id.startswith(folder + "/") or fnmatch.fnmatchcase(scene_id, pattern)


def _strings(value, where: str, path: Path) -> Tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                                       for v in value):
        raise FolderSpecError(f"{path}: {where} must be a list of names, got {value!r}")
    return tuple(str(v) for v in value)


def _raw_id(value, path: Path, where: str) -> int:
    try:
        number = float(value)
        if not number.is_integer() or isinstance(value, bool):
            raise ValueError
        return int(number)
    except (TypeError, ValueError):
        raise FolderSpecError(f"{path}: {where}: raw label ids are integers, got {value!r}") from None


def read_spec(path: PathLike) -> FolderSpec:
    """Parse and check a dataset YAML -> FolderSpec; FolderSpecError names the file and the first bad key."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset YAML {path} does not exist (write one as described in pcseg.data.folder, "
                                f"or give its path)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise FolderSpecError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise FolderSpecError(f"{path}: expected a mapping with at least 'classes', got {type(data).__name__}")
    for key in data:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            raise FolderSpecError(f"{path}: unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                                  + f"; valid keys: {', '.join(KEYS)}")
    if "classes" not in data:
        raise FolderSpecError(f"{path}: 'classes' (the list of class names) is missing")
    classes = _strings(data["classes"], "classes", path)
    if not classes or len(set(classes)) != len(classes):
        raise FolderSpecError(f"{path}: classes must be a non-empty list of distinct names, got {list(classes)}")

    raw_fields = data.get("fields") or {}
    if not isinstance(raw_fields, dict):
        raise FolderSpecError(f"{path}: fields must be a mapping such as {{x: x, color: [red, green, blue]}}")
    fields: Dict[str, Union[str, Tuple[str, ...]]] = {"x": "x", "y": "y", "z": "z"}
    for key, value in raw_fields.items():
        if key not in FIELDS:
            raise FolderSpecError(f"{path}: fields: unknown attribute {key!r}; valid: {', '.join(FIELDS)}")
        if value is None:
            continue
        if key in ("color", "normal"):
            refs = _strings(value, f"fields.{key}", path)
            if len(refs) != 3:
                raise FolderSpecError(f"{path}: fields.{key} names 3 fields (e.g. [red, green, blue]), got {value!r}")
            fields[key] = refs
        elif isinstance(value, (str, int)) and not isinstance(value, bool):
            fields[key] = str(value)
        else:
            raise FolderSpecError(f"{path}: fields.{key} must be one field name, got {value!r}")

    columns = None
    if data.get("columns") is not None:
        columns = _strings(data["columns"], "columns", path)
        if len(set(columns)) != len(columns):
            raise FolderSpecError(f"{path}: columns must be distinct names, got {list(columns)}")

    color_max = data.get("color_max")
    if "color" in fields:
        if color_max is None:
            raise FolderSpecError(f"{path}: fields.color is given, so say the colour range with color_max: 255 "
                                  "(0-255 values), 1 (0-1) or 65535 (16-bit)")
    if color_max is not None:
        if isinstance(color_max, bool) or not isinstance(color_max, (int, float)) or not color_max > 0:
            raise FolderSpecError(f"{path}: color_max must be a positive number (255, 1, 65535), got {color_max!r}")
        color_max = float(color_max)
    intensity_max = data.get("intensity_max", 1.0)
    if isinstance(intensity_max, bool) or not isinstance(intensity_max, (int, float)) or not intensity_max > 0:
        raise FolderSpecError(f"{path}: intensity_max must be a positive number, got {intensity_max!r}")

    ignore = tuple(_raw_id(v, path, "ignore") for v in (data.get("ignore") or []))
    label_lut = None
    if data.get("label_map") is not None:
        if not isinstance(data["label_map"], dict) or not data["label_map"]:
            raise FolderSpecError(f"{path}: label_map must map raw label ids to class names or indices")
        label_lut = {}
        for raw, target in data["label_map"].items():
            raw_id = _raw_id(raw, path, "label_map")
            if target is None or target == -1:
                label_lut[raw_id] = IGNORE_INDEX
            elif isinstance(target, str) and target in classes:
                label_lut[raw_id] = classes.index(target)
            elif isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(classes):
                label_lut[raw_id] = target
            else:
                raise FolderSpecError(f"{path}: label_map: {raw!r} -> {target!r} is neither a class name, a class "
                                      f"index 0..{len(classes) - 1}, nor -1 / null (ignore); classes: "
                                      f"{', '.join(classes)}")

    splits_raw = data.get("splits") or {}
    if not isinstance(splits_raw, dict):
        raise FolderSpecError(f"{path}: splits must map split names to lists of scenes or patterns")
    splits = {str(name): _strings(patterns, f"splits.{name}", path) for name, patterns in splits_raw.items()}
    if "all" in splits:
        raise FolderSpecError(f"{path}: splits: 'all' is implicit (every scene); choose another name")

    colour, intensity = "color" in fields, "intensity" in fields
    features = _strings(data["features"], "features", path) if data.get("features") else (
        ("color",) * colour + ("strength",) * intensity or ("coord",))
    for name in features:
        if name not in FEATURES:
            raise FolderSpecError(f"{path}: features: unknown feature {name!r}; valid: {', '.join(FEATURES)}")
        needs = {"color": "color", "strength": "intensity", "normal": "normal"}.get(name)
        if needs and needs not in fields:
            raise FolderSpecError(f"{path}: features: {name!r} needs fields.{needs}")
    kind = data.get("kind", "indoor")
    if kind not in ("indoor", "outdoor"):
        raise FolderSpecError(f"{path}: kind must be indoor or outdoor, got {kind!r}")
    return FolderSpec(path=path, classes=classes, fields=fields, columns=columns, color_max=color_max,
                      intensity_max=float(intensity_max), label_lut=label_lut, ignore=ignore, splits=splits,
                      unlabeled=_strings(data.get("unlabeled") or [], "unlabeled", path),
                      exclude=_strings(data.get("exclude") or [], "exclude", path), features=features, kind=kind)


# ---------------------------------------------------------------------------------------------- reading files
Table = Tuple[Sequence[str], Callable[[str], np.ndarray]]


def _laspy():
    try:
        import laspy
    except ImportError:
        raise LasSupportMissing("reading LAS/LAZ files needs laspy, the optional extra: pip install 'pcseg[las]'"
                                ) from None
    return laspy


class LasSupportMissing(ImportError, ValueError):
    """laspy (the `las` extra) is not installed."""


def _tabular(values: np.ndarray, spec: FolderSpec, labeled: bool) -> Tuple[Table, List[str]]:
    """A plain (N, C) array named by spec.columns (the label column may be absent from an unlabeled scene)."""
    if values.ndim != 2:
        return ((), lambda name: values), [f"expected a table of points (N, C), got shape {values.shape}"]
    if spec.columns is None:
        return ((), lambda name: values), [f"{values.shape[1]} unnamed columns: name them with `columns:` in "
                                           f"{spec.path.name}"]
    names = list(spec.columns)
    label_ref = spec.fields.get("label")
    if not labeled and label_ref in names and values.shape[1] == len(names) - 1:
        names.remove(label_ref)
    if values.shape[1] != len(names):
        expected = f"{len(names)}" + (f" (or {len(names) - 1} without the label column)"
                                      if not labeled and label_ref in spec.columns else "")
        return ((), lambda name: values), [f"column count mismatch: {values.shape[1]} columns, the YAML's columns "
                                           f"name {expected}"]
    return (names, lambda name: values[:, names.index(name)]), []


def _open(path: Path, spec: FolderSpec, labeled: bool) -> Tuple[Table, List[str]]:
    """The named per-point arrays of one file -> ((names, get), problems); unreadable files raise here."""
    fmt = FORMATS[path.suffix.lower()]
    if fmt == "ply":
        from plyfile import PlyData

        ply = PlyData.read(str(path))
        if "vertex" not in [e.name for e in ply.elements]:
            return ((), lambda name: None), [f"no vertex element (elements: {[e.name for e in ply.elements]})"]
        data = ply["vertex"].data
        return (data.dtype.names, lambda name: np.asarray(data[name])), []
    if fmt == "las":
        las = _laspy().read(str(path))
        names = ["x", "y", "z"] + [n for n in las.point_format.dimension_names if n not in ("X", "Y", "Z")]
        return (names, lambda name: np.asarray(getattr(las, name) if name in ("x", "y", "z") else las[name])), []
    if fmt == "npz":
        archive = np.load(path, allow_pickle=False)
        return (archive.files, lambda name: archive[name]), []
    if fmt == "npy":
        values = np.load(path, allow_pickle=False, mmap_mode="r")
        if values.dtype.names:
            return (values.dtype.names, lambda name: np.asarray(values[name])), []
        return _tabular(np.asarray(values), spec, labeled)
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=2, comments=("#", "//"))  # "//X Y Z": CloudCompare
    except ValueError as error:
        if "number of columns changed" not in str(error):
            raise
        return ((), lambda name: None), [f"column count mismatch: {str(error).split(';')[0]}"]
    if values.size == 0:
        values = values.reshape(0, len(spec.columns or ()))
    return _tabular(values, spec, labeled)


def _column(table: Table, ref: str) -> Optional[np.ndarray]:
    """Field `ref` ("name" or "name[i]") of a table -> (N,) array, or None when the file has no such field."""
    names, get = table
    if ref in names:
        value = get(ref)
        return value if value.ndim == 1 else None
    match = _INDEXED.fullmatch(ref)
    if match and match.group(1) in names:
        value, i = get(match.group(1)), int(match.group(2))
        return value[:, i] if value.ndim == 2 and i < value.shape[1] else None
    return None


def _map_labels(raw: np.ndarray, spec: FolderSpec) -> Tuple[np.ndarray, List[str]]:
    """Raw label values (N,) -> (class indices (N,) int64 with -1 = ignore, problems)."""
    raw = np.asarray(raw)
    if raw.dtype.kind == "f":
        bad = ~np.isfinite(raw) | (raw != np.round(raw))
        if bad.any():
            return raw, [f"{int(bad.sum())} label values are not integers (e.g. {float(raw[bad][0]):g})"]
    raw = raw.astype(np.int64)
    ids, inverse = np.unique(raw, return_inverse=True)
    lut = np.full(len(ids), IGNORE_INDEX, dtype=np.int64)
    unknown = []
    for k, raw_id in enumerate(ids.tolist()):
        if raw_id == IGNORE_INDEX or raw_id in spec.ignore:
            continue
        if spec.label_lut is not None:
            if raw_id in spec.label_lut:
                lut[k] = spec.label_lut[raw_id]
            else:
                unknown.append(k)
        elif 0 <= raw_id < len(spec.classes):
            lut[k] = raw_id
        else:
            unknown.append(k)
    if unknown:
        counts = np.bincount(inverse, minlength=len(ids))
        listed = ", ".join(f"{ids[k]} ({counts[k]} points)" for k in unknown[:5])
        where = "label_map" if spec.label_lut is not None else f"the class indices 0..{len(spec.classes) - 1}"
        return raw, [f"label ids outside {where} and ignore: {listed}" + (" ..." if len(unknown) > 5 else "")]
    return lut[inverse.reshape(-1)], []


def _check_range(values: np.ndarray, name: str, upper: float, key: str, problems: List[str]) -> None:
    """Append a problem when `values` ((N,) or (N, 3)) hold NaN / inf or exceed `upper` (colour: or are < 0)."""
    finite = np.isfinite(values)
    if not finite.all():
        bad = ~finite.all(1) if values.ndim == 2 else ~finite
        problems.append(f"{int(bad.sum())} points with NaN or infinite {name}")
        return
    low, high = float(values.min()), float(values.max())
    if high > upper * (1 + 1e-6):
        problems.append(f"{name} values reach {high:g}, above {key} {upper:g}: set {key} to the range of the data")
    elif name == "colour" and low < 0:
        problems.append(f"colour values go down to {low:g}; colours lie in [0, color_max]")


def read_scene_file(path: PathLike, spec: FolderSpec, scene_id: str) -> Scene:
    """Read one scene file as `spec` says -> Scene; FolderFileError lists every problem found (see module doc)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scene file {path} does not exist")
    if path.suffix.lower() not in FORMATS:
        raise FolderFileError(path, [f"unsupported file type {path.suffix!r} (supported: {', '.join(FORMATS)})"])
    labeled = spec.labeled(scene_id)
    try:
        table, problems = _open(path, spec, labeled)
    except LasSupportMissing:
        raise
    except Exception as error:  # each reader raises its own types for a corrupt or truncated file
        raise FolderFileError(path, [f"unreadable or corrupt: {type(error).__name__}: {error}"]) from None
    if problems:
        raise FolderFileError(path, problems)

    wanted = {name: spec.fields[name] for name in FIELDS if name in spec.fields and (name != "label" or labeled)}
    arrays: Dict[str, List[Optional[np.ndarray]]] = {}
    missing, problems = [], []
    for name, refs in wanted.items():
        refs = (refs,) if isinstance(refs, str) else refs
        arrays[name] = []
        for ref in refs:
            try:
                value = _column(table, ref)
            except Exception as error:  # a memory-mapped PLY or an NPZ member fails only when its data is read
                raise FolderFileError(path, [f"unreadable or corrupt: {type(error).__name__}: {error}"]) from None
            if value is None:
                missing.append(f"{ref!r} ({name})")
            elif value.dtype.kind not in "biuf":
                problems.append(f"field {ref!r} ({name}) is not numeric ({value.dtype})")
            arrays[name].append(value)
    if missing:
        has = ", ".join(map(str, table[0])) or "nothing"
        hint = (f" (list the scene under `unlabeled:` in {spec.path.name} if it has no labels)"
                if any("(label)" in m for m in missing) else "")
        raise FolderFileError(path, [f"missing field {', '.join(missing)}{hint}; the file has: {has}"])
    if problems:
        raise FolderFileError(path, problems)
    lengths = {len(v) for values in arrays.values() for v in values}
    if len(lengths) != 1:
        raise FolderFileError(path, [f"fields have different lengths {sorted(lengths)}"])
    n = lengths.pop()
    if n == 0:
        raise FolderFileError(path, ["empty: no points"])

    coord = np.stack([np.asarray(arrays[a][0], dtype=np.float64) for a in "xyz"], axis=1)
    bad = ~np.isfinite(coord).all(1)
    if bad.any():
        problems.append(f"{int(bad.sum())} of {n} points with NaN or infinite coordinates (first: point "
                        f"{int(np.flatnonzero(bad)[0])})")
    color = np.zeros((n, 3), dtype=np.float32)
    if "color" in arrays:
        values = np.stack([np.asarray(v, dtype=np.float64) for v in arrays["color"]], axis=1)
        _check_range(values, "colour", spec.color_max, "color_max", problems)
        color = (values / spec.color_max).astype(np.float32)
    strength = None
    if "intensity" in arrays:
        values = np.asarray(arrays["intensity"][0], dtype=np.float64)
        _check_range(values, "intensity", spec.intensity_max, "intensity_max", problems)
        strength = (values / spec.intensity_max).astype(np.float32).reshape(n, 1)
    normal = None
    if "normal" in arrays:
        normal = np.stack([np.asarray(v, dtype=np.float32) for v in arrays["normal"]], axis=1)
        if not np.isfinite(normal).all():
            problems.append(f"{int((~np.isfinite(normal).all(1)).sum())} points with NaN or infinite normals")
    label = np.full(n, IGNORE_INDEX, dtype=np.int64)
    if "label" in arrays:
        label, found = _map_labels(arrays["label"][0], spec)
        problems += found
    if problems:
        raise FolderFileError(path, problems)

    extras = {}
    if np.abs(coord).max() > SHIFT_BEYOND:
        offset = np.floor(coord.min(0))
        coord = coord - offset
        extras["offset"] = offset
    return Scene(coord=coord.astype(np.float32), color=np.clip(color, 0, 1), label=label, scene_id=scene_id,
                 normal=normal, strength=strength, extras=extras)


# ------------------------------------------------------------------------------------------------ the source
def discover(root: PathLike, exclude: Sequence[str] = ()) -> Dict[str, Path]:
    """Scene files under `root` -> {scene name: path}, sorted by name; two files of one name are an error."""
    root = Path(root)
    found: Dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or path.suffix.lower() not in FORMATS:
                continue
            scene_id = path.relative_to(root).with_suffix("").as_posix()
            if any(matches(scene_id, p) for p in exclude):
                continue
            if scene_id in found:
                raise ValueError(f"two files hold scene {scene_id!r}: {found[scene_id]} and {path}; rename one or "
                                 "leave one out with `exclude:`")
            found[scene_id] = path
    return dict(sorted(found.items()))


class FolderDataset:
    """Scene source over a folder of scene files and its YAML (see the module docstring).

    root   the folder
    split  a split of the YAML, or "all"
    spec   path of the YAML (default root/pcseg_dataset.yaml)
    `defaults` (features, kind) refine the "folder" entry of pcseg.data.DEFAULTS for this folder.
    """

    def __init__(self, root: PathLike, split: str = "train", spec: Optional[PathLike] = None) -> None:
        if root is None:
            raise ValueError("folder needs root (the folder of scene files)")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"folder dataset root {self.root} does not exist")
        self.spec = read_spec(spec if spec is not None else self.root / SPEC_NAME)
        self.files = discover(self.root, self.spec.exclude)
        if not self.files:
            raise FileNotFoundError(f"{self.root} holds no scene files ({', '.join(FORMATS)})")
        self.splits = self._splits()
        if split not in self.splits:
            raise ValueError(f"folder {self.root}: no split {split!r}; {self.spec.path.name} has "
                             f"{', '.join(self.splits)}")
        self.split = split
        self.scene_ids: List[str] = self.splits[split]
        self.class_names = self.spec.classes
        self.num_classes = len(self.class_names)
        self.defaults = {"features": self.spec.features, "kind": self.spec.kind}

    def _splits(self) -> Dict[str, List[str]]:
        names = list(self.files)
        if not self.spec.splits:
            return {"train": names, "all": names}
        splits = {}
        for split, patterns in self.spec.splits.items():
            for pattern in patterns:
                if not any(matches(sid, pattern) for sid in names):
                    raise FolderSpecError(f"{self.spec.path}: splits.{split}: {pattern!r} matches no scene file "
                                          f"under {self.root} (scenes are named like {names[0]!r})")
            splits[split] = [sid for sid in names if any(matches(sid, p) for p in patterns)]
        return {**splits, "all": names}

    def __len__(self) -> int:
        return len(self.scene_ids)

    def path(self, scene_id: str) -> Path:
        return self.files[scene_id]

    def __getitem__(self, index: int) -> Scene:
        scene_id = self.scene_ids[index]
        return read_scene_file(self.files[scene_id], self.spec, scene_id)


# ------------------------------------------------------------------------------------------------ validation
@dataclass
class FileCheck:
    """The result of reading one file: `problems` is empty for a good file."""

    scene_id: str
    path: Path
    problems: List[str]
    points: int = 0
    labeled: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class ValidationReport:
    """Every file of a folder checked against its YAML."""

    files: List[FileCheck]

    @property
    def good(self) -> List[FileCheck]:
        return [f for f in self.files if f.ok]

    @property
    def bad(self) -> List[FileCheck]:
        return [f for f in self.files if not f.ok]

    def summary(self) -> str:
        good = self.good
        labeled = sum(f.labeled for f in good)
        lines = [f"checked {len(self.files)} files: {len(good)} good ({labeled} labeled, {len(good) - labeled} "
                 f"unlabeled, {sum(f.points for f in good):,} points), {len(self.bad)} bad"]
        lines += [f"  BAD {f.path}: {'; '.join(f.problems)}" for f in self.bad]
        return "\n".join(lines)


def check_file(source: FolderDataset, scene_id: str) -> FileCheck:
    """Read one scene of `source` and record its problems (a missing laspy is raised, not recorded)."""
    path = source.path(scene_id)
    try:
        scene = read_scene_file(path, source.spec, scene_id)
    except FolderFileError as error:
        return FileCheck(scene_id, path, error.problems)
    return FileCheck(scene_id, path, [], scene.num_points, source.spec.labeled(scene_id))


def validate_folder(root: PathLike, spec: Optional[PathLike] = None, progress: bool = False) -> ValidationReport:
    """Check every scene file under `root` against its YAML -> ValidationReport (bad files with their reasons)."""
    from tqdm.auto import tqdm

    source = FolderDataset(root, "all", spec)
    checks = [check_file(source, sid) for sid in tqdm(source.scene_ids, desc="validate", unit="file",
                                                      disable=not progress)]
    return ValidationReport(checks)


__all__ = ["FolderDataset", "FolderSpec", "FolderSpecError", "FolderFileError", "LasSupportMissing", "FileCheck",
           "ValidationReport", "read_spec", "read_scene_file", "discover", "validate_folder", "check_file",
           "SPEC_NAME"]
