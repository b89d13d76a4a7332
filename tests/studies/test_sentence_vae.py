"""The sentence VAE: its KL, the annealing schedule, free bits, adapters that start as the
identity on a frozen GPT (a tiny random GPT-2 saved locally), and one stage run."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.colors import to_rgb
from torch import nn

from fromscratch import FromScratchError
from fromscratch.data import PreparedData
from fromscratch.models import GPT, ConfigError, SentenceVAE, VAEConfig
from fromscratch.models.vae import Adapter, free_bits_kl, gaussian_kl
from fromscratch.stages.sentence_vae import sentence_vae_stage
from fromscratch.train import vae as vae_training
from fromscratch.train.loop import Interrupted
from fromscratch.train.vae import (
    Sentences,
    VAETrainConfig,
    active_units,
    collate,
    elbo_terms,
    encode_all,
    evaluate_vae,
    kl_weight,
    linear_probe,
    probe_accuracy,
    probe_and_examples,
    sentences_of,
    split_sentences,
    swapped,
)

from ..conftest import SEED_SHIFTS
from .conftest import refused

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory, demo_chars):
    """A tiny random GPT-2 with the demo characters' vocabulary, saved with save_pretrained."""
    torch.manual_seed(0)
    vocab = PreparedData(demo_chars).meta["vocab_size"]
    config = transformers.GPT2Config(
        vocab_size=vocab, n_positions=64, n_embd=32, n_layer=2, n_head=2,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture
def vae(gpt2_folder):
    return SentenceVAE(GPT.from_gpt2(gpt2_folder), VAEConfig(latent=4, bottleneck=8))


# --------------------------------------------------------------------------- the objective


def test_kl_matches_the_closed_form_and_a_monte_carlo_estimate():
    mu, logvar = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    sigma = (0.5 * logvar).exp()
    q, p = torch.distributions.Normal(mu, sigma), torch.distributions.Normal(0.0, 1.0)
    ours = gaussian_kl(mu, logvar)
    torch.testing.assert_close(ours, torch.distributions.kl_divergence(q, p))
    z = q.sample((200_000,))  # KL = E_q[log q(z) - log p(z)]
    monte_carlo = (q.log_prob(z) - p.log_prob(z)).mean(dim=0)
    torch.testing.assert_close(ours, monte_carlo, atol=0.03, rtol=0.02)
    assert torch.all(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)) == 0)  # q = p


def test_cyclical_schedule_rises_over_the_ramp_then_holds_in_each_cycle():
    # 100 steps, 4 cycles of 25 steps, rising over the first half (12.5 steps) of each
    expected = {0: 0.0, 5: 0.4, 10: 0.8, 12: 0.96, 13: 1.0, 24: 1.0, 25: 0.0, 30: 0.4, 99: 1.0}
    for step, beta in expected.items():
        assert kl_weight(step, 100, "cyclical", cycles=4, ramp=0.5) == pytest.approx(beta)
    # 10 steps in 4 cycles: periods of 3 steps (the last one short), so 4 restarts, not 5
    restarts = [s for s in range(10) if kl_weight(s, 10, "cyclical", cycles=4) == 0]
    assert restarts == [0, 3, 6, 9]
    assert [kl_weight(s, 100, "constant") for s in (0, 50, 99)] == [1.0, 1.0, 1.0]
    assert kl_weight(25, 100, "linear", ramp=0.5) == pytest.approx(0.5)
    assert kl_weight(75, 100, "linear", ramp=0.5) == 1.0
    with pytest.raises(FromScratchError, match="constant, linear, cyclical"):
        kl_weight(0, 100, "sigmoid")


def test_free_bits_clamp_each_dimension_after_the_batch_mean():
    # batch means per dimension: 0.1, 1.0, 0.3 (dimension 0 only on average below 0.5)
    kl = torch.tensor([[0.0, 1.0, 0.6], [0.2, 1.0, 0.0]], requires_grad=True)
    term = free_bits_kl(kl, free_bits=0.5)
    assert term.item() == pytest.approx(0.5 + 1.0 + 0.5)
    term.backward()
    # below the threshold: a constant, no gradient; above it: the mean's gradient 1/B
    torch.testing.assert_close(kl.grad, torch.tensor([[0.0, 0.5, 0.0], [0.0, 0.5, 0.0]]))
    assert free_bits_kl(kl, 0.0).item() == pytest.approx(kl.mean(0).sum().item())


# --------------------------------------------------------------------------- the model


