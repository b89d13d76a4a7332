"""Perceiver AR is causal and learns; PerceiverLayer squeezes a padded sequence."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from fromscratch.models import (
    ATTENTIONS,
    GPT,
    POSITIONS,
    ConfigError,
    GPTConfig,
    Perceiver,
    PerceiverConfig,
    PerceiverLayer,
)


def tiny(**kw) -> PerceiverConfig:
    base = dict(vocab_size=32, context=24, latents=8, n_layer=2, n_head=2, n_embd=16)
    return PerceiverConfig(**{**base, **kw})


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_latents_are_causal(attention, position, fast):
    """The logit of absolute position p (a latent) never depends on tokens after p."""
    model = Perceiver(tiny(attention=attention, position=position, fast=fast)).eval()
    idx = torch.randint(0, 32, (2, 24))
    logits = model(idx)
    assert logits.shape == (2, 8, 32)  # the last 8 positions: 16 .. 23
    t = 19  # latent index 3
    changed = idx.clone()
    changed[:, t + 1 :] = torch.randint(0, 32, (2, 24 - t - 1))
    after = model(changed)
    torch.testing.assert_close(after[:, :4], logits[:, :4], atol=1e-6, rtol=0)
    assert not torch.allclose(after[:, 4:], logits[:, 4:])


def test_latents_read_the_whole_prefix():
    """A token far before the latents still changes them (through the cross-attention)."""
    model = Perceiver(tiny()).eval()
    idx = torch.randint(0, 32, (1, 24))
    changed = idx.clone()
    changed[0, 0] = (idx[0, 0] + 1) % 32
    assert not torch.allclose(model(changed), model(idx))


def test_short_input_gives_fewer_latents():
    model = Perceiver(tiny()).eval()
    assert model(torch.randint(0, 32, (2, 5))).shape == (2, 5, 32)


def test_overfits_a_tiny_batch(train_steps):
    model = Perceiver(tiny(n_embd=32))
    data = torch.randint(0, 32, (4, 25))
    x, y = data[:, :-1], data[:, 1:]

    def loss():
        logits = model(x)
        return F.cross_entropy(logits.reshape(-1, 32), y[:, -logits.size(1) :].reshape(-1))

    losses = train_steps(model, loss, steps=100)
    assert losses[-1] < 0.1


def test_generate_samples_from_the_last_latent_of_a_sliding_window(monkeypatch):
    """Perceiver keeps no cache between sampling steps (use_cache changes nothing): each
    token is drawn from the logits of the last latent over the last `context` tokens, also
    once the text outgrows the context (4 + 25 tokens > 24)."""
    model = Perceiver(tiny()).eval()
    forward, windows = model.forward, []

    def watched(idx):
        windows.append(idx)
        return forward(idx)

    monkeypatch.setattr(model, "forward", watched)
    prompt = torch.randint(0, 32, (2, 4), generator=torch.Generator().manual_seed(1))
    out = model.generate(prompt, 25, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 29) and torch.equal(out[:, :4], prompt)
    # The windows are checked as such: the draws of a model at its initialisation hardly
    # depend on the first token of a window.
    assert [w.tolist() for w in windows] == [
        out[:, max(0, t - 24) : t].tolist() for t in range(4, 29)
    ]
    draws = torch.Generator().manual_seed(0)  # the same draws, made here step by step
    with torch.no_grad():
        for t, window in zip(range(4, 29), windows, strict=True):
            probs = F.softmax(forward(window)[:, -1], dim=-1)
            expected = torch.multinomial(probs, 1, generator=draws)
            assert torch.equal(out[:, t : t + 1], expected), f"token {t}"


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_perceiver_layer_ignores_padding(attention):
    layer = PerceiverLayer(tiny(attention=attention, latents=3)).eval()
    x = torch.randn(2, 7, 16)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3], dtype=torch.bool)
    out = layer(x, mask)
    assert out.shape == (2, 3, 16)
    torch.testing.assert_close(out[1], layer(x[1:, :4])[0], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    "mask",
    [
        torch.ones(1, 7, dtype=torch.bool),  # would broadcast over the batch
        torch.ones(2, 7, dtype=torch.long),  # 1 = real, but not bool
    ],
)
def test_perceiver_layer_names_a_mask_of_another_shape_or_type(mask):
    with pytest.raises(ValueError, match=r"PerceiverLayer: a mask of torch\.\w+ \(\d, \d\); it"):
        PerceiverLayer(tiny(latents=3))(torch.randn(2, 7, 16), mask)


def test_perceiver_layer_latents_are_learned():
    # the queries are what the layer learns to ask: a parameter the optimizer sees and
    # that training moves, not a fixed buffer
    layer = PerceiverLayer(tiny(latents=3))
    assert any(p is layer.latents for p in layer.parameters())
    assert layer.latents.shape == (3, 16)
    layer(torch.randn(2, 7, 16)).square().sum().backward()
    assert layer.latents.grad is not None and (layer.latents.grad != 0).all()


def test_a_window_shorter_than_the_context_is_read_as_trained(train_steps):
    """Training sees full windows only, so its latents only ever sit at the context's last
    positions; a shorter window (the start of a text, a short prompt) sits there too. From
    position 0 instead, its latents take positions never trained as queries, and on a text
    where each token follows from the two before, predict far worse."""
    torch.manual_seed(0)

    def text(length):  # each token the sum of the two before (mod 16), one in ten at random
        tokens = [0, 1]
        for _ in range(length):
            follows = torch.rand(()) < 0.9
            tokens.append((tokens[-1] + tokens[-2]) % 16 if follows else int(torch.randint(16, ())))
        return torch.tensor(tokens)

    config = tiny(vocab_size=16, context=24, latents=4, n_layer=1, n_embd=32, position="learned")
    model = Perceiver(config)

    def bits(tokens, length, starts):
        windows = torch.stack([tokens[s : s + length + 1] for s in starts])
        logits = model(windows[:, :-1])
        targets = windows[:, 1:][:, -logits.size(1) :]
        return F.cross_entropy(logits.reshape(-1, 16), targets.reshape(-1)) / math.log(2)

    training, held_out = text(3000), text(3000)
    train_steps(model, lambda: bits(training, 24, torch.randint(0, 2970, (32,))), steps=400)
    model.eval()
    starts = range(0, 2970, 7)
    with torch.no_grad():
        short = bits(held_out, 6, starts)
        positions = model.wpe.forward
        model.wpe.forward = lambda length, offset=0: positions(length)  # from position 0
        from_the_start = bits(held_out, 6, starts)
    assert short < from_the_start - 0.5, (short, from_the_start)


@pytest.mark.parametrize("family", ["gpt", "perceiver", "perceiver-all-latents"])
def test_the_flop_estimate_is_what_a_training_step_multiplies(family):
    """6 FLOPs per parameter and token, plus attention's products, against PyTorch's count
    of the matmuls that forward and backward run.  Without biases the one difference is
    the LayerNorms' gains, which the estimate counts as parameters and which multiply
    nothing: under 1%."""
    sizes = dict(vocab_size=11, context=64, n_layer=2, n_head=2, n_embd=32, bias=False)
    if family == "gpt":
        model = GPT(GPTConfig(**sizes))
    elif family == "perceiver":  # 8 latents: all but the cross-attention's keys and values
        model = Perceiver(PerceiverConfig(latents=8, **sizes))  # read 8 positions of 64
    else:  # 64 latents: the latents' own attention is a large share of the work
        model = Perceiver(PerceiverConfig(latents=64, **sizes))
    with FlopCounterMode(display=False) as counter:
        model(torch.randint(0, 11, (1, 64))).sum().backward()
    counted = counter.get_total_flops() / 64
    assert model.estimate_flops_per_token() == pytest.approx(counted, rel=0.01)


def test_every_parameter_of_the_perceiver_takes_part():
    model = Perceiver(tiny())
    F.cross_entropy(
        model(torch.randint(0, 32, (2, 24))).flatten(0, 1), torch.zeros(16).long()
    ).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_init_scales_the_residual_projections_of_the_cross_block_too():
    torch.manual_seed(0)
    model = Perceiver(tiny(n_layer=4, n_embd=64))
    # the cross-attention block and the 4 latent blocks write to the stream twice each
    for block in (model.cross, model.blocks[0]):
        assert block.mlp.c_proj.weight.std().item() == pytest.approx(0.02 / 10**0.5, rel=0.05)


def test_dropout_falls_on_the_inputs_the_latents_read(assert_dropout_on):
    model = Perceiver(tiny(dropout=0.5))
    idx = torch.randint(0, 32, (8, 24))
    assert_dropout_on(model, {"context": model.ln_context}, idx, p=0.5)


def test_perceiver_layer_reads_a_normalised_context():
    """Its keys and values come from a LayerNorm of x: scaling and shifting every input
    vector as a whole changes nothing the latents read."""
    layer = PerceiverLayer(tiny(latents=3)).eval()
    x = torch.randn(2, 7, 16)
    torch.testing.assert_close(layer(3 * x + 2), layer(x), atol=1e-5, rtol=1e-4)


def test_perceiver_layer_latents_start_small_and_distinct():
    torch.manual_seed(0)
    layer = PerceiverLayer(tiny(latents=16, n_embd=64)).eval()
    assert layer.latents.std().item() == pytest.approx(0.02, rel=0.05)
    out = layer(torch.randn(1, 7, 64))[0]
    # each latent asks its own question from the start: no two outputs alike
    assert torch.cdist(out, out).add(torch.eye(16)).min() > 1e-3


def test_as_many_latents_as_the_context_is_allowed():
    model = Perceiver(tiny(latents=24)).eval()  # every position a latent: a causal GPT
    assert model(torch.randint(0, 32, (2, 24))).shape == (2, 24, 32)
    with pytest.raises(ConfigError, match="latents: 25 is more than context=24"):
        tiny(latents=25)
