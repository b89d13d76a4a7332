"""Batches are a function of their index; evaluation sums exactly."""

import json
import math
import shutil

import numpy as np
import pytest
import torch

from fromscratch import FromScratchError
from fromscratch.data import PreparedData
from fromscratch.data.tokenizers import EOT
from fromscratch.train.batches import ClassificationBatches, LMBatches
from fromscratch.train.evaluate import (
    evaluate_classifier,
    evaluate_lm,
    sample_examples,
    scored_tokens,
)

from .stand_ins import Uniform


def test_lm_batches_are_reproducible_and_shard_the_global_batch():
    tokens = np.arange(1000, dtype=np.uint16)
    whole = LMBatches(tokens, context=16, batch_size=8, seed=3)
    x, y = whole(5)
    assert torch.equal(x, whole(5)[0]) and not torch.equal(x, whole(6)[0])
    assert torch.equal(y[:, :-1], x[:, 1:])  # targets are the inputs shifted by one
    halves = [LMBatches(tokens, 16, 8, seed=3, rank=r, world=2)(5)[0] for r in range(2)]
    assert torch.equal(torch.cat(halves), x)


def test_another_seed_draws_batches_of_its_own_not_the_same_ones_shifted(demo_words):
    """A seed's batch i is no other seed's batch j: two seeds of an experiment train on
    draws unrelated to each other, as their spread over seeds assumes."""
    tokens = np.arange(100_000, dtype=np.uint32)
    lm = {seed: [LMBatches(tokens, 16, 8, seed=seed)(i)[0] for i in range(4)] for seed in (0, 1)}
    assert not any(torch.equal(a, b) for a in lm[0] for b in lm[1])
    data = PreparedData(demo_words)

    def epochs(seed):  # the examples' order in each of the first three epochs
        batches = ClassificationBatches(data.tokens("train"), data.offsets("train"),
                                        data.labels("train"), 32, 64, seed=seed)  # fmt: skip
        per_epoch = batches.per_epoch
        return [torch.cat([batches(e * per_epoch + i)[0][:, :4].flatten()
                           for i in range(per_epoch)]) for e in range(3)]  # fmt: skip

    first, second = epochs(0), epochs(1)
    assert not any(torch.equal(a, b) for a in first for b in second)


def test_lm_windows_reach_both_ends_of_the_stream():
    tokens = np.arange(20, dtype=np.uint16)
    starts = set()
    for i in range(200):
        x, y = LMBatches(tokens, context=16, batch_size=4, seed=0)(i)
        starts |= set(x[:, 0].tolist())
    assert starts == {0, 1, 2, 3}  # the last window's target is the stream's last token
    x, y = LMBatches(tokens[:17], context=16, batch_size=2, seed=0)(0)  # exactly one window
    assert torch.equal(x[0], torch.arange(16)) and torch.equal(y[0], torch.arange(1, 17))
    with pytest.raises(FromScratchError, match="16 tokens is too short for context 16"):
        LMBatches(tokens[:16], context=16, batch_size=2, seed=0)


def test_a_batch_larger_than_the_split_is_a_one_line_error(demo_words):
    data = PreparedData(demo_words)
    n = len(data.labels("train"))
    batches = ClassificationBatches(
        data.tokens("train"), data.offsets("train"), data.labels("train"), n + 1, 64, seed=0
    )
    with pytest.raises(FromScratchError, match=f"batch_size {n + 1} is more than the {n} exam"):
        batches(0)
    with pytest.raises(FromScratchError, match="batch_size 9 does not split evenly over 2"):
        LMBatches(np.arange(100, dtype=np.uint16), 16, 9, seed=0, rank=0, world=2)


def train_batches(data, tokens=None):
    """Batches of 32 of the training split, cut to 64 tokens."""
    tokens = data.tokens("train") if tokens is None else tokens
    offsets, labels = data.offsets("train"), data.labels("train")
    return ClassificationBatches(tokens, offsets, labels, batch_size=32, max_length=64, seed=0)


