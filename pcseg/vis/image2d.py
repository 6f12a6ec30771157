"""The 2D branch's picture: image | CAM heat map | pseudo mask | prediction (| ground truth) side by side, as PNG.

numpy and Pillow only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from .layers import heat_colors
from .palettes import Palette, get_palette
from .render import compose, write_png


def _image_u8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) or (H, W) float in [0, 1] or uint8 -> (H, W, 3) uint8."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) or (H, W), got {image.shape} (channels-first? transpose it)")
    if image.dtype == np.uint8:
        return image
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image must be float in [0, 1] or uint8, got {image.dtype}")
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def cam_overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a class activation map over the image.

    image (H, W, 3); cam (h, w) float, any range (min-max normalised; bilinearly resized to H x W) -> (H, W, 3) uint8.
    """
    from PIL import Image

    image = _image_u8(image)
    cam = np.asarray(cam, np.float32)
    if cam.ndim != 2:
        raise ValueError(f"cam must be (h, w) (pick one class of a (K, h, w) map), got {cam.shape}")
    span = float(cam.max() - cam.min())
    cam = (cam - cam.min()) / span if span > 0 else np.zeros_like(cam)
    h, w = image.shape[:2]
    if cam.shape != (h, w):
        cam = np.asarray(Image.fromarray(cam).resize((w, h), Image.BILINEAR))
    heat = heat_colors(cam.reshape(-1)).reshape(h, w, 3) * 255
    return np.round((1 - alpha) * image + alpha * heat).astype(np.uint8)


def mask_colors(mask: np.ndarray, palette: Palette) -> np.ndarray:
    """mask (H, W) int class indices, -1 = ignored -> (H, W, 3) uint8 palette colours (ignored: IGNORE_COLOR)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got {mask.shape}")
    rgb = palette.colorize(mask.reshape(-1).astype(np.int64))
    return np.round(rgb * 255).astype(np.uint8).reshape(*mask.shape, 3)


def render_panel_2d(
    image: np.ndarray,
    *,
    cam: Optional[np.ndarray] = None,
    pseudo_mask: Optional[np.ndarray] = None,
    pred: Optional[np.ndarray] = None,
    label: Optional[np.ndarray] = None,
    palette: Optional[Palette] = None,
    num_classes: Optional[int] = None,
    legend: bool = True,
) -> np.ndarray:
    """image | CAM | pseudo mask | prediction | ground truth (the ones given, in that order) -> (H', W', 3) uint8.

    image (H, W, 3) float in [0, 1] or uint8; cam (h, w) float; pseudo_mask, pred, label (H, W) int with -1 =
    ignored. Without `palette`, a generated one for `num_classes` (default: largest class in the masks + 1).
    """
    image = _image_u8(image)
    h, w = image.shape[:2]
    masks = {"pseudo mask": pseudo_mask, "prediction": pred, "ground truth": label}
    for name, mask in masks.items():
        if mask is not None and np.shape(mask) != (h, w):
            raise ValueError(f"{name} must have the image's shape ({h}, {w}), got {np.shape(mask)}")
    if palette is None:
        if num_classes is None:
            num_classes = max([int(np.max(m)) for m in masks.values() if m is not None and np.size(m)] + [0]) + 1
        palette = get_palette(None, num_classes)
    panels, titles = [image], ["image"]
    if cam is not None:
        panels.append(cam_overlay(image, cam))
        titles.append("CAM")
    present = set()
    for name, mask in masks.items():
        if mask is not None:
            panels.append(mask_colors(mask, palette))
            titles.append(name)
            present.update(int(k) for k in np.unique(mask) if k >= 0)
    entries = [(palette.class_names[k], tuple(int(c) for c in palette.colors[k])) for k in sorted(present)]
    return compose(np.stack(panels)[None], [""], titles, entries if legend else ())


def save_panel_2d(path: Union[str, Path], image: np.ndarray, **kwargs) -> Path:
    """`render_panel_2d(image, **kwargs)` written atomically as a PNG; returns the path."""
    return write_png(path, render_panel_2d(image, **kwargs))
