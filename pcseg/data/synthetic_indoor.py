"""Procedural indoor rooms: the embedded default dataset (numpy only, deterministic by seed).

A room is a box (floor, four walls with door and window openings, ceiling) furnished with beds, sofas, tables
with chairs, cabinets and bookshelves at plausible sizes and placements. Surfaces are sampled by area, then
thinned like a scan: 2-4 scanner positions, back-faces and points hidden behind solid furniture dropped, density
falling with distance and grazing angle, and a few missing patches. Colours come from shared material palettes
(wood, paint, fabric, metal) with per-object tint, shading and per-point noise, so several classes overlap in
colour (door / cabinet / table / floor are often the same wood; walls, ceiling and white cabinets the same paint)
and geometry is needed to tell them apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from pcseg.data.scene import Scene

INDOOR_CLASSES: Tuple[str, ...] = (
    "floor", "wall", "ceiling", "door", "window", "table", "chair", "sofa", "bed", "cabinet", "bookshelf",
)
FLOOR, WALL, CEILING, DOOR, WINDOW, TABLE, CHAIR, SOFA, BED, CABINET, BOOKSHELF = range(len(INDOOR_CLASSES))

# Material palettes (RGB in [0, 1]); classes draw from shared palettes on purpose.
PAINT = np.array([[0.86, 0.86, 0.83], [0.82, 0.77, 0.66], [0.74, 0.75, 0.76], [0.70, 0.77, 0.84],
                  [0.73, 0.80, 0.70], [0.90, 0.88, 0.84]])
WOOD = np.array([[0.72, 0.55, 0.36], [0.45, 0.31, 0.20], [0.60, 0.43, 0.27], [0.32, 0.22, 0.15],
                 [0.86, 0.85, 0.82], [0.80, 0.68, 0.50]])
FABRIC = np.array([[0.50, 0.50, 0.52], [0.26, 0.31, 0.50], [0.55, 0.22, 0.21], [0.78, 0.70, 0.58],
                   [0.31, 0.45, 0.31], [0.21, 0.21, 0.23], [0.85, 0.85, 0.86]])
BEDDING = np.array([[0.92, 0.92, 0.90], [0.85, 0.80, 0.70], [0.72, 0.80, 0.90], [0.90, 0.75, 0.78],
                    [0.50, 0.50, 0.52]])
DOOR_FINISH = np.vstack([WOOD[:4], [[0.20, 0.35, 0.38], [0.35, 0.35, 0.37]]])
CABINET_FINISH = np.vstack([WOOD[[0, 1, 2, 3, 5]], [[0.55, 0.56, 0.58]]])
METAL = np.array([[0.12, 0.12, 0.12], [0.60, 0.60, 0.62], [0.80, 0.80, 0.80]])
TILE = np.array([[0.62, 0.62, 0.60], [0.42, 0.42, 0.44], [0.80, 0.78, 0.74]])
GLASS = np.array([[0.36, 0.50, 0.66], [0.42, 0.56, 0.62]])

_LIGHT = np.array([0.3, 0.2, 1.0]) / np.linalg.norm([0.3, 0.2, 1.0])


@dataclass
class _Rect:
    origin: np.ndarray  # (3,)
    u: np.ndarray       # (3,) edge
    v: np.ndarray       # (3,) edge; the normal is normalize(u x v)
    label: int
    instance: int
    color: np.ndarray   # (3,)
    returns: float = 1.0  # fraction of scanner returns (glass and ceilings give fewer)


@dataclass
class _Cylinder:
    base: np.ndarray    # (3,) centre of the bottom
    radius: float
    height: float
    label: int
    instance: int
    color: np.ndarray


@dataclass
class _Solid:
    """An oriented box that hides what lies behind it: centre (3,), half extents (3,), yaw about z."""
    center: np.ndarray
    half: np.ndarray
    yaw: float


def _rot(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class _Room:
    """Collects surface parts and solids; objects are built in a local frame (front towards -y) and placed with
    a yaw and an xy translation."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.rects: List[_Rect] = []
        self.cylinders: List[_Cylinder] = []
        self.solids: List[_Solid] = []
        self.next_instance = 0
        self.pose = (np.eye(3), np.zeros(3), 0.0)

    def new_instance(self) -> int:
        self.next_instance += 1
        return self.next_instance - 1

    def tint(self, palette: np.ndarray, spread: float = 0.04) -> np.ndarray:
        base = palette[self.rng.integers(len(palette))]
        return np.clip(base + self.rng.normal(0, spread, 3), 0, 1)

    def place(self, yaw: float, xy: Sequence[float]) -> None:
        self.pose = (_rot(yaw), np.array([xy[0], xy[1], 0.0]), yaw)

    def rect(self, origin, u, v, label: int, instance: int, color: np.ndarray, returns: float = 1.0) -> None:
        rot, shift, _ = self.pose
        self.rects.append(_Rect(rot @ np.asarray(origin, float) + shift, rot @ np.asarray(u, float),
                                rot @ np.asarray(v, float), label, instance, color, returns))

    def box(self, lo, hi, label: int, instance: int, color: np.ndarray, bottom: bool = False,
            solid: bool = True, skip: Sequence[str] = ()) -> None:
        """Axis-aligned (in the local frame) box from corner `lo` to `hi`, faces with outward normals."""
        (x0, y0, z0), (x1, y1, z1) = lo, hi
        dx, dy, dz = x1 - x0, y1 - y0, z1 - z0
        faces = {
            "top": ((x0, y0, z1), (dx, 0, 0), (0, dy, 0)),
            "bottom": ((x0, y0, z0), (0, dy, 0), (dx, 0, 0)),
            "front": ((x0, y0, z0), (dx, 0, 0), (0, 0, dz)),   # -y
            "back": ((x0, y1, z0), (0, 0, dz), (dx, 0, 0)),    # +y
            "left": ((x0, y0, z0), (0, 0, dz), (0, dy, 0)),    # -x
            "right": ((x1, y0, z0), (0, dy, 0), (0, 0, dz)),   # +x
        }
        for name, (o, u, v) in faces.items():
            if name in skip or (name == "bottom" and not bottom):
                continue
            self.rect(o, u, v, label, instance, color)
        if solid:
            rot, shift, yaw = self.pose
            center = rot @ (np.array(lo, float) + np.array(hi, float)) / 2 + shift
            self.solids.append(_Solid(center, np.abs(np.array(hi, float) - np.array(lo, float)) / 2, yaw))

    def cylinder(self, base, radius: float, height: float, label: int, instance: int, color: np.ndarray) -> None:
        """Vertical cylinder (side surface only) standing on `base` (local frame)."""
        rot, shift, _ = self.pose
        self.cylinders.append(_Cylinder(rot @ np.asarray(base, float) + shift, radius, height, label, instance,
                                        color))


