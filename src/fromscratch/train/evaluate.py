"""Evaluation over whole splits: exact bits for language models, accuracy for classifiers.

Language models: the split is cut into consecutive windows of `context` tokens; every
token after the first is predicted exactly once, and the summed negative log-likelihood
(in bits) is divided by what was predicted — tokens, and the split's UTF-8 bytes and
characters. No windows are sampled: the number is the same every time.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from fromscratch.data import PreparedData
from fromscratch.models import nll_bits


def lm_targets_for(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Targets aligned with logits: a Perceiver AR predicts only its last positions."""
    return targets[:, -logits.size(1) :]


@torch.no_grad()
def evaluate_lm(
    model,
    data: PreparedData,
    split: str,
    context: int,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    max_tokens: int = 0,
) -> dict:
    """Bits per token / byte / character of `split` (the first `max_tokens` if > 0)."""
    model.eval()
    tokens = data.tokens(split)
    n = len(tokens) if not max_tokens else min(len(tokens), max_tokens)
    info = data.meta["splits"][split]
    starts = np.arange(0, n - 1, context)
    total_bits, predicted = 0.0, 0
    for i in range(0, len(starts), batch_size):
        chunk = starts[i : i + batch_size]
        rows = [np.asarray(tokens[s : min(s + context + 1, n)], dtype=np.int64) for s in chunk]
        width = max(len(r) for r in rows)
        window = np.full((len(rows), width), -1, dtype=np.int64)
        for j, r in enumerate(rows):
            window[j, : len(r)] = r
        window = torch.from_numpy(window).to(device)
        x, y = window[:, :-1].clamp(min=0), window[:, 1:]
        logits = model(x)
        if logits.size(1) != y.size(1):  # a Perceiver scores only its latent positions
            raise ValueError("evaluate_lm needs a model that predicts every position")
        total_bits += nll_bits(logits, y, ignore_index=-1).item()
        predicted += int((y >= 0).sum())
    fraction = predicted / max(info["tokens"] - 1, 1)
    result = {
        "bits": total_bits,
        "tokens": predicted,
        "bits_per_token": total_bits / predicted,
        "bits_per_byte": total_bits / (info["bytes"] * fraction),
        "bits_per_char": total_bits / (info["characters"] * fraction),
        "loss": total_bits / predicted * math.log(2),  # nats per token, like the training loss
    }
    model.train()
    return result


@torch.no_grad()
def evaluate_classifier(
    model,
    data: PreparedData,
    split: str,
    max_length: int,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    head_tokens: int = 0,
) -> dict:
    """Accuracy and mean cross-entropy over every example of `split` (cut like training)."""
    from fromscratch.train.batches import ClassificationBatches

    model.eval()
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
    for i in range(0, len(order), batch_size):
        x, mask, y = (t.to(device) for t in batches.collate(order[i : i + batch_size]))
        logits = model(x, mask)
        loss += torch.nn.functional.cross_entropy(logits.float(), y, reduction="sum").item()
        correct += int((logits.argmax(-1) == y).sum())
    model.train()
    return {"accuracy": correct / len(order), "loss": loss / len(order), "examples": len(order)}
