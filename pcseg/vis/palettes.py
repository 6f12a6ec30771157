"""Class colour palettes of the standard datasets, a generated palette for the others, and a legend printer.

Colours are RGB uint8. Label -1 (ignored / unlabeled) is drawn in `IGNORE_COLOR` by every palette.
"""
from __future__ import annotations

import colorsys
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, TextIO, Tuple, Union

import numpy as np

IGNORE_COLOR = (0, 0, 0)

# ScanNet v2, 20 benchmark classes: the nyu40 colours of ScanNet's BenchmarkScripts (nyu40 id in the comment).
_SCANNET20 = (
    ("wall", (174, 199, 232)),  # 1
    ("floor", (152, 223, 138)),  # 2
    ("cabinet", (31, 119, 180)),  # 3
    ("bed", (255, 187, 120)),  # 4
    ("chair", (188, 189, 34)),  # 5
    ("sofa", (140, 86, 75)),  # 6
    ("table", (255, 152, 150)),  # 7
    ("door", (214, 39, 40)),  # 8
    ("window", (197, 176, 213)),  # 9
    ("bookshelf", (148, 103, 189)),  # 10
    ("picture", (196, 156, 148)),  # 11
    ("counter", (23, 190, 207)),  # 12
    ("desk", (247, 182, 210)),  # 14
    ("curtain", (219, 219, 141)),  # 16
    ("refrigerator", (255, 127, 14)),  # 24
    ("shower curtain", (158, 218, 229)),  # 28
    ("toilet", (44, 160, 44)),  # 33
    ("sink", (112, 128, 144)),  # 34
    ("bathtub", (227, 119, 194)),  # 36
    ("otherfurniture", (82, 84, 163)),  # 39
)

# S3DIS, 13 classes in the usual (PointNet) order with the usual colours.
_S3DIS13 = (
    ("ceiling", (0, 255, 0)),
    ("floor", (0, 0, 255)),
    ("wall", (0, 255, 255)),
    ("beam", (255, 255, 0)),
    ("column", (255, 0, 255)),
    ("window", (100, 100, 255)),
    ("door", (200, 200, 100)),
    ("table", (170, 120, 200)),
    ("chair", (255, 0, 0)),
    ("sofa", (200, 100, 100)),
    ("bookcase", (10, 200, 100)),
    ("board", (200, 200, 200)),
    ("clutter", (50, 50, 50)),
)

# SemanticKITTI, 19 learning classes (class k = learning id k + 1): `color_map` of semantic-kitti.yaml for the
# raw id that `learning_map_inv` names, converted from the yaml's BGR to RGB. Checked against the yaml in tests.
_SEMANTICKITTI19 = (
    ("car", (100, 150, 245)),
    ("bicycle", (100, 230, 245)),
    ("motorcycle", (30, 60, 150)),
    ("truck", (80, 30, 180)),
    ("other-vehicle", (0, 0, 255)),
    ("person", (255, 30, 30)),
    ("bicyclist", (255, 40, 200)),
    ("motorcyclist", (150, 30, 90)),
    ("road", (255, 0, 255)),
    ("parking", (255, 150, 255)),
    ("sidewalk", (75, 0, 75)),
    ("other-ground", (175, 0, 75)),
    ("building", (255, 200, 0)),
    ("fence", (255, 120, 50)),
    ("vegetation", (0, 175, 0)),
    ("trunk", (135, 60, 0)),
    ("terrain", (150, 240, 80)),
    ("pole", (255, 240, 150)),
    ("traffic-sign", (255, 0, 0)),
)


