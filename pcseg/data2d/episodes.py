"""N-way K-shot episodes for few-shot segmentation, over any indexed collection (images or point-cloud scenes).

The sampler only needs `class_to_items`: class id -> indices of the items that contain the class
(`pcseg.data2d.image.class_index` builds it for images; any (N,) label array gives it for scenes).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np
import torch

from pcseg.data2d.image import ImageSample


@dataclass
class Episode:
    """classes: the N class ids (way i <-> classes[i]); support[i]: K item indices showing class i;
    query: item indices to segment (n_query per way), disjoint from the support."""

    classes: List[int]
    support: List[List[int]]
    query: List[int]


class EpisodeSampler:
    """Seeded sampler of N-way K-shot episodes.

    class_to_items  class id -> item indices containing it
    classes         class ids episodes draw from (e.g. the novel classes at test time); each needs at least
                    k_shot + n_query items
    n_way, k_shot, n_query  ways, shots per way, query items per way
    seed            episode i is a pure function of (seed, i): `episode(i)`, `episodes(m)` = the first m
    Episodes are nested across shots: for n_way = 1 and the same seed and n_query, episode i with K shots has the
    same query items as with K' < K shots and its support starts with theirs, so K-shot results compare paired.
    """

    def __init__(
        self,
        class_to_items: Mapping[int, Sequence[int]],
        classes: Sequence[int],
        n_way: int = 1,
        k_shot: int = 1,
        n_query: int = 1,
        seed: int = 0,
    ):
        if n_way < 1 or k_shot < 1 or n_query < 1:
            raise ValueError(f"need n_way, k_shot, n_query >= 1, got {n_way}, {k_shot}, {n_query}")
        if len(classes) < n_way:
            raise ValueError(f"{n_way}-way episodes need at least {n_way} classes, got {list(classes)}")
        for c in classes:
            have = len(class_to_items.get(c, ()))
            if have < k_shot + n_query:
                raise ValueError(f"class {c} occurs in {have} items; {k_shot}-shot with {n_query} queries needs "
                                 f"{k_shot + n_query}")
        self.class_to_items = {c: list(class_to_items[c]) for c in classes}
        self.classes = list(classes)
        self.n_way, self.k_shot, self.n_query, self.seed = n_way, k_shot, n_query, seed

    def episodes(self, num_episodes: int) -> List[Episode]:
        """Episodes 0..num_episodes-1 (a fixed evaluation set for a fixed seed)."""
        return [self.episode(i) for i in range(num_episodes)]

    def episode(self, index: int) -> Episode:
        """Episode `index` of this sampler: the ways, then per way a random order of its unused items whose first
        n_query become queries and the next k_shot the support."""
        rng = np.random.default_rng([self.seed, index])
        ways = [self.classes[i] for i in rng.choice(len(self.classes), self.n_way, replace=False)]
        used: set = set()
        support, query = [], []
        for c in ways:
            pool = [i for i in self.class_to_items[c] if i not in used]
            if len(pool) < self.k_shot + self.n_query:
                raise ValueError(f"class {c}: only {len(pool)} items left after the other ways' picks; "
                                 f"need {self.k_shot + self.n_query}")
            order = rng.permutation(len(pool))
            picks = [pool[j] for j in order[: self.n_query + self.k_shot]]
            query.extend(picks[: self.n_query])
            support.append(picks[self.n_query:])
            used.update(picks)
        return Episode(classes=ways, support=support, query=query)


def episode_labels(label: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """Map dataset labels to episode labels: classes[i] -> i + 1, every other valid class -> 0 (background),
    -1 stays -1. label: any shape int64 -> same shape int64."""
    out = torch.where(label >= 0, torch.zeros_like(label), label)
    for i, c in enumerate(classes):
        out = torch.where(label == c, torch.full_like(label, i + 1), out)
    return out


def support_labels(label: torch.Tensor, classes: Sequence[int], way: int) -> torch.Tensor:
    """Labels of a support item of way `way`: only its own class is annotated (classes[way] -> way + 1), the rest
    is background 0, as in a binary support mask; -1 stays -1."""
    binary = episode_labels(label, [classes[way]])
    return torch.where(binary == 1, torch.full_like(label, way + 1), binary)


def class_index_from_labels(labels: Sequence[np.ndarray], min_count: int = 1) -> Dict[int, List[int]]:
    """Class id -> indices of the label arrays (any shape, -1 ignored) with at least `min_count` entries of it."""
    index: Dict[int, List[int]] = {}
    for i, label in enumerate(labels):
        label = np.asarray(label)
        counts = np.bincount(label[label >= 0].ravel())
        for k in np.nonzero(counts >= min_count)[0]:
            index.setdefault(int(k), []).append(i)
    return index


@dataclass
class EpisodeBatch:
    """The images of one episode, labels in episode space (0 = background, i + 1 = way i, -1 = ignore).

    support_image (S, 3, H, W) float32, S = N * K (way-major: way 0's K shots first)
    support_label (S, H, W) int64, each support image annotated for its own way only (`support_labels`)
    query_image   (Q, 3, H, W) float32
    query_label   (Q, H, W) int64 (`episode_labels`)
    classes       the N dataset class ids of the ways
    """

    support_image: torch.Tensor
    support_label: torch.Tensor
    query_image: torch.Tensor
    query_label: torch.Tensor
    classes: List[int]

    @property
    def n_way(self) -> int:
        return len(self.classes)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "EpisodeBatch":
        def move(value):
            return value.to(device, non_blocking=non_blocking) if isinstance(value, torch.Tensor) else value

        return EpisodeBatch(**{f.name: move(getattr(self, f.name)) for f in fields(self)})


def episode_batch(dataset: Sequence[ImageSample], episode: Episode) -> EpisodeBatch:
    """Load the images of `episode` from `dataset` (equal-size ImageSamples) and map their labels."""
    support = [(dataset[i], way) for way, items in enumerate(episode.support) for i in items]
    query = [dataset[i] for i in episode.query]
    return EpisodeBatch(
        support_image=torch.from_numpy(np.stack([s.image for s, _ in support])),
        support_label=torch.stack([support_labels(torch.from_numpy(s.label), episode.classes, way)
                                   for s, way in support]),
        query_image=torch.from_numpy(np.stack([s.image for s in query])),
        query_label=episode_labels(torch.from_numpy(np.stack([s.label for s in query])), episode.classes),
        classes=list(episode.classes),
    )


class EpisodeDataset:
    """Training episodes for the engine's Trainer: item i is episode i of `sampler` as an EpisodeBatch (use
    `single_item` as collate function with batch size 1). Keys are (index, item_seed) or plain indices; with
    `colour_permutation` and a seed, the RGB channels of all images of the episode are permuted alike (one random
    permutation per item), which makes each training class appear in up to six colourings and keeps the features
    from specialising to the training classes' hues."""

    def __init__(self, dataset: Sequence[ImageSample], sampler: EpisodeSampler, num_episodes: int,
                 colour_permutation: bool = True):
        if num_episodes < 1:
            raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
        self.dataset, self.sampler, self.num_episodes = dataset, sampler, num_episodes
        self.colour_permutation = colour_permutation

    def __len__(self) -> int:
        return self.num_episodes

    def __getitem__(self, key: Union[int, Tuple[int, int]]) -> EpisodeBatch:
        index, seed = key if isinstance(key, tuple) else (key, None)
        batch = episode_batch(self.dataset, self.sampler.episode(index))
        if self.colour_permutation and seed is not None:
            perm = torch.from_numpy(np.random.default_rng(seed).permutation(3))
            batch.support_image, batch.query_image = batch.support_image[:, perm], batch.query_image[:, perm]
        return batch


def single_item(items: list):
    """Collate function for datasets whose items are already batches (episodes): returns the only item."""
    if len(items) != 1:
        raise ValueError(f"episode batches are built per episode: use batch size 1, got {len(items)} items")
    return items[0]
