"""Per-point prediction files in each benchmark's submission format, and each benchmark's scoring rule.

Formats (one file per scene, written atomically: a temporary file in the same folder, then a rename):
  "scannet"        `<root>/<scene_id>.txt`: one nyu40 id per line, in the vertex order of `<scene_id>_vh_clean_2.ply`
                   (class c -> VALID_CLASS_IDS[c]); the upload of the ScanNet v2 3D semantic label benchmark.
  "semantickitti"  `<root>/sequences/NN/predictions/XXXXXX.label` for scene "NN/XXXXXX": uint32 raw label ids
                   (class c -> learning id c + 1 -> `learning_map_inv`), in the point order of the scan's `.bin`.
  "classes"        `<root>/<scene_id>.npy`: (N,) int64 class index of every point, in the scene's point order. Used
                   for S3DIS (the room's annotation files concatenated in name order, as pcseg's reader reads
                   them), the synthetic datasets and anything else; `pcseg eval --save-predictions` writes the same.
Class probabilities of any dataset, on request: `<root>/probs/<scene_id>.npy`, (N, K) float16.

Reading a prediction file gives class indices in [0, K] where K stands for "a prediction outside the benchmark's
classes" (a nyu40 id that is not one of the 20, a raw SemanticKITTI id the learning map sends to 0). Scores come
from a (K, K + 1) confusion matrix (rows: ground truth, columns: prediction, last column: such predictions):
  "scannet"        ScanNet's `evaluate_semantic_label.py`: IoU_c = TP / (TP + FP + FN) where FN counts every
                   prediction on a point of class c that is not c (other ids included) and FP counts predictions
                   of c on points of the other benchmark classes; ground truth outside the 20 classes is ignored.
                   NaN for a class absent from labels and predictions; mIoU averages the defined IoUs.
  "semantickitti"  SemanticKITTI's `evaluate_semantics.py` (`np_ioueval.py`): the same IoU with 1e-15 added to the
                   denominator, so a class absent from labels and predictions scores 0 and the mIoU averages all
                   K classes; accuracy = correct points / points whose prediction is not the ignored class.
  "default"        pcseg's own metric (SegMetrics): IoU as above, absent classes NaN and skipped by the mIoU.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np

from pcseg.atomic import write_atomic
from pcseg.data.scannet import VALID_CLASS_IDS
from pcseg.data.semantickitti import LEARNING_MAP

PathLike = Union[str, os.PathLike]

FORMATS = ("scannet", "semantickitti", "classes")
RULES = ("scannet", "semantickitti", "default")

# learning id -> raw id, as in the official semantic-kitti.yaml (learning id 0 = ignored, never written)
LEARNING_MAP_INV: Dict[int, int] = {
    0: 0, 1: 10, 2: 11, 3: 15, 4: 18, 5: 20, 6: 30, 7: 31, 8: 32, 9: 40, 10: 44, 11: 48, 12: 49, 13: 50, 14: 51,
    15: 70, 16: 71, 17: 72, 18: 80, 19: 81,
}


def benchmark_of(dataset: str) -> str:
    """Submission format and scoring rule of a dataset name: "scannet", "semantickitti", or "classes" (scored by
    the "default" rule) for every other dataset."""
    return dataset if dataset in ("scannet", "semantickitti") else "classes"


def rule_of(fmt: str) -> str:
    """Scoring rule of a format: the benchmark's own for ScanNet and SemanticKITTI, pcseg's otherwise."""
    return fmt if fmt in ("scannet", "semantickitti") else "default"


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown prediction format {fmt!r}; choose from {', '.join(FORMATS)}")


def _relative(scene_id: str) -> Path:
    """Scene id as a relative path (rejects ids that would leave the output folder)."""
    parts = Path(scene_id).parts
    if not parts or any(p in ("..", ".", "") for p in parts) or Path(scene_id).is_absolute():
        raise ValueError(f"scene id {scene_id!r} cannot be used as a file name")
    return Path(*parts)


def prediction_path(root: PathLike, scene_id: str, fmt: str) -> Path:
    """Where the prediction file of `scene_id` lives under `root` in format `fmt`."""
    _check_format(fmt)
    if fmt == "semantickitti":
        parts = scene_id.split("/")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"SemanticKITTI scene id {scene_id!r} is not 'NN/XXXXXX' (sequence/scan)")
        sequence, scan = _relative(parts[0]), _relative(parts[1])
        return Path(root) / "sequences" / sequence / "predictions" / f"{scan}.label"
    return Path(root) / f"{_relative(scene_id)}{'.txt' if fmt == 'scannet' else '.npy'}"


def probs_path(root: PathLike, scene_id: str) -> Path:
    """Where the class probabilities of `scene_id` live under `root`."""
    return Path(root) / "probs" / f"{_relative(scene_id)}.npy"


def remove_partial(root: PathLike) -> int:
    """Delete temporary files that interrupted `write_atomic` calls left under `root` -> how many."""
    count = 0
    for tmp in Path(root).rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink()
            count += 1
    return count


def _check_classes(pred: np.ndarray, num_classes: int, what: str) -> np.ndarray:
    pred = np.asarray(pred)
    if pred.ndim != 1 or not np.issubdtype(pred.dtype, np.integer):
        raise ValueError(f"{what}: predictions must be (N,) integer class indices, got {pred.dtype} {pred.shape}")
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"{what}: class indices must lie in [0, {num_classes}), got {pred.min()}..{pred.max()}")
    return pred.astype(np.int64, copy=False)


def learning_map_inv_lookup(num_classes: int, learning_map_inv: Mapping[int, int] = LEARNING_MAP_INV) -> np.ndarray:
    """(K,) int64: class index c -> raw SemanticKITTI id learning_map_inv[c + 1]."""
    missing = [c + 1 for c in range(num_classes) if c + 1 not in learning_map_inv]
    if missing:
        raise ValueError(f"learning_map_inv has no raw id for learning ids {missing}")
    return np.array([learning_map_inv[c + 1] for c in range(num_classes)], dtype=np.int64)


def write_prediction(root: PathLike, scene_id: str, pred: np.ndarray, fmt: str, num_classes: int,
                     learning_map_inv: Mapping[int, int] = LEARNING_MAP_INV) -> Path:
    """Write pred (N,) int class indices in [0, num_classes) of `scene_id` in format `fmt` -> the file's path."""
    path = prediction_path(root, scene_id, fmt)
    pred = _check_classes(pred, num_classes, f"scene {scene_id!r}")
    if fmt == "scannet":
        if num_classes != len(VALID_CLASS_IDS):
            raise ValueError(f"ScanNet format needs the {len(VALID_CLASS_IDS)} benchmark classes, got {num_classes}")
        names = np.array([str(i).encode() for i in VALID_CLASS_IDS])
        text = b"\n".join(names[pred].tolist()) + (b"\n" if len(pred) else b"")
        return write_atomic(path, lambda handle: handle.write(text))
    if fmt == "semantickitti":
        raw = learning_map_inv_lookup(num_classes, learning_map_inv)[pred].astype(np.uint32)
        return write_atomic(path, lambda handle: handle.write(raw.tobytes()))
    return write_atomic(path, lambda handle: np.save(handle, pred))


