"""Feature-wise layers on SparseTensors (voxels unchanged): batch norm, ReLU, linear."""
from __future__ import annotations

from torch import nn

from pcseg.sparse.tensor import SparseTensor


class BatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the (M, C) features of a SparseTensor. Defaults eps=1e-3, momentum=0.01 as common SpUNets."""

    def __init__(self, num_features: int, eps: float = 1e-3, momentum: float = 0.01) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return x.replace_feature(super().forward(x.feats))


class ReLU(nn.ReLU):
    """ReLU on the features of a SparseTensor."""

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return x.replace_feature(super().forward(x.feats))


class Linear(nn.Linear):
    """Per-voxel linear map (C_in -> C_out) of the features of a SparseTensor: a 1x1x1 convolution."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, bias=bias)

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        return x.replace_feature(super().forward(x.feats))
