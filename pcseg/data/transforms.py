"""Point-cloud augmentations: each is a callable `(scene, rng) -> scene`.

Every transform takes the random generator it may use (`numpy.random.Generator`), never global RNG state, and
returns a new `Scene` (inputs are not modified). Geometric transforms move `coord` and rotate `normal`;
`CropToBudget` subsets every per-point array, so `point_index` keeps mapping points to the scene as read.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from pcseg.data.scene import Scene

Transform = Callable[[Scene, np.random.Generator], Scene]


class Compose:
    """Apply transforms in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, scene: Scene, rng: np.random.Generator) -> Scene:
        for transform in self.transforms:
            scene = transform(scene, rng)
        return scene

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


def _center(coord: np.ndarray) -> np.ndarray:
    """(3,) centre of the bounding box of coord (N, 3), N > 0 (per column: axis-0 reductions of (N, 3) are slow)."""
    return np.array([(coord[:, k].min() + coord[:, k].max()) / 2 for k in range(3)], dtype=np.float64)


def _rotate_z(array: np.ndarray, angle: float, center: np.ndarray) -> np.ndarray:
    """Rotate (N, 3) vectors about the z axis through `center` (column arithmetic: numpy's (N, 3) @ (3, 3)
    matmul is an order of magnitude slower)."""
    c, s = math.cos(angle), math.sin(angle)
    x, y = array[:, 0] - center[0], array[:, 1] - center[1]
    out = np.empty_like(array)
    out[:, 0] = c * x - s * y + center[0]
    out[:, 1] = s * x + c * y + center[1]
    out[:, 2] = array[:, 2]
    return out


class RandomRotateZ:
    """Rotate about the z axis through the scene's centre by an angle drawn uniformly from `angle` (radians)."""

    def __init__(self, angle: Tuple[float, float] = (-math.pi, math.pi)) -> None:
        self.angle = angle

    def __call__(self, scene: Scene, rng: np.random.Generator) -> Scene:
        angle = rng.uniform(*self.angle)
        center = _center(scene.coord) if scene.num_points else np.zeros(3)
        coord = _rotate_z(scene.coord, angle, center).astype(np.float32)
        normal = None if scene.normal is None else _rotate_z(scene.normal, angle, np.zeros(3)).astype(np.float32)
        return scene.replace(coord=coord, normal=normal)

    def __repr__(self) -> str:
        return f"RandomRotateZ(angle={self.angle})"