def write_probs(root: PathLike, scene_id: str, prob: np.ndarray) -> Path:
    """Write class probabilities prob (N, K) of `scene_id` as float16 -> the file's path."""
    prob = np.asarray(prob)
    if prob.ndim != 2:
        raise ValueError(f"scene {scene_id!r}: probabilities must be (N, K), got {prob.shape}")
    data = prob.astype(np.float16)
    return write_atomic(probs_path(root, scene_id), lambda handle: np.save(handle, data))


def read_prediction(path: PathLike, fmt: str, num_classes: int,
                    learning_map: Mapping[int, int] = LEARNING_MAP) -> np.ndarray:
    """Read a prediction file -> (N,) int64 class indices in [0, K], K = a prediction outside the benchmark's
    classes. Errors name the file: missing, unreadable, ScanNet ids outside nyu40's 0-40 (the official script
    cannot count them either), class indices outside [0, K) in a "classes" file."""
    _check_format(fmt)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prediction file {path} does not exist")
    if fmt == "scannet":
        lines = path.read_bytes().splitlines()
        try:
            ids = np.array(lines, dtype=np.bytes_).astype(np.int64) if lines else np.zeros(0, np.int64)
        except (ValueError, OverflowError):
            bad = next((i for i, line in enumerate(lines) if not line.strip().isdigit()), 0)
            raise ValueError(f"prediction file {path}, line {bad + 1}: {lines[bad][:20]!r} is not a nyu40 id") from None
        if ids.size and (ids.min() < 0 or ids.max() > 40):
            raise ValueError(f"prediction file {path}: ids must be nyu40 ids 0-40, got {ids.min()}..{ids.max()}")
        lut = np.full(41, num_classes, dtype=np.int64)
        lut[np.asarray(VALID_CLASS_IDS)] = np.arange(len(VALID_CLASS_IDS))
        return lut[ids]
    if fmt == "semantickitti":
        size = path.stat().st_size
        if size % 4:
            raise ValueError(f"prediction file {path}: {size} bytes is not a whole number of uint32 labels")
        raw = np.fromfile(path, dtype=np.uint32) & 0xFFFF  # the low 16 bits hold the semantic id
        lut = np.zeros(1 << 16, dtype=np.int64)  # raw ids the map does not list count as learning id 0
        for key, value in learning_map.items():
            lut[key] = value
        learned = lut[raw.astype(np.int64)]
        return np.where(learned > 0, learned - 1, num_classes)
    try:
        pred = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"prediction file {path} is not a readable .npy: {error}") from None
    return _check_classes(pred, num_classes, f"prediction file {path}")


