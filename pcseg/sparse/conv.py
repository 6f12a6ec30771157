"""Sparse 3D convolution layers with two backends and one weight layout.

Weight of every layer: (C_out, kx, ky, kz, C_in) ("KRSC", spconv's layout); weight[o, a, b, c, i] equals the weight
of a dense `conv3d` at [o, i, a, b, c]. So a state_dict saved under one backend loads into the other and gives the
same outputs. Backends: "native" (pcseg.sparse.native, kernel maps from pcseg.ops), "spconv" (spconv 2.x, imported
on first use), "auto" (spconv for CUDA tensors when it is installed, native otherwise: on CPU, spconv's Native
algorithm is slower than ours, see benchmarks/ops.py). Empty inputs always run natively.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from pcseg.ops.kernel_map import conv_output_shape, downsample_kernel_map, submanifold_kernel_map
from pcseg.sparse import spconv_backend
from pcseg.sparse.native import ConvPlan, depthwise_conv, sparse_conv
from pcseg.sparse.tensor import SparseTensor

IntOr3 = Union[int, Sequence[int]]
BACKENDS = ("auto", "native", "spconv")


def resolve_backend(backend: str, device: Optional[torch.device] = None) -> str:
    """"native" or "spconv" for a requested backend name and the device of the input (None: CPU)."""
    if backend not in BACKENDS:
        raise ValueError(f"sparse conv backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        on_cuda = device is not None and device.type == "cuda"
        return "spconv" if on_cuda and spconv_backend.available() else "native"
    if backend == "spconv" and not spconv_backend.available():
        raise ImportError("backend='spconv' needs spconv (pip install 'pcseg[spconv]'); or use backend='native'")
    return backend


def _triple(value: IntOr3, name: str, minimum: int) -> Tuple[int, int, int]:
    out = (value,) * 3 if isinstance(value, int) else tuple(int(v) for v in value)
    if len(out) != 3 or min(out) < minimum:
        raise ValueError(f"{name} must be an int or 3 ints >= {minimum}, got {value!r}")
    return out  # type: ignore[return-value]


@dataclass
class _DownEntry:
    """What a strided conv with an indice_key leaves in the cache for its inverse."""

    in_coords: torch.Tensor
    in_shape: Tuple[int, int, int]
    out_coords: torch.Tensor
    out_shape: Tuple[int, int, int]
    kernel_size: Tuple[int, int, int]
    stride: Tuple[int, int, int]
    padding: Tuple[int, int, int]
    plan: Optional[ConvPlan] = None  # native
    spconv_data: object = None  # spconv indice data
    spconv_order: Optional[torch.Tensor] = None  # sorted row j = spconv row order[j]


def _subm_plan(x: SparseTensor, kernel_size: Tuple[int, int, int], indice_key: Optional[str]) -> ConvPlan:
    key = ("native-subm", kernel_size, indice_key if indice_key is not None else id(x.coords))
    entry = x.cache.get(key)
    if entry is not None and entry[0] is x.coords:
        return entry[1]
    if entry is not None and indice_key is not None and not torch.equal(entry[0], x.coords):
        raise ValueError(f"SubMConv3d: indice_key {indice_key!r} is already used by another set of voxels")
    plan = ConvPlan(submanifold_kernel_map(x.coords, kernel_size))
    x.cache[key] = (x.coords, plan)
    return plan


class _SparseConv(nn.Module):
    """Shared parameters: weight (C_out, kx, ky, kz, C_in), optional bias (C_out,)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOr3,
        stride: IntOr3 = 1,
        padding: IntOr3 = 0,
        bias: bool = False,
        indice_key: Optional[str] = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"{type(self).__name__}: channels must be positive, got {in_channels} -> {out_channels}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _triple(kernel_size, "kernel_size", 1)
        self.stride = _triple(stride, "stride", 1)
        self.padding = _triple(padding, "padding", 0)
        self.indice_key = indice_key
        resolve_backend(backend)  # validates the name, and that spconv is there when asked for
        self.backend = backend
        self.weight = nn.Parameter(torch.empty(out_channels, *self.kernel_size, in_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self._spconv_layers: Dict[str, nn.Module] = {}  # not submodules: their weights are never used
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # fan_in = C_in * kx * ky * kz, as conv3d
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_channels * math.prod(self.kernel_size))
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if self.stride != (1, 1, 1):
            s += f", stride={self.stride}"
        if self.padding != (0, 0, 0):
            s += f", padding={self.padding}"
        if self.bias is None:
            s += ", bias=False"
        if self.indice_key is not None:
            s += f", indice_key={self.indice_key!r}"
        return s + f", backend={self.backend!r}"

    def _check(self, x: SparseTensor) -> None:
        if not isinstance(x, SparseTensor):
            raise ValueError(f"{type(self).__name__} expects a SparseTensor, got {type(x).__name__}")
        if x.feats.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__}: input has {x.feats.shape[1]} channels, layer expects {self.in_channels}"
            )

    def _kernel_weight(self, dtype: torch.dtype) -> torch.Tensor:
        """(K, C_in, C_out) view of the weight for the native backend."""
        k = math.prod(self.kernel_size)
        return self.weight.to(dtype).reshape(self.out_channels, k, self.in_channels).permute(1, 2, 0)

    def _spconv_layer(self, kind: str, device: torch.device) -> nn.Module:
        name = f"{kind}-{device.type}"
        if name not in self._spconv_layers:
            self._spconv_layers[name] = spconv_backend.make_layer(
                kind, self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding, device
            )
        return self._spconv_layers[name]

    def _finish(self, feats: torch.Tensor) -> torch.Tensor:
        return feats if self.bias is None else feats + self.bias.to(feats.dtype)

    def _use_spconv(self, x: SparseTensor) -> bool:
        return x.num_voxels > 0 and resolve_backend(self.backend, x.feats.device) == "spconv"


