"""Radius and k-nearest-neighbour queries between two point sets, within each batch element.

    qi, pj = radius_query(query, points, 0.2, query_batch, point_batch)    # pairs (qi[e], pj[e]) within 0.2
    index, dist2 = knn_query(query, points, 16, query_batch, point_batch)   # (Q, 16) nearest, -1 / inf padded

Squared distances are dx*dx + dy*dy + dz*dz in the input dtype, rounded after every operation on every device
(no fused multiply-add), so kernels and references find the same neighbours. Neighbours of a query are ordered
by (squared distance, point index). A missing batch vector puts every point of that set in element 0. The CPU
kernel buckets the points into a hashed grid (O(P + Q * neighbours)); the CUDA kernel scans the query's batch
element; the references compare all pairs in chunks.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from pcseg.ops._ext import check_batch, check_points, check_positive, extension, has_op, warn_fallback

# Query rows per chunk of the references: keeps the (rows, P, 3) difference tensor near 2^22 elements.
_CHUNK_ELEMENTS = 2 ** 22


def _check_sets(op: str, query, points, query_batch, point_batch):
    query = check_points(op, "query", query)
    points = check_points(op, "points", points)
    if points.dtype != query.dtype:
        raise ValueError(f"{op}: points must have query's dtype {query.dtype}, got {points.dtype}")
    if points.device != query.device:
        raise ValueError(f"{op}: points are on {points.device}, query on {query.device}")
    query_batch = check_batch(op, "query_batch", query_batch, query.shape[0], query.device)
    point_batch = check_batch(op, "point_batch", point_batch, points.shape[0], points.device)
    return query, points, query_batch, point_batch


def _check_count(op: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{op}: {name} must be >= 1, got {value}")
    return value


def _radius_in_dtype(radius: object, dtype: torch.dtype) -> float:
    radius = check_positive("radius_query", "radius", radius)
    rounded = torch.tensor(radius, dtype=dtype)
    if not (bool(torch.isfinite(rounded * rounded)) and float(rounded) > 0):
        raise ValueError(f"radius_query: radius {radius} squared is not a finite positive {dtype}")
    return float(rounded)


def _pairwise(query: torch.Tensor, points: torch.Tensor, query_batch, point_batch):
    """Yields (rows, d2 (rows, P), same (rows, P) bool) for chunks of query rows; d2 rounded like the kernels."""
    q_b = query_batch if query_batch is not None else query.new_zeros(query.shape[0], dtype=torch.int64)
    p_b = point_batch if point_batch is not None else points.new_zeros(points.shape[0], dtype=torch.int64)
    step = max(1, _CHUNK_ELEMENTS // max(1, points.shape[0]))
    for lo in range(0, query.shape[0], step):
        rows = torch.arange(lo, min(lo + step, query.shape[0]), device=query.device)
        d = query[rows, None, :] - points[None, :, :]
        d2 = d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1] + d[..., 2] * d[..., 2]
        yield rows, d2, q_b[rows, None] == p_b[None, :]


def _radius_reference(query, points, radius, query_batch, point_batch, max_neighbors):
    r = torch.tensor(radius, dtype=query.dtype, device=query.device)
    r2 = r * r
    query_idx, point_idx = [], []
    for rows, d2, same in _pairwise(query, points, query_batch, point_batch):
        hit = same & (d2 <= r2)
        d2, order = torch.sort(torch.where(hit, d2, torch.inf), dim=1, stable=True)  # ties: lower index first
        count = hit.sum(dim=1)
        if max_neighbors is not None:
            count = count.clamp(max=max_neighbors)
        keep = torch.arange(points.shape[0], device=query.device)[None, :] < count[:, None]
        query_idx.append(rows[:, None].expand_as(order)[keep])
        point_idx.append(order[keep])
    if not query_idx:
        empty = torch.zeros(0, dtype=torch.int64, device=query.device)
        return empty, empty.clone()
    return torch.cat(query_idx), torch.cat(point_idx)


def _knn_reference(query, points, k, query_batch, point_batch):
    index = torch.full((query.shape[0], k), -1, dtype=torch.int64, device=query.device)
    dist2 = torch.full((query.shape[0], k), torch.inf, dtype=query.dtype, device=query.device)
    take = min(k, points.shape[0])
    for rows, d2, same in _pairwise(query, points, query_batch, point_batch):
        d2, order = torch.sort(torch.where(same, d2, torch.inf), dim=1, stable=True)
        found = torch.gather(same, 1, order[:, :take])
        index[rows, :take] = torch.where(found, order[:, :take], -1)
        dist2[rows, :take] = torch.where(found, d2[:, :take], torch.inf)
    return index, dist2


def radius_query_reference(query: torch.Tensor, points: torch.Tensor, radius: float,
                           query_batch: Optional[torch.Tensor] = None, point_batch: Optional[torch.Tensor] = None,
                           max_neighbors: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pure-torch `radius_query` (the oracle of the tests): all pairs, chunk by chunk."""
    query, points, query_batch, point_batch = _check_sets("radius_query", query, points, query_batch, point_batch)
    if max_neighbors is not None:
        max_neighbors = _check_count("radius_query", "max_neighbors", max_neighbors)
    radius = _radius_in_dtype(radius, query.dtype)
    return _radius_reference(query, points, radius, query_batch, point_batch, max_neighbors)


