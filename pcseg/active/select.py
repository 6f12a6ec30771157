"""Pick the next points to label: score every training scene with a model, rank all points of the dataset, drop
near-duplicates (feature-distance suppression) and take exactly the budget.

Per scene, the unlabeled points are scored (pcseg.active.uncertainty) and the best `pool` of them are kept as
candidates (a multiple `pool_factor` of the scene's share of the round's budget, at least `min_pool`), with their
coordinates and backbone features. The candidates of all scenes are then ranked together (score descending, ties
by scene order and point index, so a run is deterministic) and walked with suppression until the budget is met; if
suppression leaves too few, the suppressed candidates fill the rest in rank order. Already labeled points are never
candidates; in oracle mode (simulation) neither are points without a ground-truth label, which no oracle could
label.

Scores are cached per scene (`cache_dir`), so an interrupted selection resumes where it stopped; the cache is
keyed by the model, the settings and the previous budget, and a mismatch starts over.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from pcseg.active.config import ActiveConfig
from pcseg.active.suppression import suppress
from pcseg.active.uncertainty import MODEL_FREE, coverage_scores, uncertainty
from pcseg.atomic import write_text_atomic
from pcseg.weak.budget import Budget, check_indices, merge_budgets, union_budgets

PathLike = Union[str, Path]


@dataclass
class ScenePool:
    """The candidates kept for one scene (P of them, best first).

    index (P,) int64 point indices; score (P,) float32; coord (P, 3) float32; feat (P, C) float32 or None (random)
    num_points: points of the scene; candidates: its points that could be picked (unlabeled [and labelable])
    """

    scene_id: str
    num_points: int
    candidates: int
    index: torch.Tensor
    score: torch.Tensor
    coord: torch.Tensor
    feat: Optional[torch.Tensor]


@dataclass
class Selection:
    """What `select_points` picked and how: picks {scene_id: sorted LongTensor} of this round only."""

    picks: Budget
    budget: int
    total_points: int
    candidates: int
    pooled: int
    walked: int
    suppressed: int
    filled: int
    per_scene: Dict[str, int] = field(default_factory=dict)
    random: int = 0  # picks made uniformly at random (active.random_share)

    def summary(self) -> str:
        scenes = sum(1 for v in self.per_scene.values() if v)
        mixed = f", {self.random} of them at random" if self.random else ""
        return (f"picked {self.budget} points in {scenes} scenes ({100 * self.budget / max(self.total_points, 1):.4g}% "
                f"of {self.total_points:,}{mixed}); {self.pooled} candidates pooled of {self.candidates:,}, "
                f"{self.suppressed} suppressed as near-duplicates, {self.filled} filled back")


def round_budget(total_points: int, ratio: Optional[float] = None, num_points: Optional[int] = None) -> int:
    """Points to pick: `num_points`, or round(ratio * total_points) (at least 1)."""
    if (ratio is None) == (num_points is None):
        raise ValueError("give exactly one of ratio (fraction of the dataset) and num_points")
    if num_points is not None:
        if num_points < 1:
            raise ValueError(f"the number of points to pick must be >= 1, got {num_points}")
        return int(num_points)
    if not 0 < ratio <= 1:
        raise ValueError(f"the fraction of points to pick must lie in (0, 1], got {ratio}")
    return max(1, int(round(ratio * total_points)))


def candidate_mask(label: np.ndarray, labeled: Optional[torch.Tensor], labelable_only: bool) -> np.ndarray:
    """(N,) bool: points that may be picked. label (N,) int64 ground truth (-1 = none); labeled (K,) int64 or None."""
    mask = label >= 0 if labelable_only else np.ones(len(label), dtype=bool)
    if labeled is not None and len(labeled):
        mask[labeled.numpy()] = False
    return mask


@torch.no_grad()
def point_outputs(method: nn.Module, batch) -> Tuple[torch.Tensor, torch.Tensor]:
    """(prob (N, K) class probabilities of the points, feat (N, C) features for suppression).

    Methods built like `Supervised` (a `backbone` and a `head`) give the backbone's voxel features; any other
    method's features are its class probabilities.
    """
    from pcseg.sparse import SparseTensor

    backbone, head = getattr(method, "backbone", None), getattr(method, "head", None)
    if backbone is not None and head is not None:
        voxel_feat = backbone(SparseTensor(batch.feat, batch.grid_coord, batch_size=batch.batch_size)).feats
        prob = torch.softmax(head(voxel_feat).float(), dim=1)[batch.inverse]
        return prob, voxel_feat.float()[batch.inverse]
    prob = torch.softmax(method.predict(batch).float(), dim=1)
    return prob, prob


def score_scene(scene, cfg: ActiveConfig, method: Optional[nn.Module] = None, voxel_size: float = 0.05,
                features: Sequence[str] = ("color",), device: Union[str, torch.device] = "cpu", *,
                candidates: Optional[np.ndarray] = None, count: int = 0, labeled: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(score (N,) float32, feat (N, C) float32 or None) of one scene as read (no augmentation).

    The coverage strategy also takes candidates (N,) bool (default: every point), count (how many of them to
    order, > 0) and labeled (L,) int64 points labeled so far; one candidate per voxel of `voxel_size` takes part.
    """
    coord = torch.from_numpy(np.ascontiguousarray(scene.coord, dtype=np.float32))
    if cfg.strategy == "random":
        return uncertainty("random", None, coord, scene.scene_id, seed=cfg.seed), None
    if cfg.strategy == "coverage":
        if count < 1:
            raise ValueError("strategy 'coverage' needs count >= 1: how many candidates to order")
        mask = np.ones(scene.num_points, dtype=bool) if candidates is None else candidates
        cell = max(voxel_size) if isinstance(voxel_size, (tuple, list)) else voxel_size
        return coverage_scores(coord, mask, count, cell, labeled), None
    if method is None:
        raise ValueError(f"strategy {cfg.strategy!r} needs a model (a checkpoint)")
    from pcseg.data import collate, voxelize_scene

    batch = collate([voxelize_scene(scene, voxel_size, features)]).to(device)
    prob, feat = point_outputs(method, batch)
    score = uncertainty(cfg.strategy, prob, batch.coord, scene.scene_id, levels=cfg.levels,
                        parent_weight=cfg.parent_weight, seed=cfg.seed)
    return score.float().cpu(), feat.cpu()