# ----------------------------------------------------------------------------------------------------- objects
def _table(room: _Room, w: float, d: float, h: float) -> None:
    inst, top = room.new_instance(), room.tint(WOOD)
    legs = top if room.rng.random() < 0.6 else room.tint(METAL, 0.02)
    t = room.rng.uniform(0.03, 0.05)
    room.box((-w / 2, -d / 2, h - t), (w / 2, d / 2, h), TABLE, inst, top, bottom=True)
    s, inset = room.rng.uniform(0.04, 0.07), 0.05
    for sx in (-1, 1):
        for sy in (-1, 1):
            cx, cy = sx * (w / 2 - inset - s / 2), sy * (d / 2 - inset - s / 2)
            if legs is top:
                room.box((cx - s / 2, cy - s / 2, 0), (cx + s / 2, cy + s / 2, h - t), TABLE, inst, legs, solid=False)
            else:
                room.cylinder((cx, cy, 0), s / 2, h - t, TABLE, inst, legs)


def _chair(room: _Room) -> None:
    inst, rng = room.new_instance(), room.rng
    seat_color = room.tint(WOOD if rng.random() < 0.5 else FABRIC)
    frame = seat_color if rng.random() < 0.5 else room.tint(METAL, 0.02)
    s, h = rng.uniform(0.40, 0.50), rng.uniform(0.42, 0.48)
    room.box((-s / 2, -s / 2, h - 0.05), (s / 2, s / 2, h), CHAIR, inst, seat_color, bottom=True)
    leg = 0.035
    for sx in (-1, 1):
        for sy in (-1, 1):
            cx, cy = sx * (s / 2 - leg), sy * (s / 2 - leg)
            if frame is seat_color:
                room.box((cx - leg / 2, cy - leg / 2, 0), (cx + leg / 2, cy + leg / 2, h - 0.05), CHAIR, inst,
                         frame, solid=False)
            else:
                room.cylinder((cx, cy, 0), leg / 2, h - 0.05, CHAIR, inst, frame)
    back = rng.uniform(0.35, 0.50)
    room.box((-s / 2, s / 2 - 0.04, h), (s / 2, s / 2, h + back), CHAIR, inst, seat_color)


