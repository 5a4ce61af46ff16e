"""An infinite, seeded sample stream whose content is a pure function of (seed, iteration).

Global position p (0, 1, 2, ...) lies in epoch e = p // N at offset j = p % N; it yields
``(perm_e[j], derive_seed(seed, e, j))`` where ``perm_e`` is a permutation drawn from (seed, e).
Iteration i consumes the global positions [i*B, (i+1)*B) of a global batch B; under DDP rank r of W
takes the slice [i*B + r*B/W, i*B + (r+1)*B/W), so the union over ranks is exactly the
single-process stream, and resuming at iteration i only needs i.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from ..utils.seed import derive_seed

STREAM_PERMUTATION = 0x5EED_0001


class InfiniteSeededSampler(Sampler):
    def __init__(
        self,
        dataset_len: int,
        seed: int,
        global_batch: int,
        rank: int = 0,
        world_size: int = 1,
        start_iter: int = 0,
    ):
        if dataset_len < 1:
            raise ValueError("cannot sample from an empty dataset")
        if global_batch % world_size:
            raise ValueError(f"global batch {global_batch} is not divisible by {world_size} ranks")
        self.n = int(dataset_len)
        self.seed = int(seed)
        self.global_batch = int(global_batch)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.local_batch = self.global_batch // self.world_size
        self.start_iter = int(start_iter)
        self._perm_epoch = -1
        self._perm: np.ndarray | None = None

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            rng = np.random.default_rng(derive_seed(self.seed, STREAM_PERMUTATION, epoch))
            self._perm = rng.permutation(self.n)
            self._perm_epoch = epoch
        return self._perm

    def item(self, position: int) -> tuple[int, int]:
        epoch, j = divmod(position, self.n)
        return int(self.permutation(epoch)[j]), derive_seed(self.seed, epoch, j)

    def batch(self, iteration: int) -> list[tuple[int, int]]:
        """This rank's (index, seed) pairs for one iteration."""
        start = iteration * self.global_batch + self.rank * self.local_batch
        return [self.item(p) for p in range(start, start + self.local_batch)]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        it = self.start_iter
        while True:
            yield from self.batch(it)
            it += 1

    def __len__(self) -> int:  # infinite; DataLoader only needs this for len(loader)
        raise TypeError("InfiniteSeededSampler has no length")


class InfiniteBatchSampler:
    """``batch_sampler`` for DataLoader: one list of (index, seed) pairs per iteration, from start_iter on."""

    def __init__(self, sampler: InfiniteSeededSampler):
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        it = self.sampler.start_iter
        while True:
            yield self.sampler.batch(it)
            it += 1
