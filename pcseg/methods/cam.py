"""Weakly supervised 2D segmentation from image-level labels: multi-label classifier -> class activation maps
(CAM) -> pseudo masks (`pcseg.pseudo_labels.cam_to_labels`) -> a segmentation head trained on them.

One method, two stages in one training run, so the engine's Trainer drives it like any other method (train on
`pcseg.data2d.TrainImages` with `collate_images`; only the image-level labels are read during training):
  steps [0, cls_steps):  backbone + 1x1 CAM head trained with multi-label BCE on top-k pooled CAMs;
                         an EMA teacher (`pcseg.pseudo_labels.EMATeacher`) follows backbone + CAM head.
  steps [cls_steps, ...): the teacher is frozen; its CAMs on each training batch give pseudo masks
                         (0 = background, k = class k, -1 = unsure) and backbone + segmentation head are trained
                         with cross-entropy on them. The backbone continues from the classifier's weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pcseg.data2d.image import ImageBatch, ImageSample, collate_images
from pcseg.methods.base import MethodConfig
from pcseg.prototypes import flatten_nchw
from pcseg.pseudo_labels import EMATeacher, cam_to_labels


class _CAMNet(nn.Module):
    """backbone + 1x1 conv: image (B, 3, H, W) -> CAMs (B, K, H, W) of the K foreground classes."""

    def __init__(self, backbone: nn.Module, num_foreground: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Conv2d(backbone.out_channels, num_foreground, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(image))


class CAMSegmentation(nn.Module):
    """Image-level labels -> CAM -> pseudo masks -> segmentation (see the module docstring).

    backbone     forward(image (B, 3, H, W)) -> features (B, D, H, W), attribute `out_channels` = D
                 (e.g. pcseg.models2d.UNet2d)
    num_classes  K + 1 including background 0
    forward(batch: ImageBatch) in training mode -> {'cls': BCE} during stage 1, {'seg': CE} during stage 2
    predict(batch) -> (B*H*W, K + 1) segmentation logits in flatten_nchw order
    """

    step_buffers = ("step",)  # start over in a new training from these weights (train.init_from)

    @dataclass
    class Config(MethodConfig):
        name: str = "cam"
        cls_steps: int = field(default=500, metadata={"help": "training steps of the classifier stage"})
        pool_fraction: float = field(default=0.1, metadata={"help": "image score of a class = mean of its top "
                                                                    "fraction of CAM pixels (1.0 = average pooling)"})
        bg_threshold: float = field(default=0.35, metadata={"help": "normalised CAM below this -> background"})
        fg_threshold: float = field(default=0.5, metadata={"help": "normalised CAM from this -> its class; "
                                                                   "between the thresholds -> ignored"})
        teacher_decay: float = field(default=0.9, metadata={"help": "EMA decay of the CAM teacher"})

    def __init__(self, backbone: nn.Module, num_classes: int, cfg: "CAMSegmentation.Config"):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must count background plus at least one class, got {num_classes}")
        if not 0.0 < cfg.pool_fraction <= 1.0:
            raise ValueError(f"pool_fraction must lie in (0, 1], got {cfg.pool_fraction}")
        if not 0.0 <= cfg.bg_threshold <= cfg.fg_threshold <= 1.0:
            raise ValueError(f"need 0 <= bg_threshold <= fg_threshold <= 1, got {cfg.bg_threshold}, "
                             f"{cfg.fg_threshold}")
        self.cfg, self.num_classes = cfg, num_classes
        self.cam_net = _CAMNet(backbone, num_classes - 1)
        self.seg_head = nn.Conv2d(backbone.out_channels, num_classes, 1)
        self.teacher = EMATeacher(self.cam_net, cfg.teacher_decay)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    @property
    def backbone(self) -> nn.Module:
        return self.cam_net.backbone

    def cams(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> raw CAMs (B, K, H, W) of the trained classifier."""
        return self.cam_net(image)

    def class_scores(self, cam: torch.Tensor) -> torch.Tensor:
        """CAMs (B, K, H, W) -> image-level logits (B, K): mean of the top `pool_fraction` of each map (a
        middle way between average pooling, which dilutes small objects, and max pooling, which trains one pixel)."""
        flat = cam.flatten(2)
        k = max(1, int(round(flat.shape[2] * self.cfg.pool_fraction)))
        return flat.topk(k, dim=2).values.mean(dim=2)

    @torch.no_grad()
    def pseudo_masks(self, batch: ImageBatch, use_teacher: bool = True) -> torch.Tensor:
        """(B, H, W) int64 pseudo masks from the CAMs of the teacher (or the student) and the image-level labels:
        0 = background, k = class k, -1 = between the thresholds."""
        cam = self.teacher(batch.image) if use_teacher else self.cams(batch.image)
        b, _, h, w = cam.shape
        flat, sample = flatten_nchw(cam)
        label = cam_to_labels(flat, self.cfg.bg_threshold, self.cfg.fg_threshold,
                              present=batch.image_labels > 0.5, sample=sample)
        return label.view(b, h, w)

    def seg_logits(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, K + 1, H, W)."""
        return self.seg_head(self.backbone(image))

    def predict(self, batch: ImageBatch) -> torch.Tensor:
        return flatten_nchw(self.seg_logits(batch.image))[0]

    def forward(self, batch: ImageBatch) -> Dict[str, torch.Tensor]:
        stage_one = int(self.step) < self.cfg.cls_steps
        if self.training:
            if int(self.step) > 0 and stage_one:
                self.teacher.update(self.cam_net)  # follow the weights of the previous optimizer step
            self.step += 1
        if stage_one:
            logits = self.class_scores(self.cams(batch.image))
            return {"cls": F.binary_cross_entropy_with_logits(logits, batch.image_labels)}
        target = self.pseudo_masks(batch)
        logits = self.seg_logits(batch.image)
        if not bool((target >= 0).any()):
            return {"seg": logits.sum() * 0.0}
        return {"seg": F.cross_entropy(logits, target, ignore_index=-1)}


# ---------------------------------------------------------------------------------------------------------------
# evaluation (shared by the 2D methods)


def iterate_batches(dataset: Sequence[ImageSample], batch_size: int) -> Iterable[ImageBatch]:
    """The dataset in order, `batch_size` samples at a time (the last batch may be smaller)."""
    for start in range(0, len(dataset), batch_size):
        yield collate_images([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])


@torch.no_grad()
def evaluate_segmentation(
    predict: Callable[[ImageBatch], torch.Tensor],
    dataset: Sequence[ImageSample],
    num_classes: int,
    class_names: Optional[Sequence[str]] = None,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> Dict[str, object]:
    """mIoU of `predict(batch)` against the true masks. `predict` returns either logits (B*H*W, K) in
    flatten_nchw order or labels (B, H, W) int64 (e.g. `method.pseudo_masks`, where -1 predictions count as
    background). Batches are moved to `device`. Returns pcseg.engine.metrics.SegMetrics.summary():
    {'miou', 'acc', 'iou', 'points'}."""
    from pcseg.engine.metrics import SegMetrics

    metrics = SegMetrics(num_classes, class_names)
    for batch in iterate_batches(dataset, batch_size):
        out = predict(batch.to(device))
        pred = out.argmax(dim=1) if out.is_floating_point() else out.reshape(-1).clamp_min(0)
        metrics.update(pred, batch.label.reshape(-1))
    return metrics.summary()

