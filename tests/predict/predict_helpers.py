"""Shared by the prediction tests: tiny methods with known receptive fields, dataset folders in the official
layouts, checkpoints of an initialised SpUNet, and independent re-implementations of the official scorers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement
from torch import nn

from pcseg.engine.checkpoint import save_atomic
from pcseg.engine.config import load_config
from pcseg.sparse import SparseConv3d, SparseInverseConv3d, SparseTensor, SubMConv3d

# The ScanNet v2 benchmark's 20 nyu40 ids (evaluate_semantic_label.py) and SemanticKITTI's raw id -> learning id
# map (semantic-kitti.yaml), restated here so the scorers below do not lean on pcseg's own tables.
SCANNET_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39]
KITTI_MAP = {0: 0, 1: 0, 10: 1, 11: 2, 13: 5, 15: 3, 16: 5, 18: 4, 20: 5, 30: 6, 31: 7, 32: 8, 40: 9, 44: 10, 48: 11,
             49: 12, 50: 13, 51: 14, 52: 0, 60: 9, 70: 15, 71: 16, 72: 17, 80: 18, 81: 19, 99: 0, 252: 1, 253: 7,
             254: 6, 255: 8, 256: 5, 257: 5, 258: 4, 259: 5}

# A SpUNet small enough for CPU tests (native backend: exact and deterministic).
TINY_MODEL = ["model.name=spunet14", "model.base_channels=8", "model.channels=[8,16,16,16,16,16,8,8]",
              "model.backend=native", "train.progress=false", "train.device=cpu"]


# --------------------------------------------------------------------------------------------- tiny methods
class PointwiseMethod(nn.Module):
    """Receptive field of one voxel: a linear layer on the voxel features."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels, num_classes)

    def predict(self, batch):
        return self.linear(batch.feat)[batch.inverse]


class ContextMethod(nn.Module):
    """Submanifold 3^3 conv, a stride-2 down / up pair and another 3^3 conv: the output of a voxel depends on
    voxels at most 1 + 2 * (1 + 1) + 1 = 6 cells away, and on the stride-2 grid the whole scene defines."""

    RADIUS = 6

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.stem = SubMConv3d(in_channels, 8, 3, backend="native")
        self.down = SparseConv3d(8, 8, 2, 2, indice_key="down", backend="native")
        self.mid = SubMConv3d(8, 8, 3, backend="native")
        self.up = SparseInverseConv3d(8, 8, 2, indice_key="down", backend="native")
        self.head = SubMConv3d(16, num_classes, 3, backend="native")

    def predict(self, batch):
        x = SparseTensor(batch.feat, batch.grid_coord, batch_size=batch.batch_size)
        a = self.stem(x)
        b = self.up(self.mid(self.down(a)))
        out = self.head(a.replace_feature(torch.cat([a.feats, torch.relu(b.feats)], 1)))
        return out.feats[batch.inverse]


# ------------------------------------------------------------------------------------------- checkpoints
def make_checkpoint(path: Path, overrides, num_classes: int, in_channels: int, seed: int = 0) -> Path:
    """A checkpoint of an initialised (untrained) method, as `pcseg train` writes them."""
    from pcseg.engine.build import build_method

    cfg = load_config(None, list(overrides))
    torch.manual_seed(seed)
    method = build_method(cfg, num_classes, in_channels)
    state = {"model": method.state_dict(), "config": cfg.to_dict(), "step": 0,
             "meta": {"num_classes": num_classes, "in_channels": in_channels}}
    save_atomic(state, path)
    return path


# --------------------------------------------------------------------------------------- official layouts
def room_points(rng: np.random.Generator, n: int, size=(4.0, 3.0, 2.5)) -> np.ndarray:
    return (rng.random((n, 3)) * np.asarray(size)).astype(np.float32)