def test_adapters_start_as_the_identity_so_both_stacks_equal_the_base_gpt(vae):
    vae.eval()
    gpt = vae.gpt
    idx = torch.randint(0, gpt.config.vocab_size, (3, 20))
    z = torch.randn(3, 4)
    with torch.no_grad():
        base = gpt(idx)
        torch.testing.assert_close(gpt.lm_head(vae.run_gpt(vae.decoder, idx, z=z)), base)
        torch.testing.assert_close(gpt.lm_head(vae.run_gpt(vae.encoder, idx)), base)
        # a prefix equal to token 7's embedding decodes like the GPT reading token 7 first
        vae.to_prefix.weight.zero_()
        vae.to_prefix.bias.copy_(gpt.wte.weight[7])
        first = torch.full((3, 1), 7)
        expected = gpt(torch.cat((first, idx[:, :-1]), dim=1))
        torch.testing.assert_close(vae.decode(z, idx), expected)


def test_base_weights_stay_frozen_while_the_adapters_learn(vae):
    before = {k: v.clone() for k, v in vae.gpt.state_dict().items()}
    assert not any(p.requires_grad for p in vae.gpt.parameters())
    optimizer = vae.configure_optimizer(weight_decay=0.1, lr=1e-2)
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not optimized & {id(p) for p in vae.gpt.parameters()}
    adapter_before = vae.decoder[0].up.weight.clone()
    idx, mask = collate([np.arange(1, 9), np.arange(2, 6)])
    for _ in range(3):
        logits, mu, logvar = vae(idx, mask)
        loss = logits.logsumexp(-1).mean() + gaussian_kl(mu, logvar).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, tensor in vae.gpt.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert not torch.equal(vae.decoder[0].up.weight, adapter_before)
    assert set(vae.trainable_state()) == {n for n, p in vae.named_parameters() if p.requires_grad}


def test_padding_does_not_change_a_sentences_posterior(vae):
    vae.eval()
    short, long = np.array([3, 4, 5]), np.arange(1, 12)
    with torch.no_grad():
        alone = vae.encode(*collate([short]))
        padded = vae.encode(*collate([short, long]))
    torch.testing.assert_close(padded[0][:1], alone[0])
    torch.testing.assert_close(padded[1][:1], alone[1])
    idx, mask = collate([short, long])
    with pytest.raises(ValueError, match=r"SentenceVAE: a mask of torch\.bool \(1, 11\); it"):
        vae.encode(idx, mask[1:])  # one sentence's mask would hide the other's last tokens


def test_z_is_mu_plus_sigma_times_a_standard_normal_draw(vae):
    # a posterior that ignores the sentence: mu = 1, log sigma^2 = log 4, so sigma = 2
    with torch.no_grad():
        vae.to_posterior.weight.zero_()
        vae.to_posterior.bias.copy_(torch.tensor([1.0] * 4 + [math.log(4.0)] * 4))
    drawn = []  # z is what the decoder's prefix is made from
    vae.to_prefix.register_forward_hook(lambda module, args, output: drawn.append(args[0]))
    with torch.no_grad():
        vae(*collate([np.arange(1, 6)] * 4000), torch.Generator().manual_seed(0))
    z = drawn[0]
    assert z.mean().item() == pytest.approx(1.0, abs=0.05)
    assert z.std().item() == pytest.approx(2.0, rel=0.03)


def test_z_reaches_every_decoder_layer_besides_the_prefix(vae):
    """z enters twice, so that a strong decoder cannot ignore it: with the prefix made
    blind to z, z still changes the logits through each adapter on its own."""
    vae.eval()
    idx = torch.randint(0, vae.gpt.config.vocab_size, (2, 10))
    z_a, z_b = torch.zeros(2, 4), 3 * torch.randn(2, 4)
    with torch.no_grad():
        vae.to_prefix.weight.zero_()
        for layer in range(len(vae.decoder)):
            for i, adapter in enumerate(vae.decoder):  # only this layer's adapter is on
                adapter.up.weight.zero_()
                if i == layer:
                    adapter.up.weight.normal_(0.0, 0.5)
            assert not torch.allclose(vae.decode(z_a, idx), vae.decode(z_b, idx)), layer


def test_the_frozen_gpt_never_trains_in_dropout_mode(vae):
    assert vae.training and not any(module.training for module in vae.gpt.modules())
    vae.train()
    assert vae.decoder.training and vae.encoder.training
    assert not any(module.training for module in vae.gpt.modules())
    vae.eval()
    assert not vae.decoder.training


def test_padding_does_not_change_a_sentences_reconstruction(vae):
    """Padding is no target: a padded batch scores each sentence as it scores alone."""
    with torch.no_grad():
        vae.to_posterior.weight[4:].zero_()
        vae.to_posterior.bias[4:] = -60.0  # sigma = e^-30: z = mu, whatever the draw
        for adapter in vae.decoder:  # z changes the decoder's predictions
            nn.init.normal_(adapter.up.weight, std=0.5)
        short, long = np.array([3, 4, 5]), np.arange(1, 12)
        alone = sum(elbo_terms(vae, *collate([x]))[0] for x in (short, long))
        padded = elbo_terms(vae, *collate([short, long]))[0]
    torch.testing.assert_close(padded, alone)


