"""Per-point scores for active learning: margin, entropy, random, HPAL's hierarchical margin, and coverage.

Every score is "higher = more uncertain = label it first":
- margin       1 - (p_top1 - p_top2): a small gap between the two best classes means the model hesitates;
- entropy      -sum_k p_k log p_k;
- random       uniform in [0, 1), seeded per scene (the baseline that needs no model);
- hierarchical HPAL's hierarchical minimum margin: class probabilities are averaged over grid cells of several
               sizes (default 0.1, 0.5, 1.0 m); each level's margin uncertainty adds `parent_weight` (default 0.1)
               times the score of its parent level, and the point's own margin adds `parent_weight` times the
               score of its finest cell:
                   S_L = U_L,   S_l = U_l + w * S_(l+1),   score = U_point + w * S_1,
               i.e. U_point + w U_1 + w^2 U_2 + w^3 U_3 with three levels. A point among confused neighbours
               ranks above an equally unsure point in a region the model otherwise understands.
- coverage     no model: farthest-point order over the scene's geometry (`coverage_scores`), for the first labels
               of a dataset no model has seen yet.
Random and coverage need no model (MODEL_FREE).
"""
from __future__ import annotations

import zlib
from typing import Callable, Optional, Sequence

import numpy as np
import torch

STRATEGIES = ("hierarchical", "margin", "entropy", "random", "coverage")
MODEL_FREE = ("random", "coverage")


def _check_prob(prob: torch.Tensor) -> None:
    if prob.dim() != 2 or prob.shape[1] < 2:
        raise ValueError(f"prob must be (N, K) with K >= 2 classes, got shape {tuple(prob.shape)}")
    if not prob.is_floating_point():
        raise ValueError(f"prob must be a float tensor of class probabilities, got {prob.dtype}")