def write_scannet(root: Path, scene_ids, points: int, seed: int = 0, split: str = "val") -> dict:
    """`root/scans/<id>/<id>_vh_clean_2.ply` + `.labels.ply` (random nyu40 ids 0-40, benchmark or not) and the
    split file; returns {scene id: nyu40 ids (N,)}."""
    rng = np.random.default_rng(seed)
    labels = {}
    for sid in scene_ids:
        folder = root / "scans" / sid
        folder.mkdir(parents=True)
        coord = room_points(rng, points)
        nyu40 = rng.integers(0, 41, points).astype(np.uint16)
        vertex = np.zeros(points, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"),
                                         ("blue", "u1"), ("alpha", "u1")])
        vertex["x"], vertex["y"], vertex["z"] = coord.T
        vertex["red"], vertex["green"], vertex["blue"] = (rng.random((3, points)) * 255).astype(np.uint8)
        vertex["alpha"] = 255
        faces = np.zeros(points // 3, dtype=[("vertex_indices", "i4", (3,))])
        faces["vertex_indices"] = np.arange(points // 3 * 3).reshape(-1, 3)
        face = PlyElement.describe(faces, "face", len_types={"vertex_indices": "u1"},
                                   val_types={"vertex_indices": "i4"})
        PlyData([PlyElement.describe(vertex, "vertex"), face]).write(str(folder / f"{sid}_vh_clean_2.ply"))
        labeled = np.zeros(points, dtype=vertex.dtype.descr + [("label", "u2")])
        for name in vertex.dtype.names:
            labeled[name] = vertex[name]
        labeled["label"] = nyu40
        PlyData([PlyElement.describe(labeled, "vertex"), face]).write(str(folder / f"{sid}_vh_clean_2.labels.ply"))
        labels[sid] = nyu40.astype(np.int64)
    (root / f"scannetv2_{split}.txt").write_text("".join(f"{sid}\n" for sid in scene_ids))
    return labels


def write_kitti_scan(root: Path, scene_id: str, points: int, rng: np.random.Generator) -> np.ndarray:
    """`root/sequences/NN/velodyne/XXXXXX.bin` + `labels/XXXXXX.label` (raw ids of the yaml with instance bits);
    returns the raw uint32 labels."""
    seq, scan = scene_id.split("/")
    for folder in ("velodyne", "labels"):
        (root / "sequences" / seq / folder).mkdir(parents=True, exist_ok=True)
    xyz = (rng.random((points, 3)) * [30.0, 30.0, 3.0] - [15.0, 15.0, 1.5]).astype(np.float32)
    cloud = np.concatenate([xyz, rng.random((points, 1), dtype=np.float32)], 1)
    cloud.astype(np.float32).tofile(root / "sequences" / seq / "velodyne" / f"{scan}.bin")
    semantic = rng.choice(np.array(sorted(KITTI_MAP)), points).astype(np.uint32)
    raw = semantic | (rng.integers(0, 5, points).astype(np.uint32) << 16)
    raw.tofile(root / "sequences" / seq / "labels" / f"{scan}.label")
    return raw


def write_s3dis_room(root: Path, area: str, room: str, files: dict, rng: np.random.Generator) -> None:
    """`root/<area>/<room>/Annotations/<class>_<k>.txt` with `files` = {file stem: points}."""
    folder = root / area / room / "Annotations"
    folder.mkdir(parents=True)
    for stem, n in files.items():
        rows = np.concatenate([room_points(rng, n), rng.integers(0, 256, (n, 3)).astype(np.float32)], 1)
        np.savetxt(folder / f"{stem}.txt", rows, fmt="%.6f %.6f %.6f %d %d %d")


# ------------------------------------------------------------------------------ official scorers, restated
def scannet_official(pred_files, gt_files):
    """ScanNet's evaluate_semantic_label.py, by its definitions: files of nyu40 ids, one per line; ground truth
    outside the 20 ids skipped; a prediction outside them goes to an 'unknown' column; IoU_c = TP / (TP + FP +
    FN) with FN = every other prediction on class c and FP = predictions of c on the other 19 classes' points.
    Returns {nyu40 id: IoU or nan}."""
    unknown = max(SCANNET_IDS) + 1
    counts = np.zeros((unknown + 1, unknown + 1), dtype=np.int64)
    for pred_file, gt_file in zip(pred_files, gt_files):
        pred = np.array(Path(pred_file).read_text().splitlines(), dtype=np.int64)
        gt = np.array(Path(gt_file).read_text().splitlines(), dtype=np.int64)
        assert pred.shape == gt.shape, pred_file
        kept = np.isin(gt, SCANNET_IDS)
        np.add.at(counts, (gt[kept], np.where(np.isin(pred, SCANNET_IDS), pred, unknown)[kept]), 1)
    ious = {}
    for c in SCANNET_IDS:
        tp = counts[c, c]
        fn = counts[c].sum() - tp
        fp = counts[[o for o in SCANNET_IDS if o != c], c].sum()
        ious[c] = tp / (tp + fp + fn) if tp + fp + fn else float("nan")
    return ious


def kitti_official(pred_files, gt_files, learning_map=KITTI_MAP, num_learning=20):
    """SemanticKITTI's evaluate_semantics.py + np_ioueval.py, by their definitions: low 16 bits of both files,
    learning map (ids it lacks -> 0), confusion counted [prediction, ground truth], the ground-truth column of
    class 0 zeroed, IoU = TP / (TP + FP + FN + 1e-15) for classes 1-19, mIoU their mean, accuracy = TP / points
    predicted as classes 1-19. Returns (miou, acc, iou (20,))."""
    lut = np.zeros(max(learning_map) + 100, dtype=np.int64)
    lut[list(learning_map)] = list(learning_map.values())
    conf = np.zeros((num_learning, num_learning), dtype=np.int64)
    for pred_file, gt_file in zip(pred_files, gt_files):
        gt = lut[np.fromfile(gt_file, dtype=np.int32) & 0xFFFF]
        pred = lut[np.fromfile(pred_file, dtype=np.int32) & 0xFFFF]
        assert pred.shape == gt.shape, pred_file
        np.add.at(conf, (pred, gt), 1)
    conf[:, 0] = 0
    tp = np.diag(conf).astype(np.float64)
    fp = conf.sum(1) - tp
    fn = conf.sum(0) - tp
    iou = tp / (tp + fp + fn + 1e-15)
    return iou[1:].mean(), tp.sum() / (tp[1:].sum() + fp[1:].sum() + 1e-15), iou