def test_an_adapter_adds_a_bottleneck_mlp_of_its_normalised_input_and_z():
    """x + up(gelu(down(LN(x)) + W_z z)), written out here with plain tensor operations."""
    torch.manual_seed(0)
    adapter = Adapter(8, 4, latent=3)
    nn.init.normal_(adapter.up.weight, std=0.5)  # not the identity any more
    x, z = 3 * torch.randn(2, 5, 8) + 1, torch.randn(2, 3)
    mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    normed = (x - mean) / torch.sqrt(var + 1e-5)  # the LayerNorm's gain 1 and bias 0
    h = normed @ adapter.down.weight.T + adapter.down.bias + (z @ adapter.from_z.weight.T)[:, None]
    gelu = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
    expected = x + gelu @ adapter.up.weight.T + adapter.up.bias
    with torch.no_grad():
        torch.testing.assert_close(adapter(x, z), expected)


def test_the_posterior_starts_unbiased_and_the_prefix_at_token_embedding_scale(gpt2_folder):
    torch.manual_seed(0)
    vae = SentenceVAE(GPT.from_gpt2(gpt2_folder), VAEConfig(latent=32, bottleneck=8))
    assert torch.all(vae.to_posterior.bias == 0)
    assert vae.to_prefix.weight.std().item() == pytest.approx(0.02, rel=0.1)  # 32 x 32 draws


def test_generation_is_the_decoders_greedy_choice_at_every_position(vae):
    """Decoding a generated sentence back, every position's likeliest token is the one
    generated there (position t predicts token t from z and the tokens before it)."""
    vae.eval()
    with torch.no_grad():
        for adapter in vae.decoder:  # z changes the decoder's predictions
            nn.init.normal_(adapter.up.weight, std=0.5)
        z = 3 * torch.randn(3, 4)
        out = vae.generate(z, 8)
        assert out.shape == (3, 8)
        assert torch.equal(vae.decode(z, out).argmax(dim=-1), out)


def test_a_unit_is_active_when_the_variance_of_its_mean_exceeds_a_hundredth():
    # Burda et al.'s test reads the variance: sd 0.07 (variance 0.005) is inactive
    sd = torch.tensor([0.0, 0.07, 0.2, 1.0])
    mu = torch.randn(20_000, 4, generator=torch.Generator().manual_seed(0)) * sd
    assert active_units(mu) == 2


def test_a_swap_moves_each_sentence_toward_the_other_label():
    mu = torch.zeros(3, 2)
    direction = torch.tensor([1.0, -2.0])  # from the negative mean to the positive one
    moved = swapped(mu, np.array([1, 0, 1]), direction)
    torch.testing.assert_close(moved, torch.tensor([[-1.0, 2.0], [1.0, -2.0], [-1.0, 2.0]]))


# --------------------------------------------------------------------------- data, probe, stage


def test_sentences_are_cut_from_reviews_with_their_label(demo_chars):
    assert split_sentences("Good. Bad!<br /><br />Why? end") == ["Good.", "Bad!", "Why?", "end"]
    data = PreparedData(demo_chars)
    picked = sentences_of(data, "test", 301, max_tokens=40)
    # as many of each label (one more where the count is odd), from many reviews
    assert len(picked.ids) == 301 and np.bincount(picked.labels).tolist() == [151, 150]
    assert max(Counter(picked.reviews).values()) == 2 and len(set(picked.reviews)) >= 151
    assert all(2 <= len(x) <= 40 for x in picked.ids)
    assert [data.tokenizer.decode(x) for x in picked.ids] == picked.texts
    # every sentence occurs in a review of its label
    reviews = {0: "", 1: ""}
    for i, label in enumerate(data.labels("test")):
        reviews[int(label)] += data.tokenizer.decode(data.example("test", i)) + "\n"
    assert all(t in reviews[int(y)] for t, y in zip(picked.texts, picked.labels, strict=True))


def test_a_test_set_leaves_out_the_sentences_training_saw_word_for_word(demo_chars):
    data = PreparedData(demo_chars)
    train = sentences_of(data, "train", 200, max_tokens=40)
    drawn = sentences_of(data, "test", 100, max_tokens=40, seed=1)
    assert len(set(drawn.texts) & set(train.texts)) >= 5  # "the acting was very dull."
    test = sentences_of(data, "test", 100, 40, seed=1, leave_out=frozenset(train.texts))
    assert len(test.ids) == 100 and not set(test.texts) & set(train.texts)
    assert np.bincount(test.labels).tolist() == [50, 50]


