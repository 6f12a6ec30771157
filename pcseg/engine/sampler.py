"""A resumable, distributed batch sampler: the data order is a pure function of (seed, epoch), so a run resumed
at any step sees exactly the batches an uninterrupted run would have seen."""
from __future__ import annotations

from typing import Iterator, List, Tuple

import torch


class ResumableBatchSampler(torch.utils.data.Sampler):
    """Yields batches of (index, epoch) keys for one process (PointDataset seeds an item's augmentation by
    (seed, epoch, index), so augmentations depend neither on workers, ranks nor resuming).

    Like DistributedSampler: each epoch shuffles the n items with a generator seeded by (seed, epoch), pads the
    order to a multiple of `world_size * batch_size` by repeating its start (so every rank gets the same number of
    full batches) and deals batch b of the global order's rank slice to each rank. `set_epoch(epoch, start)` skips
    the first `start` batches (resume).
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True) -> None:
        if num_items <= 0:
            raise ValueError("the training set is empty")
        self.n, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.epoch, self.start = 0, 0

    def __len__(self) -> int:
        """Batches per epoch for this rank (counting skipped ones)."""
        return -(-self.n // (self.batch_size * self.world_size))

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def epoch_order(self, epoch: int) -> List[int]:
        """Global item order of `epoch`, padded to len(self) * batch_size * world_size."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = len(self) * self.batch_size * self.world_size
        while len(order) < total:
            order += order[: total - len(order)]
        return order

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        order = self.epoch_order(self.epoch)
        global_batch = self.batch_size * self.world_size
        for b in range(self.start, len(self)):
            first = b * global_batch + self.rank * self.batch_size
            yield [(order[p], self.epoch) for p in range(first, first + self.batch_size)]
