"""HPAL's semi-supervised training (Xu et al., ICCV 2023): a mean teacher with confidence-thresholded pseudo labels.

The student (backbone + head) learns from cross-entropy on the labeled points and from the teacher's confident
predictions on the voxels that hold no labeled point. The teacher is an exponential moving average of the student
(decay 0.955 in the authors' setting), and it sees another view of the batch: a random symmetry of the voxel grid
(k quarter turns about the vertical axis and a flip, `cpcm.grid_symmetry`) plus Gaussian noise on the input
features. Voxel i of the teacher's view is voxel i of the student's, so the two compare voxel by voxel. Pseudo
labels keep the teacher's class where its probability reaches the threshold (0.75), via the shared
`pcseg.pseudo_labels` module. The teacher's batch norms normalise with the statistics of the view they see, as the
student's do in training (and as the original mean teacher does); `teacher_norm: running` uses their running
statistics, EMA'd from the student's, instead: an eval-mode teacher. With `two_streams` the student also learns,
from the labels and the same pseudo labels, on an augmented copy of the batch (CPCM's `augmented_view`), as CPCM's
two-stream recipe does.

The point selection half of HPAL (hierarchical margin + feature-distance suppression) is `pcseg.active`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping

import torch
from torch import nn

from pcseg.data.batch import PointBatch
from pcseg.methods.base import MethodConfig
from pcseg.methods.cpcm import augmented_view, grid_symmetry
from pcseg.methods.supervised import Supervised, cross_entropy
from pcseg.pseudo_labels import EMATeacher, confidence_labels
from pcseg.sparse import SparseTensor


class SegNet(nn.Module):
    """backbone + head as one module: SparseTensor (M, C_in) -> voxel logits (M, K) (what the teacher copies)."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: SparseTensor) -> torch.Tensor:
        return self.head(self.backbone(x).feats)


class HPAL(Supervised):
    """Mean-teacher training. Losses (training mode): {'ce', 'pseudo'[, 'ce_aux', 'pseudo_aux']}; `predict` uses the
    student.

    backbone     forward(SparseTensor (M, C_in)) -> SparseTensor (M, backbone.out_channels)
    num_classes  K
    """

    step_buffers = ("steps",)  # start over in a new training from these weights (train.init_from)

    @dataclass
    class Config(MethodConfig):
        name: str = "hpal"
        label_smoothing: float = field(default=0.0, metadata={"help": "cross-entropy label smoothing"})
        ema_decay: float = field(default=0.955, metadata={"help": "teacher <- decay * teacher + (1 - decay) * student"})
        threshold: float = field(default=0.75, metadata={"help": "teacher confidence needed for a pseudo label"})
        pseudo_weight: float = field(default=1.0, metadata={"help": "weight of the pseudo-label cross-entropy"})
        rampup_steps: int = field(default=0, metadata={
            "help": "the pseudo-label weight grows linearly from 0 over this many steps (0 = full from the start)"})
        feature_noise: float = field(default=0.05, metadata={"help": "std of Gaussian noise on the teacher's input"})
        symmetry: bool = field(default=True, metadata={"help": "the teacher sees a random symmetry of the grid"})
        teacher_norm: str = field(default="batch", metadata={"choices": ("batch", "running"), "help":
            "the teacher's batch norm: the statistics of the view it sees (as the student's in training), or its "
            "EMA'd running ones (eval mode)"})
        two_streams: bool = field(default=False, metadata={
            "help": "the student also learns from an augmented copy of the batch (another grid symmetry + feature "
                    "noise): CE on its labeled points and the same pseudo labels"})

    def __init__(self, backbone: nn.Module, num_classes: int, cfg: "HPAL.Config") -> None:
        super().__init__(backbone, num_classes, cfg)
        for name, ok in (("ema_decay", 0.0 <= cfg.ema_decay <= 1.0), ("threshold", 0.0 <= cfg.threshold <= 1.0),
                         ("pseudo_weight", cfg.pseudo_weight >= 0), ("rampup_steps", cfg.rampup_steps >= 0),
                         ("feature_noise", cfg.feature_noise >= 0)):
            if not ok:
                raise ValueError(f"method.{name}: invalid value {getattr(cfg, name)!r}")
        self.teacher = EMATeacher(SegNet(self.backbone, self.head), cfg.ema_decay)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # training forwards so far (resumes)

    def load_network(self, weights: Mapping[str, torch.Tensor], source: str) -> None:
        """Another method's segmentation network starts the student; the teacher starts as its copy."""
        super().load_network(weights, source)
        self.teacher.reset(SegNet(self.backbone, self.head))

    def pseudo_labels(self, batch: PointBatch) -> torch.Tensor:
        """(M,) int64 teacher labels of the batch's voxels on the other view; -1 where unsure or labeled."""
        grid = grid_symmetry(batch.grid_coord) if self.cfg.symmetry else batch.grid_coord
        feat = batch.feat + self.cfg.feature_noise * torch.randn_like(batch.feat)
        view = SparseTensor(feat, grid, batch_size=batch.batch_size)
        prob = torch.softmax(self.teacher(view, batch_statistics=self.cfg.teacher_norm == "batch").float(), dim=1)
        pseudo = confidence_labels(prob, self.cfg.threshold)
        labeled = batch.inverse[batch.label >= 0]
        pseudo[labeled] = -1  # voxels with a real label learn from it
        return pseudo

    def forward(self, batch: PointBatch) -> Dict[str, torch.Tensor]:
        """{'ce': CE on labeled points, 'pseudo': weighted CE on the teacher's confident voxel labels}; with
        `two_streams` the same two terms on the student's augmented copy as 'ce_aux' and 'pseudo_aux'."""
        cfg = self.cfg
        if self.steps > 0:  # the teacher follows the student as it was after the previous optimizer step
            self.teacher.update(SegNet(self.backbone, self.head))
        self.steps += 1
        ramp = min(1.0, float(self.steps) / cfg.rampup_steps) if cfg.rampup_steps else 1.0
        logits = self.voxel_logits(batch)
        pseudo = self.pseudo_labels(batch)
        losses = {"ce": cross_entropy(logits[batch.inverse], batch.label, cfg.label_smoothing),
                  "pseudo": cfg.pseudo_weight * ramp * cross_entropy(logits, pseudo)}
        if cfg.two_streams:  # voxel i of the copy is voxel i of the batch: labels and pseudo labels carry over
            _, augmented = augmented_view(self, batch, cfg.feature_noise)
            losses["ce_aux"] = cross_entropy(augmented[batch.inverse], batch.label, cfg.label_smoothing)
            losses["pseudo_aux"] = cfg.pseudo_weight * ramp * cross_entropy(augmented, pseudo)
        return losses
