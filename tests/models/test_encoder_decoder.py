"""EncoderDecoder: causal in the target, blind to source padding, learns to reverse."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fromscratch.models import EncoderDecoder, EncoderDecoderConfig, SamplingError


def tiny(**kw) -> EncoderDecoderConfig:
    base = dict(vocab_size=16, context=10, n_layer=2, n_head=2, n_embd=32)
    return EncoderDecoderConfig(**{**base, **kw})


def test_init_scales_the_residual_projections_of_both_stacks_and_ties_the_output():
    torch.manual_seed(0)
    model = EncoderDecoder(tiny(n_layer=4, n_embd=64))
    # each stack has a stream of its own: 4 encoder blocks write to theirs twice each, 4
    # decoder blocks to theirs three times
    for stack, branches in ((model.encoder, 2 * 4), (model.decoder, 3 * 4)):
        for name, p in stack.named_parameters():
            if name.endswith("c_proj.weight"):
                assert p.std().item() == pytest.approx(0.02 / branches**0.5, rel=0.05), name
        assert stack[0].mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.lm_head.weight is model.wte.weight


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("position", ["learned", "rope", "relative", "alibi"])
def test_target_is_causal_and_source_padding_is_ignored(position, fast):
    model = EncoderDecoder(tiny(position=position, fast=fast)).eval()
    src = torch.randint(1, 16, (2, 8))
    src_mask = torch.ones(2, 8, dtype=torch.bool)
    src_mask[1, 5:] = False
    tgt = torch.randint(1, 16, (2, 6))
    logits = model(src, tgt, src_mask)
    assert logits.shape == (2, 6, 16)
    changed = tgt.clone()
    changed[:, 4:] = (tgt[:, 4:] + 1) % 16
    torch.testing.assert_close(model(src, changed, src_mask)[:, :4], logits[:, :4])
    other_padding = src.clone()
    other_padding[1, 5:] = (src[1, 5:] + 3) % 16
    torch.testing.assert_close(model(other_padding, tgt, src_mask), logits)
    torch.testing.assert_close(model(src[1:, :5], tgt[1:])[0], logits[1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fast", [False, True])
def test_the_encoder_reads_the_whole_source_at_every_position(fast):
    # bidirectional: the first source token's vector already depends on the last token
    model = EncoderDecoder(tiny(fast=fast)).eval()
    src = torch.randint(1, 16, (2, 8))
    changed = src.clone()
    changed[:, -1] = (src[:, -1] + 1) % 16
    assert not torch.allclose(model.encode(changed)[:, 0], model.encode(src)[:, 0])


def test_learns_to_reverse(train_steps):
    """Reverse 6 digits: it must read the source (the target alone does not say)."""
    model = EncoderDecoder(tiny())
    src = torch.randint(2, 16, (16, 6))
    tgt = torch.cat([torch.ones(16, 1, dtype=torch.long), src.flip(1)], dim=1)  # 1 = start

    def loss():
        logits = model(src, tgt[:, :-1])
        return F.cross_entropy(logits.reshape(-1, 16), tgt[:, 1:].reshape(-1))

    losses = train_steps(model, loss, steps=200)
    assert losses[-1] < 0.1, losses[-1]
    out = model.eval().generate(src[:4], tgt[:4, :1], 6, temperature=0)
    assert torch.equal(out[:, 1:], src[:4].flip(1))


def test_generate_names_a_source_token_outside_the_vocabulary():
    model = EncoderDecoder(tiny()).eval()
    with pytest.raises(
        SamplingError, match=r"token ids 0\.\.16 are outside the vocabulary \[0, 16\)"
    ):
        model.generate(torch.tensor([[0, 16]]), torch.ones(1, 1, dtype=torch.long), 3)


@pytest.mark.parametrize(
    "src, tgt, named",
    [
        (torch.ones(1, 3), torch.ones(1, 1, dtype=torch.long), "src must be a non-empty"),
        (torch.ones(1, 3, dtype=torch.long), torch.ones(1, 0, dtype=torch.long), "tgt must be"),
        (torch.ones(3, dtype=torch.long), torch.ones(1, 1, dtype=torch.long), "shape (3,)"),
    ],
)
def test_generate_names_a_malformed_source_or_target(src, tgt, named):
    with pytest.raises(SamplingError) as error:
        EncoderDecoder(tiny()).eval().generate(src, tgt, 3)
    assert named in str(error.value) and "\n" not in str(error.value)


def test_generation_runs_past_the_context_on_the_latest_tokens():
    model = EncoderDecoder(tiny()).eval()  # context 10
    src = torch.randint(2, 16, (2, 6))
    out = model.generate(src, torch.zeros(2, 1, dtype=torch.long), 15, temperature=0)
    assert out.shape == (2, 16)
    # the last token is what the decoder answers on the 10 tokens before it
    with torch.no_grad():
        last = model(src, out[:, -11:-1])[:, -1].argmax(-1)
    assert torch.equal(out[:, -1], last)


def test_too_long_input_names_the_context():
    with pytest.raises(ValueError, match="11 tokens exceed context=10"):
        EncoderDecoder(tiny())(torch.ones(1, 11, dtype=torch.long), torch.ones(1, 2).long())


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize(
    "mask",
    [
        torch.ones(2, 8),  # 1.0 = real, but not bool
        torch.ones(2, 7, dtype=torch.bool),
        torch.ones(1, 8, dtype=torch.bool),  # would broadcast over the batch
    ],
    ids=["float", "shorter", "one-row"],
)
def test_a_source_mask_of_another_type_or_shape_is_named(fast, mask):
    model = EncoderDecoder(tiny(fast=fast)).eval()
    src, tgt = torch.randint(1, 16, (2, 8)), torch.randint(1, 16, (2, 6))
    with pytest.raises(
        ValueError, match=r"EncoderDecoder: a mask of torch\.\w+ \(\d, \d\); it must"
    ):
        model(src, tgt, mask)


def test_every_parameter_of_both_stacks_takes_part():
    model = EncoderDecoder(tiny())
    src, tgt = torch.randint(1, 16, (2, 8)), torch.randint(1, 16, (2, 6))
    F.cross_entropy(model(src, tgt).flatten(0, 1), torch.randint(0, 16, (12,))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_generation_reads_a_padded_source_as_the_source_alone():
    """The source mask holds in every decoding step, not only in the encoder: a padded
    source (its padding any tokens) generates what the source without padding does."""
    torch.manual_seed(0)
    model = EncoderDecoder(tiny())
    with torch.no_grad():  # weights large enough that the source steers every token
        for p in model.parameters():
            if p.dim() > 1:  # the LayerNorms keep their unit gains
                p.normal_(0.0, 0.3)
    model.eval()
    src = torch.randint(1, 16, (2, 8))
    src_mask = torch.ones(2, 8, dtype=torch.bool)
    src_mask[1, 3:] = False
    start = torch.ones(2, 1, dtype=torch.long)
    out = model.generate(src, start, 8, src_mask=src_mask, temperature=0)
    alone = model.generate(src[1:, :3], start[1:], 8, temperature=0)
    assert torch.equal(out[1:], alone)
    assert torch.equal(out[:1], model.generate(src[:1], start[:1], 8, temperature=0))


def test_dropout_falls_on_the_embeddings_of_both_stacks(assert_dropout_on):
    model = EncoderDecoder(tiny(dropout=0.5))
    src, tgt = torch.randint(1, 16, (8, 10)), torch.randint(1, 16, (8, 10))
    stacks = {"encoder": model.encoder[0], "decoder": model.decoder[0]}
    assert_dropout_on(model, stacks, src, tgt, p=0.5)
