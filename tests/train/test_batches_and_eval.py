"""Batches are a function of their index; evaluation sums exactly."""

import math

import numpy as np
import torch

from fromscratch.data import PreparedData
from fromscratch.train.batches import ClassificationBatches, LMBatches
from fromscratch.train.evaluate import evaluate_classifier, evaluate_lm


def test_lm_batches_are_reproducible_and_shard_the_global_batch():
    tokens = np.arange(1000, dtype=np.uint16)
    whole = LMBatches(tokens, context=16, batch_size=8, seed=3)
    x, y = whole(5)
    assert torch.equal(x, whole(5)[0]) and not torch.equal(x, whole(6)[0])
    assert torch.equal(y[:, :-1], x[:, 1:])  # targets are the inputs shifted by one
    halves = [LMBatches(tokens, 16, 8, seed=3, rank=r, world=2)(5)[0] for r in range(2)]
    assert torch.equal(torch.cat(halves), x)


def test_classification_batches_cover_each_epoch_and_mask_padding(demo_words):
    data = PreparedData(demo_words)
    batches = ClassificationBatches(
        data.tokens("train"),
        data.offsets("train"),
        data.labels("train"),
        batch_size=32,
        max_length=64,
        seed=0,
    )
    seen = []
    for i in range(batches.per_epoch):
        x, mask, y = batches(i)
        assert x.shape == mask.shape and x.shape[1] <= 64
        assert (x[~mask] == 0).all() and mask[:, 0].all()
        seen.append(y)
    assert sum(len(y) for y in seen) == batches.per_epoch * 32
    lengths = [int(batches(i)[1].sum(1).float().std()) for i in range(10)]
    assert np.mean(lengths) < np.diff(data.offsets("train")).std()  # bucketing groups lengths


class Uniform(torch.nn.Module):
    """Predicts every token with probability 1/V: exactly log2(V) bits each."""

    def __init__(self, vocab, classes=None):
        super().__init__()
        self.vocab, self.classes = vocab, classes

    def forward(self, idx, mask=None):
        if self.classes:
            return torch.stack([torch.zeros(len(idx)), torch.ones(len(idx))], dim=1)
        return torch.zeros(*idx.shape, self.vocab)


def test_lm_evaluation_is_an_exact_sum(demo_chars):
    data = PreparedData(demo_chars)
    vocab, info = data.meta["vocab_size"], data.meta["splits"]["test"]
    result = evaluate_lm(Uniform(vocab), data, "test", context=100, batch_size=7)
    assert result["tokens"] == info["tokens"] - 1  # every token but the first, once
    assert result["bits_per_token"] == pytest_approx(math.log2(vocab))
    assert result["bits"] == pytest_approx(math.log2(vocab) * (info["tokens"] - 1))


def test_classifier_accuracy_counts_every_example(demo_words):
    data = PreparedData(demo_words)
    result = evaluate_classifier(Uniform(0, classes=2), data, "test", max_length=64)
    labels = data.labels("test")
    assert result["examples"] == len(labels)
    assert result["accuracy"] == (labels == 1).mean()  # always predicts class 1


def pytest_approx(value):
    import pytest

    return pytest.approx(value, rel=1e-6)


def test_long_examples_keep_their_head_and_tail():
    tokens = np.arange(100, dtype=np.uint16)  # two examples: 0..59 and 60..99
    offsets, labels = np.array([0, 60, 100]), np.array([0, 1])
    cut = ClassificationBatches(tokens, offsets, labels, 2, max_length=10, seed=0, head_tokens=3)
    x, mask, _ = cut.collate(np.array([0, 1]))
    assert x[0].tolist() == [0, 1, 2, 53, 54, 55, 56, 57, 58, 59]
    assert x[1].tolist() == [60, 61, 62, 93, 94, 95, 96, 97, 98, 99]
    head_only = ClassificationBatches(tokens, offsets, labels, 2, max_length=10, seed=0)
    assert head_only.collate(np.array([0]))[0][0].tolist() == list(range(10))
    short = ClassificationBatches(tokens, offsets, labels, 2, max_length=80, seed=0, head_tokens=3)
    x, mask, _ = short.collate(np.array([0, 1]))
    assert x[0, :60].tolist() == list(range(60)) and x[1, :40].tolist() == list(range(60, 100))
    assert mask.sum(1).tolist() == [60, 40]
