"""Class prototypes on (N, D) features, shared by the 2D and the 3D methods.

Image features (B, D, H, W) flatten to (B*H*W, D) with `flatten_nchw`, which also returns the image index of every
pixel; point features are (N, D) already, with the scene index of every point (`PointBatch.point_batch`).
Labels use -1 for ignored elements.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def flatten_nchw(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, D, H, W) -> features (B*H*W, D) in (b, y, x) order and sample index (B*H*W,) int64."""
    if x.dim() != 4:
        raise ValueError(f"expected a (B, D, H, W) tensor, got shape {tuple(x.shape)}")
    b, d, h, w = x.shape
    sample = torch.arange(b, device=x.device).repeat_interleave(h * w)
    return x.permute(0, 2, 3, 1).reshape(b * h * w, d), sample


def unflatten_nchw(x: torch.Tensor, batch_size: int, height: int, width: int) -> torch.Tensor:
    """(B*H*W, D) in (b, y, x) order -> (B, D, H, W); the inverse of `flatten_nchw`."""
    if x.dim() != 2 or len(x) != batch_size * height * width:
        raise ValueError(f"expected ({batch_size}*{height}*{width}, D) rows, got shape {tuple(x.shape)}")
    return x.reshape(batch_size, height, width, -1).permute(0, 3, 1, 2)