def test_linear_probe_reads_a_separable_label_and_not_noise():
    x = torch.randn(400, 6)
    y = (x[:, 2] - 0.5 * x[:, 4] > 0).long().numpy()
    w, b = linear_probe(x[:300], y[:300])
    assert probe_accuracy(w, b, x[300:], y[300:]) > 0.95
    noise = np.random.default_rng(0).integers(0, 2, 400)
    w, b = linear_probe(x[:300], noise[:300])
    assert probe_accuracy(w, b, x[300:], noise[300:]) < 0.7
    # the probe trains on standardised features and answers on raw ones: latents far from
    # zero mean and unit scale read as well
    raw = 40 + 10 * x * torch.tensor([1.0, 5.0, 0.1, 1.0, 3.0, 1.0])
    w, b = linear_probe(raw[:300], y[:300])
    assert probe_accuracy(w, b, raw[300:], y[300:]) > 0.95


def test_swaps_of_a_collapsed_posterior_flip_nothing(vae, demo_chars):
    # every sentence gets the same mu: the label direction is zero, every swap decodes to
    # the reconstruction, and the probe's misreadings are no flips
    nn.init.zeros_(vae.to_posterior.weight)
    nn.init.zeros_(vae.to_posterior.bias)
    data = PreparedData(demo_chars)
    train, test = (sentences_of(data, split, 60, max_tokens=24) for split in ("train", "test"))
    result = probe_and_examples(vae, train, test, 20, data.tokenizer)
    assert result["direction_norm"] == 0
    assert all(x["swapped"] == x["reconstruction"] for x in result["examples"]["reconstructions"])
    assert 0 < result["probe_accuracy"] < 1  # one reading for every sentence: some wrong
    assert result["swap_flip_rate"] == 0
    assert result["majority_accuracy"] == 0.5
    # three negative sentences for each positive one: the majority is right on 3 in 4,
    # and a probe with one reading for all is the majority or its opposite
    keep = np.r_[np.flatnonzero(test.labels == 0)[:15], np.flatnonzero(test.labels == 1)[:5]]
    lopsided = Sentences(
        [test.ids[i] for i in keep], test.labels[keep], [test.texts[i] for i in keep]
    )
    result = probe_and_examples(vae, train, lopsided, 4, data.tokenizer)
    assert result["majority_accuracy"] == 0.75
    assert result["probe_accuracy"] in (0.25, 0.75)


def test_the_evaluation_is_per_sentence_and_draws_the_same_z_every_time(vae, demo_chars):
    test = sentences_of(PreparedData(demo_chars), "test", 30, max_tokens=24)
    torch.manual_seed(0)
    first = evaluate_vae(vae, test, batch_size=8)
    torch.manual_seed(1)  # the global random state plays no part
    assert evaluate_vae(vae, test, batch_size=8) == first
    # the KL of each sentence's posterior, summed over its dimensions, averaged over them
    idx, mask = collate(test.ids)
    with torch.no_grad():
        mu, logvar = vae.eval().encode(idx, mask)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1)
    assert first["kl"] == pytest.approx(kl.mean().item(), rel=1e-4)
    assert first["neg_elbo"] == pytest.approx(first["recon"] + first["kl"])


def test_the_probe_learns_from_every_training_sentence_and_examples_are_the_first(vae, demo_chars):
    with torch.no_grad():  # a decoder that z steers strongly: each sentence its own text
        vae.to_posterior.weight.mul_(10)
        vae.to_prefix.weight.mul_(50)
        for adapter in vae.decoder:
            nn.init.normal_(adapter.up.weight, std=1.0)
    data = PreparedData(demo_chars)
    train = sentences_of(data, "train", 60, max_tokens=24)
    test = sentences_of(data, "test", 20, max_tokens=24)
    result = probe_and_examples(vae, train, test, 4, data.tokenizer)
    examples = result["examples"]["reconstructions"]
    assert len({x["reconstruction"] for x in examples}) > 1
    w, b = linear_probe(encode_all(vae, train), train.labels)
    assert result["probe_accuracy"] == probe_accuracy(w, b, encode_all(vae, test), test.labels)
    assert result["probe_train_accuracy"] == probe_accuracy(
        w, b, encode_all(vae, train), train.labels
    )
    # the examples are the first 4 test sentences and their own reconstructions: the order
    # of the sentences after them changes none
    order = list(range(4)) + list(range(19, 3, -1))
    reordered = Sentences(
        [test.ids[i] for i in order], test.labels[order], [test.texts[i] for i in order]
    )
    again = probe_and_examples(vae, train, reordered, 4, data.tokenizer)
    assert again["examples"]["reconstructions"] == result["examples"]["reconstructions"]
    assert [x["text"] for x in result["examples"]["reconstructions"]] == test.texts[:4]