@dataclass(frozen=True)
class Palette:
    """Class names and their colours.

    name         palette name ("scannet", "s3dis", "semantickitti", "generated")
    class_names  K names, class k is label k
    colors       (K, 3) uint8 RGB
    """

    name: str
    class_names: Tuple[str, ...]
    colors: np.ndarray

    def __post_init__(self) -> None:
        colors = np.asarray(self.colors)
        if colors.shape != (len(self.class_names), 3):
            raise ValueError(
                f"palette {self.name!r}: colors must be ({len(self.class_names)}, 3) for "
                f"{len(self.class_names)} class names, got {colors.shape}"
            )
        object.__setattr__(self, "colors", colors.astype(np.uint8))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def colorize(self, label: np.ndarray) -> np.ndarray:
        """label (N,) int, -1 = ignored -> (N, 3) float32 RGB in [0, 1]; ignored points get IGNORE_COLOR."""
        label = np.asarray(label)
        if label.ndim != 1:
            raise ValueError(f"palette {self.name!r}: label must be (N,), got shape {label.shape}")
        bad = (label < -1) | (label >= self.num_classes)
        if bad.any():
            raise ValueError(
                f"palette {self.name!r} has {self.num_classes} classes but labels contain "
                f"{sorted(set(label[bad].tolist()))[:5]} (valid: -1 .. {self.num_classes - 1})"
            )
        table = np.concatenate([self.colors, np.asarray([IGNORE_COLOR], np.uint8)])  # index -1 -> last row
        return table[label].astype(np.float32) / 255.0


def _palette(name: str, entries: Sequence[Tuple[str, Tuple[int, int, int]]]) -> Palette:
    return Palette(name, tuple(n for n, _ in entries), np.asarray([c for _, c in entries], np.uint8))


SCANNET = _palette("scannet", _SCANNET20)
S3DIS = _palette("s3dis", _S3DIS13)
SEMANTICKITTI = _palette("semantickitti", _SEMANTICKITTI19)
PALETTES = {"scannet": SCANNET, "s3dis": S3DIS, "semantickitti": SEMANTICKITTI}


def generated_palette(num_classes: int, class_names: Optional[Sequence[str]] = None) -> Palette:
    """K well separated colours, chosen greedily: each next colour is the candidate farthest (in a luminance-
    weighted RGB distance) from those already chosen. Candidates are saturated hues at four brightness levels,
    none close to white, grey or the error layer's red. The same K always gives the same colours; up to 48
    classes, the first k colours of a larger palette are those of the smaller one. Names default to
    "class 0" .. "class K-1"."""
    if num_classes < 1:
        raise ValueError(f"generated_palette: num_classes must be >= 1, got {num_classes}")
    names = tuple(class_names) if class_names is not None else tuple(f"class {k}" for k in range(num_classes))
    if len(names) != num_classes:
        raise ValueError(f"generated_palette: {len(names)} class names for {num_classes} classes")
    hues = max(48, num_classes)
    levels = ((0.85, 0.92), (0.55, 0.80), (0.95, 0.55), (0.40, 0.95))  # (saturation, value)
    candidates = np.array(
        [colorsys.hsv_to_rgb(h / hues, sat, val) for sat, val in levels for h in range(hues)], np.float64
    )
    weight = np.sqrt(np.array([0.30, 0.59, 0.11]))
    # keep clear of the pure red that marks wrong points in the error layer
    candidates = candidates[np.linalg.norm((candidates - [1.0, 0.0, 0.0]) * weight, axis=1) > 0.2]
    scaled = candidates * weight
    # start at a soft blue: class 0 is often a large class (floor, road)
    first = int(np.argmin(np.linalg.norm(candidates - colorsys.hsv_to_rgb(0.58, 0.55, 0.80), axis=1)))
    chosen = [first]
    dist = np.linalg.norm(scaled - scaled[first], axis=1)
    for _ in range(1, num_classes):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(scaled - scaled[nxt], axis=1))
    colors = np.round(candidates[chosen] * 255).astype(np.uint8)
    return Palette("generated", names, colors)


def standard_palette_name(dataset: Optional[str]) -> Optional[str]:
    """"ScanNet_v2", "scannet", "s3dis", "semantic-kitti", "kitti", ... -> the PALETTES key, or None."""
    key = (dataset or "").lower().replace("_", "").replace("-", "")
    key = {"scannetv2": "scannet", "kitti": "semantickitti"}.get(key, key)
    return key if key in PALETTES else None