def test_classification_batches_cover_each_epoch_and_mask_padding(demo_words):
    data = PreparedData(demo_words)
    lengths, labels = np.minimum(np.diff(data.offsets("train")), 64), data.labels("train")
    # every token of example i is i + 1 (0 is the padding): a row's first token names it
    numbered = np.repeat(np.arange(1, len(labels) + 1), np.diff(data.offsets("train")))
    batches = train_batches(data, numbered.astype(np.uint16))
    assert batches.per_epoch * 32 == len(labels)  # no ragged batch left out
    epochs = []
    for epoch in range(2):
        order = []
        for i in range(epoch * batches.per_epoch, (epoch + 1) * batches.per_epoch):
            x, mask, y = batches(i)
            rows = x[:, 0].numpy().astype(np.int64) - 1
            padded = np.arange(lengths[rows].max()) >= lengths[rows][:, None]
            assert torch.equal(mask, torch.from_numpy(~padded))  # as wide as the longest
            assert torch.equal(x, torch.where(mask, torch.from_numpy(rows + 1)[:, None], 0))
            assert torch.equal(y, torch.from_numpy(labels[rows].astype(np.int64)))
            order.append(rows)
        epochs.append(np.concatenate(order))
        assert np.array_equal(np.sort(epochs[-1]), np.arange(len(labels)))  # each one once
    assert not np.array_equal(epochs[0], epochs[1])  # and in another order
    spread = [int(batches(i)[1].sum(1).float().std()) for i in range(10)]
    assert np.mean(spread) < np.diff(data.offsets("train")).std()  # bucketing groups lengths


def test_a_fresh_classification_sampler_draws_the_batch_of_a_step_again(demo_words):
    # a resumed classifier builds its batches anew and starts at the checkpoint's step,
    # without drawing the batches before it
    data = PreparedData(demo_words)
    uninterrupted = train_batches(data)
    later = uninterrupted.per_epoch + 7  # in the second epoch
    drawn = [uninterrupted(i) for i in range(later + 1)]
    for step in (3, later):
        for fresh, seen in zip(train_batches(data)(step), drawn[step], strict=True):
            assert torch.equal(fresh, seen), f"batch {step}"


def test_lm_evaluation_is_an_exact_sum(demo_chars):
    data = PreparedData(demo_chars)
    vocab, info = data.meta["vocab_size"], data.meta["splits"]["test"]
    result = evaluate_lm(Uniform(vocab), data, "test", context=100, batch_size=7)
    # every token but the first, once, and the separators between the examples
    predicted = info["tokens"] - 1 + info["examples"] - 1
    assert result["tokens"] == predicted
    assert result["bits_per_token"] == pytest.approx(math.log2(vocab), rel=1e-6)
    assert result["bits"] == pytest.approx(math.log2(vocab) * predicted, rel=1e-6)
    assert info["characters"] == info["tokens"]  # one token a character: the same number
    # the separators cost bits and stand for no text: charged to the characters there are
    characters = info["tokens"] - 1
    assert result["bits_per_char"] == pytest.approx(result["bits"] / characters, rel=1e-12)
    # about 1,000 tokens alone: per byte and character of the part scored, too
    part = evaluate_lm(Uniform(vocab), data, "test", context=100, max_tokens=1000)
    scored = scored_tokens(data, "test", 1000)[1:]
    assert part["tokens"] == len(scored)
    characters = np.count_nonzero(scored != data.tokenizer.eot)  # ASCII: a byte each
    for unit in ("bits_per_byte", "bits_per_char"):
        assert part[unit] == pytest.approx(math.log2(vocab) * len(scored) / characters), unit


