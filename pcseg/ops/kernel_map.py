"""Kernel maps of sparse 3D convolution: which input voxel feeds which output voxel through which kernel offset.

A kernel map lists, for every kernel offset k (K = kx * ky * kz offsets, k = (a * ky + b) * kz + c for the offset
(a, b, c) along (x, y, z)), the pairs (in_idx, out_idx) of voxels it connects. The pairs of all offsets are
concatenated; `counts[k]` pairs belong to offset k. Within one offset an input and an output appear at most once,
so `gather -> GEMM -> scatter` per offset never adds twice into one row. Pair order is deterministic:

- submanifold (output sites = input sites): output y takes input x = y + (a, b, c) - kernel // 2;
  per offset the pairs are sorted by out_idx.
- strided (down-sampling, spconv / dense `conv3d` semantics): output y takes input x = y * stride - padding + (a, b, c);
  output sites are all y within the output grid (D + 2 * padding - kernel) // stride + 1 that receive an input,
  sorted by (batch, x, y, z); per offset the pairs are sorted by in_idx.
- inverse (transposed) map: the strided map with inputs and outputs swapped.

Coordinates are (M, 4) int32 rows [batch, x, y, z], non-negative, unique. The compiled kernels (`pcseg._C`) are used
when built and the device matches; otherwise the pure-torch reference below runs (saying so once).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple, Union

import torch

from pcseg.ops._ext import extension, has_op, warn_fallback

IntOr3 = Union[int, Sequence[int]]

__all__ = [
    "KernelMap",
    "submanifold_kernel_map",
    "downsample_kernel_map",
    "inverse_kernel_map",
    "kernel_offsets",
    "conv_output_shape",
]


@dataclass(frozen=True)
class KernelMap:
    """Pairs of one sparse convolution grouped by kernel offset.

    in_idx   (P,) int64  row of the input features
    out_idx  (P,) int64  row of the output features
    counts   (K,) int64  pairs per kernel offset; offset k owns rows sum(counts[:k]) : sum(counts[:k + 1]), on CPU
    num_in   number of input sites
    num_out  number of output sites
    """

    in_idx: torch.Tensor
    out_idx: torch.Tensor
    counts: torch.Tensor
    num_in: int
    num_out: int

    @property
    def kernel_volume(self) -> int:
        return int(self.counts.numel())

    def transpose(self) -> "KernelMap":
        """The map of the transposed convolution: inputs and outputs swapped, same offsets."""
        return KernelMap(self.out_idx, self.in_idx, self.counts, self.num_out, self.num_in)


def _triple(value: IntOr3, name: str, minimum: int) -> Tuple[int, int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        out = (value, value, value)
    else:
        out = tuple(int(v) for v in value)
        if len(out) != 3:
            raise ValueError(f"kernel_map: {name} must be an int or 3 ints, got {value!r}")
    if min(out) < minimum:
        raise ValueError(f"kernel_map: {name} must be >= {minimum}, got {value!r}")
    return out  # type: ignore[return-value]


def kernel_offsets(kernel_size: IntOr3, device: torch.device | str = "cpu") -> torch.Tensor:
    """(K, 3) int64 kernel offsets (a, b, c), 0 <= a < kx, in map order (c fastest)."""
    kx, ky, kz = _triple(kernel_size, "kernel_size", 1)
    grid = torch.meshgrid(
        torch.arange(kx, device=device), torch.arange(ky, device=device), torch.arange(kz, device=device), indexing="ij"
    )
    return torch.stack(grid, -1).reshape(-1, 3)


def conv_output_shape(
    spatial_shape: Sequence[int], kernel_size: IntOr3, stride: IntOr3, padding: IntOr3 = 0
) -> Tuple[int, int, int]:
    """Output grid size of a strided convolution: (D + 2 * padding - kernel) // stride + 1 per axis."""
    k = _triple(kernel_size, "kernel_size", 1)
    s = _triple(stride, "stride", 1)
    p = _triple(padding, "padding", 0)
    shape = tuple(int(d) for d in spatial_shape)
    if len(shape) != 3:
        raise ValueError(f"kernel_map: spatial_shape must have 3 entries, got {spatial_shape!r}")
    out = tuple((shape[i] + 2 * p[i] - k[i]) // s[i] + 1 for i in range(3))
    if min(out) < 1:
        raise ValueError(
            f"kernel_map: spatial_shape {shape} is too small for kernel_size {k}, stride {s}, padding {p} "
            f"(output shape {out})"
        )
    return out  # type: ignore[return-value]


def check_coords(coords: torch.Tensor, name: str = "coords") -> torch.Tensor:
    """Validate (M, 4) integer voxel coordinates [batch, x, y, z]; returns them as contiguous int32."""
    if not isinstance(coords, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(coords).__name__}")
    if coords.dim() != 2 or coords.shape[1] != 4:
        raise ValueError(f"{name} must have shape (M, 4) [batch, x, y, z], got {tuple(coords.shape)}")
    if coords.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"{name} must be int32 voxel coordinates, got dtype {coords.dtype}")
    if coords.numel() and int(coords.min()) < 0:
        raise ValueError(f"{name} must be non-negative, found {int(coords.min())}")
    if coords.numel() and int(coords.max()) > torch.iinfo(torch.int32).max:
        raise ValueError(f"{name} exceed the int32 range")
    return coords.to(torch.int32).contiguous()


