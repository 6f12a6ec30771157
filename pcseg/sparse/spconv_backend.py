"""Backend "spconv": the layers call spconv 2.x (its CUDA wheels), imported on first use.

Facts about spconv 2.3.8 this module relies on (checked against dense `conv3d` in tests/test_sparse_conv.py):
- every conv weight is stored KRSC: (C_out, kx, ky, kz, C_in), with weight[o, a, b, c, i] = conv3d weight[o, i, a, b, c];
  pcseg's layers use that layout for both backends;
- except 1x1x1 kernels (submanifold, or stride 1): spconv then computes `feats @ weight.view(C_in, C_out)`, so the
  (C_out, 1, 1, 1, C_in) pcseg weight is handed over transposed;
- on CPU only `ConvAlgo.Native` runs (implicit GEMM asserts); on CUDA implicit GEMM is used;
- strided outputs come in spconv's own order: they are sorted here by (batch, x, y, z) like the native backend,
  and the inverse conv maps its input back to spconv's order;
- coordinates must be contiguous (spconv ignores strides, e.g. of a `nonzero()` result, and reads garbage).
"""
from __future__ import annotations

import functools
import importlib.util
from typing import Dict, Optional, Tuple

import torch

from pcseg.sparse.tensor import SparseTensor


@functools.lru_cache(maxsize=None)
def available() -> bool:
    """Whether spconv can be imported (checked without importing it)."""
    return importlib.util.find_spec("spconv") is not None


def _spconv():
    import spconv.pytorch as spconv

    return spconv


def make_layer(kind: str, in_channels: int, out_channels: int, kernel_size, stride, padding, device: torch.device):
    """An spconv layer of `kind` ("subm", "down", "inverse") used only for its `_conv_forward` (its own weight is unused)."""
    spconv = _spconv()
    algo = None if device.type == "cuda" else spconv.ConvAlgo.Native
    if kind == "subm":
        return spconv.SubMConv3d(in_channels, out_channels, kernel_size, bias=False, algo=algo)
    if kind == "down":
        return spconv.SparseConv3d(in_channels, out_channels, kernel_size, stride, padding, bias=False, algo=algo)
    return spconv.SparseInverseConv3d(in_channels, out_channels, kernel_size, indice_key="pcseg", bias=False, algo=algo)


def _weight_for(layer, weight: torch.Tensor) -> torch.Tensor:
    """pcseg's (C_out, kx, ky, kz, C_in) weight in the layout spconv reads."""
    if layer.conv1x1:
        c_out, c_in = weight.shape[0], weight.shape[-1]
        return weight.reshape(c_out, c_in).t().reshape(weight.shape)
    return weight


def run(
    layer, x_feats: torch.Tensor, x: SparseTensor, coords: torch.Tensor, weight: torch.Tensor, key: Optional[str], data
) -> Tuple[torch.Tensor, torch.Tensor, Tuple[int, ...], object]:
    """One spconv conv. `key`/`data`: indice key and its cached spconv indice data (None to build).

    returns features (M', C_out), spconv's output coords (M', 4) int32, output spatial shape, indice data under key
    """
    spconv = _spconv()
    sp = spconv.SparseConvTensor(x_feats, coords.contiguous(), list(x.spatial_shape), x.batch_size)
    indice_dict: Dict[str, object] = {}
    if key is not None and data is not None:
        indice_dict[key] = data
    sp.indice_dict = indice_dict
    layer.indice_key = key
    out = layer._conv_forward(layer.training, sp, _weight_for(layer, weight), None)
    new_data = out.indice_dict.get(key) if key is not None else None
    return out.features, out.indices, tuple(int(v) for v in out.spatial_shape), new_data


def sort_order(coords: torch.Tensor, spatial_shape, batch_size: int) -> Optional[torch.Tensor]:
    """Permutation that sorts (M, 4) coords by (batch, x, y, z), or None when they already are sorted."""
    c = coords.long()
    keys = ((c[:, 0] * spatial_shape[0] + c[:, 1]) * spatial_shape[1] + c[:, 2]) * spatial_shape[2] + c[:, 3]
    if keys.numel() < 2 or bool((keys[1:] > keys[:-1]).all()):
        return None
    return torch.argsort(keys)