def read_probs(root: PathLike, scene_id: str) -> np.ndarray:
    """Class probabilities (N, K) float32 written by `write_probs`."""
    path = probs_path(root, scene_id)
    if not path.is_file():
        raise FileNotFoundError(f"probability file {path} does not exist")
    return np.load(path, allow_pickle=False).astype(np.float32)


def benchmark_confusion(pred: np.ndarray, label: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K + 1) int64 counts: rows = ground-truth class (points with label -1 skipped), columns = predicted class,
    column K = a prediction outside the benchmark's classes. pred (N,) in [0, K], label (N,) in [-1, K)."""
    pred, label = np.asarray(pred, dtype=np.int64), np.asarray(label, dtype=np.int64)
    if pred.shape != label.shape:
        raise ValueError(f"benchmark_confusion: {pred.shape[0]} predictions for {label.shape[0]} labels")
    valid = label >= 0
    index = label[valid] * (num_classes + 1) + pred[valid]
    return np.bincount(index, minlength=num_classes * (num_classes + 1)).reshape(num_classes, num_classes + 1)


def score_confusion(conf: np.ndarray, rule: str, class_names: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """Scores of a (K, K + 1) confusion matrix under a benchmark's rule (see module docstring).

    Returns {'miou', 'acc', 'iou': {name: float}, 'points': labeled points, 'rule'}.
    """
    if rule not in RULES:
        raise ValueError(f"unknown scoring rule {rule!r}; choose from {', '.join(RULES)}")
    conf = np.asarray(conf, dtype=np.int64)
    k = conf.shape[0]
    if conf.shape != (k, k + 1):
        raise ValueError(f"score_confusion: expected a (K, K + 1) matrix, got {conf.shape}")
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    tp = np.diag(conf[:, :k]).astype(np.float64)
    union = conf.sum(1) + conf[:, :k].sum(0) - tp  # TP + FN (all columns) + FP (benchmark rows only)
    total = int(conf.sum())
    if rule == "semantickitti":
        iou = tp / (union + 1e-15)
        miou = float(iou.mean())
        counted = int(conf[:, :k].sum())
        acc = float(tp.sum() / (counted + 1e-15))
    else:
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
        defined = ~np.isnan(iou)
        miou = float(iou[defined].mean()) if defined.any() else float("nan")
        acc = float(tp.sum() / total) if total else float("nan")
    return {"miou": miou, "acc": acc, "iou": {n: float(v) for n, v in zip(names, iou)}, "points": total,
            "rule": rule}
