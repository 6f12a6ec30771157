"""Embedded synthetic 2D segmentation data: textured shapes of several classes on cluttered backgrounds.

Each foreground class has its own shape, hue and texture (table `SHAPE_CLASSES`); every instance varies in size,
position, rotation, colour (hue, saturation, brightness jitter) and texture scale, so one example of a class does
not show all of it. Backgrounds are low-saturation smooth noise with distractor blobs and lines of any colour,
plus pixel noise. Objects may occlude each other; the mask holds the visible object at each pixel.
Image i of a dataset depends only on (seed, i): the same seed gives the same images in any order.
"""
from __future__ import annotations

import colorsys
from typing import Dict, Optional, Sequence

import numpy as np

from pcseg.data2d.image import ImageSample, labels_from_mask

# (name, shape, hue, texture) of foreground classes 1..8
SHAPE_CLASSES = (
    ("disk", "disk", 0.00, "stripes0"),
    ("square", "square", 0.125, "checker"),
    ("triangle", "triangle", 0.25, "dots"),
    ("ring", "ring", 0.375, "stripes90"),
    ("cross", "cross", 0.50, "checker"),
    ("diamond", "diamond", 0.625, "stripes45"),
    ("ellipse", "ellipse", 0.75, "dots"),
    ("hexagon", "hexagon", 0.875, "stripes135"),
)


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside test of a unit-size shape in rotated object coordinates u, v (H, W)."""
    r = np.hypot(u, v)
    if shape == "disk":
        return r <= 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.82
    if shape == "triangle":
        return (v >= -0.5) & (np.sqrt(3) * u + v <= 1.0) & (-np.sqrt(3) * u + v <= 1.0)
    if shape == "ring":
        return (r <= 1.0) & (r >= 0.5)
    if shape == "cross":
        return ((np.abs(u) <= 0.34) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.34) & (np.abs(u) <= 1.0))
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "ellipse":
        return u ** 2 + (v / 0.55) ** 2 <= 1.0
    if shape == "hexagon":
        return (np.abs(v) <= np.sqrt(3) / 2) & (np.abs(u) + np.abs(v) / np.sqrt(3) <= 1.0)
    raise ValueError(f"unknown shape {shape!r}")


def _texture(texture: str, x: np.ndarray, y: np.ndarray, period: float) -> np.ndarray:
    """Binary pattern (H, W) float in {0, 1} over pixel coordinates x, y."""
    if texture.startswith("stripes"):
        angle = np.deg2rad(float(texture[len("stripes"):]))
        return (np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period) > 0).astype(np.float32)
    if texture == "checker":
        return ((np.floor(x / (period / 2)) + np.floor(y / (period / 2))) % 2).astype(np.float32)
    if texture == "dots":
        fx, fy = (x / period) % 1.0 - 0.5, (y / period) % 1.0 - 0.5
        return (np.hypot(fx, fy) < 0.3).astype(np.float32)
    raise ValueError(f"unknown texture {texture!r}")


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)), dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """(3, size, size) smooth colour noise: a (3, cells, cells) random grid upsampled bilinearly."""
    grid = rng.random((3, cells + 1, cells + 1)).astype(np.float32)
    t = np.linspace(0, cells, size, dtype=np.float32)
    i0 = np.minimum(t.astype(int), cells - 1)
    f = t - i0
    rows = grid[:, i0] * (1 - f)[None, :, None] + grid[:, i0 + 1] * f[None, :, None]
    return rows[:, :, i0] * (1 - f)[None, None, :] + rows[:, :, i0 + 1] * f[None, None, :]


class SyntheticShapes2D:
    """Deterministic synthetic dataset of ImageSamples (see the module docstring).

    num_images   images in the dataset
    size         images are (3, size, size)
    classes      foreground class ids (1..8) that may appear; None = all of 1..num_classes-1
    num_classes  classes including background (2..9); masks use ids 0..num_classes-1
    max_objects  1..max_objects objects per image
    clutter      number of distractors per image is drawn from 0..clutter
    seed         generator seed; image i depends only on (seed, i)
    min_pixels   a class counts in image_labels from this many visible pixels
    """

    def __init__(
        self,
        num_images: int = 200,
        size: int = 32,
        classes: Optional[Sequence[int]] = None,
        num_classes: int = len(SHAPE_CLASSES) + 1,
        max_objects: int = 3,
        clutter: int = 6,
        seed: int = 0,
        min_pixels: int = 12,
    ):
        if not 2 <= num_classes <= len(SHAPE_CLASSES) + 1:
            raise ValueError(f"num_classes must be in 2..{len(SHAPE_CLASSES) + 1}, got {num_classes}")
        self.classes = tuple(range(1, num_classes)) if classes is None else tuple(int(c) for c in classes)
        if not self.classes or any(not 1 <= c < num_classes for c in self.classes):
            raise ValueError(f"classes must be non-empty ids in 1..{num_classes - 1}, got {self.classes}")
        if num_images < 1 or size < 16 or max_objects < 1 or clutter < 0:
            raise ValueError("need num_images >= 1, size >= 16, max_objects >= 1, clutter >= 0")
        self.num_images, self.size, self.num_classes = num_images, size, num_classes
        self.max_objects, self.clutter, self.seed, self.min_pixels = max_objects, clutter, seed, min_pixels
        self.class_names = ("background",) + tuple(c[0] for c in SHAPE_CLASSES[: num_classes - 1])
        self._cache: Dict[int, ImageSample] = {}

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, i: int) -> ImageSample:
        if not 0 <= i < self.num_images:
            raise IndexError(f"image index {i} out of range for {self.num_images} images")
        if i not in self._cache:
            self._cache[i] = self._render(i)
        return self._cache[i]

    def _render(self, i: int) -> ImageSample:
        rng = np.random.default_rng([self.seed, i])
        n = self.size
        y, x = np.mgrid[0:n, 0:n].astype(np.float32)
        # background: low-saturation smooth noise around a random grey level
        grey = rng.uniform(0.3, 0.7)
        image = grey + 0.25 * (_smooth_noise(rng, n, int(rng.integers(2, 6))) - 0.5)
        for _ in range(int(rng.integers(0, self.clutter + 1))):
            colour = _hsv(rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.3, 1.0))[:, None]
            if rng.random() < 0.5:  # blob
                cx, cy, r = rng.uniform(0, n), rng.uniform(0, n), rng.uniform(0.04, 0.075) * n + 0.5
                inside = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
            else:  # line segment
                cx, cy, angle, length = rng.uniform(0, n), rng.uniform(0, n), rng.uniform(0, np.pi), rng.uniform(
                    0.15 * n, 0.5 * n)
                du, dv = x - cx, y - cy
                along = du * np.cos(angle) + dv * np.sin(angle)
                across = -du * np.sin(angle) + dv * np.cos(angle)
                inside = (np.abs(along) <= length / 2) & (np.abs(across) <= rng.uniform(0.5, 1.5))
            image[:, inside] = colour
        label = np.zeros((n, n), dtype=np.int64)
        for _ in range(int(rng.integers(1, self.max_objects + 1))):
            cls = self.classes[int(rng.integers(len(self.classes)))]
            _, shape, hue, texture = SHAPE_CLASSES[cls - 1]
            radius = rng.uniform(0.14, 0.28) * n
            cx, cy = rng.uniform(radius * 0.6, n - radius * 0.6, size=2)
            angle = rng.uniform(0, 2 * np.pi)
            du, dv = (x - cx) / radius, (y - cy) / radius
            u = du * np.cos(angle) + dv * np.sin(angle)
            v = -du * np.sin(angle) + dv * np.cos(angle)
            inside = _shape_mask(shape, u, v)
            base = _hsv(hue + rng.uniform(-0.05, 0.05), rng.uniform(0.4, 1.0), rng.uniform(0.5, 1.0))
            dark = base * rng.uniform(0.25, 0.65)
            pattern = _texture(texture, x, y, rng.uniform(0.09, 0.15) * n)
            colour = dark[:, None, None] + (base - dark)[:, None, None] * pattern[None]
            image[:, inside] = colour[:, inside]
            label[inside] = cls
        image = np.clip(image + rng.normal(0, 0.03, image.shape), 0.0, 1.0).astype(np.float32)
        image_labels = labels_from_mask(label, self.num_classes, self.min_pixels)
        # a class covering fewer than min_pixels stays in the mask but not in the image-level labels
        return ImageSample(image=image, label=label, image_labels=image_labels, image_id=f"synthetic2d_{self.seed}_{i}")
