"""HPAL's feature-distance suppression: keep picks that are not near-duplicates of picks already made.

Candidates are walked from most to least uncertain; a candidate is dropped when an already chosen point lies
within `radius` of it (same scene) AND their features have cosine similarity above `similarity`. A dropped point
suppresses nothing. Neighbours come from `pcseg.ops.radius_query` one chunk of candidates at a time (each chunk
against the candidates before its end), and the walk stops as soon as `limit` points are kept, so the cost grows
with the points walked, not with the square of the pool.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F


def _check(coord: torch.Tensor, feat: torch.Tensor, batch: Optional[torch.Tensor]) -> torch.Tensor:
    n = len(coord)
    if coord.dim() != 2 or coord.shape[1] != 3:
        raise ValueError(f"suppress: coord must be (P, 3), got {tuple(coord.shape)}")
    if feat.dim() != 2 or len(feat) != n:
        raise ValueError(f"suppress: feat must be (P, C) with P = {n}, got {tuple(feat.shape)}")
    if batch is None:
        return torch.zeros(n, dtype=torch.long, device=coord.device)
    if batch.shape != (n,) or batch.dtype != torch.long:
        raise ValueError(f"suppress: batch must be (P,) = ({n},) int64, got {tuple(batch.shape)} {batch.dtype}")
    return batch


def suppress(coord: torch.Tensor, feat: torch.Tensor, radius: float = 0.2, similarity: float = 0.8,
             batch: Optional[torch.Tensor] = None, limit: Optional[int] = None, chunk: int = 4096) -> torch.Tensor:
    """Greedy suppression over candidates already sorted from most to least uncertain.

    coord      (P, 3) float candidate coordinates (metres)
    feat       (P, C) float candidate features (compared by cosine similarity; need not be normalized)
    radius     a chosen point suppresses candidates within this distance (inclusive)...
    similarity ...whose cosine similarity with it is strictly greater than this
    batch      (P,) int64 scene of every candidate (points of different scenes never suppress each other)
    limit      stop once this many candidates are kept (None: walk all)
    chunk      candidates whose neighbours are queried at once (memory vs. calls)
    returns    (S,) int64 positions of the kept candidates, in walk order
    """
    from pcseg.ops import radius_query

    batch = _check(coord, feat, batch)
    if not radius > 0:
        raise ValueError(f"suppress: radius must be > 0, got {radius}")
    if chunk < 1:
        raise ValueError(f"suppress: chunk must be >= 1, got {chunk}")
    n = len(coord)
    limit = n if limit is None else min(int(limit), n)
    unit = F.normalize(feat.float(), dim=1)
    chosen = np.zeros(n, dtype=bool)
    kept: list[int] = []
    start = 0
    while start < n and len(kept) < limit:
        end = min(start + chunk, n)
        # neighbours of this chunk among every candidate up to its end; keep only earlier, similar ones
        q, p = radius_query(coord[start:end], coord[:end], radius, batch[start:end], batch[:end])
        q = q + start
        earlier = p < q
        q, p = q[earlier], p[earlier]
        similar = (unit[q] * unit[p]).sum(dim=1) > similarity
        q, p = q[similar].cpu().numpy(), p[similar].cpu().numpy()
        order = np.argsort(q, kind="stable")
        q, p = q[order], p[order]
        bounds = np.searchsorted(q, np.arange(start, end + 1))
        for i in range(start, end):
            lo, hi = bounds[i - start], bounds[i - start + 1]
            if hi > lo and chosen[p[lo:hi]].any():
                continue
            chosen[i] = True
            kept.append(i)
            if len(kept) == limit:
                break
        start = end
    return torch.tensor(kept, dtype=torch.long)
