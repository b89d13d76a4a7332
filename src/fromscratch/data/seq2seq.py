"""Synthetic sequence-to-sequence tasks, generated from a seed: copy, reverse, sort.

    task = Seq2SeqTask("reverse", symbols=10, min_length=1, max_length=12)
    batch = task.train_batch(seed=0, step=7, batch_size=32)   # lengths 1..12, padded
    test = task.test_batch(length=16, count=100)               # longer than any in training

A source is a random string of `symbols` different tokens; its target (the answer) has
the same length: the source itself (copy), backwards (reverse) or in order (sort). None
of them can be answered without reading the source, and none needs world knowledge, so
a tiny model on a CPU learns them in minutes. Training lengths stop at `max_length`;
testing at longer lengths asks whether a model has learnt the rule or only the lengths
it has seen.

Every training batch is a pure function of (seed, step), so two models trained with the
same seed see exactly the same examples, and a resumed run sees what it would have seen.
The test examples depend on the length only: every run is scored on the same ones.

The test strings are never trained on, at any length: one string in HOLD_OUT, chosen by a
checksum of its symbols (`held_out`), is kept for testing, and training draws from the
others. At the short lengths training sees every string it may (20 symbols make 400
strings of length 2), so without this a score there would measure memory, not the rule.
A length's test strings are distinct: all of its held-out strings where there are no more
than asked for.

One batch feeds both architectures (see `Seq2SeqBatch`): an encoder/decoder reads the
source with its encoder and writes the target with its decoder; a decoder-only GPT reads
`source START target` as one sequence and is scored on the target only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fromscratch import FromScratchError

PAD = 0  # fills rows up to the batch's longest; never attended to, never scored
START = 1  # "the answer starts here": the decoder's first input, the GPT's separator
FIRST_SYMBOL = 2  # symbols are the tokens 2, 3, ..., 2 + symbols - 1
IGNORE = -1  # the label of every position that is not scored (nll_bits' ignore_index)
TASKS = ("copy", "reverse", "sort")
TEST_STREAM = 7919  # the test examples' own random stream, apart from every training seed
HOLD_OUT = 5  # one string in this many is a test string (a prime: see held_out)


@dataclass(frozen=True)
class Seq2SeqTask:
    name: str = "reverse"
    symbols: int = 10
    min_length: int = 1
    max_length: int = 12

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise FromScratchError(f"task {self.name!r} is not one of {', '.join(TASKS)}")
        if self.symbols < 2:
            raise FromScratchError(f"task symbols={self.symbols} must be at least 2")
        if not 1 <= self.min_length <= self.max_length:
            raise FromScratchError(
                f"task lengths {self.min_length}..{self.max_length}: "
                "need 1 <= min_length <= max_length"
            )

    @property
    def vocab_size(self) -> int:
        return FIRST_SYMBOL + self.symbols

    def answer(self, source: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The target of each row of source (N, L) whose first lengths[i] tokens are real
        (the rest is padding, and stays padding in the target)."""
        position = np.arange(source.shape[1])
        real = position < lengths[:, None]
        if self.name == "copy":
            target = source
        elif self.name == "reverse":  # target[i, j] = source[i, n_i - 1 - j]
            mirrored = np.clip(lengths[:, None] - 1 - position, 0, None)
            target = np.take_along_axis(source, mirrored, axis=1)
        else:  # sort: padding sorts last when it counts as a token above every symbol
            target = np.sort(np.where(real, source, self.vocab_size), axis=1)
        return np.where(real, target, PAD)

    def held_out(self, source: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Whether each row of source (N, L), lengths[i] tokens long, is a test string: the
        checksum sum_j w_j * symbol_j is 0 mod HOLD_OUT, with weights 1, 2, .., HOLD_OUT - 1
        over the positions in turn. No weight is 0 mod the prime HOLD_OUT, so every symbol
        counts and about one string in HOLD_OUT of each length is held out; the all-first-
        symbol string always is, so no length is without test strings."""
        position = np.arange(source.shape[1])
        symbols = np.where(position < lengths[:, None], source - FIRST_SYMBOL, 0)
        weights = 1 + position % (HOLD_OUT - 1)
        return (symbols * weights).sum(axis=1) % HOLD_OUT == 0

    def sources(self, rng: np.random.Generator, lengths: np.ndarray, test: bool) -> np.ndarray:
        """A random string of each length in `lengths`, padded: test strings or training
        ones (held_out), each row drawn again until it is of the kind asked for."""
        source = np.zeros((len(lengths), lengths.max()), dtype=np.int64)
        redraw = np.ones(len(lengths), dtype=bool)
        while redraw.any():
            drawn = rng.integers(
                FIRST_SYMBOL, self.vocab_size, size=(redraw.sum(), source.shape[1])
            )
            source[redraw] = drawn
            source[np.arange(source.shape[1]) >= lengths[:, None]] = PAD
            redraw &= self.held_out(source, lengths) != test
        return source

    def examples(self, source: np.ndarray, lengths: np.ndarray) -> Seq2SeqBatch:
        """The batch of these strings (their lengths, the rest PAD) and their answers."""
        real = np.arange(source.shape[1]) < lengths[:, None]
        target = self.answer(source, lengths)
        as_tensor = torch.from_numpy
        mask = as_tensor(real)
        return Seq2SeqBatch(as_tensor(source), mask, as_tensor(target), mask.clone())

    def train_batch(self, seed: int, step: int, batch_size: int) -> Seq2SeqBatch:
        """The training batch of `step`: lengths drawn uniformly from min..max_length, no
        test string among them."""
        rng = np.random.default_rng([seed, step])
        lengths = rng.integers(self.min_length, self.max_length + 1, batch_size)
        return self.examples(self.sources(rng, lengths, test=False), lengths)

    def test_batch(self, length: int, count: int) -> Seq2SeqBatch:
        """`count` distinct test strings of one length (no padding), or every one there is
        if fewer; the same for every run."""
        rng = np.random.default_rng([TEST_STREAM, length])
        lengths = np.full(count, length)
        if self.symbols**length <= 4 * HOLD_OUT * count:  # few enough to list them all
            every = np.indices((self.symbols,) * length).reshape(length, -1).T + FIRST_SYMBOL
            chosen = every[self.held_out(every, np.full(len(every), length))]
            chosen = chosen[np.sort(rng.permutation(len(chosen))[:count])]
        else:  # test strings are one in HOLD_OUT of more than 4 * count: a few draws more
            chosen = np.unique(self.sources(rng, lengths, test=True), axis=0)
            while len(chosen) < count:
                more = self.sources(rng, lengths[: count - len(chosen)], test=True)
                chosen = np.unique(np.concatenate((chosen, more)), axis=0)
            chosen = chosen[rng.permutation(len(chosen))[:count]]
        return self.examples(chosen, np.full(len(chosen), length))


@dataclass
class Seq2SeqBatch:
    """Sources and targets, each padded at the end with PAD; masks: True = a real token."""

    source: torch.Tensor  # (B, S) long
    source_mask: torch.Tensor  # (B, S) bool
    target: torch.Tensor  # (B, T) long
    target_mask: torch.Tensor  # (B, T) bool

    def to(self, device: torch.device | str) -> Seq2SeqBatch:
        return Seq2SeqBatch(*(t.to(device) for t in vars(self).values()))

    def encoder_decoder_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(decoder_input, labels) for an EncoderDecoder, both (B, T): the decoder reads
        START and the target shifted right by one, and predicts the target itself, one
        token per position. The source goes to the encoder as it is."""
        start = torch.full_like(self.target[:, :1], START)
        decoder_input = torch.cat((start, self.target[:, :-1]), dim=1)
        labels = self.target.masked_fill(~self.target_mask, IGNORE)
        return decoder_input, labels

    def decoder_only_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(sequence, labels) for a GPT: each row is `source START target`, without the
        target's last token (nothing comes after it to predict), padded at the end.

        With n source and m target tokens, position j of a row holds
            j < n: source[j];  j = n: START;  n < j < n + m: target[j - n - 1];  then PAD,
        and its label (the token that should come next) is target[j - n] for n <= j < n + m
        and IGNORE elsewhere: the loss is on the target only. Padding at the end is out of
        sight of every real token, thanks to the causal mask.
        """
        n = self.source_mask.sum(dim=1, keepdim=True)
        m = self.target_mask.sum(dim=1, keepdim=True)
        width = int((n + m).max())
        j = torch.arange(width, device=n.device).expand(len(n), width)  # each row's positions

        def take(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            return tokens.gather(1, index.clamp(0, tokens.size(1) - 1))  # clamped: see where

        sequence = torch.where(j < n, take(self.source, j), START)
        sequence = torch.where(j > n, take(self.target, j - n - 1), sequence)
        sequence = torch.where(j < n + m, sequence, PAD)
        answer = (j >= n) & (j < n + m)
        labels = torch.where(answer, take(self.target, j - n), IGNORE)
        return sequence, labels