def margin(prob: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 class probability. prob (N, K) float, rows summing to 1 -> (N,) in [0, 1]."""
    _check_prob(prob)
    top = prob.topk(2, dim=1).values
    return top[:, 0] - top[:, 1]


def margin_uncertainty(prob: torch.Tensor) -> torch.Tensor:
    """1 - margin(prob): (N, K) -> (N,) in [0, 1], 1 when the two best classes tie."""
    return 1.0 - margin(prob)


def entropy_uncertainty(prob: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats: (N, K) -> (N,) in [0, log K] (0 log 0 taken as 0)."""
    _check_prob(prob)
    return -(prob * torch.log(prob.clamp_min(1e-12))).sum(dim=1)


def random_uncertainty(num_points: int, seed: int, scene_id: str) -> torch.Tensor:
    """(num_points,) float32 uniform in [0, 1), the same for the same (seed, scene id) whatever the scene order."""
    rng = np.random.default_rng([seed, zlib.crc32(scene_id.encode("utf-8"))])
    return torch.from_numpy(rng.random(num_points).astype(np.float32))


def cell_mean(prob: torch.Tensor, coord: torch.Tensor, cell_size: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Average class probabilities over cubic grid cells of edge `cell_size` (metres, cells aligned at 0).

    prob (N, K) float, coord (N, 3) float -> (cell_prob (C, K), cell (N,) int64 cell of every point).
    """
    from pcseg.ops import segment_mean, voxelize

    vox = voxelize(coord, cell_size)
    return segment_mean(prob, vox.inverse, len(vox.counts)), vox.inverse


def hierarchical_uncertainty(prob: torch.Tensor, coord: torch.Tensor, levels: Sequence[float] = (0.1, 0.5, 1.0),
                             parent_weight: float = 0.1,
                             measure: Callable[[torch.Tensor], torch.Tensor] = margin_uncertainty) -> torch.Tensor:
    """HPAL's hierarchical score of one scene (see the module docstring).

    prob          (N, K) float class probabilities of the scene's points
    coord         (N, 3) float point coordinates in metres
    levels        cell edges from the finest to the coarsest level (strictly increasing)
    parent_weight w: the share of its parent's score every level (and the point) adds
    measure       uncertainty of probability rows, (C, K) -> (C,); margin uncertainty by default
    returns       (N,) float
    """
    _check_prob(prob)
    if coord.shape != (len(prob), 3):
        raise ValueError(f"coord must be (N, 3) = ({len(prob)}, 3), got {tuple(coord.shape)}")
    levels = [float(s) for s in levels]
    if any(s <= 0 for s in levels) or any(b <= a for a, b in zip(levels, levels[1:])):
        raise ValueError(f"levels must be positive and strictly increasing cell sizes, got {levels}")
    if parent_weight < 0:
        raise ValueError(f"parent_weight must be >= 0, got {parent_weight}")
    score = torch.zeros(len(prob), dtype=prob.dtype, device=prob.device)
    for size in reversed(levels):  # coarsest first: each finer level adds w x the score of its parent
        cell_prob, cell = cell_mean(prob, coord, size)
        score = measure(cell_prob)[cell] + parent_weight * score
    return measure(prob) + parent_weight * score


def coverage_scores(coord: torch.Tensor, candidates: np.ndarray, count: int, cell: float,
                    labeled: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Farthest-point sampling as a score: the points that cover a scene's geometry best, no model needed.

    coord      (N, 3) float point coordinates in metres
    candidates (N,) bool points that may be picked; one per grid cell of edge `cell` metres takes part (the lowest
               index), so the cost grows with the occupied cells, not the points
    count      picks to order (the walk's length)
    labeled    (L,) int64 points labeled already: the walk starts from them
    The walk picks, `count` times, the representative farthest from every labeled point and earlier pick; its
    score is that distance (+inf for the first pick of a scene without labels, which is the representative nearest
    to the centroid). Representatives not picked score their distance to the nearest labeled point or pick (never
    above a pick's score); the other points -1. Scores are metres, so ranking the candidates of several scenes by
    score continues one farthest-point walk over all of them. Returns (N,) float32.
    """
    from pcseg.ops import knn_query, voxelize

    coord = torch.as_tensor(coord).double().cpu()
    candidates = np.asarray(candidates, dtype=bool)
    if candidates.shape != (len(coord),):
        raise ValueError(f"candidates must be (N,) = ({len(coord)},) bool, got {candidates.shape}")
    score = np.full(len(coord), -1.0)
    index = np.flatnonzero(candidates)
    if len(index) == 0 or count < 1:
        return torch.from_numpy(score.astype(np.float32))
    _, first = np.unique(voxelize(coord[index], cell).inverse.numpy(), return_index=True)
    reps = index[np.sort(first)]
    points = coord[reps].numpy()
    if labeled is not None and len(labeled):
        _, dist2 = knn_query(coord[reps], coord[torch.as_tensor(labeled, dtype=torch.long)], 1)
        dist = np.sqrt(dist2[:, 0].numpy())
    else:
        dist = np.full(len(reps), np.inf)
    chosen, at_pick = np.zeros(len(reps), dtype=bool), np.zeros(len(reps))
    for _ in range(min(count, len(reps))):
        if np.isinf(dist).all():  # nothing labeled or picked yet
            j = int(np.argmin(((points - points.mean(0)) ** 2).sum(1)))
        else:
            j = int(np.argmax(np.where(chosen, -1.0, dist)))
        chosen[j], at_pick[j] = True, dist[j]
        dist = np.minimum(dist, np.sqrt(((points - points[j]) ** 2).sum(1)))
    score[reps] = np.where(chosen, at_pick, dist)
    return torch.from_numpy(score.astype(np.float32))


def uncertainty(strategy: str, prob: Optional[torch.Tensor], coord: torch.Tensor, scene_id: str, *,
                levels: Sequence[float] = (0.1, 0.5, 1.0), parent_weight: float = 0.1, seed: int = 0) -> torch.Tensor:
    """Score every point of one scene with `strategy` (one of STRATEGIES) -> (N,) float, higher = pick first.

    prob (N, K) float class probabilities (unused, may be None, for "random"); coord (N, 3) float metres.
    """
    if strategy == "random":
        return random_uncertainty(len(coord), seed, scene_id)
    if strategy == "coverage":
        raise ValueError("coverage scores need the candidates and the number of picks: call coverage_scores")
    if prob is None:
        raise ValueError(f"strategy {strategy!r} needs class probabilities")
    if strategy == "margin":
        return margin_uncertainty(prob)
    if strategy == "entropy":
        return entropy_uncertainty(prob)
    if strategy == "hierarchical":
        return hierarchical_uncertainty(prob, coord, levels, parent_weight)
    raise ValueError(f"unknown strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
