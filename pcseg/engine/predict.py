"""Full-resolution prediction of whole splits into benchmark submission files, and evaluation of such folders.

Every point of a scene takes a class: the scene is voxelized once, the network predicts voxels and each point gets
its voxel's probabilities through the inverse map. A scene with more points than `max_points` is cut into
overlapping chunks of whole voxels: the xy extent is split recursively at weighted medians until each chunk (its
core box plus `overlap` metres around it) holds at most `max_points` points. Chunks keep the voxel features and
grid coordinates of the whole scene, so strided convolutions pool the same voxels as in one pass. Merging:
  "mean"  softmax probabilities summed over every chunk holding a point, then divided by their number;
  "core"  each point from the one chunk whose core box holds it, the overlap serving as context only: identical to
          one pass (up to float rounding) whenever the network's receptive field fits inside the overlap.
Test-time augmentation (z rotations, mirror flips, scales about the bounding-box centre) averages probabilities
over views. Files are written atomically; a folder records its run in `pcseg_predictions.json`, so an interrupted
run resumes (finished scenes are skipped) and a folder holding another run's files is refused unless `overwrite`.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from pcseg.atomic import write_text_atomic
from pcseg.data import Preprocessed, Sample, Scene, collate, voxelize_scene
from pcseg.data import submission as sub
from pcseg.engine import checkpoint as ckpt
from pcseg.engine.config import Config
from pcseg.engine.evaluator import rotate_z

MANIFEST = "pcseg_predictions.json"
MERGES = ("mean", "core")
VoxelSize = Union[float, Tuple[float, float, float]]


class OutputFolderError(ValueError):
    """An output folder that holds files of another run (or is not a folder)."""


# ------------------------------------------------------------------------------------------- augmentation views
@dataclass(frozen=True)
class TTA:
    """Test-time augmentation: every combination of a z rotation by 2 pi r / `rotations`, no flip or a mirror
    flip along each axis of `flips` ("x", "y"), and each scale of `scales`; identity first."""

    rotations: int = 1
    flips: Tuple[str, ...] = ()
    scales: Tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if self.rotations < 1:
            raise ValueError(f"TTA rotations must be >= 1, got {self.rotations}")
        if any(f not in ("x", "y") for f in self.flips) or len(set(self.flips)) != len(self.flips):
            raise ValueError(f"TTA flips must be distinct axes among 'x', 'y', got {self.flips}")
        if not self.scales or any(not (s > 0 and math.isfinite(s)) for s in self.scales):
            raise ValueError(f"TTA scales must be positive numbers, got {self.scales}")

    def views(self) -> List[Tuple[float, Optional[str], float]]:
        """[(angle radians, flip axis or None, scale)], the identity view first when it is included."""
        angles = [2 * math.pi * r / self.rotations for r in range(self.rotations)]
        return list(itertools.product(angles, (None,) + tuple(self.flips), self.scales))


def augment_view(scene: Scene, angle: float = 0.0, flip: Optional[str] = None, scale: float = 1.0) -> Scene:
    """The scene rotated by `angle` about z (as the evaluator's rotation TTA), mirrored along `flip` and scaled by
    `scale`, the last two about the bounding-box centre. coord (N, 3) float32; normals follow."""
    scene = rotate_z(scene, angle)
    if flip is None and scale == 1.0:
        return scene
    coord = scene.coord.astype(np.float64)
    center = (coord.min(0) + coord.max(0)) / 2
    coord = (coord - center) * scale
    normal = None if scene.normal is None else scene.normal.copy()
    if flip is not None:
        axis = "xy".index(flip)
        coord[:, axis] = -coord[:, axis]
        if normal is not None:
            normal[:, axis] = -normal[:, axis]
    return scene.replace(coord=(coord + center).astype(np.float32), normal=normal)


# ---------------------------------------------------------------------------------------------------- chunks
def plan_chunks(grid_xy: np.ndarray, counts: np.ndarray, max_points: int, margin: Sequence[int]
                ) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Cut voxels into overlapping chunks of at most `max_points` points.

    grid_xy (M, 2) int  voxel x, y grid coordinates;  counts (M,) int  points per voxel
    margin  (2,) int    overlap in voxels along x and y
    Returns [(voxels (V,) int64 sorted indices of the chunk's voxels, core (V,) bool: voxel inside the chunk's core
    box)]; the core boxes partition the voxels. Raises ValueError when a chunk no wider than the margin still
    holds more than `max_points` points (max_points too small for this overlap and density).
    """
    grid_xy = np.asarray(grid_xy, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    margin = np.asarray(margin, dtype=np.int64)
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    if len(grid_xy) == 0:
        return []
    chunks: List[Tuple[np.ndarray, np.ndarray]] = []
    stack = [(grid_xy.min(0), grid_xy.max(0), np.arange(len(grid_xy)))]  # core box [lo, hi] and candidates
    while stack:
        lo, hi, candidates = stack.pop()
        xy = grid_xy[candidates]
        core = np.all((xy >= lo) & (xy <= hi), axis=1)
        if not core.any():
            continue
        total = int(counts[candidates].sum())
        if total <= max_points:
            chunks.append((candidates, core))
            continue
        axis = int(np.argmax(hi - lo))
        width = hi - lo + 1
        if width[axis] <= max(int(margin.max()), 1):
            raise ValueError(f"max_points {max_points} is too small for the overlap: a chunk {width.tolist()} voxels "
                             f"wide with {margin.tolist()} voxels of overlap around it still holds {total} points; "
                             "raise max_points or lower the overlap")
        values, weights = xy[core, axis], counts[candidates][core]
        order = np.argsort(values, kind="stable")
        cumulative = np.cumsum(weights[order])
        split = int(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])
        split = min(max(split, int(lo[axis])), int(hi[axis]) - 1)  # both halves keep at least one grid column
        left_hi, right_lo = hi.copy(), lo.copy()
        left_hi[axis], right_lo[axis] = split, split + 1
        for box_lo, box_hi in ((right_lo, hi), (lo, left_hi)):  # the left half is taken from the stack first
            inside = np.all((xy >= box_lo - margin) & (xy <= box_hi + margin), axis=1)
            stack.append((box_lo, box_hi, candidates[inside]))
    return chunks


def chunk_sample(full: Sample, voxels: torch.Tensor) -> Tuple[Sample, torch.Tensor]:
    """The part of `full` made of the voxels `voxels` (V,) int64 (sorted) and all their points, with the voxel
    features and grid coordinates of the whole scene -> (sample, points (P,) int64 indices into full's points)."""
    num_voxels = len(full.grid_coord)
    keep = torch.zeros(num_voxels, dtype=torch.bool)
    keep[voxels] = True
    points = torch.nonzero(keep[full.inverse]).squeeze(1)
    remap = torch.full((num_voxels,), -1, dtype=torch.int64)
    remap[voxels] = torch.arange(len(voxels))
    return Sample(coord=full.coord[points], feat=full.feat[voxels], grid_coord=full.grid_coord[voxels],
                  inverse=remap[full.inverse[points]], label=full.label[points], full_label=full.full_label[points],
                  point_index=full.point_index[points], scene_id=full.scene_id, extras=dict(full.extras)), points


def _margin(overlap: float, voxel_size: VoxelSize) -> List[int]:
    size = [voxel_size] * 3 if isinstance(voxel_size, (int, float)) else list(voxel_size)
    return [int(math.ceil(overlap / size[axis] - 1e-9)) for axis in range(2)]


@torch.no_grad()
def predict_scene(method: nn.Module, scene: Scene, *, voxel_size: VoxelSize, features: Sequence[str],
                  num_classes: int, device: Union[str, torch.device] = "cpu", max_points: int = 0,
                  overlap: float = 1.0, merge: str = "mean", tta: TTA = TTA()) -> Tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities of every point of `scene`.

    method      anything with `predict(PointBatch) -> (N, K) logits` (put in eval mode by the caller)
    max_points  0: one pass per view; else chunks of at most this many points (see module docstring)
    overlap     metres of context around each chunk's core box
    merge       "mean" or "core" (module docstring)
    Returns (prob (N, K) float32 averaged over views and chunks, pred (N,) int64 argmax of the summed
    probabilities; the same classes `Evaluator` gives for an unchunked pass with the same rotations).
    """
    if merge not in MERGES:
        raise ValueError(f"merge must be one of {', '.join(MERGES)}, got {merge!r}")
    if max_points < 0 or overlap < 0:
        raise ValueError(f"max_points and overlap must be >= 0, got {max_points} and {overlap}")
    device = torch.device(device)
    n = scene.num_points
    total = torch.zeros(n, num_classes, dtype=torch.float32)
    weight = torch.zeros(n, dtype=torch.float32)
    if n == 0:
        return total, torch.zeros(0, dtype=torch.int64)
    for angle, flip, scale in tta.views():
        full = voxelize_scene(augment_view(scene, angle, flip, scale), voxel_size, features)
        if not max_points or n <= max_points:
            parts = [(full, None, None)]
        else:
            counts = torch.bincount(full.inverse, minlength=len(full.grid_coord))
            plan = plan_chunks(full.grid_coord[:, :2].numpy(), counts.numpy(), max_points,
                               _margin(overlap, voxel_size))
            parts = []
            for voxels, core in plan:
                piece, points = chunk_sample(full, torch.from_numpy(voxels))
                parts.append((piece, points, torch.from_numpy(core)))
        for piece, points, core in parts:
            logits = method.predict(collate([piece]).to(device))
            if logits.shape != (len(piece.coord), num_classes):
                raise ValueError(f"method.predict returned {tuple(logits.shape)} for {len(piece.coord)} points and "
                                 f"{num_classes} classes")
            prob = torch.softmax(logits.float(), dim=1).cpu()
            if points is None:
                total += prob
                weight += 1
                continue
            if merge == "core":
                mine = core[piece.inverse]
                points, prob = points[mine], prob[mine]
            total.index_add_(0, points, prob)
            weight.index_add_(0, points, torch.ones(len(points)))
    pred = total.argmax(1)
    return total / weight.clamp(min=1).unsqueeze(1), pred


# ------------------------------------------------------------------------------------------------ whole splits
def dataset_name(cfg: Config, source: Any) -> str:
    """The dataset a scene source holds ("scannet", ...; a preprocessed folder names the one it was made from)."""
    return source.dataset if isinstance(source, Preprocessed) else cfg.data.dataset


def load_method(cfg: Config, state: Mapping[str, Any], source: str, num_classes: int, in_channels: int) -> nn.Module:
    """The checkpoint's method (its EMA weights with eval.use_ema) for `num_classes` classes; a checkpoint trained
    for another class count is refused with both counts."""
    from pcseg.engine.build import build_method

    meta = state.get("meta") or {}
    if meta.get("num_classes") is not None and meta["num_classes"] != num_classes:
        raise ckpt.CheckpointError(f"{source} was trained for {meta['num_classes']} classes, the dataset "
                                   f"{cfg.data.dataset} has {num_classes}")
    method = build_method(cfg, num_classes, in_channels)
    weights = state["model"]
    if cfg.eval.use_ema:
        if state.get("ema") is None:
            raise ckpt.CheckpointError(f"{source} has no EMA weights (it was trained with train.ema_decay=0)")
        weights = state["ema"]["module"]
    ckpt.load_model_state(method, weights, source=source)
    return method


def config_hash(cfg: Config) -> str:
    """sha256 of the config sections that decide the predictions (data, model, method, eval.use_ema)."""
    plain = cfg.to_dict()
    key = {k: plain[k] for k in ("data", "model", "method")}
    key["use_ema"] = plain["eval"]["use_ema"]
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


IDENTITY = ("format", "dataset", "split", "config_sha256", "checkpoint_sha256", "settings")


def read_manifest(folder: Union[str, Path]) -> Optional[Dict[str, Any]]:
    """The run record of a predictions folder, or None when it has none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise OutputFolderError(f"{path} is malformed: {error}") from None
    missing = [k for k in IDENTITY + ("scene_ids", "num_classes", "config") if k not in manifest]
    if missing:
        raise OutputFolderError(f"{path} lacks {missing}")
    return manifest


def _run_files(folder: Path, manifest: Mapping[str, Any]) -> List[Path]:
    files = [sub.prediction_path(folder, sid, manifest["format"]) for sid in manifest["scene_ids"]]
    files += [sub.probs_path(folder, sid) for sid in manifest["scene_ids"]]
    return [f for f in files if f.is_file()]


def _prepare_folder(out: Path, manifest: Dict[str, Any], overwrite: bool) -> None:
    """Make `out` ready for the run `manifest`: new, the same run (resume), or replaced with `overwrite`."""
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"output {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    old = read_manifest(out)
    entries = [p for p in out.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp"))]
    if old is not None:
        changed = [k for k in IDENTITY if old[k] != manifest[k]]
        if changed and not overwrite:
            raise OutputFolderError(f"output folder {out} holds predictions of another run ({', '.join(changed)} "
                                    "differ); pass --overwrite to replace them or choose another folder")
        if overwrite:
            for path in _run_files(out, old):
                path.unlink()
    elif entries and not overwrite:
        raise OutputFolderError(f"output folder {out} is not empty and has no {MANIFEST} (files of another run?); "
                                "pass --overwrite to write into it anyway or choose another folder")
    sub.remove_partial(out)
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1))