def _keys(coords: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """(M,) int64 row-major keys of (M, 4) [batch, x, y, z] coordinates in a grid of size dims (B, X, Y, Z)."""
    c = coords.long()
    return ((c[:, 0] * dims[1] + c[:, 1]) * dims[2] + c[:, 2]) * dims[3] + c[:, 3]


def _check_key_range(dims: Sequence[int]) -> None:
    volume = 1
    for d in dims:
        volume *= int(d)
    if volume >= 2**62:
        raise ValueError(f"kernel_map: grid of size {tuple(dims)} (batch, x, y, z) is too large for int64 keys")


def _sorted_unique_keys(keys: torch.Tensor, name: str) -> Tuple[torch.Tensor, torch.Tensor]:
    sorted_keys, order = torch.sort(keys, stable=True)
    if sorted_keys.numel() > 1 and bool((sorted_keys[1:] == sorted_keys[:-1]).any()):
        raise ValueError(f"{name} contains duplicate coordinates")
    return sorted_keys, order


def _lookup(sorted_keys: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Position of every query key in sorted_keys, -1 where absent."""
    if sorted_keys.numel() == 0:
        return torch.full_like(query, -1)
    pos = torch.searchsorted(sorted_keys, query).clamp_(max=sorted_keys.numel() - 1)
    return torch.where(sorted_keys[pos] == query, pos, torch.full_like(pos, -1))


def _pairs_from_table(table: torch.Tensor, num_in: int, num_out: int, query_is_out: bool) -> KernelMap:
    """Compact a (K, Q) table of matches (-1 = none) into a KernelMap; Q indexes the query side."""
    mask = table >= 0
    k_idx, q_idx = mask.nonzero(as_tuple=True)  # row-major: offset-major, ascending query
    other = table[k_idx, q_idx]
    counts = mask.sum(1).cpu()
    if query_is_out:
        return KernelMap(other, q_idx, counts, num_in, num_out)
    return KernelMap(q_idx, other, counts, num_in, num_out)


def submanifold_kernel_map_reference(coords: torch.Tensor, kernel_size: IntOr3 = 3) -> KernelMap:
    """Pure-torch submanifold kernel map; see `submanifold_kernel_map`."""
    k = _triple(kernel_size, "kernel_size", 1)
    num = coords.shape[0]
    offsets = kernel_offsets(k, coords.device) - torch.tensor([v // 2 for v in k], device=coords.device)
    if num == 0:
        empty = torch.zeros(0, dtype=torch.long, device=coords.device)
        return KernelMap(empty, empty, torch.zeros(offsets.shape[0], dtype=torch.long), 0, 0)
    dims = [int(v) + 1 for v in coords.long().max(0).values]
    _check_key_range(dims)
    sorted_keys, order = _sorted_unique_keys(_keys(coords, dims), "coords")
    xyz = coords[:, 1:].long()
    query = xyz.unsqueeze(0) + offsets.unsqueeze(1)  # (K, M, 3)
    inside = ((query >= 0) & (query < torch.tensor(dims[1:], device=coords.device))).all(-1)
    batch = coords[:, 0].long().expand(offsets.shape[0], num)
    qkeys = ((batch * dims[1] + query[..., 0]) * dims[2] + query[..., 1]) * dims[3] + query[..., 2]
    pos = _lookup(sorted_keys, torch.where(inside, qkeys, torch.full_like(qkeys, -1)))
    table = torch.where(pos >= 0, order[pos.clamp(min=0)], pos)
    return _pairs_from_table(table, num, num, query_is_out=True)


def downsample_kernel_map_reference(
    coords: torch.Tensor,
    spatial_shape: Sequence[int],
    kernel_size: IntOr3,
    stride: IntOr3,
    padding: IntOr3 = 0,
) -> Tuple[torch.Tensor, KernelMap]:
    """Pure-torch strided kernel map; see `downsample_kernel_map`."""
    k = _triple(kernel_size, "kernel_size", 1)
    s = torch.tensor(_triple(stride, "stride", 1), device=coords.device)
    p = torch.tensor(_triple(padding, "padding", 0), device=coords.device)
    out_shape = conv_output_shape(spatial_shape, k, s.tolist(), p.tolist())
    offsets = kernel_offsets(k, coords.device)
    num = coords.shape[0]
    if num == 0:
        empty = torch.zeros(0, dtype=torch.long, device=coords.device)
        out = torch.zeros(0, 4, dtype=torch.int32, device=coords.device)
        return out, KernelMap(empty, empty, torch.zeros(offsets.shape[0], dtype=torch.long), 0, 0)
    dims = [int(coords[:, 0].max()) + 1, *out_shape]
    _check_key_range(dims)
    shifted = coords[:, 1:].long().unsqueeze(0) + p - offsets.unsqueeze(1)  # (K, M, 3) = y * stride
    target = torch.div(shifted, s, rounding_mode="floor")
    valid = ((shifted % s == 0) & (shifted >= 0) & (target < torch.tensor(out_shape, device=coords.device))).all(-1)
    batch = coords[:, 0].long().expand(offsets.shape[0], num)
    tkeys = ((batch * dims[1] + target[..., 0]) * dims[2] + target[..., 1]) * dims[3] + target[..., 2]
    tkeys = torch.where(valid, tkeys, torch.full_like(tkeys, -1))
    out_keys = torch.unique(tkeys[valid])  # sorted
    rest, z = torch.div(out_keys, dims[3], rounding_mode="floor"), out_keys % dims[3]
    rest, y = torch.div(rest, dims[2], rounding_mode="floor"), rest % dims[2]
    b, x = torch.div(rest, dims[1], rounding_mode="floor"), rest % dims[1]
    out_coords = torch.stack([b, x, y, z], 1).to(torch.int32)
    table = _lookup(out_keys, tkeys)
    return out_coords, _pairs_from_table(table, num, out_coords.shape[0], query_is_out=False)


def _extension(name: str, device: torch.device):
    """`pcseg._C` when it has a kernel for op `name` on `device`, else None (the reference runs; warned once)."""
    if has_op(name, device):
        return extension()
    warn_fallback("kernel_map", device)
    return None


def submanifold_kernel_map(coords: torch.Tensor, kernel_size: IntOr3 = 3) -> KernelMap:
    """Kernel map of a submanifold convolution (output sites = input sites).

    coords       (M, 4) int32 [batch, x, y, z], non-negative, unique
    kernel_size  odd int or 3 odd ints; output y takes input y + offset - kernel_size // 2
    returns      KernelMap with num_in = num_out = M, per offset pairs sorted by out_idx
    """
    coords = check_coords(coords)
    k = _triple(kernel_size, "kernel_size", 1)
    if any(v % 2 == 0 for v in k):
        raise ValueError(f"submanifold_kernel_map: kernel_size must be odd, got {kernel_size!r}")
    ext = _extension("kernel_map_submanifold", coords.device)
    if ext is None or coords.shape[0] == 0:
        return submanifold_kernel_map_reference(coords, k)
    in_idx, out_idx, counts = ext.kernel_map_submanifold(coords, list(k))
    return KernelMap(in_idx, out_idx, counts.cpu(), coords.shape[0], coords.shape[0])


def downsample_kernel_map(
    coords: torch.Tensor,
    spatial_shape: Sequence[int],
    kernel_size: IntOr3,
    stride: IntOr3,
    padding: IntOr3 = 0,
) -> Tuple[torch.Tensor, KernelMap]:
    """Output sites and kernel map of a strided (down-sampling) sparse convolution.

    coords         (M, 4) int32 [batch, x, y, z], non-negative, unique, x < spatial_shape[0] etc.
    spatial_shape  (3,) input grid size; the output grid is conv_output_shape(spatial_shape, kernel, stride, padding)
    returns        out_coords (M', 4) int32 sorted by (batch, x, y, z), and the KernelMap (in -> out),
                   per offset pairs sorted by in_idx
    """
    coords = check_coords(coords)
    shape = [int(v) for v in spatial_shape]
    if len(shape) != 3:
        raise ValueError(f"downsample_kernel_map: spatial_shape must have 3 entries, got {spatial_shape!r}")
    if coords.shape[0] and bool((coords[:, 1:] >= torch.tensor(shape, device=coords.device)).any()):
        raise ValueError(f"downsample_kernel_map: coords exceed spatial_shape {tuple(shape)}")
    k = _triple(kernel_size, "kernel_size", 1)
    s = _triple(stride, "stride", 1)
    p = _triple(padding, "padding", 0)
    out_shape = conv_output_shape(shape, k, s, p)
    ext = _extension("kernel_map_downsample", coords.device)
    if ext is None or coords.shape[0] == 0:
        return downsample_kernel_map_reference(coords, shape, k, s, p)
    out_coords, in_idx, out_idx, counts = ext.kernel_map_downsample(coords, list(k), list(s), list(p), list(out_shape))
    return out_coords, KernelMap(in_idx, out_idx, counts.cpu(), coords.shape[0], out_coords.shape[0])


def inverse_kernel_map(kernel_map: KernelMap) -> KernelMap:
    """Kernel map of the inverse (transposed) convolution of a strided map: out -> in, same kernel offsets."""
    return kernel_map.transpose()