def test_the_loss_is_recon_plus_kl_and_the_seed_sets_the_adapters_first_weights(
    gpt2_folder, demo_chars, tmp_path
):
    """A constant KL weight without free bits: the loss is the plain negative ELBO, the KL
    summed over the latent dimensions. An LR too small to move any weight leaves the
    adapters at the weights the run's seed gave them; the run's config records the
    sentence length it used (the GPT's context, none given)."""
    out = tmp_path / "run"
    sentence_vae_stage(
        base={"gpt2": str(gpt2_folder)}, data=str(demo_chars), out=str(out),
        sentences={"train": 40, "test": 20}, vae={"latent": 4, "bottleneck": 8},
        train={"max_steps": 4, "batch_size": 4, "warmup_steps": 0, "log_every": 1, "lr": 1e-30,
               "eval_every": 0, "examples": 2, "kl_schedule": "constant", "seed": 1},
    )  # fmt: skip
    lines = (out / "metrics.jsonl").read_text().splitlines()
    logged = [m for m in map(json.loads, lines) if "beta" in m]
    assert len(logged) == 4 and all(m["beta"] == 1.0 for m in logged)
    for m in logged:
        assert m["loss"] == pytest.approx(m["recon"] + m["kl"], rel=1e-5)
    gpt = GPT.from_gpt2(gpt2_folder)
    torch.manual_seed(1)
    expected = SentenceVAE(gpt, VAEConfig(latent=4, bottleneck=8)).trainable_state()
    saved = torch.load(out / "adapters.pt")["model"]
    assert set(saved) == set(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(saved[name], tensor, msg=name)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["sentences"]["max_tokens"] == 64


def test_a_decoder_that_writes_the_document_separator_ends_its_sentence_there(vae, demo_chars):
    """The GPT read documents with the separator between them, so it may write one; as text
    it is no sentence's, and the demo's characters could not read it back."""
    data = PreparedData(demo_chars)
    eot = data.tokenizer.eot
    with torch.no_grad():  # a GPT that writes the separator first, whatever it reads
        vae.gpt.ln_f.weight.zero_()
        vae.gpt.ln_f.bias.fill_(1.0)
        vae.gpt.lm_head.weight.zero_()  # tied: the embeddings too, all but the separator's
        vae.gpt.lm_head.weight[eot] = 1.0
    train, test = (sentences_of(data, split, 60, max_tokens=24) for split in ("train", "test"))
    result = probe_and_examples(vae, train, test, 5, data.tokenizer)
    examples = result["examples"]["reconstructions"]
    assert [x["reconstruction"] for x in examples] == [""] * 5


def test_a_bad_setting_fails_with_the_allowed_values():
    with pytest.raises(ConfigError, match=r"kl_schedule.*constant, linear, cyclical"):
        VAETrainConfig(kl_schedule="sigmoid")
    with pytest.raises(ConfigError, match="free_bits"):
        VAETrainConfig(free_bits=-1.0)
    # a cycle of one step would keep the KL weight at 0 throughout
    with pytest.raises(ConfigError, match="cycles: 8 must be fewer than max_steps=8"):
        VAETrainConfig(max_steps=8, cycles=8)
    assert VAETrainConfig(max_steps=8, cycles=8, kl_schedule="linear").cycles == 8  # unused


def test_stage_trains_and_writes_its_run_folder(gpt2_folder, demo_chars, demo_words, tmp_path):
    out = tmp_path / "run"
    result = sentence_vae_stage(
        base={"gpt2": str(gpt2_folder)},
        data=str(demo_chars),
        out=str(out),
        # sentences as long as the GPT's context: with the prefix, the decoder reads
        # max_tokens positions
        sentences={"train": 200, "test": 60, "max_tokens": 64},
        vae={"latent": 4, "bottleneck": 8},
        train={"max_steps": 12, "batch_size": 8, "warmup_steps": 2, "log_every": 4,
               "eval_every": 6, "examples": 6, "free_bits": 0.1},
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_sentences"] == 60 and math.isfinite(summary["test/recon"])
    assert 0 <= summary["test/active_units"] <= 4
    # the test split's sentences (drawn with their own seed, none of the training
    # sentences among them), scored per token too
    data = PreparedData(demo_chars)
    seen = frozenset(sentences_of(data, "train", 200, max_tokens=64).texts)
    test = sentences_of(data, "test", 60, max_tokens=64, seed=1, leave_out=seen)
    tokens = sum(len(x) for x in test.ids)
    assert summary["test/recon_bits_per_token"] == pytest.approx(
        summary["test/recon"] * 60 / tokens / math.log(2)
    )
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [m for m in metrics if "beta" in m]
    assert [m["step"] for m in logged] == [4, 8, 12]
    assert [m["step"] for m in metrics if "test/kl" in m] == [6, 12]
    # the loss is recon + beta * KL (free bits only add to the KL: 4 units of at least 0.1),
    # and recon is per sentence, as the test set's
    assert [m["beta"] for m in logged] == pytest.approx([0.0, 2 / 3, 1.0])
    assert logged[0]["loss"] == pytest.approx(logged[0]["recon"])
    for m in logged[1:]:
        assert m["loss"] >= m["recon"] + m["beta"] * max(m["kl"], 0.4) - 1e-4
    assert 0.5 < logged[-1]["recon"] / summary["test/recon"] < 2
    examples = json.loads((out / "examples.json").read_text())
    assert len(examples["reconstructions"]) == 6 and len(examples["interpolations"]) == 4
    assert all(len(pair["steps"]) == 5 for pair in examples["interpolations"])
    assert np.load(out / "latents.npz")["mu"].shape == (60, 4)
    assert set(result) >= {"test/recon", "probe_accuracy"}
    with pytest.raises(FromScratchError, match="max_tokens=100 exceeds the GPT's context=64"):
        sentence_vae_stage(
            base={"gpt2": str(gpt2_folder)}, data=str(demo_chars), out=str(tmp_path / "x"),
            sentences={"train": 10, "test": 10, "max_tokens": 100},
        )  # fmt: skip
    # data in another vocabulary than the GPT's
    with pytest.raises(FromScratchError, match=r"tokens, the GPT \d+: prepare the data with"):
        sentence_vae_stage(
            base={"gpt2": str(gpt2_folder)}, data=str(demo_words), out=str(tmp_path / "y"),
            sentences={"train": 10, "test": 10, "max_tokens": 48},
        )  # fmt: skip


def test_a_signal_mid_run_checkpoints_and_the_resumed_run_ends_identically(
    gpt2_folder, demo_chars, tmp_path, monkeypatch, capsys
):
    settings = dict(
        base={"gpt2": str(gpt2_folder)},
        data=str(demo_chars),
        sentences={"train": 200, "test": 40, "max_tokens": 48},
        vae={"latent": 4, "bottleneck": 8},
        train={"max_steps": 10, "batch_size": 8, "warmup_steps": 2, "log_every": 2,
               "eval_every": 0, "examples": 4, "free_bits": 0.1},
        resume=True,
    )  # fmt: skip
    sentence_vae_stage(out=str(tmp_path / "whole"), **settings)

    # SLURM's warning arrives while step 5 runs; with no requeueing handler (SIG_IGN
    # before training) the run saves after that step and stops
    draws = vae_training.keyed_rng

    def keyed_rng(seed, step):
        if step == 5:
            os.kill(os.getpid(), signal.SIGUSR2)
        return draws(seed, step)

    monkeypatch.setattr(vae_training, "keyed_rng", keyed_rng)
    previous = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        with pytest.raises(Interrupted, match="at step 6"):
            sentence_vae_stage(out=str(tmp_path / "cut"), **settings)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "cut" / "checkpoints").glob("*.pt")] == ["step-00000006.pt"]

    capsys.readouterr()
    sentence_vae_stage(out=str(tmp_path / "cut"), **settings)
    assert "resuming from step 6 " in capsys.readouterr().err  # not a fresh start
    whole = torch.load(tmp_path / "whole" / "adapters.pt", weights_only=False)["model"]
    resumed = torch.load(tmp_path / "cut" / "adapters.pt", weights_only=False)["model"]
    assert set(resumed) == set(whole)
    for name, tensor in resumed.items():
        assert torch.equal(tensor, whole[name]), name
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "metrics.jsonl").open()]
    assert [s for s in steps if s <= 10] == [2, 4, 6, 8, 10, 10]  # each logged once, then test/