def predict_split(cfg: Config, state: Mapping[str, Any], checkpoint: Union[str, Path], out: Union[str, Path], *,
                  split: Optional[str] = None, max_points: int = 0, overlap: float = 1.0, merge: str = "mean",
                  tta: TTA = TTA(), probs: bool = False, overwrite: bool = False, progress: bool = True
                  ) -> Dict[str, Any]:
    """Predict every point of every scene of `split` (default data.val_split) and write the dataset's submission
    files under `out` (pcseg.data.submission), plus `probs/<scene_id>.npy` with `probs`.

    state       the loaded checkpoint (`checkpoint` is its path, recorded and hashed in the manifest)
    Resumes a folder of the same run (scenes already written are skipped); refuses one holding files of another
    run unless `overwrite` (then the previous run's files are deleted and every scene is written again).
    Returns {'written', 'skipped', 'points', 'seconds', 'format', 'out'}.
    """
    from tqdm.auto import tqdm

    from pcseg.engine.build import build_dataset
    from pcseg.engine.trainer import resolve_device

    split = split or cfg.data.val_split
    dataset = build_dataset(cfg, split, False)
    source = dataset.source
    if len(source) == 0:
        raise ValueError(f"split {split!r} of {cfg.data.dataset} has no scenes")
    fmt = sub.benchmark_of(dataset_name(cfg, source))
    for sid in source.scene_ids:
        sub.prediction_path(out, sid, fmt)  # every id must name a file before anything is written
    method = load_method(cfg, state, str(checkpoint), dataset.num_classes, dataset.in_channels)
    device = resolve_device(cfg.train.device)
    method.to(device).eval()
    out = Path(out)
    settings = {"max_points": max_points, "overlap": overlap, "merge": merge, "tta": asdict(tta), "probs": probs}
    manifest = {"format": fmt, "dataset": dataset_name(cfg, source), "split": split,
                "config_sha256": config_hash(cfg), "checkpoint_sha256": ckpt.file_sha256(checkpoint),
                "checkpoint": str(Path(checkpoint).resolve()), "settings": json.loads(json.dumps(settings)),
                "num_classes": dataset.num_classes, "class_names": list(dataset.class_names),
                "scene_ids": list(source.scene_ids), "config": cfg.to_dict()}
    _prepare_folder(out, manifest, overwrite)

    written = skipped = points = 0
    start = time.perf_counter()
    bar = tqdm(range(len(source)), desc="predict", unit="scene", disable=not progress, dynamic_ncols=True)
    for index in bar:
        sid = source.scene_ids[index]
        target = sub.prediction_path(out, sid, fmt)
        if target.is_file() and (not probs or sub.probs_path(out, sid).is_file()):
            skipped += 1
            continue
        try:
            scene = source[index]
        except FileNotFoundError as error:
            raise FileNotFoundError(f"scene {sid}: {error}; the {written} scenes written so far are complete, "
                                    "run again to resume") from None
        prob, pred = predict_scene(method, scene, voxel_size=dataset.voxel_size, features=dataset.features,
                                   num_classes=dataset.num_classes, device=device, max_points=max_points,
                                   overlap=overlap, merge=merge, tta=tta)
        if probs:
            sub.write_probs(out, sid, prob.numpy())
        sub.write_prediction(out, sid, pred.numpy(), fmt, dataset.num_classes)
        written += 1
        points += scene.num_points
    bar.close()
    return {"written": written, "skipped": skipped, "points": points, "seconds": time.perf_counter() - start,
            "format": fmt, "out": str(out)}