def masked_average_pooling(
    feat: torch.Tensor,
    label: torch.Tensor,
    num_classes: int,
    sample: Optional[torch.Tensor] = None,
    num_samples: Optional[int] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean feature of every class (and sample): the prototypes of PANet's masked average pooling.

    feat        (N, D) float
    label       (N,) int64 in {-1, 0..K-1}; -1 elements are left out
    num_classes K
    sample      (N,) int64 or None: pool per sample (image / scene) instead of across the whole batch
    num_samples S (default: max(sample) + 1)
    returns     prototypes (K, D) and counts (K,) int64 without `sample`;
                prototypes (S, K, D) and counts (S, K) with it. Empty (sample, class) pairs give zeros.
    Differentiable with respect to `feat`.
    """
    if feat.dim() != 2:
        raise ValueError(f"feat must be (N, D), got shape {tuple(feat.shape)}")
    n, d = feat.shape
    if label.shape != (n,) or label.dtype != torch.long:
        raise ValueError(f"label must be (N,) = ({n},) int64, got {tuple(label.shape)} {label.dtype}")
    if n and int(label.max()) >= num_classes:
        raise ValueError(f"label {int(label.max())} out of range for num_classes={num_classes}")
    if sample is None:
        seg, num_segments = label, num_classes
    else:
        if sample.shape != (n,) or sample.dtype != torch.long:
            raise ValueError(f"sample must be (N,) = ({n},) int64, got {tuple(sample.shape)} {sample.dtype}")
        inferred = int(sample.max()) + 1 if n else 0
        num_samples = inferred if num_samples is None else num_samples
        if inferred > num_samples:
            raise ValueError(f"sample index {inferred - 1} out of range for num_samples={num_samples}")
        seg, num_segments = sample * num_classes + label, num_samples * num_classes
    keep = label >= 0
    seg, src = seg[keep], feat[keep]
    total = feat.new_zeros(num_segments, d).index_add(0, seg, src)
    count = torch.bincount(seg, minlength=num_segments)
    proto = total / count.clamp_min(1).to(feat.dtype)[:, None]
    if sample is None:
        return proto, count
    return proto.view(num_samples, num_classes, d), count.view(num_samples, num_classes)


def cosine_logits(
    feat: torch.Tensor, prototypes: torch.Tensor, scale: float = 20.0, sample: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Scaled cosine similarity of every element to every prototype (PANet uses scale 20).

    feat       (N, D) float
    prototypes (K, D) shared by all elements, or (S, K, D) per sample together with `sample (N,) int64`
    returns    (N, K) float logits = scale * cos(feat_n, prototype_k); an all-zero prototype gives 0.
    """
    if feat.dim() != 2:
        raise ValueError(f"feat must be (N, D), got shape {tuple(feat.shape)}")
    if prototypes.shape[-1] != feat.shape[1]:
        raise ValueError(f"prototype dim {prototypes.shape[-1]} != feature dim {feat.shape[1]}")
    f = F.normalize(feat, dim=1, eps=1e-8)
    p = F.normalize(prototypes, dim=-1, eps=1e-8)
    if prototypes.dim() == 2:
        if sample is not None:
            raise ValueError("sample is only used with per-sample prototypes (S, K, D)")
        return scale * f @ p.t()
    if prototypes.dim() != 3 or sample is None:
        raise ValueError(f"prototypes must be (K, D), or (S, K, D) with sample; got {tuple(prototypes.shape)}")
    if sample.shape != (len(feat),):
        raise ValueError(f"sample must be (N,) = ({len(feat)},), got {tuple(sample.shape)}")
    return scale * torch.einsum("nd,nkd->nk", f, p[sample])


def episode_prototypes(
    feat: torch.Tensor, label: torch.Tensor, num_classes: int, sample: torch.Tensor, num_samples: Optional[int] = None
) -> torch.Tensor:
    """Prototypes of a few-shot support set: one prototype per (shot, class), averaged over the shots that contain
    the class (PANet's order: pool per support image, then average over shots).

    feat (N, D), label (N,) int64 in {-1, 0..K-1}, sample (N,) int64 shot index -> (K, D);
    a class no shot contains gets a zero prototype.
    """
    proto, count = masked_average_pooling(feat, label, num_classes, sample, num_samples)
    has = (count > 0).to(feat.dtype)
    return (proto * has[:, :, None]).sum(0) / has.sum(0).clamp_min(1)[:, None]


def prototype_alignment_loss(
    query_feat: torch.Tensor,
    query_logits: torch.Tensor,
    support_feat: torch.Tensor,
    support_label: torch.Tensor,
    scale: float = 20.0,
    allowed: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """PANet's prototype alignment: prototypes from the query's own prediction segment the support back.

    query_feat     (Nq, D) float
    query_logits   (Nq, K) float; their argmax (no gradient through the choice) is the query's pseudo mask
    support_feat   (Ns, D) float
    support_label  (Ns,) int64 in {-1, 0..K-1}
    allowed        (Ns, K) bool or None: the classes each support element may be assigned (PANet's N-way case:
                   a support image of way i is segmented into background vs way i only); must include its label
    returns        scalar: cross entropy of cosine_logits(support_feat, query prototypes) against support_label
                   (mean over labelled support elements; 0 when none is labelled)
    Gradients reach both feature tensors through the prototypes and the support logits.
    """
    if query_logits.dim() != 2 or len(query_logits) != len(query_feat):
        raise ValueError(f"query_logits must be (Nq, K) with Nq={len(query_feat)}, got {tuple(query_logits.shape)}")
    num_classes = query_logits.shape[1]
    pseudo = query_logits.detach().argmax(dim=1)
    proto, _ = masked_average_pooling(query_feat, pseudo, num_classes)
    logits = cosine_logits(support_feat, proto, scale)
    if allowed is not None:
        if allowed.shape != logits.shape or allowed.dtype != torch.bool:
            raise ValueError(f"allowed must be (Ns, K) = {tuple(logits.shape)} bool, got {tuple(allowed.shape)} "
                             f"{allowed.dtype}")
        labelled = support_label >= 0
        if not bool(allowed[labelled.nonzero(as_tuple=True)[0], support_label[labelled]].all()):
            raise ValueError("allowed excludes the label of a support element")
        logits = logits.masked_fill(~allowed, float("-inf"))
    if not bool((support_label >= 0).any()):
        return (query_feat.sum() + support_feat.sum()) * 0.0
    return F.cross_entropy(logits, support_label, ignore_index=-1)


class PrototypeMemory(nn.Module):
    """K class prototypes (K, D) kept as a buffer and followed by exponential moving averages.

    `update(feat (N, D), label (N,))` pools the batch (masked average pooling across it) and, for each class present,
    sets prototype <- decay * prototype + (1 - decay) * batch prototype (the first sighting copies it).
    `forward(feat (N, D))` gives cosine logits (N, K); classes never seen get 0.
    """

    def __init__(self, num_classes: int, dim: int, decay: float = 0.99, scale: float = 20.0):
        super().__init__()
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must lie in [0, 1], got {decay}")
        self.num_classes, self.dim, self.decay, self.scale = num_classes, dim, decay, scale
        self.register_buffer("prototypes", torch.zeros(num_classes, dim))
        self.register_buffer("initialized", torch.zeros(num_classes, dtype=torch.bool))

    @torch.no_grad()
    def update(self, feat: torch.Tensor, label: torch.Tensor) -> None:
        proto, count = masked_average_pooling(feat.detach().to(self.prototypes.dtype), label, self.num_classes)
        seen = count > 0
        mixed = torch.where(self.initialized[:, None], self.decay * self.prototypes + (1 - self.decay) * proto, proto)
        self.prototypes.copy_(torch.where(seen[:, None], mixed, self.prototypes))
        self.initialized |= seen

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return cosine_logits(feat, self.prototypes, self.scale)
