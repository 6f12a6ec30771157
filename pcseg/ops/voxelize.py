"""Voxelization of (batched) point clouds: unique voxels, point -> voxel inverse map, points per voxel.

    vox = voxelize(coord, 0.02, batch)          # coord (N, 3) float, batch (N,) int64 or None
    vox.grid_coord (M, 3) int32  floor(coord / voxel_size) minus the per-batch-element minimum, so >= 0
    vox.batch      (M,)   int64  batch element of each voxel
    vox.inverse    (N,)   int64  voxel of each point: coord[i] lies in voxel inverse[i]
    vox.counts     (M,)   int64  points per voxel

Voxels are sorted by (batch, x, y, z), so the result is deterministic. Per-voxel means of point features are
`segment_mean(feat, vox.inverse, M)` (pcseg.ops.segment). The compiled kernel (O(N) radix sort of packed keys)
runs when `pcseg._C` is built for the device; otherwise `voxelize_reference` (torch.unique) runs.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Union

import torch

from pcseg.ops._ext import check_batch, check_points, extension, has_op, warn_fallback

VoxelSize = Union[float, Sequence[float], torch.Tensor]

# |coord / voxel_size| must stay below this so grid indices and their per-batch extents fit in int32.
_MAX_GRID = 2 ** 30


class Voxelization(NamedTuple):
    grid_coord: torch.Tensor
    batch: torch.Tensor
    inverse: torch.Tensor
    counts: torch.Tensor


def _voxel_size(voxel_size: VoxelSize, dtype: torch.dtype) -> torch.Tensor:
    """(3,) tensor of `dtype` on the CPU: positive, finite voxel edge lengths along x, y, z."""
    if isinstance(voxel_size, bool):
        raise TypeError("voxelize: voxel_size must be a number or 3 numbers, got bool")
    if isinstance(voxel_size, (int, float)):
        voxel_size = [float(voxel_size)] * 3
    try:
        size = torch.as_tensor(voxel_size, dtype=torch.float64).cpu().reshape(-1)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"voxelize: voxel_size must be a number or 3 numbers, got {voxel_size!r}") from error
    if size.numel() != 3:
        raise ValueError(f"voxelize: voxel_size must be a number or 3 numbers, got {size.numel()} values")
    size = size.to(dtype)
    if not bool(torch.isfinite(size).all()) or not bool((size > 0).all()):
        raise ValueError(f"voxelize: voxel_size must be finite and > 0 in {dtype}, got {size.tolist()}")
    return size


def _check(coord: torch.Tensor, voxel_size: VoxelSize, batch: Optional[torch.Tensor]):
    coord = check_points("voxelize", "coord", coord)
    size = _voxel_size(voxel_size, coord.dtype)
    batch = check_batch("voxelize", "batch", batch, coord.shape[0], coord.device)
    if coord.numel():
        reach = float((coord.abs().amax(dim=0) / size.to(coord.device)).max())
        if not reach < _MAX_GRID:
            raise ValueError(
                f"voxelize: coord / voxel_size reaches {reach:.3g}; it must stay below 2^30 "
                "(voxel_size too small for these coordinates?)"
            )
    return coord, size, batch


def voxelize_reference(coord: torch.Tensor, voxel_size: VoxelSize, batch: Optional[torch.Tensor] = None
                       ) -> Voxelization:
    """Pure-torch `voxelize` (the oracle of the tests): floor, per-batch minimum, torch.unique over rows."""
    return _reference(*_check(coord, voxel_size, batch))


def _reference(coord: torch.Tensor, size: torch.Tensor, batch: Optional[torch.Tensor]) -> Voxelization:
    n = coord.shape[0]
    if batch is None:
        batch = torch.zeros(n, dtype=torch.int64, device=coord.device)
    grid = torch.floor(coord / size.to(coord.device)).to(torch.int64)
    if n:
        num_batches = int(batch.max()) + 1
        lowest = torch.full((num_batches, 3), _MAX_GRID, dtype=torch.int64, device=coord.device)
        lowest = lowest.scatter_reduce(0, batch[:, None].expand(-1, 3), grid, "amin", include_self=True)
        grid = grid - lowest[batch]
    rows = torch.cat([batch[:, None], grid], dim=1)
    unique, inverse, counts = torch.unique(rows, dim=0, return_inverse=True, return_counts=True)
    return Voxelization(unique[:, 1:].to(torch.int32), unique[:, 0].contiguous(), inverse.reshape(n), counts)


def voxelize(coord: torch.Tensor, voxel_size: VoxelSize, batch: Optional[torch.Tensor] = None) -> Voxelization:
    """Voxelize points `coord` (N, 3) float32/float64 with edge `voxel_size` (a number or 3 numbers, > 0).

    batch (N,) int64 >= 0 or None: batch element of each point; grid coordinates start at 0 in each element.
    Batch ids index per-element arrays of length max(batch) + 1, so keep them dense (0 .. B - 1).
    Returns `Voxelization(grid_coord (M, 3) int32, batch (M,) int64, inverse (N,) int64, counts (M,) int64)`,
    voxels sorted by (batch, x, y, z). Raises ValueError for NaN/inf coordinates, non-positive voxel sizes,
    wrong dtypes or shapes, and a batch vector of another length or device. Empty input gives M = 0.
    """
    coord, size, batch = _check(coord, voxel_size, batch)
    if has_op("voxelize", coord.device):
        out = extension().voxelize(coord.contiguous(), size.tolist(), batch)
        return Voxelization(*out)
    warn_fallback("voxelize", coord.device)
    return _reference(coord, size, batch)