def pool_size(candidates: int, num_points: int, rate: float, cfg: ActiveConfig) -> int:
    """Candidates kept for a scene: min(candidates, max(min_pool, ceil(pool_factor * rate * num_points)))."""
    return min(candidates, max(cfg.min_pool, math.ceil(cfg.pool_factor * rate * num_points)))


def scene_pool(scene, score: torch.Tensor, feat: Optional[torch.Tensor], mask: np.ndarray, size: int) -> ScenePool:
    """Keep the `size` best-scoring points where `mask` (N,) bool is True (ties: lower index first)."""
    idx = np.flatnonzero(mask)
    s = score.numpy()[idx]
    best = idx[np.lexsort((idx, -s))[:size]]
    index = torch.from_numpy(best.astype(np.int64))
    return ScenePool(
        scene_id=scene.scene_id, num_points=scene.num_points, candidates=len(idx), index=index,
        score=score[index].float(), coord=torch.from_numpy(np.asarray(scene.coord, dtype=np.float32)[best]),
        feat=None if feat is None else feat[index].float())


class ScoreCache:
    """Per-scene pools on disk under `root`: `manifest.json` holds the key they were computed under."""

    def __init__(self, root: PathLike, key: str) -> None:
        self.root, self.key = Path(root), key
        manifest = self.root / "manifest.json"
        old = json.loads(manifest.read_text()) if manifest.is_file() else None
        if old is None or old.get("key") != key:
            if self.root.is_dir():
                for path in self.root.glob("scene_*.pt"):
                    path.unlink()
            self.root.mkdir(parents=True, exist_ok=True)
            self._write_manifest({"key": key, "num_points": {}})

    def _write_manifest(self, data: dict) -> None:
        write_text_atomic(self.root / "manifest.json", json.dumps(data))

    def _path(self, position: int) -> Path:
        return self.root / f"scene_{position:06d}.pt"

    def get(self, position: int, scene_id: str) -> Optional[ScenePool]:
        path = self._path(position)
        if not path.is_file():
            return None
        data = torch.load(path, map_location="cpu", weights_only=True)
        return ScenePool(**data) if data.get("scene_id") == scene_id else None

    def put(self, position: int, pool: ScenePool) -> None:
        from pcseg.engine.checkpoint import save_atomic

        save_atomic(asdict(pool), self._path(position))

    def clear(self) -> None:
        """Remove the cache's files (and its folder when nothing else is in it)."""
        for path in self.root.glob("scene_*.pt"):
            path.unlink()
        (self.root / "manifest.json").unlink(missing_ok=True)
        if not any(self.root.iterdir()):
            self.root.rmdir()

    def num_points(self) -> Dict[str, int]:
        return dict(json.loads((self.root / "manifest.json").read_text())["num_points"])

    def set_num_points(self, counts: Mapping[str, int]) -> None:
        self._write_manifest({"key": self.key, "num_points": dict(counts)})