def get_palette(
    dataset: Optional[str] = None,
    num_classes: Optional[int] = None,
    class_names: Optional[Sequence[str]] = None,
) -> Palette:
    """The palette of `dataset` ("scannet", "s3dis", "semantickitti"); any other name or None gives a generated
    palette for `num_classes` (or len(class_names)) classes. Given class names replace the palette's names when
    the counts agree (a standard dataset with another count is an error)."""
    key = standard_palette_name(dataset)
    count = num_classes if num_classes is not None else (len(class_names) if class_names is not None else None)
    if key is not None:
        palette = PALETTES[key]
        if count is not None and count != palette.num_classes:
            raise ValueError(
                f"dataset {dataset!r} has {palette.num_classes} classes in its palette, but {count} were given"
            )
        if class_names is not None:
            palette = Palette(palette.name, tuple(class_names), palette.colors)
        return palette
    if count is None:
        raise ValueError(f"dataset {dataset!r} has no standard palette: give num_classes or class_names")
    return generated_palette(count, class_names)


def semantickitti_palette_from_yaml(path: Union[str, Path]) -> Palette:
    """The 19-class SemanticKITTI palette read from semantic-kitti.yaml (`labels`, `color_map` in BGR,
    `learning_map_inv`); learning id 0 (unlabeled) becomes label -1, learning id k >= 1 becomes class k - 1."""
    import yaml

    path = Path(path)
    with open(path) as f:
        cfg = yaml.safe_load(f)
    for key in ("labels", "color_map", "learning_map_inv"):
        if key not in cfg:
            raise ValueError(f"{path}: missing key {key!r} (is this semantic-kitti.yaml?)")
    inv = {int(k): int(v) for k, v in cfg["learning_map_inv"].items()}
    learning_ids = sorted(k for k in inv if k != 0)
    if learning_ids != list(range(1, len(learning_ids) + 1)):
        raise ValueError(f"{path}: learning_map_inv keys must be 0..K, got {sorted(inv)}")
    names, colors = [], []
    for k in learning_ids:
        raw = inv[k]
        if raw not in cfg["color_map"] or raw not in cfg["labels"]:
            raise ValueError(f"{path}: raw id {raw} (learning id {k}) has no entry in labels or color_map")
        b, g, r = cfg["color_map"][raw]
        names.append(str(cfg["labels"][raw]))
        colors.append((r, g, b))
    return Palette("semantickitti", tuple(names), np.asarray(colors, np.uint8))


def format_legend(palette: Palette, classes: Optional[Sequence[int]] = None, ansi: bool = False) -> str:
    """One line per class: index, a colour swatch (24-bit ANSI background when `ansi`, else the hex code) and
    the name. `classes` restricts the legend (e.g. to the classes present in a scene)."""
    indices = range(palette.num_classes) if classes is None else classes
    lines = []
    for k in indices:
        if not 0 <= k < palette.num_classes:
            raise ValueError(f"format_legend: class {k} not in palette {palette.name!r} (0..{palette.num_classes - 1})")
        r, g, b = (int(c) for c in palette.colors[k])
        swatch = f"\x1b[48;2;{r};{g};{b}m    \x1b[0m" if ansi else f"#{r:02x}{g:02x}{b:02x}"
        lines.append(f"{k:3d}  {swatch}  {palette.class_names[k]}")
    return "\n".join(lines)


def print_legend(palette: Palette, classes: Optional[Sequence[int]] = None, file: Optional[TextIO] = None) -> None:
    """Print `format_legend`, with ANSI colour swatches when the stream is a terminal."""
    stream = file if file is not None else sys.stdout
    isatty = getattr(stream, "isatty", None)
    print(f"palette: {palette.name}", file=stream)
    print(format_legend(palette, classes, ansi=bool(isatty and isatty())), file=stream)