def test_an_interrupted_run_does_not_resume_on_a_base_gpt_trained_again(
    gpt2_folder, demo_chars, tmp_path, monkeypatch, capsys
):
    base = tmp_path / "gpt2"
    shutil.copytree(gpt2_folder, base)
    settings = dict(
        base={"gpt2": str(base)},
        data=str(demo_chars),
        out=str(tmp_path / "run"),
        sentences={"train": 100, "test": 20, "max_tokens": 48},
        vae={"latent": 4, "bottleneck": 8},
        train={"max_steps": 8, "batch_size": 8, "warmup_steps": 1, "log_every": 2},
        resume=True,
    )

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # after the last step's checkpoint, before the end

    monkeypatch.setattr(vae_training, "probe_and_examples", killed)
    with pytest.raises(KeyboardInterrupt):
        sentence_vae_stage(**settings)
    monkeypatch.undo()
    gpt2 = transformers.GPT2LMHeadModel.from_pretrained(base)
    with torch.no_grad():  # the base trained again: the same folder, other weights
        gpt2.transformer.h[0].mlp.c_fc.weight.add_(0.01)
    gpt2.save_pretrained(base)
    capsys.readouterr()
    sentence_vae_stage(**settings)
    said = capsys.readouterr().err
    assert "resuming" not in said, said
    assert "checkpoints of a different config (base.weights_sha256 changed) moved" in said, said


