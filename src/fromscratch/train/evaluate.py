"""Evaluation over whole splits: exact bits for language models, accuracy for classifiers.

Language models: the split is cut into windows of `context` tokens; every token after
the first is predicted exactly once (a Perceiver AR, which predicts only its latent
positions, by windows that overlap), and the summed negative log-likelihood
(in bits) is divided by what was predicted — tokens, and their UTF-8 bytes and
characters, counted token by token. No windows are sampled: the number is the same every
time. Per byte and per character only where the tokens give the text back (a lossless
tokenizer): a `<unk>` stands for text nobody was charged for, so a words vocabulary's bits
per character would flatter the model; there they are None, and bits per token stand.

How much a token sees before it depends on the windows' stride: back to back (a GPT's
default), the first token of a window sees nothing and the last context - 1 tokens, half
a window on average; windows every `stride` tokens, scoring their last `stride`
predictions, give every token at least context - stride tokens before it. Two models
compared on long contexts (a GPT and a Perceiver AR, which predicts only its L latents)
are scored with the same stride.

The processes of a distributed run share the work (`share`): each scores every W-th batch,
and the sums are added up, so that W GPUs evaluate W times as fast, to the same numbers.
"""

from __future__ import annotations

import itertools
import math
import sys

import numpy as np
import torch

from fromscratch import FromScratchError
from fromscratch.data import PreparedData
from fromscratch.models import nll_bits
from fromscratch.models.common import evaluating
from fromscratch.train.distributed import Distributed

ALONE = Distributed()  # one process, scoring every batch


def sample_examples(data: PreparedData, split: str, max_tokens: int) -> np.ndarray:
    """The examples of `split` that a partial evaluation of about `max_tokens` tokens
    scores: spread evenly over the split, its first and last among them. A split stores its
    examples in an order (IMDb's by label, its negative reviews first), so its first tokens
    alone would stand for one class, a few dozen reviews."""
    examples = data.examples(split)
    return spread(examples, round(max_tokens * examples / max(1, data.stream_length(split))))


def spread(available: int, count: int) -> np.ndarray:
    """`count` of the indices 0 .. available - 1 (at least one, at most all), evenly spaced,
    the first and the last among them."""
    count = min(available, max(1, count))
    return np.round(np.linspace(0, available - 1, count)).astype(np.int64)


def scored_tokens(data: PreparedData, split: str, max_tokens: int = 0) -> np.ndarray:
    """The token stream an evaluation scores: all of `split` (max_tokens 0), or at most
    `max_tokens` of it: the sampled examples' stream (a split of one example, a book, its
    first max_tokens)."""
    if not max_tokens or max_tokens >= data.stream_length(split):
        return data.stream(split)
    return data.stream(split, sample_examples(data, split, max_tokens))[:max_tokens]


