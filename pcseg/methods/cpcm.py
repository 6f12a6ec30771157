"""CPCM: contextual point cloud modeling with region masks (Liu et al., ICCV 2023).

Each step runs the backbone twice: on the full view and on a masked view whose voxel features are zeroed inside
a random subset of regions. Cross-entropy supervises the labeled points of the full view; a consistency loss pulls
the masked view's predictions on the masked voxels towards the full view's, so the network learns to infer a
region's classes from its context. Optionally a second, augmented full view (a symmetry of the voxel grid plus
feature noise) is held consistent with the first. With `two_streams` (the recipe of the authors' training scripts)
that augmented copy also gets a CE term and is the view that is masked; the masked view then follows both the
copy ("self") and the full view ("corr").

Settings of the authors' scripts: mask ratio 0.75; 0.1% labels G=4 with mask-loss weight 5; 0.01% labels G=8 with
weight 10; S3DIS adds the augmentation consistency with weight 2.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from pcseg.data.batch import PointBatch
from pcseg.methods.base import MethodConfig
from pcseg.methods.supervised import Supervised, cross_entropy
from pcseg.ops import region_partition
from pcseg.pseudo_labels import frozen_norm_statistics
from pcseg.sparse import SparseTensor

MASK_KINDS = ("region", "point", "block")


def sample_cells(num_cells: int, ratio: float, batch_size: int, generator: Optional[torch.Generator] = None,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """(batch_size * num_cells,) bool: exactly round(ratio * num_cells) cells of every batch element are True."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"mask ratio must lie in [0, 1], got {ratio}")
    k = int(round(ratio * num_cells))
    keys = torch.rand(batch_size, num_cells, generator=generator)
    chosen = keys.argsort(dim=1)[:, :k]
    mask = torch.zeros(batch_size, num_cells, dtype=torch.bool)
    mask.scatter_(1, chosen, True)
    return mask.reshape(-1).to(device)


