"""Calibrated cameras paired with lidar scans: KITTI object and nuScenes (mmdetection3d info pickles).

A `Camera` holds an image, pinhole intrinsics K (3, 3) and the lidar -> camera extrinsic (4, 4), so a point p
(lidar frame) lands at pixel (u, v) = (K @ (lidar2cam @ [p, 1])[:3]) / depth. Readers put their cameras in
`Scene.extras["cameras"]` (a list), the synthetic outdoor generator too.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from pcseg.data.scene import Scene
from pcseg.data.semantickitti import SemanticKITTI, read_points

PathLike = Union[str, os.PathLike]


def project_points(coord: np.ndarray, intrinsic: np.ndarray, lidar2cam: np.ndarray, width: int, height: int
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project lidar points into an image.

    coord (N, 3), intrinsic (3, 3), lidar2cam (4, 4), image size width x height
    Returns uv (N, 2) float64 pixel coordinates (x right, y down; pixel (i, j) covers [i, i+1) x [j, j+1)),
    depth (N,) float64 along the optical axis, inside (N,) bool: depth > 0 and 0 <= u < width, 0 <= v < height.
    """
    coord = np.asarray(coord, dtype=np.float64)
    cam = coord @ lidar2cam[:3, :3].T + lidar2cam[:3, 3]
    depth = cam[:, 2]
    pix = cam @ np.asarray(intrinsic, dtype=np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = pix[:, :2] / depth[:, None]
    inside = (depth > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & (uv[:, 1] < height)
    return uv, depth, inside


@dataclass
class Camera:
    """name; image (H, W, 3) uint8; intrinsic K (3, 3) float64; lidar2cam (4, 4) float64."""

    name: str
    image: np.ndarray
    intrinsic: np.ndarray
    lidar2cam: np.ndarray

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    def project(self, coord: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(uv (N, 2), depth (N,), inside (N,) bool) of lidar points coord (N, 3); see `project_points`."""
        return project_points(coord, self.intrinsic, self.lidar2cam, self.width, self.height)


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file -> (H, W, 3) uint8 (needs pillow)."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as error:
        raise ValueError(f"image {path} cannot be decoded: {error}") from None


# ------------------------------------------------------------------------------------------------------ KITTI
def read_kitti_calib(path: PathLike) -> Dict[str, np.ndarray]:
    """Read a KITTI object calib file -> {"P0".."P3": (3, 4), "R0_rect": (3, 3), "Tr_velo_to_cam": (3, 4),
    "Tr_imu_to_velo": (3, 4)} float64 (the keys present in the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"KITTI calib file {path} does not exist")
    shapes = {"R0_rect": (3, 3)}
    calib: Dict[str, np.ndarray] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, values = line.partition(":")
        if not sep:
            raise ValueError(f"KITTI calib {path}, line {number}: expected 'key: values', got {line[:40]!r}")
        key = key.strip()
        try:
            numbers = np.array([float(x) for x in values.split()], dtype=np.float64)
        except ValueError:
            raise ValueError(f"KITTI calib {path}, line {number} ({key}): values are not all numbers") from None
        shape = shapes.get(key, (3, 4))
        if numbers.size != shape[0] * shape[1]:
            raise ValueError(f"KITTI calib {path}, {key}: {numbers.size} values, expected {shape[0] * shape[1]}")
        calib[key] = numbers.reshape(shape)
    for key in ("P2", "R0_rect", "Tr_velo_to_cam"):
        if key not in calib:
            raise ValueError(f"KITTI calib {path} has no {key}")
    return calib


def kitti_camera(calib: Dict[str, np.ndarray], image: np.ndarray, name: str = "image_2", projection: str = "P2"
                 ) -> Camera:
    """Camera from KITTI calibration: P = K [I | t] is split into K and the offset t, so
    K @ lidar2cam[:3] == P @ R0_rect @ Tr_velo_to_cam (homogeneous)."""
    P = calib[projection]
    K = P[:, :3]
    offset = np.linalg.solve(K, P[:, 3])
    rect = np.eye(4)
    rect[:3, :3] = calib["R0_rect"]
    velo = np.eye(4)
    velo[:3] = calib["Tr_velo_to_cam"]
    shift = np.eye(4)
    shift[:3, 3] = offset
    return Camera(name, image, K.copy(), shift @ rect @ velo)


def read_kitti_object(root: PathLike, frame: str, split: str = "training", image: str = "image_2") -> Scene:
    """Read KITTI object `root/<split>/{velodyne,calib,<image>}/<frame>` -> Scene (coord, strength; labels -1;
    extras["cameras"] = [Camera])."""
    base = Path(root) / split
    points = read_points(base / "velodyne" / f"{frame}.bin")
    calib = read_kitti_calib(base / "calib" / f"{frame}.txt")
    projection = {"image_2": "P2", "image_3": "P3"}[image]
    camera = kitti_camera(calib, read_image(base / image / f"{frame}.png"), image, projection)
    n = len(points)
    return Scene(coord=np.ascontiguousarray(points[:, :3]), color=np.zeros((n, 3), np.float32),
                 label=np.full(n, -1, np.int64), scene_id=f"{split}/{frame}",
                 strength=np.ascontiguousarray(points[:, 3:4]), extras={"cameras": [camera]})


class KittiObject:
    """Scene source of KITTI object frames (lidar + image_2 + calibration, no segmentation labels)."""

    class_names: Tuple[str, ...] = ()
    num_classes = 0

    def __init__(self, root: PathLike, split: str = "training") -> None:
        if root is None:
            raise ValueError("kitti_object needs root (the folder that holds training/ and testing/)")
        self.root, self.split = Path(root), split
        folder = self.root / split / "velodyne"
        if not folder.is_dir():
            raise FileNotFoundError(f"KITTI object folder {folder} does not exist")
        self.scene_ids = [f"{split}/{p.stem}" for p in sorted(folder.glob("*.bin"))]

    def __len__(self) -> int:
        return len(self.scene_ids)

    def __getitem__(self, index: int) -> Scene:
        return read_kitti_object(self.root, self.scene_ids[index].split("/", 1)[1], self.split)


# ------------------------------------------------------------------------------------ KITTI odometry / SemanticKITTI
def read_kitti_odometry_calib(path: PathLike) -> Dict[str, np.ndarray]:
    """Read a KITTI odometry (SemanticKITTI) `sequences/NN/calib.txt` (P0..P3 and Tr, each 3 x 4; Tr maps velodyne
    to the rectified camera 0) -> the object-style dict {"P0".."P3", "R0_rect": identity, "Tr_velo_to_cam": Tr}
    that `kitti_camera` takes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"KITTI odometry calib file {path} does not exist")
    calib: Dict[str, np.ndarray] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, values = line.partition(":")
        try:
            numbers = np.array([float(x) for x in values.split()], dtype=np.float64)
        except ValueError:
            raise ValueError(f"KITTI odometry calib {path}, line {number}: values are not all numbers") from None
        if not sep or numbers.size != 12:
            raise ValueError(f"KITTI odometry calib {path}, line {number}: expected 'key: 12 numbers', got "
                             f"{line[:40]!r}")
        calib[key.strip()] = numbers.reshape(3, 4)
    for key in ("P2", "Tr"):
        if key not in calib:
            raise ValueError(f"KITTI odometry calib {path} has no {key}")
    tr = calib.pop("Tr")
    return {**calib, "R0_rect": np.eye(3), "Tr_velo_to_cam": tr}


class SemanticKITTICameras(SemanticKITTI):
    """SemanticKITTI scans with the left colour camera in extras["cameras"] (`sequences/NN/image_2/XXXXXX.png`
    and `sequences/NN/calib.txt` of the KITTI odometry release), for image-to-lidar pre-training. Arguments as
    SemanticKITTI."""

    def __getitem__(self, index: int) -> Scene:
        scene = super().__getitem__(index)
        sequence, frame = self.scene_ids[index].split("/")
        folder = self.root / "sequences" / sequence
        calib = read_kitti_odometry_calib(folder / "calib.txt")
        camera = kitti_camera(calib, read_image(folder / "image_2" / f"{frame}.png"))
        return scene.replace(extras={**scene.extras, "cameras": [camera]})


# --------------------------------------------------------------------------------------------------- nuScenes
def read_nuscenes_infos(path: PathLike) -> List[dict]:
    """The `data_list` of an mmdetection3d (>= 1.1) nuScenes info pickle (plain dicts and lists)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"nuScenes info file {path} does not exist")
    with open(path, "rb") as handle:
        try:
            data = pickle.load(handle)
        except Exception as error:
            raise ValueError(f"nuScenes info file {path} cannot be unpickled: {error}") from None
    if not isinstance(data, dict) or "data_list" not in data:
        raise ValueError(f"nuScenes info file {path}: expected a dict with 'data_list' (mmdet3d >= 1.1 format)")
    return data["data_list"]


def read_nuscenes_sample(info: dict, data_root: PathLike, cameras: Optional[Sequence[str]] = None,
                         scene_id: Optional[str] = None) -> Scene:
    """One nuScenes sample from its info dict: the lidar sweep `lidar_points.lidar_path` (float32 (N, 5):
    x, y, z, intensity, ring) and the camera images with `cam2img` / `lidar2cam`, files looked up under
    `data_root` by their base name or relative path."""
    root = Path(data_root)

    def locate(relative: str) -> Path:
        for candidate in (root / relative, root / Path(relative).name):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"nuScenes file {relative} not found under {root}")

    lidar = info.get("lidar_points")
    if not lidar or "lidar_path" not in lidar:
        raise ValueError(f"nuScenes info {info.get('token', '?')}: no lidar_points.lidar_path")
    points = read_points(locate(lidar["lidar_path"]), columns=int(lidar.get("num_pts_feats", 5)))
    cams = []
    for name, cam in info.get("images", {}).items():
        if cameras is not None and name not in cameras:
            continue
        missing = [key for key in ("img_path", "cam2img", "lidar2cam") if cam.get(key) is None]
        if missing:
            raise ValueError(f"nuScenes info {info.get('token', '?')}, camera {name}: the calibration has no "
                             f"{', '.join(missing)}")
        K = np.asarray(cam["cam2img"], dtype=np.float64)[:3, :3]
        cams.append(Camera(name, read_image(locate(cam["img_path"])), K, np.asarray(cam["lidar2cam"], np.float64)))
    n = len(points)
    return Scene(coord=np.ascontiguousarray(points[:, :3]), color=np.zeros((n, 3), np.float32),
                 label=np.full(n, -1, np.int64), scene_id=scene_id or str(info.get("token", info.get("sample_idx"))),
                 strength=np.ascontiguousarray(points[:, 3:4]), extras={"cameras": cams})


class NuScenesPairs:
    """Scene source over an mmdetection3d nuScenes info pickle (lidar + 6 cameras, no segmentation labels).

    root       folder holding the lidar and image files (by relative path or base name)
    info_path  the info pickle (default: the only *.pkl in root)
    """

    class_names: Tuple[str, ...] = ()
    num_classes = 0

    def __init__(self, root: PathLike, split: str = "train", info_path: Optional[PathLike] = None,
                 cameras: Optional[Sequence[str]] = None) -> None:
        if root is None:
            raise ValueError("nuscenes needs root (the folder with the sweeps and images)")
        self.root, self.split, self.cameras = Path(root), split, cameras
        if info_path is None:
            pickles = sorted(self.root.glob("*.pkl"))
            if len(pickles) != 1:
                raise FileNotFoundError(f"nuScenes: pass info_path; {self.root} holds {len(pickles)} .pkl files")
            info_path = pickles[0]
        self.infos = read_nuscenes_infos(info_path)
        self.scene_ids = [str(info.get("token", i)) for i, info in enumerate(self.infos)]

    def __len__(self) -> int:
        return len(self.infos)

    def __getitem__(self, index: int) -> Scene:
        return read_nuscenes_sample(self.infos[index], self.root, self.cameras, self.scene_ids[index])