@pytest.mark.parametrize(
    ("sentences", "named"),
    [
        ({"train": "10"}, "sentences.train='10' must be an integer >= 1"),
        ({"train": -1}, "sentences.train=-1 must be an integer >= 1"),
        ({"test": 0}, "sentences.test=0 must be an integer >= 1"),
        ({"max_tokens": 0}, "sentences.max_tokens=0 must be an integer >= 2"),
        # none of the demo's sentences is this short
        ({"max_tokens": 8}, "the train split of .* has no sentence of 2 to 8 tokens; raise"),
    ],
)
def test_stage_refuses_sentence_counts_and_lengths_it_cannot_use(
    gpt2_folder, demo_chars, tmp_path, capsys, sentences, named
):
    args = {
        "base": {"gpt2": str(gpt2_folder)},
        "data": str(demo_chars),
        "out": str(tmp_path / "run"),
        "sentences": {"train": 10, "test": 10, "max_tokens": 48} | sentences,
        "vae": {"latent": 4, "bottleneck": 8},
        "train": {"max_steps": 8, "batch_size": 4, "warmup_steps": 2, "eval_every": 0,
                  "examples": 2},
    }  # fmt: skip
    assert re.search(named, refused(capsys, "sentence-vae", args, tmp_path / "logs"))
    assert not (tmp_path / "run").exists()


# The figures: two variants of three seeds, each seed shifted by SEED_SHIFTS
VARIANT_SHIFT = {"constant": 0.0, "cyclical": 0.3}
SEEDS = range(len(SEED_SHIFTS))


def logged_value(metric: str, variant: str, seed: int, step: int) -> float:
    """A logged number of each size: the test sentences' NLL and KL are 2× the batches'."""
    size = {"recon": 50.0, "kl": 5.0, "beta": 1.0, "test/recon": 100.0, "test/kl": 10.0}
    return size[metric] * (1 + VARIANT_SHIFT[variant] + SEED_SHIFTS[seed]) - step / 100


def test_the_training_figure_draws_the_test_sentences_as_dots(tmp_path, drawn):
    """Lines: the training batches, logged every 10 steps; dots: the mean over seeds of
    the test sentences' numbers, logged every 20 steps."""
    from fromscratch.figures import sentence_vae as figures

    logged = [("recon", "kl", "beta", *(("test/recon", "test/kl") if step % 20 == 0 else ()))
              for step in range(10, 61, 10)]  # fmt: skip
    rows = [
        {"variant": variant, "seed": seed, "step": step, "metric": metric,
         "value": logged_value(metric, variant, seed, step)}
        for variant in VARIANT_SHIFT for seed in SEEDS
        for step, metrics in zip(range(10, 61, 10), logged, strict=True) for metric in metrics
    ]  # fmt: skip
    figures.training(pd.DataFrame(rows), list(VARIANT_SHIFT), tmp_path / "t", "t")
    steps = np.array([20, 40, 60])
    for ax, metric in zip(drawn[-1].axes, ("recon", "kl"), strict=False):
        dots = [line for line in ax.get_lines() if line.get_marker() == "o"]
        assert len(dots) == len(VARIANT_SHIFT)
        for dot, variant in zip(dots, VARIANT_SHIFT, strict=True):
            expected = [np.mean([logged_value(f"test/{metric}", variant, seed, step)
                                 for seed in SEEDS]) for step in steps]  # fmt: skip
            np.testing.assert_array_equal(dot.get_xdata(), steps)
            np.testing.assert_allclose(dot.get_ydata(), expected, err_msg=metric)


def seed_results(**columns) -> pd.DataFrame:
    """A row per variant and seed: active units, probe accuracy, swap flip rate and the
    majority class's share of the test labels; `columns` override them (a value per seed)."""
    return pd.DataFrame(
        [
            {"variant": variant, "seed": seed, "test/active_units": 8 + seed + 10 * d,
             "probe_accuracy": 0.60 + d + shift, "swap_flip_rate": 0.40 + d - shift,
             "majority_accuracy": 0.51,
             **{name: values[seed] for name, values in columns.items()}}
            for variant, d in VARIANT_SHIFT.items()
            for seed, shift in enumerate(SEED_SHIFTS)
        ]
    )  # fmt: skip


