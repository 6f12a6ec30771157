"""Pseudo labels from predictions, shared by the 2D and the 3D methods.

Every function works on per-element scores of shape (N, C): image scores flatten to (B*H*W, C) with
`pcseg.prototypes.flatten_nchw`, point scores are (N, C) already. Where a result depends on which image or scene
an element belongs to, a `sample (N,) int64` index says so (0..S-1). Rejected elements get the label -1.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from torch import nn

IGNORE_INDEX = -1


def _check_scores(name: str, scores: torch.Tensor) -> None:
    if scores.dim() != 2:
        raise ValueError(f"{name} must be (N, C), got shape {tuple(scores.shape)}")
    if not scores.is_floating_point():
        raise ValueError(f"{name} must be a float tensor, got {scores.dtype}")


def _check_sample(sample: Optional[torch.Tensor], n: int, num_samples: Optional[int]) -> tuple[torch.Tensor, int]:
    """Return (sample (N,) int64, S); `sample=None` means one sample holding all N elements."""
    if sample is None:
        return torch.zeros(n, dtype=torch.long), 1
    if sample.shape != (n,):
        raise ValueError(f"sample must be (N,) = ({n},), got shape {tuple(sample.shape)}")
    if sample.dtype != torch.long:
        raise ValueError(f"sample must be int64, got {sample.dtype}")
    if n and int(sample.min()) < 0:
        raise ValueError("sample indices must be >= 0")
    inferred = int(sample.max()) + 1 if n else 0
    if num_samples is None:
        return sample, inferred
    if inferred > num_samples:
        raise ValueError(f"sample index {inferred - 1} out of range for num_samples={num_samples}")
    return sample, num_samples


def confidence_labels(prob: torch.Tensor, threshold: float) -> torch.Tensor:
    """Hard labels where the top class probability reaches `threshold`, -1 elsewhere.

    prob (N, C) float class probabilities (rows sum to 1) -> (N,) int64 in {-1, 0..C-1}.
    """
    _check_scores("prob", prob)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    conf, label = prob.max(dim=1)
    return torch.where(conf >= threshold, label, torch.full_like(label, IGNORE_INDEX))


def class_balanced_labels(
    prob: torch.Tensor, fraction: float, threshold: float = 0.0, valid: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Per predicted class keep the `fraction` most confident elements (class-balanced self-training).

    prob      (N, C) float class probabilities
    fraction  in (0, 1]: of the n_c candidates predicted as class c, the ceil(fraction * n_c) most confident are
              kept, so rare classes keep as large a share as frequent ones (ties: lower index first)
    threshold candidates must also reach this confidence
    valid     (N,) bool or None: only these elements are candidates
    returns   (N,) int64 in {-1, 0..C-1}
    """
    _check_scores("prob", prob)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    n, num_classes = prob.shape
    conf, label = prob.max(dim=1)
    candidate = conf >= threshold
    if valid is not None:
        if valid.shape != (n,) or valid.dtype != torch.bool:
            raise ValueError(f"valid must be (N,) = ({n},) bool, got {tuple(valid.shape)} {valid.dtype}")
        candidate &= valid
    out = torch.full_like(label, IGNORE_INDEX)
    idx = candidate.nonzero(as_tuple=True)[0]
    if len(idx) == 0:
        return out
    # order candidates by class, then by decreasing confidence (stable sorts keep ties in index order)
    by_conf = idx[torch.sort(-conf[idx], stable=True).indices]
    order = by_conf[torch.sort(label[by_conf], stable=True).indices]
    counts = torch.bincount(label[order], minlength=num_classes)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(order), device=prob.device) - start[label[order]]
    keep_per_class = torch.ceil(counts.double() * fraction).long()
    kept = order[rank < keep_per_class[label[order]]]
    out[kept] = label[kept]
    return out