def knn_query_reference(query: torch.Tensor, points: torch.Tensor, k: int, query_batch: Optional[torch.Tensor] = None,
                        point_batch: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pure-torch `knn_query` (the oracle of the tests): all pairs, chunk by chunk."""
    query, points, query_batch, point_batch = _check_sets("knn_query", query, points, query_batch, point_batch)
    k = _check_count("knn_query", "k", k)
    return _knn_reference(query, points, k, query_batch, point_batch)


def radius_query(query: torch.Tensor, points: torch.Tensor, radius: float, query_batch: Optional[torch.Tensor] = None,
                 point_batch: Optional[torch.Tensor] = None, max_neighbors: Optional[int] = None
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pairs of query (Q, 3) and points (P, 3) (same float dtype and device) closer than `radius`.

    query_batch (Q,) / point_batch (P,) int64 >= 0 or None: pairs only form within a batch element.
    max_neighbors: keep the nearest ones per query (None: all). Returns (query_idx (E,) int64, point_idx (E,)
    int64) with squared distance <= radius^2 (radius rounded to the dtype), sorted by query, then by (squared
    distance, point index). Raises ValueError for NaN/inf points, radius <= 0, mismatched dtypes, devices or
    lengths; TypeError for non-tensors.
    """
    query, points, query_batch, point_batch = _check_sets("radius_query", query, points, query_batch, point_batch)
    if max_neighbors is not None:
        max_neighbors = _check_count("radius_query", "max_neighbors", max_neighbors)
    radius = _radius_in_dtype(radius, query.dtype)
    if has_op("radius_query", query.device):
        return tuple(extension().radius_query(
            query.contiguous(), points.contiguous(), radius, query_batch, point_batch,
            -1 if max_neighbors is None else max_neighbors))
    warn_fallback("radius_query", query.device)
    return _radius_reference(query, points, radius, query_batch, point_batch, max_neighbors)


def knn_query(query: torch.Tensor, points: torch.Tensor, k: int, query_batch: Optional[torch.Tensor] = None,
              point_batch: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """The k nearest points (P, 3) of every query (Q, 3) within its batch element.

    Returns (index (Q, k) int64, dist2 (Q, k) squared distances in the input dtype), nearest first, ties by
    lower point index; -1 and +inf where the query's batch element has fewer than k points. Raises ValueError for
    NaN/inf points, k < 1, mismatched dtypes, devices or lengths; TypeError for non-tensors.
    """
    query, points, query_batch, point_batch = _check_sets("knn_query", query, points, query_batch, point_batch)
    k = _check_count("knn_query", "k", k)
    if has_op("knn_query", query.device):
        return tuple(extension().knn_query(query.contiguous(), points.contiguous(), k, query_batch, point_batch))
    warn_fallback("knn_query", query.device)
    return _knn_reference(query, points, k, query_batch, point_batch)