def test_the_majority_class_line_is_on_the_probe_panel_at_the_mean_over_seeds(tmp_path, drawn):
    """Each seed's test sentences have their own majority share; the probe's baseline is
    their mean, and only the probe accuracy is comparable to it."""
    from fromscratch.figures import sentence_vae as figures

    shares = [0.50, 0.51, 0.56]
    results = seed_results(majority_accuracy=shares)
    figures.summary(results, list(VARIANT_SHIFT), tmp_path / "s", "t")
    dashed = [[line for line in ax.get_lines() if line.get_linestyle() == "--"]
              for ax in drawn[-1].axes]  # fmt: skip
    assert [len(lines) for lines in dashed] == [0, 1, 0]
    (line,) = dashed[1]
    assert list(line.get_ydata()) == pytest.approx([np.mean(shares)] * 2)
    assert line.get_label() == "majority class (0.52)"


def test_the_latent_figure_projects_centred_means_and_names_each_label_and_seed(tmp_path, drawn):
    """μ far from 0 (a mean of 5), spread 3 along one direction of the latent and 1 along
    another: its principal components are those coordinates (up to sign), centred. The
    title is the requested seed's probe and active units."""
    from fromscratch.figures import sentence_vae as figures

    grid = np.array([(a, b) for a in (-3.0, 3.0) for b in (-1.0, 1.0)] * 5)  # 20 sentences
    rotation, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))
    mu = 5.0 + grid @ rotation[:, :2].T  # 4 dimensions
    labels = (grid[:, 0] > 0).astype(int)  # label 1: the sentences at +3
    np.savez(tmp_path / "constant.npz", mu=mu, labels=labels)
    results = seed_results()
    figures.latent({"constant": tmp_path / "constant.npz"}, results, 1, tmp_path / "l", "t")
    ax = drawn[-1].axes[0]
    assert ax.get_title() == "constant: probe 0.62, 9 active units"  # seed 1's
    (scatter,) = ax.collections
    points = scatter.get_offsets()
    signs = np.sign(points[0]) * np.sign(grid[0])
    np.testing.assert_allclose(points * signs, grid, atol=1e-9)
    legend = drawn[-1].axes[-1].get_legend()
    colours = {t.get_text(): to_rgb(h.get_markerfacecolor()) for t, h in
               zip(legend.texts, legend.legend_handles, strict=True)}  # fmt: skip
    for name, label in (("negative", 0), ("positive", 1)):
        drawn_in = np.isclose(scatter.get_facecolors()[:, :3], colours[name]).all(axis=1)
        np.testing.assert_array_equal(drawn_in, labels == label, err_msg=name)


def test_the_interpolations_start_with_the_first_pair_and_show_each_move_beside_its_decoding(
    tmp_path, drawn
):
    """A move is shown with the sentence decoded unmoved, and marked where the probe reads
    the other label: a decoding that differs from the sentence is not a move's doing. The
    moves shown take each label in turn."""
    from fromscratch.figures import sentence_vae as figures

    pairs = [{"from": f"first {i}", "to": f"last {i}", "steps": [f"first {i}", f"last {i}"]}
             for i in range(3)]  # fmt: skip
    reviews = [
        {"label": 0, "text": "a dull film", "reconstruction": "a dull film",
         "swapped": "a fine film", "flipped": True},
        {"label": 0, "text": "a slow film", "reconstruction": "a slow film",
         "swapped": "a slow film", "flipped": False},
        {"label": 1, "text": "a fine film", "reconstruction": "a good film",
         "swapped": "a good film", "flipped": False},
    ]  # fmt: skip
    examples = {"interpolations": pairs, "reconstructions": reviews}
    (tmp_path / "examples.json").write_text(json.dumps(examples))
    figures.interpolations(tmp_path / "examples.json", tmp_path / "i", "t", pairs=2, swaps=2)
    texts = drawn[-1].axes[0].texts
    heads = [t.get_text() for t in texts if t.get_fontweight() == "bold"]
    assert heads[:2] == ["“first 0”  →  “last 0”", "“first 1”  →  “last 1”"]
    assert len(heads) == 4  # the two pairs asked for, and the two lines heading the moves
    body = [t.get_text() for t in texts if t.get_fontweight() != "bold"]
    moves = body[body.index("") + 1 :] if "" in body else body
    assert moves[-6:] == [
        "  [neg] a dull film",
        "      decoded: a dull film",
        "      moved:   (flipped) a fine film",
        "  [pos] a fine film",
        "      decoded: a good film",
        "      moved:   a good film",
    ]