def _sofa(room: _Room, length: float) -> None:
    inst, rng = room.new_instance(), room.rng
    color = room.tint(FABRIC)
    d, seat, back, arm = rng.uniform(0.80, 1.00), rng.uniform(0.40, 0.46), rng.uniform(0.75, 0.90), 0.18
    arm_h = rng.uniform(0.55, 0.65)
    room.box((-length / 2 + arm, -d / 2, 0), (length / 2 - arm, d / 2 - 0.2, seat), SOFA, inst, color)
    room.box((-length / 2 + arm, d / 2 - 0.2, 0), (length / 2 - arm, d / 2, back), SOFA, inst, color)
    for sx in (-1, 1):
        x0 = length / 2 - arm if sx > 0 else -length / 2
        room.box((x0, -d / 2, 0), (x0 + arm, d / 2, arm_h), SOFA, inst, color)


def _bed(room: _Room, w: float, length: float) -> None:
    inst, rng = room.new_instance(), room.rng
    wood, bedding = room.tint(WOOD), room.tint(BEDDING)
    frame_h, mattress = rng.uniform(0.28, 0.38), rng.uniform(0.20, 0.28)
    y0, y1 = -length / 2, length / 2
    room.box((-w / 2, y0, 0), (w / 2, y1 - 0.06, frame_h), BED, inst, wood)
    room.box((-w / 2 + 0.02, y0 + 0.02, frame_h), (w / 2 - 0.02, y1 - 0.08, frame_h + mattress), BED, inst, bedding)
    room.box((-w / 2, y1 - 0.06, 0), (w / 2, y1, rng.uniform(0.9, 1.2)), BED, inst, wood)
    pillow = room.tint(BEDDING)
    top = frame_h + mattress
    for px in ([0.0] if w < 1.2 else [-w / 4, w / 4]):
        room.box((px - 0.27, y1 - 0.5, top), (px + 0.27, y1 - 0.12, top + 0.12), BED, inst, pillow, solid=False)


def _cabinet(room: _Room, w: float, d: float, h: float) -> None:
    inst = room.new_instance()
    color = room.tint(CABINET_FINISH)
    room.box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), CABINET, inst, color)
    handle = room.tint(METAL, 0.02)
    doors = 1 if w < 0.6 else 2
    for k in range(doors):
        x = -w / 2 + (k + 0.5) * w / doors + (0.1 if k == 0 and doors == 2 else -0.1 if doors == 2 else 0.15)
        z = min(h - 0.15, 0.95)
        room.box((x - 0.01, -d / 2 - 0.03, z - 0.08), (x + 0.01, -d / 2, z + 0.08), CABINET, inst, handle,
                 solid=False)


def _bookshelf(room: _Room, w: float, d: float, h: float) -> None:
    inst, rng = room.new_instance(), room.rng
    wood, t = room.tint(WOOD), 0.02
    room.box((-w / 2, d / 2 - 0.01, 0), (w / 2, d / 2, h), BOOKSHELF, inst, wood)  # back panel
    for x0 in (-w / 2, w / 2 - t):
        room.box((x0, -d / 2, 0), (x0 + t, d / 2, h), BOOKSHELF, inst, wood)
    shelves = np.linspace(0.05, h - t, max(3, int(h / rng.uniform(0.30, 0.40))) + 1)
    for z in shelves:
        room.box((-w / 2 + t, -d / 2, z), (w / 2 - t, d / 2 - 0.01, z + t), BOOKSHELF, inst, wood)
    for z0, z1 in zip(shelves[:-1], shelves[1:]):
        x = -w / 2 + t
        while x < w / 2 - t - 0.06:
            bw = rng.uniform(0.02, 0.06)
            if rng.random() < 0.8:
                bh = min(rng.uniform(0.15, 0.30), z1 - z0 - t - 0.02)
                bd = rng.uniform(0.15, min(0.25, d - 0.03))
                color = np.clip(rng.uniform(0.1, 0.9, 3), 0, 1)
                room.box((x, d / 2 - 0.01 - bd, z0 + t), (x + bw, d / 2 - 0.01, z0 + t + bh), BOOKSHELF, inst,
                         color, solid=False, skip=("back",))
            x += bw + 0.002


