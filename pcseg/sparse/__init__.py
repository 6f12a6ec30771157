"""Sparse voxel tensors and convolutions: backend "native" (pcseg's kernel maps + torch GEMMs) or "spconv".

spconv is imported only when a layer with that backend first runs, never at `import pcseg`.
"""
from pcseg.sparse.conv import (
    BACKENDS,
    DepthwiseSubMConv3d,
    SparseConv3d,
    SparseInverseConv3d,
    SubMConv3d,
    resolve_backend,
)
from pcseg.sparse.nn import BatchNorm, Linear, ReLU
from pcseg.sparse.tensor import SparseTensor

__all__ = [
    "BACKENDS",
    "BatchNorm",
    "DepthwiseSubMConv3d",
    "Linear",
    "ReLU",
    "SparseConv3d",
    "SparseInverseConv3d",
    "SparseTensor",
    "SubMConv3d",
    "resolve_backend",
]