def test_a_partial_evaluation_scores_examples_from_the_whole_split(demo_chars, tmp_path):
    """IMDb stores a split by label, its negative reviews first: the first 20,000 tokens
    of one would score one class, a hundred reviews. A partial evaluation scores whole
    examples spread over the split instead, both classes as often as the split has them."""
    data = PreparedData(shutil.copytree(demo_chars, tmp_path / "by-label"))
    offsets, labels = data.offsets("test"), data.labels("test")
    order = np.argsort(labels, kind="stable")  # as IMDb stores its splits
    examples = [np.array(data.tokens("test")[offsets[i] : offsets[i + 1]]) for i in order]
    np.concatenate(examples).tofile(data.folder / "test.bin")
    np.save(data.folder / "test.offsets.npy", np.cumsum([0] + [len(e) for e in examples]))
    np.save(data.folder / "test.labels.npy", labels[order])
    data = PreparedData(data.folder)

    chosen = sample_examples(data, "test", 20_000)
    share = data.labels("test")[chosen].mean()
    assert abs(share - labels.mean()) < 0.05 and chosen[0] == 0 and chosen[-1] == len(order) - 1
    tokens = scored_tokens(data, "test", 20_000)
    assert 18_000 <= len(tokens) <= 20_000
    offsets, eot = data.offsets("test"), data.tokenizer.eot
    # the chosen examples back to back, the separator between them
    whole = [[*data.tokens("test")[offsets[i] : offsets[i + 1]], eot] for i in chosen]
    np.testing.assert_array_equal(tokens, np.concatenate(whole)[: len(tokens)])
    part = evaluate_lm(
        Uniform(data.meta["vocab_size"]), data, "test", context=64, max_tokens=20_000
    )
    assert part["tokens"] == len(tokens) - 1


def test_a_partial_evaluation_picks_as_many_examples_as_fit_with_their_separators(demo_words):
    """Short examples (the demo's 40 words, a snippet): the separators between them are
    one token in 40, and left out of the count they would push the spread's last examples,
    the split's end (IMDb's positive reviews), out of the tokens scored."""
    data = PreparedData(demo_words)
    chosen = sample_examples(data, "test", 20_000)
    average = data.meta["splits"]["test"]["tokens"] / data.meta["splits"]["test"]["examples"]
    assert abs(len(data.stream("test", chosen)) - 20_000) < average


def test_bits_per_byte_of_a_part_count_the_bytes_of_its_own_tokens(tmp_path):
    """Subword tokens differ in length: a part of a split is divided by the bytes and
    characters of the tokens it predicted, not by the whole split's share of them."""
    from fromscratch.data import prepare

    prepare("demo", tmp_path / "bpe", tokenizer="bpe", vocab_size=400, progress=False)
    data = PreparedData(tmp_path / "bpe")
    part = evaluate_lm(Uniform(data.meta["vocab_size"]), data, "test", context=64, max_tokens=500)
    text = data.tokenizer.decode(scored_tokens(data, "test", 500)[1:])  # ASCII, one byte each
    assert EOT in text  # the separators, which stand for no text
    text = text.replace(EOT, "")
    assert part["bits_per_byte"] == pytest.approx(part["bits"] / len(text.encode()), rel=1e-9)
    assert part["bits_per_char"] == pytest.approx(part["bits"] / len(text), rel=1e-9)
    assert data.tokenizer.byte_counts[0].max() > 1  # tokens of several bytes


def test_bits_per_character_only_where_the_tokens_give_the_text_back(demo_words, tmp_path, capsys):
    """Words: every unknown word one `<unk>`, lower-cased; bits per character of that
    would charge the model for less than the text."""
    data = PreparedData(shutil.copytree(demo_words, tmp_path / "words"))  # not named before
    assert data.meta["lossless"] is False
    for _ in range(2):
        result = evaluate_lm(Uniform(data.meta["vocab_size"]), data, "test", context=64)
        assert result["bits_per_char"] is None and result["bits_per_byte"] is None
        assert result["bits_per_token"] == pytest.approx(math.log2(data.meta["vocab_size"]))
    assert capsys.readouterr().err == (  # named once, not at every evaluation
        f"{data.folder}: its words tokenizer is not lossless (<unk>); bits per byte and per "
        "character are left out, bits per token stand\n"
    )