def budget_digest(budget: Mapping[str, torch.Tensor]) -> str:
    """A short hash of a budget's content (scene ids and indices)."""
    h = hashlib.sha256()
    for scene_id in sorted(budget):
        h.update(scene_id.encode("utf-8") + b"\0" + np.asarray(budget[scene_id], dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def select_points(source, cfg: ActiveConfig, previous: Mapping[str, torch.Tensor], *,
                  ratio: Optional[float] = None, num_points: Optional[int] = None,
                  method: Optional[nn.Module] = None, voxel_size: float = 0.05,
                  features: Sequence[str] = ("color",), device: Union[str, torch.device] = "cpu",
                  labelable_only: bool = True, cache_dir: Optional[PathLike] = None, model_key: str = "",
                  progress: bool = True, point_counts: Optional[Mapping[str, int]] = None) -> Selection:
    """Pick `num_points` (or `ratio` of all points) new points over every scene of `source`.

    source          scene source (scene_ids, __getitem__ -> Scene); its labels are the ground truth
    cfg             strategy and suppression settings (ActiveConfig)
    previous        {scene_id: LongTensor} points labeled so far: never picked again
    method          the trained model (any strategy but "random" and "coverage"); run in eval mode on `device`
    voxel_size, features   how the model's input is built (the training config's)
    labelable_only  oracle mode: skip points whose ground truth is -1
    cache_dir       per-scene score cache (resume an interrupted selection); `model_key` identifies the model
    point_counts    {scene_id: points} of every scene when the caller knows them (saves reading each scene twice)
    returns         Selection whose `picks` hold exactly the budget

    With `cfg.random_share` > 0, that share of the budget is picked uniformly at random first, and the strategy
    picks the rest among the points still unlabeled.
    """
    cfg.check()
    if cfg.random_share > 0 and cfg.strategy != "random":
        return _select_mixed(source, cfg, previous, ratio, num_points, method=method, voxel_size=voxel_size,
                             features=features, device=device, labelable_only=labelable_only, cache_dir=cache_dir,
                             model_key=model_key, progress=progress, point_counts=point_counts)
    scene_ids = list(source.scene_ids)
    position = {sid: i for i, sid in enumerate(scene_ids)}
    unknown = [sid for sid in previous if sid not in position]
    if unknown:
        raise ValueError(f"the previous budget lists {len(unknown)} scene(s) the dataset does not have, "
                         f"e.g. {unknown[0]!r}")
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("initial", "round_ratio", "round_points", "rounds")}
    key = json.dumps({"settings": settings, "ratio": ratio, "num_points": num_points, "model": model_key,
                      "previous": budget_digest(previous), "labelable_only": labelable_only, "voxel": voxel_size,
                      "features": list(features), "scenes": scene_ids}, sort_keys=True, default=list)
    cache = ScoreCache(cache_dir, hashlib.sha256(key.encode()).hexdigest()) if cache_dir is not None else None
    if method is not None:
        was_training = method.training
        method.eval()
    try:
        rate = ratio
        if num_points is not None:
            counts = dict(point_counts) if point_counts is not None else (
                cache.num_points() if cache is not None else {})
            if len(counts) != len(scene_ids):
                counts = scene_point_counts(source)
                if cache is not None:
                    cache.set_num_points(counts)
            rate = num_points / max(sum(counts.values()), 1)
        pools = _score_all(source, cfg, previous, rate, method, voxel_size, features, device, labelable_only,
                           cache, progress)
    finally:
        if method is not None:
            method.train(was_training)
    selection = _select(pools, cfg, round_budget(sum(p.num_points for p in pools), ratio, num_points),
                        labelable_only)
    if cache is not None:
        cache.clear()
    return selection


def scene_point_counts(source) -> Dict[str, int]:
    """{scene_id: number of points} of every scene of `source` (reads each scene)."""
    return {sid: int(source[i].num_points) for i, sid in enumerate(source.scene_ids)}


def _select_mixed(source, cfg: ActiveConfig, previous: Mapping[str, torch.Tensor], ratio: Optional[float],
                  num_points: Optional[int], cache_dir: Optional[PathLike] = None,
                  point_counts: Optional[Mapping[str, int]] = None, **kwargs) -> Selection:
    """`select_points` with a random share: round(random_share * budget) random picks first, then the strategy's
    among the rest (only the strategy's scores are cached: random ones are cheap). The candidate, pool and
    suppression counts of the result are the strategy's part."""
    if num_points is None:
        round_budget(1, ratio)  # checks the ratio before any scene is read
    counts = dict(point_counts) if point_counts is not None else scene_point_counts(source)
    if num_points is None:
        num_points = round_budget(sum(counts.values()), ratio)
    budget = round_budget(0, num_points=num_points)
    num_random = int(round(cfg.random_share * budget))
    parts, labeled, picks = [], dict(previous), {}
    for strategy, count, cache in (("random", num_random, None), (cfg.strategy, budget - num_random, cache_dir)):
        if count:
            part = select_points(source, replace(cfg, strategy=strategy, random_share=0.0), labeled,
                                 num_points=count, cache_dir=cache, point_counts=counts, **kwargs)
            parts.append(part)
            labeled, picks = union_budgets(labeled, part.picks), union_budgets(picks, part.picks)
    last = parts[-1]
    return Selection(picks=picks, budget=budget, total_points=last.total_points, candidates=last.candidates,
                     pooled=last.pooled, walked=last.walked, suppressed=last.suppressed, filled=last.filled,
                     per_scene={sid: sum(p.per_scene.get(sid, 0) for p in parts) for sid in last.per_scene},
                     random=num_random)


def _score_all(source, cfg, previous, rate, method, voxel_size, features, device, labelable_only, cache,
               progress) -> List[ScenePool]:
    from tqdm.auto import tqdm

    scene_ids = list(source.scene_ids)
    pools: List[Optional[ScenePool]] = [None] * len(scene_ids)
    if cache is not None:
        pools = [cache.get(i, sid) for i, sid in enumerate(scene_ids)]
    done = sum(p is not None for p in pools)
    bar = tqdm(total=len(scene_ids), initial=done, desc="score", unit="scene", disable=not progress,
               dynamic_ncols=True)
    for i, scene_id in enumerate(scene_ids):
        if pools[i] is not None:
            continue
        scene = source[i]
        label = np.asarray(scene.label, dtype=np.int64)
        check_indices(previous, scene_id, scene.num_points)
        mask = candidate_mask(label, previous.get(scene_id), labelable_only)
        size = pool_size(int(mask.sum()), scene.num_points, rate, cfg)
        if mask.any():
            score, feat = score_scene(scene, cfg, method, voxel_size, features, device, candidates=mask,
                                      count=size, labeled=previous.get(scene_id))
        else:
            score, feat = torch.zeros(scene.num_points), None
        pools[i] = scene_pool(scene, score, feat, mask, size)
        if cache is not None:
            cache.put(i, pools[i])
        bar.update(1)
    bar.close()
    return pools


def _select(pools: List[ScenePool], cfg: ActiveConfig, budget: int, labelable_only: bool = False) -> Selection:
    total = sum(p.num_points for p in pools)
    candidates = sum(p.candidates for p in pools)
    if budget > candidates:
        raise ValueError(f"cannot pick {budget} points: " + (
            f"the oracle labels picks from the ground truth, and only {candidates} points of the training set have "
            "a ground-truth label and are not labeled yet (for scenes without labels, export the picks for "
            "annotators instead of --oracle)" if labelable_only else
            f"the training set has only {candidates} unlabeled points that could be picked"))
    scene = torch.cat([torch.full((len(p.index),), i, dtype=torch.long) for i, p in enumerate(pools)])
    index = torch.cat([p.index for p in pools])
    score = torch.cat([p.score for p in pools])
    order = torch.from_numpy(np.lexsort((index.numpy(), scene.numpy(), -score.numpy())))
    use_suppression = cfg.suppression and cfg.strategy not in MODEL_FREE and len(order) > 0
    if use_suppression:
        coord = torch.cat([p.coord for p in pools])[order]
        width = max((p.feat.shape[1] for p in pools if p.feat is not None and len(p.feat)), default=1)
        feat = torch.cat([p.feat if p.feat is not None and len(p.feat) else torch.zeros(len(p.index), width)
                          for p in pools])[order]
        kept = suppress(coord, feat, cfg.radius, cfg.similarity, batch=scene[order], limit=budget)
        walked = int(kept[-1]) + 1 if len(kept) == budget else len(order)
    else:
        kept = torch.arange(min(budget, len(order)))
        walked = len(kept)
    suppressed = walked - len(kept)
    filled = 0
    if len(kept) < budget:  # suppression left too few: the suppressed candidates fill up in rank order
        rest = torch.ones(len(order), dtype=torch.bool)
        rest[kept] = False
        extra = rest.nonzero(as_tuple=True)[0][: budget - len(kept)]
        filled = len(extra)
        kept = torch.cat([kept, extra])
    if len(kept) < budget:
        raise ValueError(f"only {len(order)} candidates were pooled for a budget of {budget} points (the scenes "
                         f"have {candidates} pickable points); raise active.pool_factor or active.min_pool")
    chosen = order[kept]
    picks: Budget = {}
    per_scene: Dict[str, int] = {}
    for i, p in enumerate(pools):
        mine = index[chosen[scene[chosen] == i]]
        per_scene[p.scene_id] = len(mine)
        if len(mine):
            picks[p.scene_id] = torch.sort(mine).values
    return Selection(picks=picks, budget=budget, total_points=total, candidates=candidates,
                     pooled=len(order), walked=walked, suppressed=suppressed, filled=filled, per_scene=per_scene)


def write_round(previous: Mapping[str, torch.Tensor], picks: Mapping[str, torch.Tensor], path: PathLike) -> Path:
    """Write previous + picks to the NEW budget file `path` (atomic; an existing file is never replaced)."""
    path = Path(path)
    overlap = {sid: np.intersect1d(np.asarray(previous[sid]), np.asarray(v)).size
               for sid, v in picks.items() if sid in previous}
    if any(overlap.values()):
        sid = next(s for s, n in overlap.items() if n)
        raise ValueError(f"{path}: picks of scene {sid!r} repeat {overlap[sid]} already labeled point(s)")
    return merge_budgets(dict(previous), picks, path)
