"""Segmentation metrics from a confusion matrix: per-class IoU, mIoU, overall accuracy."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch


def confusion_matrix(pred: torch.Tensor, label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) int64 counts, rows = ground truth, columns = prediction; points with label -1 are skipped.

    pred (N,) int64 in [0, K), label (N,) int64 in [-1, K).
    """
    if pred.shape != label.shape:
        raise ValueError(f"confusion_matrix: pred {tuple(pred.shape)} and label {tuple(label.shape)} differ")
    valid = label >= 0
    if bool((label[valid] >= num_classes).any()):
        raise ValueError(f"confusion_matrix: label {int(label.max())} outside [0, {num_classes})")
    if bool(((pred[valid] < 0) | (pred[valid] >= num_classes)).any()):
        raise ValueError(f"confusion_matrix: prediction outside [0, {num_classes})")
    index = label[valid] * num_classes + pred[valid]
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_from_confusion(conf: torch.Tensor) -> torch.Tensor:
    """(K,) float64 IoU = TP / (TP + FP + FN); NaN for a class absent from both labels and predictions."""
    conf = conf.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


class SegMetrics:
    """Accumulates a confusion matrix over batches; `summary()` gives mIoU, per-class IoU and accuracy.

    mIoU averages the classes that occur in the ground truth or the predictions (NaN IoUs are skipped).
    """

    def __init__(self, num_classes: int, class_names: Optional[Sequence[str]] = None) -> None:
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        if len(self.class_names) != num_classes:
            raise ValueError(f"SegMetrics: {len(self.class_names)} class names for {num_classes} classes")
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, label: torch.Tensor) -> None:
        """pred (N,) int64, label (N,) int64 with -1 = ignore."""
        self.confusion += confusion_matrix(pred.cpu(), label.cpu(), self.num_classes)

    def all_reduce(self) -> None:
        """Sum the confusion matrices of all ranks (no-op outside torch.distributed)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
            conf = self.confusion.to(device)
            dist.all_reduce(conf)
            self.confusion = conf.cpu()

    def summary(self) -> Dict[str, object]:
        """{'miou': float, 'acc': float, 'iou': {name: float (nan = class absent)}, 'points': int}."""
        iou = iou_from_confusion(self.confusion)
        total = int(self.confusion.sum())
        present = ~torch.isnan(iou)
        return {
            "miou": float(iou[present].mean()) if bool(present.any()) else float("nan"),
            "acc": float(self.confusion.diag().sum()) / total if total else float("nan"),
            "iou": {name: float(v) for name, v in zip(self.class_names, iou)},
            "points": total,
        }

