"""What a scene looks like in each visualization layer: per-point colours plus the points to draw as markers.

Layers: "color" (sensor colour), "gt", "pred", "error" (wrong points red, correct grey), "labeled" (points of a
label budget in their class colour), "picked" (points chosen by active learning), "uncertainty" (heat map).
The window, the offscreen renderer and the PLY export all colour points through `SceneLayers.colors`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .palettes import Palette, get_palette, standard_palette_name

LAYERS = ("color", "gt", "pred", "error", "labeled", "picked", "uncertainty")
LAYER_TITLES = {
    "color": "colour",
    "gt": "ground truth",
    "pred": "prediction",
    "error": "errors",
    "labeled": "labeled points",
    "picked": "active-learning picks",
    "uncertainty": "uncertainty",
}
ERROR_COLOR = (1.0, 0.0, 0.0)  # wrong prediction
CORRECT_COLOR = (0.62, 0.62, 0.62)  # right prediction
IGNORED_COLOR = (0.85, 0.85, 0.85)  # no ground truth: neither right nor wrong
DIM_COLOR = (0.80, 0.80, 0.80)  # background points of the "labeled" and "picked" layers
PICK_COLOR = (1.0, 0.45, 0.0)  # active-learning picks


def heat_colors(value: np.ndarray) -> np.ndarray:
    """value (N,) float in [0, 1] -> (N, 3) float32 RGB on a blue -> cyan -> yellow -> red ramp."""
    stops = np.asarray([[0.05, 0.15, 0.6], [0.0, 0.75, 0.9], [1.0, 0.9, 0.1], [0.85, 0.05, 0.05]], np.float32)
    x = np.clip(np.asarray(value, np.float32), 0.0, 1.0) * (len(stops) - 1)
    lo = np.minimum(np.floor(x).astype(np.int64), len(stops) - 2)
    frac = (x - lo)[:, None]
    return (stops[lo] * (1.0 - frac) + stops[lo + 1] * frac).astype(np.float32)


def _as_mask(indices: Optional[np.ndarray], n: int, name: str) -> Optional[np.ndarray]:
    """(K,) point indices or an (N,) bool mask -> (N,) bool mask."""
    if indices is None:
        return None
    arr = np.asarray(indices)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ValueError(f"{name}: a boolean mask must have shape ({n},), got {arr.shape}")
        return arr
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: expected (K,) integer point indices or an ({n},) bool mask, "
                         f"got {arr.dtype} {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"{name}: point indices must lie in [0, {n}), got range [{arr.min()}, {arr.max()}]")
    mask = np.zeros(n, bool)
    mask[arr] = True
    return mask


@dataclass
class SceneLayers:
    """A scene plus everything that can be shown on it.

    coord       (N, 3) float32
    color       (N, 3) float32 in [0, 1] or None
    label       (N,) int64 ground truth, -1 = ignored, or None
    pred        (N,) int64 prediction or None
    uncertainty (N,) float32 (higher = less certain) or None; shown normalised to its own range
    labeled     (N,) bool: points of a label budget, or None
    picked      (N,) bool: points chosen by active learning, or None
    palette     class colours
    """

    coord: np.ndarray
    palette: Palette
    color: Optional[np.ndarray] = None
    label: Optional[np.ndarray] = None
    pred: Optional[np.ndarray] = None
    uncertainty: Optional[np.ndarray] = None
    labeled: Optional[np.ndarray] = None
    picked: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.coord = np.asarray(self.coord, np.float32)
        if self.coord.ndim != 2 or self.coord.shape[1] != 3 or len(self.coord) == 0:
            raise ValueError(f"coord must be (N, 3) with N >= 1, got {self.coord.shape}")
        if not np.isfinite(self.coord).all():
            raise ValueError("coord contains NaN or infinite values")
        n = len(self.coord)
        shapes = {"color": (n, 3), "label": (n,), "pred": (n,), "uncertainty": (n,)}
        for name, shape in shapes.items():
            value = getattr(self, name)
            if value is not None and np.shape(value) != shape:
                raise ValueError(f"{name} must have shape {shape} for {n} points, got {np.shape(value)}")
        if self.color is not None:
            self.color = np.clip(np.asarray(self.color, np.float32), 0.0, 1.0)
        for name in ("label", "pred"):
            if getattr(self, name) is not None:
                setattr(self, name, np.asarray(getattr(self, name)).astype(np.int64))
        if self.uncertainty is not None:
            self.uncertainty = np.asarray(self.uncertainty, np.float32)
        self.labeled = _as_mask(self.labeled, n, "labeled")
        self.picked = _as_mask(self.picked, n, "picked")

    @classmethod
    def from_scene(
        cls,
        scene,
        *,
        pred: Optional[np.ndarray] = None,
        uncertainty: Optional[np.ndarray] = None,
        labeled: Optional[np.ndarray] = None,
        picked: Optional[np.ndarray] = None,
        palette: Optional[Palette] = None,
        dataset: Optional[str] = None,
    ) -> "SceneLayers":
        """From a `pcseg.data.Scene` (or anything with coord/color/label). Without `palette`: the standard palette
        of `dataset`, else a generated one sized by the largest class in label and pred."""
        label = np.asarray(scene.label) if getattr(scene, "label", None) is not None else None
        if palette is None:
            if standard_palette_name(dataset):
                palette = get_palette(dataset)
            else:
                top = max([int(np.max(a)) for a in (label, pred) if a is not None and np.size(a)] + [0])
                palette = get_palette(None, top + 1)
        return cls(
            coord=scene.coord, palette=palette, color=getattr(scene, "color", None), label=label, pred=pred,
            uncertainty=uncertainty, labeled=labeled, picked=picked,
        )

    @property
    def num_points(self) -> int:
        return len(self.coord)

    def available(self) -> Tuple[str, ...]:
        """The layers this data can show, in LAYERS order."""
        need = {
            "color": self.color is not None,
            "gt": self.label is not None,
            "pred": self.pred is not None,
            "error": self.label is not None and self.pred is not None,
            "labeled": self.labeled is not None,
            "picked": self.picked is not None,
            "uncertainty": self.uncertainty is not None,
        }
        return tuple(name for name in LAYERS if need[name])

    def visible(self, hide_above: Optional[float] = None, hide_classes: Sequence[Union[int, str]] = ()) -> np.ndarray:
        """(N,) bool: the points to draw. Hides points with z above `hide_above` and points whose ground truth
        (or, without ground truth, prediction) is one of `hide_classes` (class indices or palette names), e.g. a
        ceiling that would cover a room seen from above."""
        keep = np.ones(self.num_points, bool)
        if hide_above is not None:
            keep &= self.coord[:, 2] <= hide_above
        if hide_classes:
            names = self.palette.class_names
            index = []
            for c in hide_classes:
                if isinstance(c, str) and not c.lstrip("-").isdigit():
                    if c not in names:
                        raise ValueError(f"hide_classes: {c!r} is not a class of palette {self.palette.name!r} "
                                         f"({', '.join(names)})")
                    index.append(names.index(c))
                else:
                    index.append(int(c))
            by = self.label if self.label is not None else self.pred
            if by is None:
                raise ValueError("hide_classes needs labels or predictions")
            keep &= ~np.isin(by, index)
        if not keep.any():
            raise ValueError(f"hide_above={hide_above} / hide_classes={list(hide_classes)} hide every point")
        return keep

    def colors(self, layer: str) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """layer name -> (colors (N, 3) float32 in [0, 1], markers (N,) bool or None).

        Markers are points the renderers draw enlarged so that a few dozen labeled or picked points stay visible.
        """
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}; choose from {', '.join(LAYERS)}")
        if layer not in self.available():
            missing = {"color": "colours", "gt": "labels", "pred": "predictions", "error": "labels and predictions",
                       "labeled": "a label budget", "picked": "active-learning picks",
                       "uncertainty": "uncertainty values"}[layer]
            raise ValueError(f"layer {layer!r} needs {missing}, which this scene does not have")
        n = self.num_points
        if layer == "color":
            return self.color, None
        if layer == "gt":
            return self.palette.colorize(self.label), None
        if layer == "pred":
            return self.palette.colorize(self.pred), None
        if layer == "error":
            out = np.empty((n, 3), np.float32)
            out[:] = CORRECT_COLOR
            out[self.pred != self.label] = ERROR_COLOR
            out[self.label < 0] = IGNORED_COLOR
            return out, None
        if layer == "uncertainty":
            u = self.uncertainty
            span = float(u.max() - u.min())
            return heat_colors((u - u.min()) / span if span > 0 else np.zeros(n, np.float32)), None
        mask = self.labeled if layer == "labeled" else self.picked
        out = np.empty((n, 3), np.float32)
        out[:] = DIM_COLOR
        if layer == "labeled" and self.label is not None:
            out[mask] = self.palette.colorize(np.where(mask, self.label, -1))[mask]
        else:
            out[mask] = PICK_COLOR
        return out, mask
