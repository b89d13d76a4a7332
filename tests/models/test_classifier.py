"""Classifier: padding changes nothing, it learns, and the pooling choices work."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fromscratch.models import POSITIONS, Classifier, ClassifierConfig, ConfigError


def tiny(**kw) -> ClassifierConfig:
    base = dict(vocab_size=20, context=12, n_layer=2, n_head=2, n_embd=16, num_classes=3)
    return ClassifierConfig(**{**base, **kw})


def assert_padding_harmless(model: Classifier) -> None:
    """A right-padded batch (padding holding arbitrary tokens) gives the same logits as
    classifying each example alone."""
    lengths = [12, 5, 1, 9]
    examples = [torch.randint(1, 20, (n,)) for n in lengths]
    idx = torch.randint(1, 20, (len(lengths), 12))  # padding holds anything
    mask = torch.zeros(len(lengths), 12, dtype=torch.bool)
    for i, x in enumerate(examples):
        idx[i, : len(x)], mask[i, : len(x)] = x, True
    batched = model(idx, mask)
    one_by_one = torch.cat([model(x[None]) for x in examples])
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("pooling", ["mean", "max", "cls"])
def test_padded_batch_equals_one_by_one(pooling, position, fast):
    assert_padding_harmless(Classifier(tiny(pooling=pooling, position=position, fast=fast)).eval())


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_local_kernel_keeps_padding_harmless(pooling, fast):
    # the convolution reads one word each side: the first padded position sits next to the
    # last real word, and must look like the zeros past the end of an unpadded text
    assert_padding_harmless(Classifier(tiny(pooling=pooling, local_kernel=3, fast=fast)).eval())


@pytest.mark.parametrize(
    "position, local_kernel, order_matters",
    [
        ("none", 0, False),  # attention and mean pooling see a bag of words...
        ("none", 3, True),  # ...unless neighbours are mixed in
        ("learned", 0, True),  # ...or each word carries its position
        ("sinusoidal", 0, True),
        ("relative", 0, True),  # ...or its attention knows left from right
        ("rope", 0, True),
        ("alibi", 0, False),  # symmetric: near from far only, and a text reversed reads alike
    ],
)
def test_word_order_matters_through_positions_or_the_local_kernel(
    position, local_kernel, order_matters
):
    model = Classifier(tiny(local_kernel=local_kernel, n_layer=1, position=position)).eval()
    with torch.no_grad():  # logits of order 1, not GPT-2's init scale of 1e-3
        model.head.weight.normal_()
    x = torch.randint(1, 20, (1, 12))
    logits, reversed_logits = model(x), model(x.flip(1))
    if order_matters:
        assert not torch.allclose(logits, reversed_logits, atol=1e-4)
    else:
        torch.testing.assert_close(logits, reversed_logits, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("position", POSITIONS)
def test_every_position_kind_but_none_tells_a_shuffled_text_apart(position):
    """Shuffled (not reversed: ALiBi reads a text reversed alike), a text reads the same
    to attention and mean pooling without position information, and differently with
    every kind of it: a kind named in POSITIONS but built nowhere would read as none."""
    model = Classifier(tiny(n_layer=1, position=position)).eval()
    with torch.no_grad():  # logits of order 1, not GPT-2's init scale of 1e-3
        model.head.weight.normal_()
    x = torch.randint(1, 20, (1, 12))
    order = torch.tensor([3, 0, 7, 1, 10, 5, 11, 2, 9, 4, 8, 6])
    logits, shuffled = model(x), model(x[:, order])
    if position == "none":
        torch.testing.assert_close(logits, shuffled, atol=1e-5, rtol=1e-4)
    else:
        assert not torch.allclose(logits, shuffled, atol=1e-4)


@pytest.mark.parametrize("kernel", [-1, 2])
def test_local_kernel_must_be_odd(kernel):
    with pytest.raises(ConfigError, match=r"local_kernel: -?\d+ must be 0 \(none\) or odd"):
        tiny(local_kernel=kernel)


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_an_empty_text_gets_finite_logits_and_spoils_no_other(pooling, fast):
    model = Classifier(tiny(pooling=pooling, fast=fast)).eval()
    idx = torch.randint(1, 20, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1] = False  # the second text has no token at all
    logits = model(idx, mask)
    # its pooled vector is zeros, so its logits are the head's bias
    torch.testing.assert_close(logits[1], model.head.bias)
    torch.testing.assert_close(logits[:1], model(idx[:1]), atol=1e-5, rtol=1e-4)


def test_padding_without_mask_changes_the_logits():
    """The converse: the mask is what makes padding harmless (so the test above can fail)."""
    model = Classifier(tiny()).eval()
    x = torch.randint(1, 20, (1, 5))
    padded = torch.cat([x, torch.zeros(1, 7, dtype=torch.long)], dim=1)
    assert not torch.allclose(model(padded), model(x))


def test_one_class_is_a_config_error():
    with pytest.raises(ConfigError, match=r"ClassifierConfig\.num_classes: 1 must be at least 2"):
        tiny(num_classes=1)


@pytest.mark.parametrize(
    ("mask", "local_kernel"),
    [
        (torch.ones(2, 7, dtype=torch.bool), 0),
        (torch.ones(1, 8, dtype=torch.bool), 0),  # would broadcast over the batch
        (torch.ones(2, 8, dtype=torch.long), 3),  # 1 = real, but not bool
    ],
)
def test_a_mask_of_another_shape_or_type_is_named(mask, local_kernel):
    idx = torch.randint(1, 20, (2, 8))
    with pytest.raises(ValueError, match=r"Classifier: a mask of torch\.\w+ \(\d, \d\); it must"):
        Classifier(tiny(local_kernel=local_kernel))(idx, mask)


@pytest.mark.parametrize("pooling,local_kernel", [("mean", 0), ("max", 0), ("cls", 0), ("mean", 3)])
def test_overfits_a_tiny_batch(pooling, local_kernel, train_steps):
    model = Classifier(tiny(pooling=pooling, local_kernel=local_kernel))
    idx = torch.randint(1, 20, (8, 12))
    mask = torch.ones(8, 12, dtype=torch.bool)
    mask[::2, 6:] = False
    labels = torch.randint(0, 3, (8,))
    losses = train_steps(model, lambda: F.cross_entropy(model(idx, mask), labels), steps=60)
    assert losses[-1] < 0.05


def test_cls_token_takes_a_position():
    model = Classifier(tiny(pooling="cls", position="learned"))
    assert model.wpe.weight.shape == (13, 16)
    assert model(torch.randint(0, 20, (2, 12))).shape == (2, 3)


# ------------------------------------------------------------------------------ week 3
# The lecture's claim: key/query/value projections and several heads (`multihead`) beat
# the parameter-free `simple` self-attention when tokens must interact.
NOT = 13


def negation_task(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sentiment with negation, 8 tokens: words 1-4 are positive, 5-8 negative, 9-12
    neutral, and 13 ("not") flips the word right after it.  Label: is the sum positive?

    About half of the sentiment words are negated, so counting words (a bag of words) is
    close to chance: a word must find out what stands right before it.
    """
    xs, ys = [], []
    while len(xs) < n:
        seq, score = [], 0
        while len(seq) < 8:
            r = torch.rand((), generator=generator).item()
            word = int(torch.randint(1, 9, (), generator=generator))
            sign = 1 if word <= 4 else -1
            if r < 0.2:
                seq.append(int(torch.randint(9, 13, (), generator=generator)))
            elif r < 0.6 or len(seq) == 7:
                seq.append(word)
                score += sign
            else:
                seq += [NOT, word]
                score -= sign
        if score != 0:
            xs.append(seq)
            ys.append(int(score > 0))
    return torch.tensor(xs), torch.tensor(ys)