def lm_targets_for(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Targets aligned with logits: a Perceiver AR predicts only its last positions."""
    return targets[:, -logits.size(1) :]


def lm_windows(n: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """The windows that predict tokens 1 .. n-1 of a stream of n tokens, each exactly once.

    Window (start, end, scored) reads tokens[start:end] (at most `context` of them) and
    predicts tokens[start + 1 : end + 1]; only its last `scored` predictions count, the
    earlier ones belong to the window before.  Windows end every `stride` tokens, so a
    model that predicts only the last `stride` positions of its input (a Perceiver AR: its
    latents) still predicts every token; a GPT has stride = context.
    """
    ends = np.minimum(np.arange(stride, n - 1 + stride, stride), n - 1)
    starts = np.maximum(ends - context, 0)
    scored = np.diff(ends, prepend=0)
    return list(zip(starts.tolist(), ends.tolist(), scored.tolist(), strict=True))


@torch.no_grad()
def check_stride(model, window: int, stride: int, device: str | torch.device) -> int:
    """How many positions `model` predicts from a window of `window` tokens (all, or a
    Perceiver AR's latents), which windows every `stride` tokens must not exceed: they
    would leave tokens between them unscored."""
    probe = torch.zeros((1, window), dtype=torch.long, device=device)
    with evaluating(model):  # no dropout: the run's random numbers stay its training's
        predicts = model(probe).size(1)
    if stride > predicts:
        raise FromScratchError(
            f"eval_stride={stride}: more than the {predicts} positions the model predicts "
            "from a window"
        )
    return predicts


_LOSSY_NAMED: set = set()  # the folders whose lossy tokenizer was named (once a process)


@torch.no_grad()
def evaluate_lm(
    model,
    data: PreparedData,
    split: str,
    context: int,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    max_tokens: int = 0,
    stride: int = 0,
    share: Distributed = ALONE,
) -> dict:
    """Bits per token / byte / character of `split` (at most `max_tokens` of it, if > 0:
    scored_tokens), in windows every `stride` tokens (0: as many as the model predicts from
    a window). share: the processes that score the split together (all of them call this)."""
    tokens = scored_tokens(data, split, max_tokens)
    n = len(tokens)
    if n < 2:
        raise FromScratchError(
            f"split {split!r}: {n} token(s) to score, at least 2 needed (one read, one predicted)"
        )
    total_bits, predicted = 0.0, 0
    with evaluating(model):
        predicts = check_stride(model, min(context, n - 1), stride, device)
        stride = stride or predicts
        # windows of the same length go through the model together (only the first few,
        # shorter than context, differ)
        windows = lm_windows(n, context, stride)
        chunks = []
        for _, group in itertools.groupby(windows, lambda w: w[1] - w[0]):
            same_length = list(group)
            chunks += [
                same_length[i : i + batch_size] for i in range(0, len(same_length), batch_size)
            ]
        for chunk in chunks[share.rank :: share.world]:
            rows = [np.asarray(tokens[s : e + 1], dtype=np.int64) for s, e, _ in chunk]
            window = torch.from_numpy(np.stack(rows)).to(device)
            x, y = window[:, :-1], window[:, 1:]
            logits = model(x)
            y = y[:, -logits.size(1) :].clone()
            for row, (_, _, scored) in enumerate(chunk):  # already predicted: not counted
                y[row, : y.size(1) - scored] = -1
            total_bits += nll_bits(logits, y, ignore_index=-1).item()
            predicted += sum(scored for _, _, scored in chunk)
    total_bits, predicted = share.summed(total_bits, predicted)
    predicted = int(predicted)
    lossless = data.meta.get("lossless", True)
    if lossless:  # the bytes and characters of the tokens predicted, counted exactly
        lengths, starts = data.tokenizer.byte_counts
        counts = np.bincount(tokens[1:], minlength=len(lengths))  # one pass, no copy
        scored_bytes, scored_chars = int(counts @ lengths), int(counts @ starts)
    if not lossless and data.folder not in _LOSSY_NAMED and share.rank == 0:
        _LOSSY_NAMED.add(data.folder)
        print(
            f"{data.folder}: its {data.meta['tokenizer']} tokenizer is not lossless (<unk>); "
            "bits per byte and per character are left out, bits per token stand",
            file=sys.stderr,
        )
    return {
        "bits": total_bits,
        "tokens": predicted,
        "bits_per_token": total_bits / predicted,
        "bits_per_byte": total_bits / scored_bytes if lossless else None,
        "bits_per_char": total_bits / scored_chars if lossless else None,
        "loss": total_bits / predicted * math.log(2),  # nats per token, like the training loss
    }


@torch.no_grad()
def evaluate_classifier(
    model,
    data: PreparedData,
    split: str,
    max_length: int,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    head_tokens: int = 0,
    share: Distributed = ALONE,
) -> dict:
    """Accuracy and mean cross-entropy over every example of `split` (cut like training).
    share: the processes that score the split together (all of them call this)."""
    from fromscratch.train.batches import ClassificationBatches

    batches = ClassificationBatches(
        data.tokens(split),
        data.offsets(split),
        data.labels(split),
        batch_size,
        max_length,
        seed=0,
        head_tokens=head_tokens,
    )
    order = np.argsort(batches.lengths, kind="stable")  # similar lengths together: less padding
    correct, loss = 0, 0.0
    starts = range(0, len(order), batch_size)
    with evaluating(model):
        for i in starts[share.rank :: share.world]:
            x, mask, y = (t.to(device) for t in batches.collate(order[i : i + batch_size]))
            logits = model(x, mask)
            loss += torch.nn.functional.cross_entropy(logits.float(), y, reduction="sum").item()
            correct += int((logits.argmax(-1) == y).sum())
    correct, loss = share.summed(correct, loss)
    correct = int(correct)
    return {"accuracy": correct / len(order), "loss": loss / len(order), "examples": len(order)}
