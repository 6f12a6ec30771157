"""Procedural street scenes swept by a simulated spinning lidar, with a calibrated camera image of the same scene
(numpy only, deterministic by seed).

A straight road with sidewalks (raised 15 cm), terrain, building blocks, parked and driving cars, poles, trees
(trunk + crown) and bushes are built from boxes, vertical cylinders and ellipsoids. The lidar casts one ray per
beam (elevations spread like a 64-beam sensor) and azimuth step and keeps the nearest hit within range, with range
noise, foliage scatter and dropouts; remission depends on material and incidence. The front camera renders the
same primitives by casting one ray per pixel (Lambert shading, per-object colour, noise). Coordinates are in the
lidar frame (x forward, y left, z up; the ground lies about 1.73 m below the sensor).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from pcseg.data.camera import Camera
from pcseg.data.scene import Scene

OUTDOOR_CLASSES: Tuple[str, ...] = (
    "road", "sidewalk", "terrain", "building", "car", "pole", "trunk", "vegetation",
)
ROAD, SIDEWALK, TERRAIN, BUILDING, CAR, POLE, TRUNK, VEGETATION = range(len(OUTDOOR_CLASSES))

SENSOR_HEIGHT = 1.73
REFLECTIVITY = np.array([0.12, 0.28, 0.32, 0.35, 0.55, 0.45, 0.30, 0.40])
_SUN = np.array([0.4, 0.3, 0.85]) / np.linalg.norm([0.4, 0.3, 0.85])
_SKY = np.array([0.62, 0.74, 0.90])


@dataclass
class _World:
    """Primitives in world coordinates (ground z = 0)."""

    road_half: float
    boxes: List[tuple] = field(default_factory=list)      # (center (3,), half (3,), yaw, label, color (3,))
    cylinders: List[tuple] = field(default_factory=list)  # (base (3,), radius, height, label, color)
    ellipsoids: List[tuple] = field(default_factory=list)  # (center (3,), radii (3,), label, color)
    ground_colors: Tuple[np.ndarray, np.ndarray] = (np.array([0.25, 0.25, 0.26]), np.array([0.36, 0.42, 0.22]))


def _build_world(rng: np.random.Generator) -> _World:
    road_half = rng.uniform(3.0, 5.0)
    world = _World(road_half, ground_colors=(np.full(3, rng.uniform(0.2, 0.3)),
                                             np.array([0.36, 0.42, 0.22]) + rng.normal(0, 0.03, 3)))
    extent = 70.0
    side_width = [rng.uniform(1.8, 4.0), rng.uniform(1.8, 4.0)]
    for side in (-1, 1):
        width = side_width[(side + 1) // 2]
        y0 = side * (road_half + width / 2)
        world.boxes.append((np.array([0.0, y0, 0.075]), np.array([extent, width / 2, 0.075]), 0.0, SIDEWALK,
                            np.full(3, rng.uniform(0.55, 0.7))))
        edge = road_half + width
        # buildings: a row of blocks with gaps, behind a strip of terrain
        x = -extent + rng.uniform(0, 10)
        while x < extent:
            length = rng.uniform(8, 25)
            if rng.random() < 0.8:
                depth, height = rng.uniform(8, 15), rng.uniform(5, 20)
                setback = rng.uniform(1.0, 8.0)
                center = np.array([x + length / 2, side * (edge + setback + depth / 2), height / 2])
                color = np.clip(np.array([[0.55, 0.32, 0.25], [0.78, 0.72, 0.6], [0.6, 0.6, 0.62],
                                          [0.85, 0.85, 0.8]])[rng.integers(4)] + rng.normal(0, 0.04, 3), 0, 1)
                world.boxes.append((center, np.array([length / 2, depth / 2, height / 2]), 0.0, BUILDING, color))
            x += length + rng.uniform(1, 8)
        # poles along the kerb
        x = -extent + rng.uniform(0, 15)
        while x < extent:
            world.cylinders.append((np.array([x, side * (road_half + 0.4), 0.15]), rng.uniform(0.08, 0.15),
                                    rng.uniform(4, 8), POLE, np.full(3, rng.uniform(0.4, 0.6))))
            x += rng.uniform(10, 25)
        # trees on the sidewalk or terrain, bushes on terrain
        x = -extent + rng.uniform(0, 10)
        while x < extent:
            y = side * (road_half + rng.uniform(0.6, width - 0.3) if rng.random() < 0.6
                        else edge + rng.uniform(0.5, 1.5))
            trunk_h, radius = rng.uniform(2, 4), rng.uniform(0.15, 0.3)
            world.cylinders.append((np.array([x, y, 0.0]), radius, trunk_h + 0.5, TRUNK,
                                    np.array([0.35, 0.25, 0.15]) + rng.normal(0, 0.03, 3)))
            crown = rng.uniform(1.5, 3.0)
            world.ellipsoids.append((np.array([x, y, trunk_h + crown * 0.8]), np.array([crown, crown, crown * 0.9]),
                                     VEGETATION, np.array([0.2, 0.45, 0.15]) + rng.normal(0, 0.04, 3)))
            x += rng.uniform(6, 20)
        for _ in range(int(rng.integers(2, 8))):
            r = rng.uniform(0.5, 1.2)
            world.ellipsoids.append((np.array([rng.uniform(-extent, extent), side * (edge + rng.uniform(0.5, 1.5)),
                                               0.3]), np.array([r, r, r * 0.7]), VEGETATION,
                                     np.array([0.22, 0.5, 0.18]) + rng.normal(0, 0.04, 3)))
    # cars: parked along the kerbs and driving in the lanes
    for _ in range(int(rng.integers(4, 14))):
        lane = rng.choice([-1, 1])
        parked = rng.random() < 0.6
        y = lane * (road_half - 1.1 if parked else road_half / 2 - 0.3) + rng.normal(0, 0.1)
        x = rng.uniform(-50, 50)
        if abs(x) < 5 and abs(y) < 2:  # not on top of the sensor vehicle
            continue
        _car(world, np.array([x, y]), rng.normal(0, 0.05) + (0 if lane > 0 else math.pi), rng)
    return world


def _car(world: _World, xy: np.ndarray, yaw: float, rng: np.random.Generator) -> None:
    length, width = rng.uniform(3.9, 4.8), rng.uniform(1.7, 1.9)
    paint = np.clip(np.array([[0.7, 0.1, 0.1], [0.1, 0.15, 0.5], [0.85, 0.85, 0.85], [0.1, 0.1, 0.1],
                              [0.5, 0.5, 0.52]])[rng.integers(5)] + rng.normal(0, 0.04, 3), 0, 1)
    c, s = math.cos(yaw), math.sin(yaw)

    def at(dx: float, dy: float, z: float) -> np.ndarray:
        return np.array([xy[0] + c * dx - s * dy, xy[1] + s * dx + c * dy, z])

    world.boxes.append((at(0, 0, 0.65), np.array([length / 2, width / 2, 0.35]), yaw, CAR, paint))
    cabin = length * rng.uniform(0.45, 0.6)
    world.boxes.append((at(-0.1 * length, 0, 1.25), np.array([cabin / 2, width / 2 - 0.08, 0.25]), yaw, CAR,
                        paint * 0.6))
    for dx in (-length / 2 + 0.7, length / 2 - 0.7):
        for dy in (-width / 2 + 0.15, width / 2 - 0.15):
            world.boxes.append((at(dx, dy, 0.3), np.array([0.32, 0.12, 0.3]), yaw, CAR, np.full(3, 0.08)))


def _candidates(origin: np.ndarray, dirs: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    """Indices of the rays (unit dirs (R, 3)) that can reach a bounding sphere (center, radius)."""
    offset = center - origin
    dist = float(np.linalg.norm(offset))
    if dist <= radius:
        return np.arange(len(dirs))
    return np.flatnonzero(dirs @ (offset / dist) >= math.sqrt(1 - (radius / dist) ** 2))


def _cast(world: _World, origin: np.ndarray, dirs: np.ndarray, max_range: float
          ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit of rays origin (3,) + t * dirs (R, 3) (unit) -> t (R,) (inf = none), label (R,),
    normal (R, 3), color (R, 3). Each primitive is tested only against the rays that reach its bounding sphere."""
    r = len(dirs)
    best = np.full(r, np.inf)
    label = np.full(r, -1, dtype=np.int64)
    normal = np.zeros((r, 3))
    color = np.zeros((r, 3))

    def take(idx: np.ndarray, t: np.ndarray, lab, nrm: np.ndarray, col) -> None:
        better = t < best[idx]
        sel = idx[better]
        best[sel] = t[better]
        label[sel] = lab if np.isscalar(lab) else lab[better]
        normal[sel] = nrm[better] if nrm.ndim == 2 else nrm
        color[sel] = col[better] if np.ndim(col) == 2 else col

    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(dirs[:, 2] < -1e-9, -origin[2] / dirs[:, 2], np.inf)
        is_road = np.abs(origin[1] + t * dirs[:, 1]) < world.road_half
        take(np.arange(r), np.where(t > 0, t, np.inf), np.where(is_road, ROAD, TERRAIN), np.array([0.0, 0.0, 1.0]),
             np.where(is_road[:, None], world.ground_colors[0], world.ground_colors[1]))
        for center, half, yaw, lab, col in world.boxes:
            idx = _candidates(origin, dirs, center, float(np.linalg.norm(half)))
            if len(idx) == 0:
                continue
            c, s = math.cos(-yaw), math.sin(-yaw)
            rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
            o = rot @ (origin - center)
            d = dirs[idx] @ rot.T
            d = np.where(np.abs(d) < 1e-12, 1e-12, d)
            t0, t1 = (-half - o) / d, (half - o) / d
            lo, hi = np.minimum(t0, t1), np.maximum(t0, t1)
            tmin, tmax = lo.max(1), hi.min(1)
            hit = (tmin <= tmax) & (tmin > 0)
            if not hit.any():
                continue
            rows = np.arange(len(idx))
            axis = lo.argmax(1)
            local = np.zeros((len(idx), 3))
            local[rows, axis] = -np.sign(d[rows, axis])
            take(idx, np.where(hit, tmin, np.inf), lab, local @ rot, col)
        for base, radius, height, lab, col in world.cylinders:
            idx = _candidates(origin, dirs, base + np.array([0, 0, height / 2]), math.hypot(radius, height / 2))
            if len(idx) == 0:
                continue
            d = dirs[idx]
            o = origin[:2] - base[:2]
            a = (d[:, :2] ** 2).sum(1)
            b = 2 * d[:, :2] @ o
            disc = b * b - 4 * a * (o @ o - radius * radius)
            tc = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * np.maximum(a, 1e-12))
            z = origin[2] + tc * d[:, 2]
            hit = (disc > 0) & (tc > 0) & (z >= base[2]) & (z <= base[2] + height)
            if not hit.any():
                continue
            p = origin[:2] + tc[:, None] * d[:, :2] - base[:2]
            take(idx, np.where(hit, tc, np.inf), lab, np.concatenate([p / radius, np.zeros((len(idx), 1))], 1), col)
        for center, radii, lab, col in world.ellipsoids:
            idx = _candidates(origin, dirs, center, float(radii.max()))
            if len(idx) == 0:
                continue
            o = (origin - center) / radii
            d = dirs[idx] / radii
            a = (d * d).sum(1)
            b = 2 * d @ o
            disc = b * b - 4 * a * (o @ o - 1)
            te = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
            hit = (disc > 0) & (te > 0)
            if not hit.any():
                continue
            nrm = (origin + te[:, None] * dirs[idx] - center) / radii ** 2
            nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
            take(idx, np.where(hit, te, np.inf), lab, nrm, col)
    best[best > max_range] = np.inf
    return best, label, normal, color


