"""SparseTensor: features on active voxels of a batch of 3D grids."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch

from pcseg.ops.kernel_map import check_coords


class SparseTensor:
    """Features of M active voxels in B grids.

    feats          (M, C) float  one row per voxel
    coords         (M, 4) int32  [batch, x, y, z], non-negative, unique (int64 is accepted and converted)
    spatial_shape  (3,) grid size (X, Y, Z); derived as coords.max + 1 per axis when None (1 for an empty tensor)
    batch_size     number of grids B; derived as coords[:, 0].max + 1 when None (0 for an empty tensor)

    `cache` holds kernel maps keyed by layer (indice_key) or coordinate set; `replace_feature` and every conv
    output share it, so the layers of one forward pass build each map once.
    """

    def __init__(
        self,
        feats: torch.Tensor,
        coords: torch.Tensor,
        spatial_shape: Optional[Sequence[int]] = None,
        batch_size: Optional[int] = None,
    ) -> None:
        if not isinstance(feats, torch.Tensor) or feats.dim() != 2:
            raise ValueError(f"SparseTensor: feats must be a (M, C) tensor, got {_describe(feats)}")
        if not feats.is_floating_point():
            raise ValueError(f"SparseTensor: feats must be floating point, got dtype {feats.dtype}")
        coords = check_coords(coords, "SparseTensor: coords")
        if coords.shape[0] != feats.shape[0]:
            raise ValueError(
                f"SparseTensor: feats has {feats.shape[0]} rows but coords has {coords.shape[0]}; they must match"
            )
        if coords.device != feats.device:
            raise ValueError(f"SparseTensor: feats on {feats.device} but coords on {coords.device}")
        empty = coords.shape[0] == 0
        high = [1, 1, 1, 1] if empty else (coords.max(0).values + 1).tolist()
        if spatial_shape is None:
            shape = tuple(int(v) for v in high[1:])
        else:
            shape = tuple(int(v) for v in spatial_shape)
            if len(shape) != 3 or min(shape) < 1:
                raise ValueError(f"SparseTensor: spatial_shape must be 3 positive ints, got {spatial_shape!r}")
            if any(h > s for h, s in zip(high[1:], shape)):
                raise ValueError(f"SparseTensor: coords reach {tuple(high[1:])} (max + 1), beyond spatial_shape {shape}")
        if batch_size is None:
            batch_size = 0 if empty else high[0]
        elif int(batch_size) < (0 if empty else high[0]):
            raise ValueError(f"SparseTensor: batch_size {batch_size} but coords use batch index {high[0] - 1}")
        self._set(feats, coords, shape, int(batch_size), {})

    def _set(self, feats, coords, spatial_shape, batch_size, cache) -> None:
        self.feats: torch.Tensor = feats
        self.coords: torch.Tensor = coords
        self.spatial_shape: Tuple[int, int, int] = spatial_shape
        self.batch_size: int = batch_size
        self.cache: Dict[object, object] = cache

    @classmethod
    def _trusted(cls, feats, coords, spatial_shape, batch_size, cache) -> "SparseTensor":
        """Build without checks (layer outputs whose coordinates come from a kernel map)."""
        out = cls.__new__(cls)
        out._set(feats, coords, tuple(spatial_shape), int(batch_size), cache)
        return out

    def replace_feature(self, feats: torch.Tensor) -> "SparseTensor":
        """Same voxels (and kernel-map cache) with new features (M, C')."""
        if not isinstance(feats, torch.Tensor) or feats.dim() != 2 or feats.shape[0] != self.feats.shape[0]:
            raise ValueError(
                f"replace_feature: expected a ({self.feats.shape[0]}, C) tensor, got {_describe(feats)}"
            )
        return SparseTensor._trusted(feats, self.coords, self.spatial_shape, self.batch_size, self.cache)

    @property
    def num_voxels(self) -> int:
        return self.coords.shape[0]

    @property
    def device(self) -> torch.device:
        return self.feats.device

    def dense(self) -> torch.Tensor:
        """(B, C, X, Y, Z) dense grid with zeros at inactive voxels."""
        out = self.feats.new_zeros(self.batch_size, self.feats.shape[1], *self.spatial_shape)
        c = self.coords.long()
        out[c[:, 0], :, c[:, 1], c[:, 2], c[:, 3]] = self.feats
        return out

    def __repr__(self) -> str:
        return (
            f"SparseTensor(voxels={self.num_voxels}, channels={self.feats.shape[1]}, "
            f"spatial_shape={self.spatial_shape}, batch_size={self.batch_size})"
        )


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}"
    return type(value).__name__