def soft_labels(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Softened (T > 1) or sharpened (T < 1) targets: softmax(logits / T).

    logits (N, C) float -> (N, C) float, rows sum to 1.
    """
    _check_scores("logits", logits)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.softmax(logits / temperature, dim=1)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean over elements of -sum_c target_c log softmax(logits)_c.

    logits (N, C) float, target (N, C) float rows summing to 1, weight (N,) float or None -> scalar.
    """
    _check_scores("logits", logits)
    if target.shape != logits.shape:
        raise ValueError(f"target must match logits {tuple(logits.shape)}, got {tuple(target.shape)}")
    loss = -(target * torch.log_softmax(logits, dim=1)).sum(dim=1)
    if weight is None:
        return loss.mean()
    return (loss * weight).sum() / weight.sum().clamp_min(1e-12)


def normalize_cam(cam: torch.Tensor, sample: Optional[torch.Tensor] = None, num_samples: Optional[int] = None) -> torch.Tensor:
    """Class activation maps scaled to [0, 1]: relu(cam) divided by its maximum per (sample, class).

    cam (N, K) float activations of K foreground classes; sample (N,) int64 or None -> (N, K) float in [0, 1]
    (a class with no positive activation in a sample stays 0 there).
    """
    _check_scores("cam", cam)
    sample, num_samples = _check_sample(sample, len(cam), num_samples)
    sample = sample.to(cam.device)
    cam = cam.clamp_min(0)
    peak = cam.new_zeros(num_samples, cam.shape[1]).scatter_reduce(
        0, sample[:, None].expand_as(cam), cam, reduce="amax", include_self=True
    )
    return cam / peak[sample].clamp_min(1e-5)


def cam_to_labels(
    cam: torch.Tensor,
    bg_threshold: float,
    fg_threshold: Optional[float] = None,
    present: Optional[torch.Tensor] = None,
    sample: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Pseudo masks from class activation maps: 0 = background, k + 1 = foreground class k, -1 = unsure.

    cam          (N, K) float raw activations of K foreground classes (normalised here with `normalize_cam`)
    bg_threshold an element whose best normalised score is below it becomes background (0)
    fg_threshold an element whose best score reaches it becomes that class; scores in [bg, fg) become -1.
                 None means fg_threshold = bg_threshold (no unsure band).
    present      (S, K) bool image-level labels or None: classes absent from a sample never win there
    sample       (N,) int64 sample index or None (all elements belong to one sample)
    returns      (N,) int64 in {-1, 0..K}
    """
    _check_scores("cam", cam)
    if cam.shape[1] == 0:
        raise ValueError("cam needs at least one foreground class")
    fg_threshold = bg_threshold if fg_threshold is None else fg_threshold
    if not 0.0 <= bg_threshold <= fg_threshold <= 1.0:
        raise ValueError(f"need 0 <= bg_threshold <= fg_threshold <= 1, got {bg_threshold}, {fg_threshold}")
    num_samples = None if present is None else len(present)
    sample, num_samples = _check_sample(sample, len(cam), num_samples)
    sample = sample.to(cam.device)
    score = normalize_cam(cam, sample, num_samples)
    if present is not None:
        if present.shape != (num_samples, cam.shape[1]):
            raise ValueError(f"present must be (S, K) = ({num_samples}, {cam.shape[1]}), got {tuple(present.shape)}")
        score = score * present.to(device=cam.device, dtype=score.dtype)[sample]
    best, cls = score.max(dim=1)
    label = cls + 1
    label = torch.where(best < fg_threshold, torch.full_like(label, IGNORE_INDEX), label)
    return torch.where(best < bg_threshold, torch.zeros_like(label), label)


@contextmanager
def frozen_norm_statistics(module: nn.Module) -> Iterator[None]:
    """Inside the block, batch-norm layers of `module` still normalise with batch statistics (in training mode) but
    leave their running mean and variance as they were.

    The extra views of a step (CPCM's masked and augmented views) must not move the running statistics: evaluation
    sees only full views, and a masked view, with 75% of its inputs zero, has other statistics than a full one. A
    teacher normalising with its input's statistics (`EMATeacher(x, batch_statistics=True)`) keeps its own too.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None)
             for m in norms]
    for m in norms:
        m.momentum = 0.0  # running <- (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for m, momentum, tracked in saved:
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """In place: teacher <- decay * teacher + (1 - decay) * student for parameters and float buffers
    (BatchNorm running statistics); integer buffers (batch counters) are copied."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must lie in [0, 1], got {decay}")
    t_params, s_params = dict(teacher.named_parameters()), dict(student.named_parameters())
    t_buffers, s_buffers = dict(teacher.named_buffers()), dict(student.named_buffers())
    if t_params.keys() != s_params.keys() or t_buffers.keys() != s_buffers.keys():
        raise ValueError("teacher and student must have the same parameter and buffer names")
    for name, t in list(t_params.items()) + list(t_buffers.items()):
        s = s_params[name] if name in s_params else s_buffers[name]
        if t.is_floating_point():
            t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)
        else:
            t.copy_(s)


class EMATeacher(nn.Module):
    """A frozen copy of a student network that follows it by `ema_update` (mean teacher).

    `update(student)` after each optimiser step; calling the teacher runs the copy without gradients, in eval mode or,
    with `batch_statistics=True`, with its batch norms normalising by the statistics of the input.
    """

    def __init__(self, student: nn.Module, decay: float = 0.999):
        super().__init__()
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must lie in [0, 1], got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(student)
        self.model.requires_grad_(False)
        self.model.eval()

    def train(self, mode: bool = True) -> "EMATeacher":
        super().train(mode)
        self.model.eval()
        return self

    def update(self, student: nn.Module) -> None:
        ema_update(self.model, student, self.decay)

    @torch.no_grad()
    def reset(self, student: nn.Module) -> None:
        """Become a copy of `student` again (its parameters and buffers)."""
        self.model.load_state_dict(student.state_dict())

    @torch.no_grad()
    def forward(self, *args, batch_statistics: bool = False, **kwargs):
        """The copy's output; with `batch_statistics` its batch norms use the statistics of this input, not their
        running ones (which stay as they are)."""
        if not batch_statistics:
            return self.model(*args, **kwargs)
        self.model.train()
        try:
            with frozen_norm_statistics(self.model):
                return self.model(*args, **kwargs)
        finally:
            self.model.eval()