@pytest.mark.slow
def test_week3_multihead_beats_simple_self_attention():
    """Same data, same budget (800 AdamW steps of 64), seed 0, relative positions.

    Measured over seeds 0-2: multihead 0.997-1.000 test accuracy, simple 0.725-0.773.
    We ask for a margin of 0.15 and multihead >= 0.9.
    """
    accuracy = {}
    for attention in ("simple", "multihead"):
        g = torch.Generator().manual_seed(0)
        x_train, y_train = negation_task(2000, g)
        x_test, y_test = negation_task(1000, g)
        torch.manual_seed(0)
        config = tiny(
            vocab_size=14, context=8, n_layer=1, n_head=2, n_embd=32, num_classes=2,
            attention=attention, position="relative", pooling="mean", fast=True,
        )  # fmt: skip
        model = Classifier(config)
        optimizer = model.configure_optimizer(weight_decay=0.0, lr=3e-3, betas=(0.9, 0.99))
        for _ in range(800):
            i = torch.randint(0, 2000, (64,), generator=g)
            loss = F.cross_entropy(model(x_train[i]), y_train[i])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            accuracy[attention] = (model(x_test).argmax(-1) == y_test).float().mean().item()
    assert accuracy["multihead"] >= 0.9, accuracy
    assert accuracy["multihead"] - accuracy["simple"] >= 0.15, accuracy