class Windows(Uniform):
    """Uniform, and notes the length of every window it is given."""

    def __init__(self, vocab):
        super().__init__(vocab)
        self.lengths = []

    def forward(self, idx, mask=None):
        self.lengths += [idx.size(1)] * idx.size(0)
        return super().forward(idx)


def test_a_stride_scores_each_token_once_with_the_context_before_it(demo_chars):
    data = PreparedData(demo_chars)
    vocab = data.meta["vocab_size"]
    back_to_back, sliding = Windows(vocab), Windows(vocab)
    whole = evaluate_lm(back_to_back, data, "test", context=64, max_tokens=1000)
    strided = evaluate_lm(sliding, data, "test", context=64, max_tokens=1000, stride=8)
    assert strided["tokens"] == whole["tokens"] == len(scored_tokens(data, "test", 1000)) - 1
    assert strided["bits"] == pytest.approx(whole["bits"], rel=1e-6)  # float32 sums
    # windows every 8 tokens: all but the first few hold the whole context (the first call
    # is the probe of how many positions the model predicts)
    assert len(sliding.lengths) - 1 == math.ceil(999 / 8)
    assert sliding.lengths[1:].count(64) == len(sliding.lengths) - 1 - 64 // 8 + 1
    assert len(back_to_back.lengths) - 1 == math.ceil(999 / 64)
    with pytest.raises(FromScratchError, match="eval_stride=65: more than the 64 positions"):
        evaluate_lm(Windows(vocab), data, "test", context=64, max_tokens=1000, stride=65)


def test_evaluation_leaves_the_model_in_the_mode_it_found_it(demo_chars, demo_words):
    for model, evaluate, data in (
        (Uniform(PreparedData(demo_chars).meta["vocab_size"]), evaluate_lm, demo_chars),
        (Uniform(0, classes=2), evaluate_classifier, demo_words),
    ):
        for training in (True, False):
            model.train(training)
            evaluate(model, PreparedData(data), "test", 64)
            assert model.training is training


def test_an_lm_split_needs_two_tokens_to_score(demo_chars):
    data = PreparedData(demo_chars)
    with pytest.raises(FromScratchError, match=r"split 'test': 1 token\(s\) to score, at least 2"):
        evaluate_lm(Uniform(data.meta["vocab_size"]), data, "test", context=16, max_tokens=1)


def test_classifier_accuracy_counts_every_example(demo_words):
    data = PreparedData(demo_words)
    result = evaluate_classifier(Uniform(0, classes=2), data, "test", max_length=64)
    labels = data.labels("test")
    assert result["examples"] == len(labels)
    assert result["accuracy"] == (labels == 1).mean()  # always predicts class 1
    # logits (0, 1): a nat cost of log(1 + e^-1) where it is right, log(1 + e) where wrong,
    # averaged over the examples (not over the batches they were scored in)
    right, wrong = math.log1p(math.exp(-1)), math.log1p(math.e)
    expected = (labels == 1).mean() * right + (labels == 0).mean() * wrong
    assert result["loss"] == pytest.approx(expected, rel=1e-6)


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


