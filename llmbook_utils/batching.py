"""Seeded, reproducible data orders: which examples go into which batch, epoch by epoch.

- ``EpochSampler``: a random permutation seeded by ``(seed, epoch)``, startable mid-epoch;
  ``train`` uses it, which is what makes a resumed run continue exactly where it stopped.
- ``LengthBucketSampler``: random batches of examples of similar length, so that dynamic
  padding wastes little work (chapter 9).

Both take the epoch as an explicit number: iterating a sampler never changes its order, so
drawing a batch to show it does not shift the batches a training run sees afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


def epoch_seed(seed: int, epoch: int) -> int:
    """A 32-bit seed for epoch ``epoch`` of a run seeded with ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class EpochSampler(Sampler[int]):
    """A random permutation seeded by ``(seed, epoch)``, started at position ``start``.

    Args:
        n: the dataset size.
        seed: the run's seed.
        epoch: which epoch's permutation.
        start: skip the first ``start`` indices (resuming mid-epoch).
    """

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0) -> None:
        if not 0 <= start <= n:
            raise ValueError(f"start={start} must be in [0, n={n}]")
        self.n, self.start = n, start
        self.seed = epoch_seed(seed, epoch)

    def __iter__(self) -> Iterator[int]:
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed))
        for chunk in perm[self.start :].split(1 << 16):  # no list of millions of Python ints
            yield from chunk.tolist()

    def __len__(self) -> int:
        return self.n - self.start


class LengthBucketSampler(Sampler[list[int]]):
    """Random batches of similar-length examples; yields lists of indices (a ``batch_sampler``).

    Epoch ``e``: shuffle all indices with a generator seeded by ``(seed, e)``; cut the shuffled
    order into chunks of ``chunk * batch_size`` examples; sort each chunk by length and cut it
    into batches; shuffle the batches. Every batch holds examples of similar length, while the
    batches' membership and order stay random from epoch to epoch. Every index appears exactly
    once per epoch; only the last chunk's last batch can be smaller than ``batch_size``.

    The epoch is explicit: ``set_epoch(e)`` selects it (like
    ``torch.utils.data.DistributedSampler``), and iterating never advances it. A training loop
    calls ``set_epoch`` before each pass over the data::

        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
        for epoch in range(n_epochs):
            sampler.set_epoch(epoch)
            for batch in loader: ...

    Args:
        lengths: the length of every example, shape (N,).
        batch_size: examples per batch.
        chunk: batches per sorted chunk; larger chunks give less padding but less randomness.
        seed: seeds the shuffles together with the epoch.
    """

    def __init__(
        self, lengths: Sequence[int] | np.ndarray, batch_size: int, chunk: int = 50, seed: int = 0
    ) -> None:
        self.lengths = np.asarray(lengths)
        if self.lengths.ndim != 1 or len(self.lengths) == 0:
            raise ValueError(f"lengths must be a non-empty 1-D sequence, got {self.lengths.shape}")
        if batch_size < 1 or chunk < 1:
            raise ValueError(f"batch_size={batch_size} and chunk={chunk} must be >= 1")
        self.batch_size, self.chunk, self.seed = batch_size, chunk, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        if epoch < 0:
            raise ValueError(f"epoch={epoch} must be >= 0")
        self.epoch = epoch

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """The batches of ``epoch`` (default: the selected one), without touching the sampler."""
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        span = self.chunk * self.batch_size
        batches = []
        for start in range(0, len(order), span):
            piece = order[start : start + span]
            piece = piece[np.argsort(self.lengths[piece], kind="stable")]  # sort the chunk
            batches += [piece[i : i + self.batch_size].tolist()
                        for i in range(0, len(piece), self.batch_size)]  # fmt: skip
        rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)