def beam_elevations(beams: int) -> np.ndarray:
    """(beams,) elevation angles in radians, +2 deg down to -24.8 deg (the span of a 64-beam sensor)."""
    return np.deg2rad(np.linspace(2.0, -24.8, beams))


def generate_outdoor_scene(seed: int | Sequence[int], beams: int = 32, azimuth_steps: int = 1024,
                           image_size: Tuple[int, int] = (384, 128), max_range: float = 70.0,
                           scene_id: Optional[str] = None) -> Scene:
    """One street scene: lidar sweep + front camera.

    Returns a Scene in the lidar frame with coord, label (OUTDOOR_CLASSES indices), strength (N, 1) remission,
    normal, colour zeros (the lidar has none), and extras["cameras"] = [Camera("cam_front", image (H, W, 3)
    uint8, K (3, 3), lidar2cam (4, 4))]; about beams * azimuth_steps * 0.8 points.
    """
    rng = np.random.default_rng(seed)
    world = _build_world(rng)
    sensor = np.array([0.0, rng.uniform(-world.road_half / 2, world.road_half / 2) * 0.5, SENSOR_HEIGHT])
    elevation = beam_elevations(beams) + rng.normal(0, 0.0005, beams)
    azimuth = np.linspace(-math.pi, math.pi, azimuth_steps, endpoint=False) + rng.uniform(0, 2 * math.pi /
                                                                                           azimuth_steps)
    el, az = np.meshgrid(elevation, azimuth, indexing="ij")
    dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).reshape(-1, 3)
    t, label, normal, _ = _cast(world, sensor, dirs, max_range)
    hit = np.isfinite(t) & (rng.random(len(t)) > 0.05)
    t, label, normal, dirs = t[hit], label[hit], normal[hit], dirs[hit]
    t = t + rng.normal(0, 0.02, len(t))
    foliage = label == VEGETATION
    t[foliage] += np.abs(rng.normal(0, 0.25, foliage.sum()))  # returns from inside the foliage
    coord = dirs * t[:, None]  # lidar frame: the sensor at the origin
    cos_inc = np.abs((normal * dirs).sum(1))
    strength = np.clip(REFLECTIVITY[label] * (0.4 + 0.6 * cos_inc) + rng.normal(0, 0.03, len(t)), 0, 1)

    camera = _render_camera(world, sensor, image_size, rng, max_range)
    n = len(coord)
    return Scene(
        coord=coord.astype(np.float32),
        color=np.zeros((n, 3), np.float32),
        label=label.astype(np.int64),
        scene_id=scene_id if scene_id is not None else f"outdoor_{seed}",
        normal=normal.astype(np.float32),
        strength=strength.astype(np.float32)[:, None],
        extras={"cameras": [camera]},
    )


