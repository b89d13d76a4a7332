"""GPT.from_gpt2: a Hugging Face GPT-2 (tiny, random, saved locally) runs unchanged in GPT."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fromscratch.models import GPT

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_model():
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=100, n_positions=32, n_embd=64, n_layer=2, n_head=2,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    model = transformers.GPT2LMHeadModel(config).eval()
    # A new GPT-2 has every bias 0 and every LayerNorm the identity, which a mapping that
    # dropped the biases or swapped ln_1 and ln_2 would reproduce: draw them at random
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() == 1:  # biases, and LayerNorms' gains (their "weight")
                parameter.normal_(1.0 if name.endswith("weight") else 0.0, 0.3)
    return model


@pytest.mark.parametrize("source", ["instance", "folder"])
def test_logits_match_hugging_face(hf_model, source, tmp_path):
    if source == "folder":
        hf_model.save_pretrained(tmp_path)
        model = GPT.from_gpt2(tmp_path).eval()
    else:
        model = GPT.from_gpt2(hf_model).eval()
    c = model.config
    assert (c.vocab_size, c.context, c.n_layer, c.n_head, c.n_embd) == (100, 32, 2, 2, 64)
    assert model.num_parameters() == hf_model.num_parameters()
    idx = torch.randint(0, 100, (3, 32))
    with torch.no_grad():
        expected = hf_model(idx).logits
        torch.testing.assert_close(model(idx), expected, atol=1e-4, rtol=0)
        fast = GPT(dataclasses.replace(model.config, fast=True)).eval()
        fast.load_state_dict(model.state_dict())
        torch.testing.assert_close(fast(idx), expected, atol=1e-4, rtol=0)


def test_untied_output_layer_loads_its_own_weights():
    config = transformers.GPT2Config(
        vocab_size=100, n_positions=32, n_embd=64, n_layer=2, n_head=2, tie_word_embeddings=False
    )
    hf_model = transformers.GPT2LMHeadModel(config).eval()
    model = GPT.from_gpt2(hf_model).eval()
    assert not model.config.tie_weights
    assert model.num_parameters() == hf_model.num_parameters()
    idx = torch.randint(0, 100, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(model(idx), hf_model(idx).logits, atol=1e-4, rtol=0)


def test_a_loaded_gpt2_has_no_dropout_and_gpt2s_tanh_gelu():
    """GPT-2's own dropout (0.1 here) is for its pre-training: the loaded model drops
    nothing even in training mode.  Its MLP inputs made large (c_fc times 10, so that many
    reach 1 to 3, where the exact GELU and the tanh approximation differ by up to 5e-4), the
    logits still match, to 1e-5 (the exact GELU is 1.5e-4 off; float32 rounding 3e-7)."""
    config = transformers.GPT2Config(vocab_size=100, n_positions=32, n_embd=64, n_layer=2, n_head=2)
    assert config.resid_pdrop == config.attn_pdrop == config.embd_pdrop == 0.1
    hf_model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for block in hf_model.transformer.h:
            block.mlp.c_fc.weight.mul_(10.0)
    model = GPT.from_gpt2(hf_model)
    assert model.training  # as a fine-tuning would start it
    idx = torch.randint(0, 100, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(model(idx), hf_model(idx).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "setting, named",
    [
        (dict(layer_norm_epsilon=1e-6), "layer_norm_epsilon=1e-06; only 1e-5"),
        (dict(add_cross_attention=True), "add_cross_attention=True"),
        (dict(activation_function="relu"), "activation_function='relu'"),
        (dict(activation_function="gelu"), "activation_function='gelu'"),  # exact, not tanh
        (dict(scale_attn_by_inverse_layer_idx=True), "scale_attn_by_inverse_layer_idx=True"),
        (dict(scale_attn_weights=False), "scale_attn_weights=False"),
        (dict(n_inner=128), "n_inner=128"),  # 2 * n_embd
    ],
)
def test_settings_this_gpt_cannot_compute_are_errors(setting, named):
    config = transformers.GPT2Config(
        vocab_size=100, n_positions=32, n_embd=64, n_layer=1, n_head=2, **setting
    )
    with pytest.raises(ValueError) as error:
        GPT.from_gpt2(transformers.GPT2LMHeadModel(config))
    assert named in str(error.value) and "\n" not in str(error.value)


def test_greedy_generation_matches_hugging_face(hf_model):
    model = GPT.from_gpt2(hf_model).eval()
    prompt = torch.randint(0, 100, (1, 5))
    ours = model.generate(prompt, 10, temperature=0)
    theirs = hf_model.generate(
        prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=10, do_sample=False,
        pad_token_id=0,
    )  # fmt: skip
    assert torch.equal(ours, theirs)