# --------------------------------------------------------------------------------------------------- the room
@dataclass
class _Opening:
    wall: int
    s0: float
    s1: float
    z0: float
    z1: float
    label: int


def _walls(width: float, depth: float):
    """(origin (3,), unit direction along the wall (3,), length, inward normal (3,)) for the 4 walls; the wall
    normal is u x up."""
    return [
        (np.array([0.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.0]), width, np.array([0.0, 1.0, 0.0])),
        (np.array([width, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), depth, np.array([-1.0, 0.0, 0.0])),
        (np.array([width, depth, 0.0]), np.array([-1.0, 0.0, 0.0]), width, np.array([0.0, -1.0, 0.0])),
        (np.array([0.0, depth, 0.0]), np.array([0.0, -1.0, 0.0]), depth, np.array([1.0, 0.0, 0.0])),
    ]


def _shell(room: _Room, width: float, depth: float, height: float, openings: List[_Opening]) -> None:
    """Floor, ceiling and walls with holes cut for the openings, and the door / window parts."""
    rng = room.rng
    room.pose = (np.eye(3), np.zeros(3), 0.0)
    floor_palette = [WOOD, FABRIC, TILE][rng.integers(3)]
    room.rect((0, 0, 0), (width, 0, 0), (0, depth, 0), FLOOR, room.new_instance(), room.tint(floor_palette),
              returns=0.6)
    paint = room.tint(PAINT, 0.02)
    ceiling_color = paint if rng.random() < 0.5 else room.tint(PAINT, 0.02)
    room.rect((0, 0, height), (0, depth, 0), (width, 0, 0), CEILING, room.new_instance(), ceiling_color,
              returns=0.25)
    up = np.array([0.0, 0.0, 1.0])
    for k, (origin, u, length, normal) in enumerate(_walls(width, depth)):
        inst = room.new_instance()
        holes = sorted([o for o in openings if o.wall == k], key=lambda o: o.s0)
        cuts = sorted({0.0, length, *[o.s0 for o in holes], *[o.s1 for o in holes]})
        for s0, s1 in zip(cuts[:-1], cuts[1:]):
            inside = [o for o in holes if o.s0 <= s0 and s1 <= o.s1]
            spans, z = [], 0.0
            for o in sorted(inside, key=lambda o: o.z0):
                spans.append((z, o.z0))
                z = o.z1
            spans.append((z, height))
            for z0, z1 in spans:
                if z1 - z0 > 1e-6:
                    room.rect(origin + u * s0 + up * z0, up * (z1 - z0), u * (s1 - s0), WALL, inst, paint,
                              returns=0.5)
        for o in holes:
            _opening_parts(room, origin, u, normal, o)


def _opening_parts(room: _Room, origin: np.ndarray, u: np.ndarray, normal: np.ndarray, o: _Opening) -> None:
    rng, up = room.rng, np.array([0.0, 0.0, 1.0])
    inst = room.new_instance()
    a = origin + u * o.s0 + up * o.z0
    w, h, depth = o.s1 - o.s0, o.z1 - o.z0, 0.12
    out = -normal
    if o.label == DOOR:
        color = room.tint(DOOR_FINISH)
        casing = color if rng.random() < 0.6 else room.tint(PAINT, 0.02)
        if rng.random() < 0.7:  # closed leaf, set back 2 cm into the opening
            room.rect(a + out * 0.02 + u * w, -u * w, up * h, DOOR, inst, color)
        else:  # leaf opened 90 degrees into the room, hinged at s0
            leaf = 0.04
            room.rect(a + normal * w, -normal * w, up * h, DOOR, inst, color)
            room.rect(a + u * leaf, normal * w, up * h, DOOR, inst, color)
            room.solids.append(_Solid(a + normal * w / 2 + u * leaf / 2 + up * h / 2,
                                      np.array([leaf / 2, w / 2, h / 2]) if abs(u[0]) > 0.5 else
                                      np.array([w / 2, leaf / 2, h / 2]), 0.0))
        frame_w = 0.07
        for s, v in ((a - u * frame_w, up * (h + frame_w)), (a + u * w, up * (h + frame_w))):
            room.rect(s + normal * 0.015, v, u * frame_w, DOOR, inst, casing)
        room.rect(a + up * h + normal * 0.015, up * frame_w, u * w, DOOR, inst, casing)
    else:
        frame = room.tint(np.vstack([PAINT[[0, 5]], METAL[1:]]), 0.02)
        glass = room.tint(GLASS, 0.03)
        room.rect(a + out * depth + u * w, -u * w, up * h, WINDOW, inst, glass, returns=0.6)
        # reveals: the four sides of the hole through the wall, normals pointing into the hole
        room.rect(a, out * depth, u * w, WINDOW, inst, frame)
        room.rect(a + up * h, u * w, out * depth, WINDOW, inst, frame)
        room.rect(a, up * h, out * depth, WINDOW, inst, frame)
        room.rect(a + u * w, out * depth, up * h, WINDOW, inst, frame)
        # sill board sticking out into the room
        sill = a + normal * 0.06 - u * 0.05
        room.rect(sill, -normal * 0.06, u * (w + 0.1), WINDOW, inst, frame)
        room.rect(sill - up * 0.03, up * 0.03, u * (w + 0.1), WINDOW, inst, frame)


def _overlaps(box: np.ndarray, boxes: List[np.ndarray], margin: float) -> bool:
    return any(box[0] < b[2] + margin and b[0] < box[2] + margin and box[1] < b[3] + margin
               and b[1] < box[3] + margin for b in boxes)


def _footprint(xy: np.ndarray, w: float, d: float, yaw: float) -> np.ndarray:
    """Axis-aligned xy bounds [x0, y0, x1, y1] of a w x d footprint centred at xy and rotated by yaw."""
    c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
    hx, hy = (w * c + d * s) / 2, (w * s + d * c) / 2
    return np.array([xy[0] - hx, xy[1] - hy, xy[0] + hx, xy[1] + hy])


def _generate_room(rng: np.random.Generator):
    room = _Room(rng)
    width, depth, height = rng.uniform(4.0, 8.0), rng.uniform(3.5, 7.0), rng.uniform(2.5, 3.1)
    walls = _walls(width, depth)
    occupied: List[np.ndarray] = []

    # openings: 1-2 doors, 0-3 windows, spaced along the walls
    openings: List[_Opening] = []
    for label, count in ((DOOR, rng.integers(1, 3)), (WINDOW, rng.integers(1, 4))):
        for _ in range(count):
            for _attempt in range(20):
                k = int(rng.integers(4))
                length = walls[k][2]
                w = rng.uniform(0.8, 1.0) if label == DOOR else rng.uniform(1.0, 2.0)
                if length < w + 0.6:
                    continue
                s0 = rng.uniform(0.3, length - w - 0.3)
                if any(o.wall == k and s0 < o.s1 + 0.3 and o.s0 < s0 + w + 0.3 for o in openings):
                    continue
                z0, z1 = (0.0, rng.uniform(2.0, 2.15)) if label == DOOR else (rng.uniform(0.8, 1.0), 0.0)
                if label == WINDOW:
                    z1 = min(height - 0.2, z0 + rng.uniform(1.1, 1.6))
                openings.append(_Opening(k, s0, s0 + w, z0, z1, label))
                if label == DOOR:  # keep the door's swing area free
                    origin, u, _, normal = walls[k]
                    p0 = origin + u * s0
                    p1 = origin + u * (s0 + w) + normal * 1.0
                    occupied.append(np.array([min(p0[0], p1[0]), min(p0[1], p1[1]), max(p0[0], p1[0]),
                                              max(p0[1], p1[1])]))
                break
    _shell(room, width, depth, height, openings)

    def against_wall(w: float, d: float, tall: bool) -> Optional[Tuple[float, np.ndarray]]:
        """Find a free spot with the object's back (+y) against a wall; returns (yaw, centre xy)."""
        for _attempt in range(30):
            k = int(rng.integers(4))
            origin, u, length, normal = walls[k]
            if length < w + 0.1:
                continue
            s = rng.uniform(w / 2 + 0.05, length - w / 2 - 0.05)
            if tall and any(o.wall == k and o.label == WINDOW and s - w / 2 < o.s1 and o.s0 < s + w / 2
                            for o in openings):
                continue
            xy = (origin + u * s + normal * (d / 2 + 0.01))[:2]
            yaw = math.atan2(normal[0], -normal[1])  # rotates the local front (-y) onto the wall normal
            fp = _footprint(xy, w, d, yaw)
            if not _overlaps(fp, occupied, 0.05):
                occupied.append(fp)
                return yaw, xy
        return None

    def free_spot(w: float, d: float, yaw: float, margin: float) -> Optional[np.ndarray]:
        for _attempt in range(30):
            xy = np.array([rng.uniform(margin, width - margin), rng.uniform(margin, depth - margin)])
            fp = _footprint(xy, w, d, yaw)
            if fp[0] > 0.05 and fp[1] > 0.05 and fp[2] < width - 0.05 and fp[3] < depth - 0.05 \
                    and not _overlaps(fp, occupied, 0.1):
                occupied.append(fp)
                return xy
        return None

    if rng.random() < 0.55:
        bw, bl = rng.choice([0.9, 1.4, 1.6, 1.8]), rng.uniform(1.95, 2.1)
        spot = against_wall(bw, bl, tall=False)
        if spot:
            room.place(*spot)
            _bed(room, bw, bl)
    if rng.random() < 0.7:
        length = rng.uniform(1.6, 2.4)
        spot = against_wall(length, 0.95, tall=False)
        if spot:
            room.place(*spot)
            _sofa(room, length)
    for _ in range(int(rng.integers(1, 4))):
        w, d, h = rng.uniform(0.6, 1.6), rng.uniform(0.4, 0.6), rng.choice([rng.uniform(0.8, 1.0),
                                                                             rng.uniform(1.8, 2.2)])
        spot = against_wall(w, d, tall=h > 1.2)
        if spot:
            room.place(*spot)
            _cabinet(room, w, d, h)
    for _ in range(int(rng.choice([0, 1, 1, 2]))):
        w, d, h = rng.uniform(0.7, 1.2), rng.uniform(0.28, 0.40), rng.uniform(1.7, 2.2)
        spot = against_wall(w, d, tall=True)
        if spot:
            room.place(*spot)
            _bookshelf(room, w, d, h)
    for _ in range(int(rng.choice([1, 1, 1, 2]))):  # tables with chairs around them
        w, d = rng.uniform(0.8, 1.8), rng.uniform(0.6, 1.0)
        yaw = float(rng.choice([0.0, math.pi / 2]))
        ring = 0.55
        xy = free_spot(w + 2 * ring, d + 2 * ring, yaw, 1.0)
        if xy is None:
            continue
        room.place(yaw, xy)
        _table(room, w, d, rng.uniform(0.70, 0.78))
        seats = [(-w / 4, -d / 2 - 0.3, math.pi), (w / 4, -d / 2 - 0.3, math.pi), (-w / 4, d / 2 + 0.3, 0.0),
                 (w / 4, d / 2 + 0.3, 0.0), (-w / 2 - 0.3, 0.0, math.pi / 2), (w / 2 + 0.3, 0.0, -math.pi / 2)]
        if w < 1.1:
            seats = [seats[0], seats[2], seats[4], seats[5]]
        for k in rng.permutation(len(seats))[: rng.integers(2, len(seats) + 1)]:
            sx, sy, syaw = seats[k]
            center = _rot(yaw) @ np.array([sx, sy, 0.0]) + np.array([xy[0], xy[1], 0.0])
            room.place(yaw + syaw + rng.normal(0, 0.15), center[:2])
            _chair(room)
    for _ in range(int(rng.integers(0, 4))):
        yaw = rng.uniform(-math.pi, math.pi)
        xy = free_spot(0.6, 0.6, yaw, 0.4)
        if xy is not None:
            room.place(yaw, xy)
            _chair(room)
    return room, np.array([width, depth, height])


# ----------------------------------------------------------------------------------------------- sampling
def _sample_parts(room: _Room, density: float, rng: np.random.Generator):
    """Area-proportional surface samples -> coord (P, 3), normal (P, 3), label, instance, color (P, 3), returns."""
    origin = np.array([r.origin for r in room.rects])
    u, v = np.array([r.u for r in room.rects]), np.array([r.v for r in room.rects])
    cross = np.cross(u, v)
    area = np.linalg.norm(cross, axis=1)
    count = rng.poisson(area * density)
    part = np.repeat(np.arange(len(room.rects)), count)
    st = rng.random((len(part), 2))
    coord = origin[part] + st[:, :1] * u[part] + st[:, 1:] * v[part]
    normal = (cross / np.maximum(area, 1e-12)[:, None])[part]
    label = np.array([r.label for r in room.rects])[part]
    instance = np.array([r.instance for r in room.rects])[part]
    color = np.array([r.color for r in room.rects])[part]
    returns = np.array([r.returns for r in room.rects])[part]
    if room.cylinders:
        cyl = room.cylinders
        radius, height = np.array([c.radius for c in cyl]), np.array([c.height for c in cyl])
        part = np.repeat(np.arange(len(cyl)), rng.poisson(2 * math.pi * radius * height * density))
        theta = rng.uniform(0, 2 * math.pi, len(part))
        ring = np.stack([np.cos(theta), np.sin(theta), np.zeros(len(part))], 1)
        z = np.outer(rng.random(len(part)) * height[part], [0.0, 0.0, 1.0])
        coord = np.concatenate([coord, np.array([c.base for c in cyl])[part] + ring * radius[part, None] + z])
        normal = np.concatenate([normal, ring])
        label = np.concatenate([label, np.array([c.label for c in cyl])[part]])
        instance = np.concatenate([instance, np.array([c.instance for c in cyl])[part]])
        color = np.concatenate([color, np.array([c.color for c in cyl])[part]])
        returns = np.concatenate([returns, np.ones(len(part))])
    return coord, normal, label, instance, color, returns


def _occluded(points: np.ndarray, eye: np.ndarray, solids: List[_Solid]) -> np.ndarray:
    """(P,) bool: the segment eye -> point (stopping 1 cm short) passes through one of the solids."""
    hidden = np.zeros(len(points), dtype=bool)
    seg_lo, seg_hi = np.minimum(points, eye), np.maximum(points, eye)
    for s in solids:
        c, sn = abs(math.cos(s.yaw)), abs(math.sin(s.yaw))
        reach = np.array([s.half[0] * c + s.half[1] * sn, s.half[0] * sn + s.half[1] * c, s.half[2]])
        near = np.flatnonzero(np.all((seg_lo <= s.center + reach) & (seg_hi >= s.center - reach), axis=1)
                              & ~hidden)
        if len(near) == 0:
            continue
        rot = _rot(-s.yaw)
        o = rot @ (eye - s.center)
        d = (points[near] - eye) @ rot.T
        t_end = 1.0 - 0.01 / np.maximum(np.linalg.norm(d, axis=1), 1e-6)
        d = np.where(np.abs(d) < 1e-12, 1e-12, d)
        t0, t1 = (-s.half - o) / d, (s.half - o) / d
        lo, hi = np.minimum(t0, t1), np.maximum(t0, t1)
        tmin = np.maximum(np.maximum(lo[:, 0], lo[:, 1]), lo[:, 2])
        tmax = np.minimum(np.minimum(hi[:, 0], hi[:, 1]), hi[:, 2])
        hidden[near] = (tmin <= tmax) & (tmax > 0) & (tmin < t_end)
    return hidden


def generate_indoor_scene(seed: int | Sequence[int], points: int = 40000, scene_id: Optional[str] = None) -> Scene:
    """One synthetic room with about `points` points (exactly `points` unless the scan is sparser).

    seed  int or sequence of ints for `numpy.random.default_rng`; equal seeds give identical scenes
    Returns a Scene with coord, color, label (INDOOR_CLASSES indices), normal and instance.
    """
    if points <= 0:
        raise ValueError(f"points must be positive, got {points}")
    rng = np.random.default_rng(seed)
    room, size = _generate_room(rng)
    area = sum(float(np.linalg.norm(np.cross(r.u, r.v))) * r.returns for r in room.rects) + sum(
        2 * math.pi * c.radius * c.height for c in room.cylinders)
    coord, normal, label, instance, color, returns = _sample_parts(room, 2.6 * points / area, rng)

    # scanner positions in free floor space; visibility, density fall-off with range and incidence
    eyes = []
    for _ in range(int(rng.integers(2, 5))):
        eyes.append(np.array([rng.uniform(0.6, size[0] - 0.6), rng.uniform(0.6, size[1] - 0.6),
                              rng.uniform(1.2, 1.7)]))
    draw = rng.random(len(coord))
    keep = np.zeros(len(coord), dtype=bool)
    for eye in eyes:
        view = eye - coord
        dist = np.linalg.norm(view, axis=1)
        cos_inc = (normal * view).sum(1) / np.maximum(dist, 1e-6)
        prob = returns * np.clip(cos_inc, 0, 1) ** 0.5 * np.minimum(1.0, (2.5 / np.maximum(dist, 1e-6)) ** 1.5)
        candidate = np.flatnonzero(~keep & (cos_inc > 0.02) & (draw < prob))
        keep[candidate] = ~_occluded(coord[candidate], eye, room.solids)
    for _ in range(int(rng.integers(3, 9))):  # missing patches
        center = coord[rng.integers(len(coord))]
        keep &= np.linalg.norm(coord - center, axis=1) > rng.uniform(0.15, 0.45)
    idx = np.flatnonzero(keep)
    if len(idx) > points:
        idx = np.sort(rng.choice(idx, points, replace=False))
    coord, normal, label, instance, color = coord[idx], normal[idx], label[idx], instance[idx], color[idx]

    # colour: shading by normal, scene brightness, per-point noise
    shade = 0.72 + 0.28 * np.clip(normal @ _LIGHT, 0, 1)
    brightness = rng.uniform(0.85, 1.1)
    color = np.clip(color * (shade * brightness)[:, None] + rng.normal(0, 0.04, color.shape), 0, 1)
    coord = coord + rng.normal(0, 0.004, coord.shape)  # range noise
    return Scene(
        coord=coord.astype(np.float32),
        color=color.astype(np.float32),
        label=label.astype(np.int64),
        scene_id=scene_id if scene_id is not None else f"indoor_{seed}",
        normal=normal.astype(np.float32),
        instance=instance.astype(np.int64),
    )


class SyntheticIndoor:
    """Scene source of generated rooms; scene i of a split is `generate_indoor_scene((seed, split, i))`.

    split            "train" | "val" | "test" (disjoint seeds)
    num_scenes       scenes in the split (default 48 train, 12 val / test)
    points_per_scene points per room (the scene-size knob)
    cache            keep generated scenes in memory (each is generated once per process)
    """

    class_names = INDOOR_CLASSES
    num_classes = len(INDOOR_CLASSES)
    SPLITS = {"train": 0, "val": 1, "test": 2}

    def __init__(self, root: Optional[str] = None, split: str = "train", num_scenes: Optional[int] = None,
                 points_per_scene: int = 40000, seed: int = 0, cache: bool = True) -> None:
        if root is not None:
            raise ValueError(f"synthetic_indoor generates its scenes and takes no root (got root={root!r})")
        if split not in self.SPLITS:
            raise ValueError(f"synthetic_indoor: split must be one of {sorted(self.SPLITS)}, got {split!r}")
        self.split, self.seed, self.points_per_scene = split, seed, points_per_scene
        count = num_scenes if num_scenes is not None else (48 if split == "train" else 12)
        self.scene_ids = [f"indoor_{split}_{i:04d}" for i in range(count)]
        self._cache = {} if cache else None

    def __len__(self) -> int:
        return len(self.scene_ids)

    def __getitem__(self, index: int) -> Scene:
        if not 0 <= index < len(self):
            raise IndexError(f"synthetic_indoor {self.split}: index {index} out of range for {len(self)} scenes")
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        scene = generate_indoor_scene((self.seed, self.SPLITS[self.split], index), self.points_per_scene,
                                      self.scene_ids[index])
        if self._cache is not None:
            self._cache[index] = scene
        return scene
