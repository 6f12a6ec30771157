"""Plain supervised baseline: backbone + SegHead, cross-entropy on the labeled points."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from pcseg.data.batch import PointBatch
from pcseg.engine.checkpoint import load_model_state
from pcseg.methods.base import MethodConfig
from pcseg.models import SegHead
from pcseg.sparse import SparseTensor


class Supervised(nn.Module):
    """Cross-entropy on the points whose label is not -1 (all points under full labels, the budget otherwise).

    backbone     forward(SparseTensor (M, C_in)) -> SparseTensor (M, backbone.out_channels)
    num_classes  K
    """

    @dataclass
    class Config(MethodConfig):
        name: str = "supervised"
        label_smoothing: float = field(default=0.0, metadata={"help": "cross-entropy label smoothing"})

    def __init__(self, backbone: nn.Module, num_classes: int, cfg: "Supervised.Config") -> None:
        super().__init__()
        self.cfg = cfg
        self.num_classes = num_classes
        self.backbone = backbone
        self.head = SegHead(backbone.out_channels, num_classes)

    def load_network(self, weights: Mapping[str, torch.Tensor], source: str) -> None:
        """Start from the segmentation network (the `backbone.*` and `head.*` entries) of another method's model
        weights (train.init_from); the rest of `weights` is ignored and this method's own modules follow from it."""
        network = {k: v for k, v in weights.items() if k.startswith(("backbone.", "head."))}
        load_model_state(nn.ModuleDict({"backbone": self.backbone, "head": self.head}), network, source=source)

    def voxel_logits(self, batch: PointBatch) -> torch.Tensor:
        """(M, K) logits of the batch's voxels."""
        x = SparseTensor(batch.feat, batch.grid_coord, batch_size=batch.batch_size)
        return self.head(self.backbone(x).feats)

    def predict(self, batch: PointBatch) -> torch.Tensor:
        """(N, K) point logits: every point takes its voxel's logits through `batch.inverse`."""
        return self.voxel_logits(batch)[batch.inverse]

    def forward(self, batch: PointBatch) -> Dict[str, torch.Tensor]:
        """{'ce': scalar} cross-entropy over labeled points (0 with a gradient path when none is labeled)."""
        logits = self.predict(batch)
        return {"ce": cross_entropy(logits, batch.label, self.cfg.label_smoothing)}


def cross_entropy(logits: torch.Tensor, label: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean CE of logits (N, K) against label (N,) int64 over labels != -1; 0 (still differentiable) if none."""
    valid = label >= 0
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[valid].float(), label[valid], label_smoothing=label_smoothing)
