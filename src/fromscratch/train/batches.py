"""Training batches from the prepared token arrays, a pure function of (seed, index).

The index counts micro-batches (step × grad_accum + micro). Because a batch depends on
nothing but the seed and its index, a resumed run draws
exactly the batches the uninterrupted run would have drawn: the sampler's position is the
step stored in the checkpoint. Under DistributedDataParallel every rank draws the same
global batch and keeps its own rows, so W ranks together see what one process would.
"""

from __future__ import annotations

import numpy as np
import torch

from fromscratch import FromScratchError


def keyed_rng(*key: int) -> np.random.Generator:
    """A generator that depends on nothing but `key` (e.g. seed, batch index)."""
    return np.random.default_rng(np.random.SeedSequence(list(key)))


def _shard(n: int, rank: int, world: int) -> slice:
    if n % world:
        raise FromScratchError(f"batch_size {n} does not split evenly over {world} processes")
    per = n // world
    return slice(rank * per, (rank + 1) * per)


class LMBatches:
    """Random windows of context + 1 tokens from one token stream: (inputs, targets)."""

    def __init__(
        self,
        tokens: np.ndarray,
        context: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
    ):
        if len(tokens) < context + 1:
            raise FromScratchError(
                f"a split of {len(tokens)} tokens is too short for context {context} "
                f"(a window is context + 1 tokens)"
            )
        self.tokens, self.context, self.batch_size = tokens, context, batch_size
        self.seed, self.rows = seed, _shard(batch_size, rank, world)
        self.offsets = np.arange(context + 1)

    def __call__(self, index: int) -> tuple[torch.Tensor, ...]:
        # every window that fits, the one ending on the last token included
        starts = keyed_rng(self.seed, index).integers(
            0, len(self.tokens) - self.context, size=self.batch_size
        )[self.rows]
        window = torch.from_numpy(self.tokens[starts[:, None] + self.offsets].astype(np.int64))
        return window[:, :-1], window[:, 1:]


class ClassificationBatches:
    """Shuffled, length-bucketed, padded batches of examples: (tokens, mask, labels).

    Each epoch is a fresh permutation; within windows of 50 batches the examples are
    sorted by length, so a batch holds reviews of similar length and little padding,
    and then the batches are shuffled again. An example longer than max_length keeps its
    first `head_tokens` tokens and fills the rest from its end (head_tokens=0: the first
    max_length tokens) — reviews tend to end with their verdict (Sun et al. 2019 found
    head + tail the best cut for IMDb).
    """

    BUCKET = 50

    def __init__(
        self,
        tokens: np.ndarray,
        offsets: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        max_length: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        pad_id: int = 0,
        head_tokens: int = 0,
        name: str = "batch_size",
    ):
        """name: what batch_size is called where it was set (for error messages)."""
        self.tokens, self.offsets, self.labels = tokens, np.asarray(offsets), np.asarray(labels)
        self.full_lengths = np.diff(self.offsets)
        self.lengths = np.minimum(self.full_lengths, max_length)
        self.head = head_tokens if 0 < head_tokens < max_length else max_length
        self.batch_size, self.max_length, self.seed = batch_size, max_length, seed
        self.name = name
        self.rows, self.pad_id = _shard(batch_size, rank, world), pad_id
        self.per_epoch = max(1, len(self.labels) // batch_size)  # drop the ragged last batch
        self._epoch, self._order = -1, None

    def check_fits(self) -> None:
        """Training batches are drawn without replacement: one needs that many examples.
        (Evaluation only collates, so a short split is fine there.)"""
        if len(self.labels) < self.batch_size:
            raise FromScratchError(
                f"{self.name} {self.batch_size} is more than the {len(self.labels)} "
                "examples of the training split"
            )

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self.check_fits()
            rng = keyed_rng(self.seed, epoch)
            order = rng.permutation(len(self.labels))[: self.per_epoch * self.batch_size]
            window = self.batch_size * self.BUCKET
            for start in range(0, len(order), window):
                chunk = order[start : start + window]
                order[start : start + window] = chunk[
                    np.argsort(self.lengths[chunk], kind="stable")
                ]
            batches = order.reshape(self.per_epoch, self.batch_size)
            self._order, self._epoch = batches[rng.permutation(self.per_epoch)], epoch
        return self._order

    def __call__(self, index: int) -> tuple[torch.Tensor, ...]:
        rows = self._epoch_order(index // self.per_epoch)[index % self.per_epoch][self.rows]
        return self.collate(rows)

    def collate(self, rows: np.ndarray) -> tuple[torch.Tensor, ...]:
        lengths = self.lengths[rows]
        width = int(lengths.max())
        position = np.arange(width)
        skipped = (self.full_lengths[rows] - self.lengths[rows])[:, None]  # cut from the middle
        idx = self.offsets[rows][:, None] + position + np.where(position >= self.head, skipped, 0)
        mask = np.arange(width) < lengths[:, None]
        x = np.where(mask, self.tokens[np.minimum(idx, len(self.tokens) - 1)], self.pad_id)
        return (
            torch.from_numpy(x.astype(np.int64)),
            torch.from_numpy(mask),
            torch.from_numpy(self.labels[rows].astype(np.int64)),
        )
