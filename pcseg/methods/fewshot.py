"""Few-shot segmentation with support prototypes (PANet): masked average pooling over the support, scaled cosine
matching on the query, and the prototype alignment loss (the query's predicted prototypes segment the support).

The episode step works on (N, D) features (`fewshot_logits`, `fewshot_losses`), so one routine serves images
(features flattened from (B, D, H, W)) and point clouds ((N, D) point features):
  - `FewShotSegmentation`: a 2D method on EpisodeBatch (backbone e.g. pcseg.models2d.UNet2d);
  - `PointFewShot`: the same on scenes, with a small point MLP over colour, normal and height as the encoder and
    support scenes that carry only a few labelled points.
Evaluation (`FewShotMeter`) accumulates per-class true/false positives and false negatives over all episodes and
reports the mean over classes of IoU = TP / (TP + FP + FN) (PANet's mean-IoU), plus the foreground-background IoU.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pcseg.data2d.episodes import Episode, EpisodeBatch, EpisodeSampler, episode_batch, episode_labels
from pcseg.data2d.image import ImageSample
from pcseg.methods.base import MethodConfig
from pcseg.prototypes import cosine_logits, episode_prototypes, flatten_nchw, prototype_alignment_loss


def fewshot_logits(
    support_feat: torch.Tensor,
    support_label: torch.Tensor,
    support_sample: torch.Tensor,
    query_feat: torch.Tensor,
    n_way: int,
    scale: float = 20.0,
) -> torch.Tensor:
    """Query logits from support prototypes.

    support_feat   (Ns, D) float
    support_label  (Ns,) int64 episode labels: 0 = background, i + 1 = way i, -1 = unlabelled
    support_sample (Ns,) int64 support item (shot) index: prototypes are pooled per item, then averaged
    query_feat     (Nq, D) float
    returns        (Nq, n_way + 1) = scale * cos(query feature, prototype of background / way i)
    """
    proto = episode_prototypes(support_feat, support_label, n_way + 1, support_sample)
    return cosine_logits(query_feat, proto, scale)


def fewshot_losses(
    support_feat: torch.Tensor,
    support_label: torch.Tensor,
    support_sample: torch.Tensor,
    query_feat: torch.Tensor,
    query_label: torch.Tensor,
    n_way: int,
    scale: float = 20.0,
    align_weight: float = 1.0,
) -> Dict[str, torch.Tensor]:
    """{'query': cross entropy of the query logits, 'align': align_weight * prototype alignment loss (only when
    align_weight > 0)}. Shapes as in `fewshot_logits`; query_label (Nq,) int64 in {-1, 0..n_way}.
    In the alignment step a support element of way i may only be background or way i (PANet)."""
    logits = fewshot_logits(support_feat, support_label, support_sample, query_feat, n_way, scale)
    losses = {"query": F.cross_entropy(logits, query_label, ignore_index=-1)
              if bool((query_label >= 0).any()) else logits.sum() * 0.0}
    if align_weight > 0:
        way = _support_way(support_label, support_sample)
        allowed = torch.zeros(len(support_label), n_way + 1, dtype=torch.bool, device=support_label.device)
        allowed[:, 0] = True
        has_way = way >= 0
        allowed[has_way.nonzero(as_tuple=True)[0], way[has_way] + 1] = True
        losses["align"] = align_weight * prototype_alignment_loss(
            query_feat, logits, support_feat, support_label, scale, allowed=allowed)
    return losses


def _support_way(support_label: torch.Tensor, support_sample: torch.Tensor) -> torch.Tensor:
    """(Ns,) int64 way of each support element's item: the foreground label its item carries, minus 1
    (-1 for an item with no foreground label)."""
    num_items = int(support_sample.max()) + 1 if len(support_sample) else 0
    fg = support_label > 0
    item_way = torch.full((num_items,), -1, dtype=torch.long, device=support_label.device)
    item_way = item_way.scatter_reduce(0, support_sample[fg], support_label[fg] - 1, reduce="amax")
    return item_way[support_sample]


class FewShotMeter:
    """Per-class IoU accumulated over episodes.

    update(pred (N,) int64 episode labels 0..n_way, target (N,) int64 episode labels with -1 ignored,
    classes: the episode's dataset class ids); summary() -> {'miou': mean over seen classes of TP / (TP + FP + FN),
    'fb_iou': mean of foreground and background IoU, 'iou': {class id: IoU}, 'episodes': count}.
    """

    def __init__(self) -> None:
        self.stats: Dict[int, np.ndarray] = {}
        self.fb = np.zeros((2, 3), dtype=np.int64)  # rows background / foreground; columns tp, fp, fn
        self.episodes = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor, classes: Sequence[int]) -> None:
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        valid = target >= 0
        pred, target = pred[valid], target[valid]
        for way, c in enumerate(classes):
            p, t = pred == way + 1, target == way + 1
            counts = [int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())]
            self.stats[int(c)] = self.stats.get(int(c), np.zeros(3, dtype=np.int64)) + np.array(counts)
        for row, (p, t) in enumerate([(pred == 0, target == 0), (pred > 0, target > 0)]):
            self.fb[row] += [int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())]
        self.episodes += 1

    def summary(self) -> Dict[str, object]:
        def iou(tp_fp_fn: np.ndarray) -> float:
            total = tp_fp_fn.sum()
            return float(tp_fp_fn[0] / total) if total else float("nan")

        per_class = {c: iou(v) for c, v in sorted(self.stats.items())}
        return {
            "miou": float(np.mean(list(per_class.values()))) if per_class else float("nan"),
            "fb_iou": float(np.mean([iou(self.fb[0]), iou(self.fb[1])])),
            "iou": per_class,
            "episodes": self.episodes,
        }


# ---------------------------------------------------------------------------------------------------------------
# images


class FewShotSegmentation(nn.Module):
    """PANet-style few-shot segmentation of images.

    backbone     forward(image (B, 3, H, W)) -> features (B, D, H, W)
    num_classes  classes of the dataset (unused by the episode step, kept for the common method signature)
    cfg          the episode settings; train_classes / test_classes / eval_shots / eval_episodes describe the protocol
                 for the entry points that build EpisodeDataset and call `evaluate_fewshot`
    forward(batch: EpisodeBatch) in training mode -> {'query': CE, 'align': weighted alignment loss}
    predict(batch) -> query logits (Q*H*W, n_way + 1) in flatten_nchw order
    """

    @dataclass
    class Config(MethodConfig):
        name: str = "fewshot"
        n_way: int = field(default=1, metadata={"help": "ways of the training episodes"})
        k_shot: int = field(default=1, metadata={"help": "shots of the training episodes"})
        n_query: int = field(default=2, metadata={"help": "query images per way in the training episodes"})
        scale: float = field(default=20.0, metadata={"help": "cosine-similarity logit scale"})
        align_weight: float = field(default=1.0, metadata={"help": "weight of the prototype alignment loss "
                                                                   "(0 = off)"})
        train_classes: Tuple[int, ...] = field(default=(1, 2, 3, 4), metadata={
            "help": "class ids of the training episodes (base classes)"})
        test_classes: Tuple[int, ...] = field(default=(5, 6, 7, 8), metadata={
            "help": "class ids of the evaluation episodes (novel classes)"})
        eval_shots: Tuple[int, ...] = field(default=(1, 5), metadata={"help": "K of the K-shot evaluations"})
        eval_episodes: int = field(default=400, metadata={"help": "episodes per evaluation"})

    def __init__(self, backbone: nn.Module, num_classes: int, cfg: "FewShotSegmentation.Config"):
        super().__init__()
        self.backbone, self.num_classes, self.cfg = backbone, num_classes, cfg

    def _features(self, batch: EpisodeBatch):
        """Support and query features flattened to (N, D), with the support item index."""
        feats = self.backbone(torch.cat([batch.support_image, batch.query_image]))
        s = len(batch.support_image)
        support_feat, support_sample = flatten_nchw(feats[:s])
        query_feat, _ = flatten_nchw(feats[s:])
        return support_feat, batch.support_label.reshape(-1), support_sample, query_feat

    def predict(self, batch: EpisodeBatch) -> torch.Tensor:
        support_feat, support_label, support_sample, query_feat = self._features(batch)
        return fewshot_logits(support_feat, support_label, support_sample, query_feat, batch.n_way, self.cfg.scale)

    def forward(self, batch: EpisodeBatch) -> Dict[str, torch.Tensor]:
        support_feat, support_label, support_sample, query_feat = self._features(batch)
        return fewshot_losses(support_feat, support_label, support_sample, query_feat,
                              batch.query_label.reshape(-1), batch.n_way, self.cfg.scale, self.cfg.align_weight)



@torch.no_grad()
def evaluate_fewshot(
    method: FewShotSegmentation,
    dataset: Sequence[ImageSample],
    class_to_items: Dict[int, List[int]],
    classes: Sequence[int],
    k_shot: int,
    n_way: int = 1,
    num_episodes: int = 100,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Dict[str, object]:
    """Mean IoU over `num_episodes` seeded N-way K-shot episodes on `classes` (the novel classes); one query image
    per way; batches run on `device`. Returns FewShotMeter.summary()."""
    sampler = EpisodeSampler(class_to_items, classes, n_way, k_shot, 1, seed)
    meter = FewShotMeter()
    method.eval()
    for episode in sampler.episodes(num_episodes):
        batch = episode_batch(dataset, episode).to(device)
        meter.update(method.predict(batch).argmax(dim=1).cpu(), batch.query_label.reshape(-1).cpu(), episode.classes)
    return meter.summary()


# ---------------------------------------------------------------------------------------------------------------
# point clouds


def point_features(scene) -> torch.Tensor:
    """(N, 7) float32 per-point input: colour (3), normal (3, zeros when absent), height above the scene's lowest
    point (1). scene: pcseg.data.scene.Scene."""
    normal = scene.normal if scene.normal is not None else np.zeros_like(scene.coord)
    height = scene.coord[:, 2:3] - scene.coord[:, 2].min()
    return torch.from_numpy(np.concatenate([scene.color, normal, height], axis=1).astype(np.float32))


class PointMLP(nn.Module):
    """Per-point encoder: (N, in_channels) -> (N, out_channels) through Linear-BatchNorm-ReLU layers."""

    def __init__(self, in_channels: int = 7, hidden: Sequence[int] = (64, 64), out_channels: int = 32):
        super().__init__()
        layers: List[nn.Module] = []
        for c_in, c_out in zip((in_channels,) + tuple(hidden), tuple(hidden)):
            layers += [nn.Linear(c_in, c_out), nn.BatchNorm1d(c_out), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(tuple(hidden)[-1] if hidden else in_channels, out_channels))
        self.net = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class PointEpisodeBatch:
    """Point features of one episode (labels in episode space, -1 = unlabelled).

    support_input  (Ns, C) float32 per-point inputs of all support scenes, way-major
    support_label  (Ns,) int64: per support scene a few labelled points of its way (i + 1) and of background (0)
    support_sample (Ns,) int64 support scene index
    query_input    (Nq, C) float32, query_label (Nq,) int64 fully labelled; classes: the N dataset class ids
    """

    support_input: torch.Tensor
    support_label: torch.Tensor
    support_sample: torch.Tensor
    query_input: torch.Tensor
    query_label: torch.Tensor
    classes: List[int]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "PointEpisodeBatch":
        def move(value):
            return value.to(device, non_blocking=non_blocking) if isinstance(value, torch.Tensor) else value

        return PointEpisodeBatch(**{f.name: move(getattr(self, f.name)) for f in fields(self)})


def point_episode_batch(scenes: Sequence, episode: Episode, points_per_class: int, seed: int = 0) -> PointEpisodeBatch:
    """Build a point episode: every support scene keeps `points_per_class` random labelled points of its way's
    class and as many of everything else (background); the query keeps all labels. scenes: Scene sequence."""
    rng = np.random.default_rng(seed)
    inputs, labels, samples = [], [], []
    for s, (way, item) in enumerate((w, i) for w, items in enumerate(episode.support) for i in items):
        scene = scenes[item]
        binary = episode_labels(torch.from_numpy(scene.label), [episode.classes[way]])
        label = torch.full_like(binary, -1)
        for value, target in ((1, way + 1), (0, 0)):
            idx = np.flatnonzero(binary.numpy() == value)
            pick = rng.choice(idx, min(points_per_class, len(idx)), replace=False)
            label[torch.from_numpy(pick)] = target
        inputs.append(point_features(scene))
        labels.append(label)
        samples.append(torch.full((len(label),), s, dtype=torch.long))
    query = [scenes[i] for i in episode.query]
    return PointEpisodeBatch(
        support_input=torch.cat(inputs), support_label=torch.cat(labels), support_sample=torch.cat(samples),
        query_input=torch.cat([point_features(q) for q in query]),
        query_label=torch.cat([episode_labels(torch.from_numpy(q.label), episode.classes) for q in query]),
        classes=list(episode.classes),
    )


class PointEpisodeDataset:
    """Training episodes on scenes for the engine's Trainer (batch size 1, collate `pcseg.data2d.single_item`):
    item (i, item_seed) is episode i of `sampler`, its labelled support points drawn with item_seed."""

    def __init__(self, scenes: Sequence, sampler: EpisodeSampler, num_episodes: int, points_per_class: int = 20):
        if num_episodes < 1:
            raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
        self.scenes, self.sampler, self.num_episodes = scenes, sampler, num_episodes
        self.points_per_class = points_per_class

    def __len__(self) -> int:
        return self.num_episodes

    def __getitem__(self, key: Union[int, Tuple[int, int]]) -> PointEpisodeBatch:
        index, seed = key if isinstance(key, tuple) else (key, key)
        return point_episode_batch(self.scenes, self.sampler.episode(index), self.points_per_class, seed)


class PointFewShot(nn.Module):
    """The few-shot episode step on point clouds: encoder (N, C_in) -> (N, D), then `fewshot_losses` /
    `fewshot_logits` exactly as for images."""

    def __init__(self, encoder: nn.Module, scale: float = 20.0, align_weight: float = 1.0):
        super().__init__()
        self.encoder, self.scale, self.align_weight = encoder, scale, align_weight

    def _features(self, batch: PointEpisodeBatch):
        feats = self.encoder(torch.cat([batch.support_input, batch.query_input]))
        return feats[: len(batch.support_input)], feats[len(batch.support_input):]

    def predict(self, batch: PointEpisodeBatch) -> torch.Tensor:
        """(Nq, n_way + 1) query point logits."""
        support_feat, query_feat = self._features(batch)
        return fewshot_logits(support_feat, batch.support_label, batch.support_sample, query_feat,
                              len(batch.classes), self.scale)

    def forward(self, batch: PointEpisodeBatch) -> Dict[str, torch.Tensor]:
        support_feat, query_feat = self._features(batch)
        return fewshot_losses(support_feat, batch.support_label, batch.support_sample, query_feat,
                              batch.query_label, len(batch.classes), self.scale, self.align_weight)



@torch.no_grad()
def evaluate_point_fewshot(
    method: PointFewShot,
    scenes: Sequence,
    class_to_items: Dict[int, List[int]],
    classes: Sequence[int],
    k_shot: int,
    points_per_class: int = 20,
    num_episodes: int = 50,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Dict[str, object]:
    """Mean IoU of 1-way K-shot point episodes on `classes` (novel classes). Returns FewShotMeter.summary()."""
    sampler = EpisodeSampler(class_to_items, classes, 1, k_shot, 1, seed)
    meter = FewShotMeter()
    method.eval()
    for i, episode in enumerate(sampler.episodes(num_episodes)):
        batch = point_episode_batch(scenes, episode, points_per_class, seed + i).to(device)
        meter.update(method.predict(batch).argmax(dim=1).cpu(), batch.query_label.cpu(), episode.classes)
    return meter.summary()