class RandomScale:
    """Scale coordinates by a factor drawn from [low, high] (one per axis when `anisotropic`)."""

    def __init__(self, low: float = 0.9, high: float = 1.1, anisotropic: bool = False) -> None:
        if not 0 < low <= high:
            raise ValueError(f"RandomScale: need 0 < low <= high, got low={low}, high={high}")
        self.low, self.high, self.anisotropic = low, high, anisotropic

    def __call__(self, scene: Scene, rng: np.random.Generator) -> Scene:
        factor = rng.uniform(self.low, self.high, size=3 if self.anisotropic else 1).astype(np.float32)
        normal = scene.normal
        if normal is not None and self.anisotropic:  # normals transform with the inverse scale
            normal = normal / factor
            normal = (normal / np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        return scene.replace(coord=(scene.coord * factor).astype(np.float32), normal=normal)

    def __repr__(self) -> str:
        return f"RandomScale(low={self.low}, high={self.high}, anisotropic={self.anisotropic})"


class RandomFlip:
    """Mirror x and y independently, each with probability `p` (about the scene's centre)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, scene: Scene, rng: np.random.Generator) -> Scene:
        flip = rng.random(2) < self.p
        if not flip.any() or scene.num_points == 0:
            return scene
        center = _center(scene.coord)
        coord = scene.coord.copy()
        normal = None if scene.normal is None else scene.normal.copy()
        for axis in np.flatnonzero(flip):
            coord[:, axis] = 2 * center[axis] - scene.coord[:, axis]
            if normal is not None:
                normal[:, axis] = -scene.normal[:, axis]
        return scene.replace(coord=coord, normal=normal)

    def __repr__(self) -> str:
        return f"RandomFlip(p={self.p})"


class RandomJitter:
    """Add Gaussian noise (std `sigma` metres, clipped to +-`clip`) to every coordinate."""

    def __init__(self, sigma: float = 0.005, clip: float = 0.02) -> None:
        self.sigma, self.clip = sigma, clip

    def __call__(self, scene: Scene, rng: np.random.Generator) -> Scene:
        noise = rng.standard_normal(scene.coord.shape, dtype=np.float32) * np.float32(self.sigma)
        np.clip(noise, -self.clip, self.clip, out=noise)
        return scene.replace(coord=(scene.coord + noise).astype(np.float32))

    def __repr__(self) -> str:
        return f"RandomJitter(sigma={self.sigma}, clip={self.clip})"


def _blur_axis(grid: np.ndarray, axis: int) -> np.ndarray:
    """Box blur of width 3 along one axis (edges replicated)."""
    padded = np.concatenate([np.take(grid, [0], axis), grid, np.take(grid, [-1], axis)], axis=axis)
    n = grid.shape[axis]
    return (np.take(padded, range(0, n), axis) + np.take(padded, range(1, n + 1), axis)
            + np.take(padded, range(2, n + 2), axis)) / 3.0


def _trilinear(grid: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Sample grid (X, Y, Z, C) at fractional positions pos (N, 3) in grid units -> (N, C)."""
    upper = np.array(grid.shape[:3]) - 1
    pos = np.clip(pos, 0, upper - 1e-6)
    base = np.floor(pos).astype(np.int64)
    frac = pos - base
    out = np.zeros((len(pos), grid.shape[3]), dtype=np.float64)
    for dx in (0, 1):
        wx = frac[:, 0] if dx else 1 - frac[:, 0]
        for dy in (0, 1):
            wy = frac[:, 1] if dy else 1 - frac[:, 1]
            for dz in (0, 1):
                wz = frac[:, 2] if dz else 1 - frac[:, 2]
                idx = np.minimum(base + np.array([dx, dy, dz]), upper)
                out += (wx * wy * wz)[:, None] * grid[idx[:, 0], idx[:, 1], idx[:, 2]]
    return out


class ElasticDistortion:
    """Smooth random displacement fields: for each (granularity, magnitude) pair, Gaussian noise on a grid of
    `granularity` metres is box-blurred three times and interpolated at every point, then scaled by `magnitude`."""

    def __init__(self, params: Sequence[Tuple[float, float]] = ((0.2, 0.4), (0.8, 1.6)), p: float = 0.95) -> None:
        self.params = tuple(tuple(x) for x in params)
        self.p = p

    def __call__(self, scene: Scene, rng: np.random.Generator) -> Scene:
        if rng.random() >= self.p or scene.num_points == 0:
            return scene
        coord = scene.coord.astype(np.float64)
        lo = coord.min(0)
        for granularity, magnitude in self.params:
            shape = tuple((np.ceil((coord.max(0) - lo) / granularity).astype(np.int64) + 3).tolist())
            noise = rng.standard_normal(shape + (3,))
            for _ in range(3):
                for axis in range(3):
                    noise = _blur_axis(noise, axis)
            coord = coord + _trilinear(noise, (coord - lo) / granularity + 1) * magnitude * granularity
        return scene.replace(coord=coord.astype(np.float32))

    def __repr__(self) -> str:
        return f"ElasticDistortion(params={self.params}, p={self.p})"


class ChromaticAutoContrast:
    """With probability `p`, blend colours towards their per-channel min-max stretched version
    (blend factor uniform in [0, 1) unless `blend_factor` is given)."""

    def __init__(self, p: float = 0.2, blend_factor: Optional[float] = None) -> None:
        self.p, self.blend_factor = p, blend_factor

    def __call__(self, scene: Scene, rng: np.random.Generator) -> Scene:
        if rng.random() >= self.p or scene.num_points == 0:
            return scene
        lo = np.array([scene.color[:, k].min() for k in range(3)], dtype=np.float32)
        hi = np.array([scene.color[:, k].max() for k in range(3)], dtype=np.float32)
        stretched = (scene.color - lo) / np.maximum(hi - lo, 1e-6)
        blend = rng.random() if self.blend_factor is None else self.blend_factor
        color = (1 - blend) * scene.color + blend * stretched
        return scene.replace(color=np.clip(color, 0, 1).astype(np.float32))

    def __repr__(self) -> str:
        return f"ChromaticAutoContrast(p={self.p}, blend_factor={self.blend_factor})"


class ChromaticTranslation:
    """With probability `p`, shift all colours by one offset per channel drawn from [-ratio, ratio]."""

    def __init__(self, p: float = 0.95, ratio: float = 0.05) -> None:
        self.p, self.ratio = p, ratio

    def __call__(self, scene: Scene, rng: np.random.Generator) -> Scene:
        if rng.random() >= self.p:
            return scene
        shift = rng.uniform(-self.ratio, self.ratio, 3)
        return scene.replace(color=np.clip(scene.color + shift, 0, 1).astype(np.float32))

    def __repr__(self) -> str:
        return f"ChromaticTranslation(p={self.p}, ratio={self.ratio})"


class ChromaticJitter:
    """With probability `p`, add per-point Gaussian colour noise of std `std` (colours in [0, 1])."""

    def __init__(self, p: float = 0.95, std: float = 0.02) -> None:
        self.p, self.std = p, std

    def __call__(self, scene: Scene, rng: np.random.Generator) -> Scene:
        if rng.random() >= self.p:
            return scene
        noise = rng.standard_normal(scene.color.shape, dtype=np.float32) * np.float32(self.std)
        return scene.replace(color=np.clip(scene.color + noise, 0, 1).astype(np.float32))

    def __repr__(self) -> str:
        return f"ChromaticJitter(p={self.p}, std={self.std})"


class CropToBudget:
    """Keep at most `max_points` points: the ones nearest (in xy, or xyz with `use_z`) to a random point of the
    scene. Scenes within the budget pass unchanged. `point_index` keeps the mapping to the original points."""

    def __init__(self, max_points: int, use_z: bool = False) -> None:
        if max_points <= 0:
            raise ValueError(f"CropToBudget: max_points must be positive, got {max_points}")
        self.max_points, self.use_z = max_points, use_z

    def __call__(self, scene: Scene, rng: np.random.Generator) -> Scene:
        if scene.num_points <= self.max_points:
            return scene
        dims = 3 if self.use_z else 2
        center = scene.coord[rng.integers(scene.num_points)]
        dist2 = sum((scene.coord[:, k] - center[k]) ** 2 for k in range(dims))
        keep = np.sort(np.argpartition(dist2, self.max_points - 1)[: self.max_points])
        return scene.subset(keep)

    def __repr__(self) -> str:
        return f"CropToBudget(max_points={self.max_points}, use_z={self.use_z})"


def default_transforms(kind: str = "indoor", max_points: Optional[int] = None, elastic: bool = False) -> Compose:
    """Standard training augmentations: `kind` "indoor" (rotation, scale, flip, jitter, colour) or "outdoor"
    (rotation, scale, flip, jitter); optional elastic distortion and a crop to `max_points`."""
    if kind not in ("indoor", "outdoor"):
        raise ValueError(f"default_transforms: kind must be 'indoor' or 'outdoor', got {kind!r}")
    steps: list = [RandomRotateZ(), RandomScale(0.9, 1.1), RandomFlip(0.5), RandomJitter(0.005, 0.02)]
    if elastic:
        steps.append(ElasticDistortion())
    if kind == "indoor":
        steps += [ChromaticAutoContrast(0.2), ChromaticTranslation(0.95, 0.05), ChromaticJitter(0.95, 0.02)]
    if max_points is not None:
        steps.append(CropToBudget(max_points))
    return Compose(steps)