def _render_camera(world: _World, sensor: np.ndarray, image_size: Tuple[int, int], rng: np.random.Generator,
                   max_range: float) -> Camera:
    """Forward-looking pinhole camera 27 cm ahead of and 8 cm below the lidar, 80 deg horizontal field of view."""
    width, height = image_size
    focal = width / 2 / math.tan(math.radians(40))
    K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
    # camera axes (x right, y down, z forward) expressed in the lidar frame
    rot = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    cam_in_lidar = np.array([0.27, 0.0, -0.08])
    lidar2cam = np.eye(4)
    lidar2cam[:3, :3] = rot
    lidar2cam[:3, 3] = -rot @ cam_in_lidar
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    pix = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], 1)
    dirs = (pix @ np.linalg.inv(K).T) @ rot  # camera -> lidar frame (rot is orthonormal)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    origin = sensor + cam_in_lidar
    t, label, normal, color = _cast(world, origin, dirs, max_range * 3)
    shade = 0.35 + 0.65 * np.clip(normal @ _SUN, 0, 1)
    rgb = color * shade[:, None] + rng.normal(0, 0.02, color.shape)
    sky = ~np.isfinite(t)
    rgb[sky] = _SKY - 0.15 * (pix[sky, 1:2] / height)
    image = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8).reshape(height, width, 3)
    return Camera("cam_front", image, K, lidar2cam)