# ---------------------------------------------------------------------------------------- evaluating folders
def evaluate_predictions(cfg: Config, pred_dir: Union[str, Path], split: Optional[str] = None,
                         progress: bool = False) -> Dict[str, Any]:
    """Score the prediction files in `pred_dir` against the labels of `split` (default: the manifest's split,
    else data.val_split) with the benchmark's class list, ignore rules and averaging (pcseg.data.submission).

    The format is the manifest's, else the dataset's submission format, else the `<scene_id>.npy` class indices
    `pcseg eval --save-predictions` writes. Every scene of the split needs its file, with one entry per point.
    Returns {'miou', 'acc', 'iou', 'points', 'rule', 'format', 'scenes', 'confusion' (K x K+1 list)}.
    """
    from tqdm.auto import tqdm

    from pcseg.engine.build import build_source

    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"predictions folder not found: {pred_dir}")
    manifest = read_manifest(pred_dir)
    split = split or (manifest["split"] if manifest else cfg.data.val_split)
    source = build_source(cfg, split)
    if len(source) == 0:
        raise ValueError(f"split {split!r} of {cfg.data.dataset} has no scenes")
    num_classes, names = int(source.num_classes), list(source.class_names)
    benchmark = sub.benchmark_of(dataset_name(cfg, source))
    if manifest is not None:
        if manifest["num_classes"] != num_classes:
            raise ValueError(f"{pred_dir} holds predictions for {manifest['num_classes']} classes, the dataset "
                             f"{cfg.data.dataset} has {num_classes}")
        fmt = manifest["format"]
    else:
        first = source.scene_ids[0]
        candidates = [benchmark, "classes"] if benchmark != "classes" else ["classes"]
        found = [f for f in candidates if sub.prediction_path(pred_dir, first, f).is_file()]
        fmt = found[0] if found else candidates[0]
    paths = [sub.prediction_path(pred_dir, sid, fmt) for sid in source.scene_ids]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(paths)} scenes of split {split!r} have no prediction file "
                                f"in {pred_dir} (e.g. {missing[0]})")
    learning_map = getattr(source, "learning_map", sub.LEARNING_MAP)
    conf = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    for index in tqdm(range(len(source)), desc="eval", unit="scene", disable=not progress, dynamic_ncols=True):
        label = np.asarray(source[index].label, dtype=np.int64)
        pred = sub.read_prediction(paths[index], fmt, num_classes, learning_map)
        if len(pred) != len(label):
            raise ValueError(f"prediction file {paths[index]}: {len(pred)} predictions but scene "
                             f"{source.scene_ids[index]} has {len(label)} points")
        conf += sub.benchmark_confusion(pred, label, num_classes)
    scores = sub.score_confusion(conf, sub.rule_of(benchmark), names)
    scores.update(format=fmt, scenes=len(paths), confusion=conf.tolist())
    return scores