def test_each_epoch_puts_other_examples_together_and_mixes_the_lengths_over_its_steps(
    demo_words,
):
    """Bucketing sorts by length within windows of 50 batches only, then shuffles the
    batches: an epoch's steps do not go from short reviews to long ones, and a new epoch
    draws new companions for each example, not the last epoch's batches in another order."""
    data = PreparedData(demo_words)
    # every token of example i is i + 1: a row's first token names it
    numbered = np.repeat(
        np.arange(1, len(data.labels("train")) + 1), np.diff(data.offsets("train"))
    )
    batches = train_batches(data, numbered.astype(np.uint16))
    lengths = np.minimum(np.diff(data.offsets("train")), 64)
    epochs = []
    for epoch in range(2):
        rows = [
            batches(i)[0][:, 0].numpy() - 1
            for i in range(epoch * batches.per_epoch, (epoch + 1) * batches.per_epoch)
        ]
        epochs.append(rows)
        means = [lengths[r].mean() for r in rows[: batches.BUCKET]]
        assert means != sorted(means), f"epoch {epoch}: its steps go from short to long"
        # a window of 50 batches is sorted as a whole: a batch holds neighbours in length,
        # its lengths spread far less than those of 32 examples drawn at random
        spread = np.mean([lengths[r].max() - lengths[r].min() for r in rows])
        assert spread < 0.25 * (lengths.max() - lengths.min())
    first = {frozenset(r.tolist()) for r in epochs[0]}
    again = sum(frozenset(r.tolist()) in first for r in epochs[1])
    assert again < len(epochs[1]) / 2, "the second epoch repeats the first one's batches"


class ScoresOnlyFromTheStride(Uniform):
    """Uniform, but NaN at the positions of a window before its last `stride`: a strided
    evaluation scores only the last `stride` predictions of a window, each with at least
    context - stride tokens before it, so no NaN may reach the sum."""

    def __init__(self, vocab, stride):
        super().__init__(vocab)
        self.stride = stride

    def forward(self, idx, mask=None):
        logits = super().forward(idx)
        logits[:, : idx.size(1) - self.stride] = float("nan")
        return logits


def test_a_strided_window_scores_its_last_predictions_not_its_first(demo_chars):
    data = PreparedData(demo_chars)
    vocab = data.meta["vocab_size"]
    result = evaluate_lm(
        ScoresOnlyFromTheStride(vocab, 8), data, "test", context=64, max_tokens=1000, stride=8
    )
    assert result["tokens"] == len(scored_tokens(data, "test", 1000)) - 1
    assert result["bits"] == pytest.approx(math.log2(vocab) * result["tokens"], rel=1e-6)


def test_the_evaluation_loss_is_in_nats_per_token(demo_chars):
    """As the training loss is: a uniform guess over V tokens costs ln V nats (log2 V bits)."""
    data = PreparedData(demo_chars)
    vocab = data.meta["vocab_size"]
    result = evaluate_lm(Uniform(vocab), data, "test", context=64, max_tokens=1000)
    assert result["loss"] == pytest.approx(math.log(vocab), rel=1e-6)
    assert result["bits_per_token"] == pytest.approx(math.log2(vocab), rel=1e-6)


def test_bits_per_byte_and_per_character_differ_where_characters_take_several_bytes(tmp_path):
    """UTF-8: 'ü' is two bytes, '–' and '∑' three, '東' three. A byte-level model's bits go
    over the bytes predicted for bits per byte, over the characters for bits per character."""
    from fromscratch.data import prepare

    folder = tmp_path / "bytes"
    prepare("demo", folder, tokenizer="bytes", progress=False)
    text = "Zürich – ∑ naïve café, 東京.\n" * 20
    encoded = text.encode()
    meta = json.loads((folder / "meta.json").read_text())
    np.frombuffer(encoded, dtype=np.uint8).astype(meta["dtype"]).tofile(folder / "test.bin")
    np.save(folder / "test.offsets.npy", np.array([0, len(encoded)]))
    np.save(folder / "test.labels.npy", np.array([0]))
    meta["splits"]["test"] |= {"tokens": len(encoded), "examples": 1}
    (folder / "meta.json").write_text(json.dumps(meta))
    data = PreparedData(folder)
    result = evaluate_lm(Uniform(data.meta["vocab_size"]), data, "test", context=64)
    assert result["tokens"] == len(encoded) - 1  # every byte but the first ("Z", one byte)
    assert result["bits_per_byte"] == pytest.approx(result["bits"] / (len(encoded) - 1))
    assert result["bits_per_char"] == pytest.approx(result["bits"] / (len(text) - 1))
    assert len(encoded) > len(text)