def region_mask(grid_coord: torch.Tensor, grid_size: int, ratio: float,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """CPCM's RegionMask: (M,) bool, True for voxels whose region is masked.

    grid_coord (M, 4) int [batch, x, y, z]. Every batch element is split into grid_size^3 cells whose boundaries
    are per-axis quantiles of its voxel coordinates (pcseg.ops.region_partition); round(ratio * G^3) of its cells
    are masked.
    """
    batch = grid_coord[:, 0].long()
    batch_size = int(batch.max()) + 1 if len(batch) else 0
    cell = region_partition(grid_coord[:, 1:].float(), grid_size, batch)
    masked_cells = sample_cells(grid_size ** 3, ratio, batch_size, generator, grid_coord.device)
    return masked_cells[cell]


def block_mask(grid_coord: torch.Tensor, block_voxels: int, ratio: float,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """(M,) bool: masks a `ratio` of the cubic blocks of block_voxels^3 voxels (fixed size, not quantiles)."""
    if block_voxels < 1:
        raise ValueError(f"block size must be at least one voxel, got {block_voxels}")
    block = torch.div(grid_coord.long(), torch.tensor([1, block_voxels, block_voxels, block_voxels],
                                                      device=grid_coord.device), rounding_mode="floor")
    _, block_id = torch.unique(block, dim=0, return_inverse=True)
    num_blocks = int(block_id.max()) + 1 if len(block_id) else 0
    masked = sample_cells(num_blocks, ratio, 1, generator, grid_coord.device)
    return masked[block_id]


def point_mask(num_voxels: int, ratio: float, generator: Optional[torch.Generator] = None,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """(M,) bool: every voxel masked independently with probability `ratio`."""
    return (torch.rand(num_voxels, generator=generator) < ratio).to(device)


def js_divergence(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """Mean Jensen-Shannon divergence between softmax(logits) and softmax(target_logits), both (M, K).

    JS(P, Q) = KL(P || R) / 2 + KL(Q || R) / 2 with R = (P + Q) / 2; 0 iff P = Q, at most log 2.
    """
    p = F.softmax(logits.float(), dim=1)
    q = F.softmax(target_logits.float(), dim=1)
    log_r = torch.log((p + q).clamp_min(1e-12) / 2)
    kl_p = (p * (torch.log(p.clamp_min(1e-12)) - log_r)).sum(1)
    kl_q = (q * (torch.log(q.clamp_min(1e-12)) - log_r)).sum(1)
    return (0.5 * (kl_p + kl_q)).mean()


def kl_divergence(logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """Mean KL(softmax(target) || softmax(logits)) over rows of (M, K)."""
    return F.kl_div(F.log_softmax(logits.float(), 1), F.log_softmax(target_logits.float(), 1),
                    reduction="batchmean", log_target=True)


CONSISTENCY = {"js": js_divergence, "kl": kl_divergence}


def grid_symmetry(grid_coord: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A random symmetry of the voxel grid per batch element: rotation by k * 90 degrees about z, then a flip of x.

    grid_coord (M, 4) int [batch, x, y, z] -> (M, 4) int, non-negative; voxel i of the input is voxel i of the
    output, so predictions of both views compare point by point without re-voxelizing.
    """
    b = grid_coord[:, 0].long()
    batch_size = int(b.max()) + 1 if len(b) else 0
    turns = torch.randint(0, 4, (batch_size,), generator=generator).to(grid_coord.device)[b]
    flip = torch.randint(0, 2, (batch_size,), generator=generator).to(grid_coord.device)[b].bool()
    x, y, z = grid_coord[:, 1].long(), grid_coord[:, 2].long(), grid_coord[:, 3].long()
    for k in range(1, 4):  # rotate by 90 degrees, k times: (x, y) -> (-y, x)
        sel = turns >= k
        x, y = torch.where(sel, -y, x), torch.where(sel, x, y)
    x = torch.where(flip, -x, x)
    out = torch.stack([b, x, y, z], dim=1)
    # shift every batch element back to non-negative coordinates
    low = torch.full((batch_size, 3), torch.iinfo(torch.int64).max, device=out.device)
    low = low.scatter_reduce(0, b[:, None].expand(-1, 3), out[:, 1:], reduce="amin")
    out[:, 1:] -= low[b]
    return out.to(grid_coord.dtype)


def augmented_copy(batch: PointBatch, feature_noise: float) -> SparseTensor:
    """The batch's voxels under a random symmetry of each scene's grid (`grid_symmetry`), with Gaussian noise of std
    `feature_noise` on the features: SparseTensor (M, C_in); voxel i of the copy is voxel i of the batch."""
    feat = batch.feat + feature_noise * torch.randn_like(batch.feat)
    return SparseTensor(feat, grid_symmetry(batch.grid_coord), batch_size=batch.batch_size)


def augmented_view(model: nn.Module, batch: PointBatch, feature_noise: float) -> Tuple[SparseTensor, torch.Tensor]:
    """(view, logits (M, K)): `augmented_copy` of the batch and the voxel logits of `model` (its `backbone` and
    `head`) on it, batch-norm running statistics untouched."""
    view = augmented_copy(batch, feature_noise)
    with frozen_norm_statistics(model):
        return view, model.head(model.backbone(view).feats)


class CPCM(Supervised):
    """Supervised CE on the full view + masked-view consistency (+ optional augmentation consistency).

    Losses (training mode): {'ce', 'mask_consistency'[, 'ce_aux'][, 'aug_consistency']}, each already weighted.
    """

    @dataclass
    class Config(MethodConfig):
        name: str = "cpcm"
        label_smoothing: float = field(default=0.0, metadata={"help": "cross-entropy label smoothing"})
        mask: str = field(default="region", metadata={"choices": MASK_KINDS,
                                                      "help": "region (quantile cells), point or block mask"})
        mask_ratio: float = field(default=0.75, metadata={"help": "fraction of cells (voxels, blocks) masked"})
        grid_size: int = field(default=4, metadata={"help": "region mask: G cells per axis (G^3 regions)"})
        block_voxels: int = field(default=16, metadata={"help": "block mask: block edge in voxels"})
        consistency: str = field(default="js", metadata={"choices": tuple(CONSISTENCY),
                                                         "help": "divergence between masked and full views"})
        mask_weight: float = field(default=5.0, metadata={"help": "weight of the masked-view consistency"})
        aug_weight: float = field(default=0.0, metadata={"help": "weight of the augmented-view consistency (0=off)"})
        feature_noise: float = field(default=0.05, metadata={"help": "augmented view: std of feature noise"})
        two_streams: bool = field(default=False, metadata={
            "help": "the authors' two-stream recipe: an augmented copy of the batch gets its own CE and is the "
                    "one masked; the masked view follows both the copy and the full view"})
        detach_target: bool = field(default=True, metadata={"help": "no gradient through the full-view target"})

    def __init__(self, backbone: nn.Module, num_classes: int, cfg: "CPCM.Config") -> None:
        super().__init__(backbone, num_classes, cfg)
        if cfg.mask not in MASK_KINDS:
            raise ValueError(f"method.mask: unknown mask {cfg.mask!r}; valid: {', '.join(MASK_KINDS)}")
        if cfg.consistency not in CONSISTENCY:
            raise ValueError(f"method.consistency: unknown {cfg.consistency!r}; valid: {', '.join(CONSISTENCY)}")

    def make_mask(self, grid_coord: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """(M,) bool mask of the configured kind over the voxels grid_coord (M, 4)."""
        cfg = self.cfg
        if cfg.mask == "region":
            return region_mask(grid_coord, cfg.grid_size, cfg.mask_ratio, generator)
        if cfg.mask == "block":
            return block_mask(grid_coord, cfg.block_voxels, cfg.mask_ratio, generator)
        return point_mask(len(grid_coord), cfg.mask_ratio, generator, grid_coord.device)

    def forward(self, batch: PointBatch) -> Dict[str, torch.Tensor]:
        cfg = self.cfg
        divergence = CONSISTENCY[cfg.consistency]
        x = SparseTensor(batch.feat, batch.grid_coord, batch_size=batch.batch_size)
        full = self.head(self.backbone(x).feats)
        losses = {"ce": cross_entropy(full[batch.inverse], batch.label, cfg.label_smoothing)}
        target = full.detach() if cfg.detach_target else full

        if cfg.two_streams:  # the masked view is made from an augmented copy that has its own CE
            view, augmented = augmented_view(self, batch, cfg.feature_noise)
            losses["ce_aux"] = cross_entropy(augmented[batch.inverse], batch.label, cfg.label_smoothing)
            source, targets = view, [augmented.detach() if cfg.detach_target else augmented, target]
        else:
            source, targets = x, [target]
        mask = self.make_mask(batch.grid_coord)
        masked_feat = source.feats.masked_fill(mask[:, None], 0.0)
        # same voxels: the masked view reuses the kernel maps of the view it masks
        with frozen_norm_statistics(self):
            masked = self.head(self.backbone(source.replace_feature(masked_feat)).feats)
        if bool(mask.any()):  # two streams: "self" (the augmented copy) and "corr" (the full view), averaged
            consistency = sum(divergence(masked[mask], t[mask]) for t in targets) / len(targets)
            losses["mask_consistency"] = cfg.mask_weight * consistency
        else:
            losses["mask_consistency"] = masked.sum() * 0.0

        if cfg.aug_weight > 0:
            if not cfg.two_streams:
                _, augmented = augmented_view(self, batch, cfg.feature_noise)
            losses["aug_consistency"] = cfg.aug_weight * divergence(augmented, target)
        return losses