def test_token_dropout_zeroes_whole_words_in_training_only():
    model = Classifier(tiny(token_dropout=0.5))
    idx = torch.randint(1, 20, (3, 12))
    torch.manual_seed(0)
    keep = F.dropout(torch.ones(3, 12, 1), 0.5)  # the draw the model makes first
    assert 0 < (keep == 0).sum() < keep.numel()
    torch.manual_seed(0)
    trained = model.train()(idx)
    # the same words dropped by hand, in eval mode (nothing else in the model is random)
    hook = model.wte.register_forward_hook(lambda module, args, out: out * keep)
    by_hand = model.eval()(idx)
    hook.remove()
    torch.testing.assert_close(trained, by_hand)
    assert not torch.allclose(model(idx), by_hand)  # eval keeps every word


def test_init_scales_the_residual_projections_and_starts_the_class_token_small():
    torch.manual_seed(0)
    model = Classifier(tiny(n_layer=4, n_embd=256, pooling="cls"))
    # 4 blocks write to the stream twice each: 0.02 / sqrt(8)
    for block in model.blocks:
        assert block.mlp.c_proj.weight.std().item() == pytest.approx(0.02 / 8**0.5, rel=0.05)
    assert model.cls_token.std().item() == pytest.approx(0.02, rel=0.15)  # 256 draws


def test_local_kernel_has_one_weight_per_channel_and_offset():
    """Depthwise: a channel's mixed value reads that channel of its neighbours only."""
    model = Classifier(tiny(local_kernel=3, n_embd=16))
    assert sum(p.numel() for p in model.local.parameters()) == 16 * 3 + 16  # and a bias
    x = torch.zeros(1, 16, 5)
    x[0, 2] = torch.randn(5)  # only channel 2 carries a signal
    with torch.no_grad():
        mixed = model.local(x) - model.local(torch.zeros_like(x))  # minus the bias
    assert mixed[0, 2].abs().sum() > 0
    assert torch.all(torch.cat([mixed[0, :2], mixed[0, 3:]]) == 0)


def test_every_token_attends_to_the_class_token():
    """The class token is a real position: the words see it as it sees them, so in the
    first block their vectors already depend on it (a text of one word, an empty one too)."""
    model = Classifier(tiny(pooling="cls", n_layer=1)).eval()
    outputs = []
    model.blocks[0].register_forward_hook(lambda module, args, out: outputs.append(out))
    idx = torch.randint(1, 20, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 1:] = False  # one word
    with torch.no_grad():
        model(idx, mask)
        model.cls_token.add_(torch.randn_like(model.cls_token))
        model(idx, mask)
    before, after = outputs
    assert not torch.allclose(before[0, 1:], after[0, 1:])
    assert not torch.allclose(before[1, 1], after[1, 1])
    empty = torch.zeros(1, 6, dtype=torch.bool)
    assert torch.isfinite(model(idx[:1], empty)).all()


def test_dropout_falls_on_the_embeddings_before_the_blocks(assert_dropout_on):
    model = Classifier(tiny(dropout=0.5, position="learned"))
    idx = torch.randint(1, 20, (8, 12))
    assert_dropout_on(model, {"blocks": model.blocks[0]}, idx, p=0.5)


def test_with_pre_norm_the_head_reads_the_normalised_stream():
    """Pre-norm blocks leave the residual stream unnormalised, so one LayerNorm sits before
    the head: with its gain 1 and bias 0 (at init), each vector the head reads has mean 0
    and variance 1 over its channels, whatever the stream's scale."""
    model = Classifier(tiny(pooling="cls")).eval()
    read = []
    model.head.register_forward_pre_hook(lambda module, args: read.append(args[0]))
    with torch.no_grad():
        model.wte.weight.mul_(50.0)  # a stream far from unit scale (eps 1e-5 next to it)
        model.cls_token.mul_(50.0)
        model(torch.randint(1, 20, (3, 12)))
    (pooled,) = read
    torch.testing.assert_close(pooled.mean(-1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(pooled.var(-1, unbiased=False), torch.ones(3), atol=1e-3, rtol=0)