class SubMConv3d(_SparseConv):
    """Submanifold sparse convolution: output voxels = input voxels, out[y] = sum_k in[y + k - kernel // 2] W[k].

    in:  SparseTensor feats (M, C_in);  out: same coords, feats (M, C_out)
    kernel_size  odd int or 3 odd ints
    indice_key   optional cache name of the kernel map (maps are shared between layers on the same voxels anyway)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOr3 = 3,
        bias: bool = False,
        indice_key: Optional[str] = None,
        backend: str = "auto",
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, 1, 0, bias, indice_key, backend)
        if any(k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"SubMConv3d: kernel_size must be odd, got {kernel_size!r}")

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check(x)
        if self._use_spconv(x):
            key = f"pcseg-subm-{self.kernel_size}-{self.indice_key if self.indice_key is not None else id(x.coords)}"
            entry = x.cache.get(("spconv", key))
            data = entry[1] if entry is not None and entry[0] is x.coords else None
            layer = self._spconv_layer("subm", x.device)
            feats, _, _, data = spconv_backend.run(layer, x.feats, x, x.coords, self.weight.to(x.feats.dtype), key, data)
            if data is not None:
                x.cache[("spconv", key)] = (x.coords, data)
        else:
            plan = _subm_plan(x, self.kernel_size, self.indice_key)
            feats = sparse_conv(x.feats, self._kernel_weight(x.feats.dtype), plan)
        return x.replace_feature(self._finish(feats))


class SparseConv3d(_SparseConv):
    """Strided (generalised) sparse convolution, as a dense conv3d restricted to active sites.

    Output site y (in the grid (D + 2 * padding - kernel) // stride + 1) is active when some input x = y * stride -
    padding + k is; out[y] = sum_k in[y * stride - padding + k] W[k]. Output voxels are sorted by (batch, x, y, z).
    in:  SparseTensor feats (M, C_in);  out: SparseTensor feats (M', C_out)
    indice_key   name under which the map is kept for a SparseInverseConv3d (needed only then)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOr3,
        stride: IntOr3 = 1,
        padding: IntOr3 = 0,
        bias: bool = False,
        indice_key: Optional[str] = None,
        backend: str = "auto",
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias, indice_key, backend)

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check(x)
        key = ("down", self.indice_key)
        out_shape = conv_output_shape(x.spatial_shape, self.kernel_size, self.stride, self.padding)
        entry = _DownEntry(x.coords, x.spatial_shape, x.coords, out_shape, self.kernel_size, self.stride, self.padding)
        old = x.cache.get(key) if self.indice_key is not None else None
        if old is not None:  # a second pass over the same voxels (e.g. another view of one batch) reuses the map
            if old.in_coords is not x.coords or (old.in_shape, old.kernel_size, old.stride, old.padding) != (
                entry.in_shape, entry.kernel_size, entry.stride, entry.padding
            ):
                raise ValueError(f"SparseConv3d: indice_key {self.indice_key!r} is already used by another layer")
            entry.plan, entry.out_coords = old.plan, old.out_coords
        if entry.plan is None and self._use_spconv(x):
            name = None if self.indice_key is None else f"pcseg-down-{self.indice_key}"
            layer = self._spconv_layer("down", x.device)
            weight = self.weight.to(x.feats.dtype)
            feats, coords, _, entry.spconv_data = spconv_backend.run(layer, x.feats, x, x.coords, weight, name, None)
            entry.spconv_order = spconv_backend.sort_order(coords, out_shape, x.batch_size)
            if entry.spconv_order is not None:
                feats = feats.index_select(0, entry.spconv_order)
                coords = coords.index_select(0, entry.spconv_order)
            entry.out_coords = coords if old is None else old.out_coords  # same voxels: keep one coords object
        else:
            if entry.plan is None:
                entry.out_coords, kmap = downsample_kernel_map(
                    x.coords, x.spatial_shape, self.kernel_size, self.stride, self.padding
                )
                entry.plan = ConvPlan(kmap)
            feats = sparse_conv(x.feats, self._kernel_weight(x.feats.dtype), entry.plan)
        if self.indice_key is not None:
            x.cache[key] = entry
        return SparseTensor._trusted(self._finish(feats), entry.out_coords, out_shape, x.batch_size, x.cache)


class SparseInverseConv3d(_SparseConv):
    """Inverse of the SparseConv3d that ran with the same indice_key: back to its input voxels.

    out[x] = sum_k in[y] W[k] over the pairs (x -> y, k) of that convolution (a transposed conv3d restricted to the
    sites). kernel_size must equal that convolution's.
    in:  SparseTensor on the strided conv's output voxels, feats (M', C_in);  out: its input voxels, feats (M, C_out)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOr3,
        indice_key: str,
        bias: bool = False,
        backend: str = "auto",
    ) -> None:
        if not indice_key:
            raise ValueError("SparseInverseConv3d needs the indice_key of the SparseConv3d it inverts")
        super().__init__(in_channels, out_channels, kernel_size, 1, 0, bias, indice_key, backend)

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check(x)
        entry = x.cache.get(("down", self.indice_key))
        if not isinstance(entry, _DownEntry):
            raise ValueError(f"SparseInverseConv3d: no SparseConv3d with indice_key {self.indice_key!r} ran before")
        if entry.kernel_size != self.kernel_size:
            raise ValueError(
                f"SparseInverseConv3d: kernel_size {self.kernel_size} differs from the strided conv's "
                f"{entry.kernel_size} (indice_key {self.indice_key!r})"
            )
        if x.coords is not entry.out_coords and not torch.equal(x.coords, entry.out_coords):
            raise ValueError(
                f"SparseInverseConv3d: input voxels are not the output voxels of indice_key {self.indice_key!r}"
            )
        weight = self.weight.to(x.feats.dtype)
        if entry.plan is None:  # the strided conv ran on spconv: so does its inverse
            if math.prod(self.kernel_size) == 1:
                raise ValueError("SparseInverseConv3d: spconv cannot invert a 1x1x1 convolution; use backend='native'")
            feats_in = x.feats
            if entry.spconv_order is not None:
                feats_in = feats_in.index_select(0, torch.argsort(entry.spconv_order))
            layer = self._spconv_layer("inverse", x.device)
            name = f"pcseg-down-{self.indice_key}"
            sp_coords = entry.spconv_data.out_indices
            feats, _, _, _ = spconv_backend.run(layer, feats_in, x, sp_coords, weight, name, entry.spconv_data)
        else:
            feats = sparse_conv(x.feats, self._kernel_weight(x.feats.dtype), entry.plan.transpose())
        return SparseTensor._trusted(self._finish(feats), entry.in_coords, entry.in_shape, x.batch_size, x.cache)


class DepthwiseSubMConv3d(nn.Module):
    """Depthwise submanifold convolution: each channel has its own k^3 kernel, out[y, c] = sum_k in[y + k - r, c] W[c, k].

    Always native (spconv has no depthwise conv): gather -> per-channel multiply -> scatter.
    weight (C, kx, ky, kz), the weight of a dense conv3d with groups=C without its singleton axis.
    in/out: SparseTensor feats (M, C), same voxels
    """

    def __init__(self, channels: int, kernel_size: IntOr3 = 3, bias: bool = False, indice_key: Optional[str] = None):
        super().__init__()
        if channels < 1:
            raise ValueError(f"DepthwiseSubMConv3d: channels must be positive, got {channels}")
        self.channels = int(channels)
        self.kernel_size = _triple(kernel_size, "kernel_size", 1)
        if any(k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"DepthwiseSubMConv3d: kernel_size must be odd, got {kernel_size!r}")
        self.indice_key = indice_key
        self.weight = nn.Parameter(torch.empty(channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(math.prod(self.kernel_size))  # fan_in of one channel, as conv3d with groups=C
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}, bias={self.bias is not None}"

    def forward(self, x: SparseTensor) -> SparseTensor:
        if not isinstance(x, SparseTensor):
            raise ValueError(f"DepthwiseSubMConv3d expects a SparseTensor, got {type(x).__name__}")
        if x.feats.shape[1] != self.channels:
            raise ValueError(f"DepthwiseSubMConv3d: input has {x.feats.shape[1]} channels, expects {self.channels}")
        plan = _subm_plan(x, self.kernel_size, self.indice_key)
        weight = self.weight.to(x.feats.dtype).reshape(self.channels, -1).t()
        feats = depthwise_conv(x.feats, weight, plan)
        if self.bias is not None:
            feats = feats + self.bias.to(feats.dtype)
        return x.replace_feature(feats)
