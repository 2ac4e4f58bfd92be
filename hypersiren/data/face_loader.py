"""The training faces of each step through ``torch.utils.data``: a batch sampler that derives step s's faces from
(seed, rank, s) alone, loader processes that read them from the memory-mapped face cache, and pinned memory with
non-blocking copies to a GPU.

Nothing about the loader needs saving: resuming at step s draws exactly the faces an uninterrupted run drew at s,
whatever the number of workers. The sampler never ends, so one set of workers serves the whole run (there are
no epochs to restart them for). Under torchrun each rank draws from its own shard of the faces (a fixed seeded
split, as ``DistributedSampler`` makes): together the ranks cover every face, and no face is in two shards.
"""
from __future__ import annotations

import itertools
from typing import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from hypersiren.data.faces import FaceImages
from hypersiren.errors import InputError


def shard(count: int, seed: int, rank: int = 0, world: int = 1) -> np.ndarray:
    """Sorted indices (about count / world) of the faces of ``rank`` among ``world`` ranks: every world-th item of
    a permutation seeded by ``seed``. The shards of all ranks partition range(count)."""
    if count < world:
        raise InputError(f"{count} training faces cannot be shared among {world} ranks (each needs at least one)")
    return np.sort(np.random.default_rng([seed]).permutation(count)[rank::world])


class StepBatches(Sampler):
    """Batch sampler over ``count`` faces: for steps ``start``, start + 1, ... (endless) the indices (batch_size,)
    of each step, drawn uniformly with replacement from this rank's ``shard`` by a generator seeded with
    (seed, rank, step)."""

    def __init__(self, count: int, batch_size: int, seed: int = 0, rank: int = 0, world: int = 1):
        if batch_size < 1:
            raise InputError(f"batch size must be positive, got {batch_size}")
        self.shard, self.batch_size, self.seed, self.rank = shard(count, seed, rank, world), batch_size, seed, rank
        self.start = 0

    def at(self, step: int) -> np.ndarray:
        """The face indices of ``step``."""
        rng = np.random.default_rng([self.seed, self.rank, step])
        return self.shard[rng.integers(len(self.shard), size=self.batch_size)]

    def __iter__(self) -> Iterator[np.ndarray]:
        return map(self.at, itertools.count(self.start))


def _whole_batch(batch: Tensor) -> Tensor:
    """The DataLoader's collate function: ``FaceImages.__getitems__`` already returns the batch as one tensor."""
    return batch


class FaceStream:
    """``stream(step)``: the faces of a training step, (B, 3, R, R) float32 in [0, 1] on ``device``, each mirrored
    left-right with probability 1/2 if ``flip`` (drawn from torch's global RNG, which the engine saves).

    faces: the training set (``hypersiren.data.faces.open_faces``); workers: loader processes (0: read in this
    process); rank, world: this process's rank and the number of ranks under torchrun.
    """

    def __init__(self, faces: FaceImages, batch_size: int, seed: int, device: torch.device, *, flip: bool = False,
                 workers: int = 0, rank: int = 0, world: int = 1):
        self.faces, self.device, self.flip = faces, torch.device(device), flip
        self.sampler = StepBatches(len(faces), batch_size, seed, rank, world)
        # its own generator: starting the loader must not draw from torch's global RNG (resume equivalence)
        self.loader = DataLoader(faces, batch_sampler=self.sampler, num_workers=workers, collate_fn=_whole_batch,
                                 pin_memory=self.device.type == "cuda", generator=torch.Generator().manual_seed(seed))
        self._batches: Iterator[Tensor] | None = None
        self._next_step: int | None = None

    def __len__(self) -> int:
        return len(self.faces)

    def __call__(self, step: int) -> Tensor:
        if self._batches is None or step != self._next_step:  # the first step, or a jump (a resumed run)
            self.sampler.start = step
            self._batches = iter(self.loader)
        self._next_step = step + 1
        faces = next(self._batches).to(self.device, non_blocking=True).float() / 255
        if self.flip:
            mirror = torch.rand(len(faces)) < 0.5
            faces = torch.where(mirror.to(self.device).reshape(-1, 1, 1, 1), faces.flip(-1), faces)
        return faces

    def close(self) -> None:
        """Stop the loader processes (a later call starts them again)."""
        self._batches = None