class SyntheticOutdoor:
    """Scene source of generated street scenes; scene i of a split is `generate_outdoor_scene((seed, split, i))`.

    split            "train" | "val" | "test" (disjoint seeds)
    num_scenes       scenes in the split (default 24 train, 8 val / test)
    beams, azimuth_steps, image_size   sensor resolution (the scene-size knobs)
    cache            keep generated scenes in memory
    """

    class_names = OUTDOOR_CLASSES
    num_classes = len(OUTDOOR_CLASSES)
    SPLITS = {"train": 0, "val": 1, "test": 2}

    def __init__(self, root: Optional[str] = None, split: str = "train", num_scenes: Optional[int] = None,
                 beams: int = 32, azimuth_steps: int = 1024, image_size: Tuple[int, int] = (384, 128),
                 seed: int = 0, cache: bool = True) -> None:
        if root is not None:
            raise ValueError(f"synthetic_outdoor generates its scenes and takes no root (got root={root!r})")
        if split not in self.SPLITS:
            raise ValueError(f"synthetic_outdoor: split must be one of {sorted(self.SPLITS)}, got {split!r}")
        self.split, self.seed = split, seed
        self.beams, self.azimuth_steps, self.image_size = beams, azimuth_steps, tuple(image_size)
        count = num_scenes if num_scenes is not None else (24 if split == "train" else 8)
        self.scene_ids = [f"outdoor_{split}_{i:04d}" for i in range(count)]
        self._cache = {} if cache else None

    def __len__(self) -> int:
        return len(self.scene_ids)

    def __getitem__(self, index: int) -> Scene:
        if not 0 <= index < len(self):
            raise IndexError(f"synthetic_outdoor {self.split}: index {index} out of range for {len(self)} scenes")
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        scene = generate_outdoor_scene((self.seed, self.SPLITS[self.split], index), self.beams, self.azimuth_steps,
                                       self.image_size, scene_id=self.scene_ids[index])
        if self._cache is not None:
            self._cache[index] = scene
        return scene
