"""Region partition for CPCM's region masking: every batch element split into G^3 cells at coordinate quantiles.

Along each axis of batch element b (n_b points, coordinates v sorted ascending) the G - 1 pivots are
p_j = v[floor(j * n_b / G)], j = 1..G-1, and a point with coordinate x lies in slab ix = #{j : p_j <= x}, so
distinct coordinates split into slabs of n_b / G points and equal coordinates share a slab. The cell id is
b * G^3 + ix * G^2 + iy * G + iz, in [0, B * G^3).
"""
from __future__ import annotations

from typing import Optional

import torch

from pcseg.ops._ext import check_batch, check_points, extension, has_op, warn_fallback


def _check(coord: torch.Tensor, grid_size: int, batch: Optional[torch.Tensor]):
    coord = check_points("region_partition", "coord", coord)
    if isinstance(grid_size, bool) or not isinstance(grid_size, int):
        raise TypeError(f"region_partition: grid_size must be an int, got {type(grid_size).__name__}")
    if grid_size < 1:
        raise ValueError(f"region_partition: grid_size must be >= 1, got {grid_size}")
    batch = check_batch("region_partition", "batch", batch, coord.shape[0], coord.device)
    return coord, grid_size, batch


def region_partition_reference(coord: torch.Tensor, grid_size: int, batch: Optional[torch.Tensor] = None
                               ) -> torch.Tensor:
    """Pure-torch `region_partition` (the oracle of the tests): a sort and searchsorted per element and axis."""
    return _reference(*_check(coord, grid_size, batch))


def _reference(coord: torch.Tensor, grid_size: int, batch: Optional[torch.Tensor]) -> torch.Tensor:
    n = coord.shape[0]
    if batch is None:
        batch = torch.zeros(n, dtype=torch.int64, device=coord.device)
    cell = torch.zeros(n, dtype=torch.int64, device=coord.device)
    if n == 0:
        return cell
    j = torch.arange(1, grid_size, device=coord.device)
    for b in torch.unique(batch).tolist():
        members = torch.nonzero(batch == b).squeeze(1)
        slab = torch.zeros(len(members), dtype=torch.int64, device=coord.device)
        for axis in range(3):
            values = coord[members, axis]
            pivots = torch.sort(values).values[j * len(members) // grid_size]
            slab = slab * grid_size + torch.searchsorted(pivots, values, right=True)
        cell[members] = b * grid_size ** 3 + slab
    return cell


def region_partition(coord: torch.Tensor, grid_size: int, batch: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(N,) int64 quantile-grid cell in [0, B * G^3) of each point of `coord` (N, 3) float32/float64.

    grid_size G >= 1 cells per axis; batch (N,) int64 >= 0 or None (one point cloud). Raises ValueError for
    NaN/inf coordinates, wrong dtypes or shapes, G < 1, and a batch vector of another length or device.
    """
    coord, grid_size, batch = _check(coord, grid_size, batch)
    if has_op("region_partition", coord.device):
        return extension().region_partition(coord.contiguous(), grid_size, batch)
    warn_fallback("region_partition", coord.device)
    return _reference(coord, grid_size, batch)
