"""GPT: causal for every attention and position kind, sampling with and without a KV cache
gives the same tokens, the parameter count is what the architecture says, it learns."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from fromscratch.models import (
    ATTENTIONS,
    GPT,
    MLP,
    POSITIONS,
    Attention,
    Block,
    GPTConfig,
    SamplingError,
    nll_bits,
    sample_next_token,
)


def tiny(**kw) -> GPTConfig:
    base = dict(vocab_size=32, context=16, n_layer=2, n_head=2, n_embd=16)
    return GPTConfig(**{**base, **kw})


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_causal(attention, position, fast):
    """Changing tokens t+1... never changes the logits at positions <= t."""
    model = GPT(tiny(attention=attention, position=position, fast=fast)).eval()
    idx = torch.randint(0, 32, (2, 16))
    t = 6
    changed = idx.clone()
    changed[:, t + 1 :] = torch.randint(0, 32, (2, 16 - t - 1))
    before, after = model(idx), model(changed)
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], atol=1e-6, rtol=0)
    assert not torch.allclose(after[:, t + 1 :], before[:, t + 1 :])  # the test can fail


def expected_parameters(c: GPTConfig) -> int:
    """The closed form: embeddings, n_layer blocks, final LayerNorm, head."""
    C, b = c.n_embd, int(c.bias)
    layer_norm = C + b * C
    attention = {
        "simple": 0,
        "scaled": 0,
        "qkv": 3 * C * C + b * 3 * C,  # W_q, W_k, W_v
        "multihead": 4 * C * C + b * 4 * C,  # ... and W_o
    }[c.attention]
    if c.position == "relative":
        attention += (2 * c.relative_clip + 1) * (C // c.n_head)
    mlp = 2 * 4 * C * C + b * (4 * C + C)
    block = 2 * layer_norm + attention + mlp
    total = c.vocab_size * C + c.n_layer * block
    total += c.context * C if c.position == "learned" else 0
    total += layer_norm if c.norm == "pre" else 0
    total += 0 if c.tie_weights else c.vocab_size * C
    return total


@pytest.mark.parametrize(
    "kw",
    [
        {},
        dict(bias=False),
        dict(tie_weights=False),
        dict(attention="qkv", position="relative", relative_clip=3),
        dict(attention="simple", position="rope", norm="post"),
        dict(position="sinusoidal", n_head=4),
    ],
)
def test_parameter_count_is_the_closed_form(kw):
    c = tiny(**kw)
    model = GPT(c)
    assert model.num_parameters() == expected_parameters(c)
    # GPT-2 small's famous count comes out of the same formula (no model built)
    gpt2 = GPTConfig(vocab_size=50257, context=1024, n_layer=12, n_head=12, n_embd=768)
    assert expected_parameters(gpt2) == 124_439_808


def test_flops_per_token_is_nanogpts_formula():
    c = tiny()
    model = GPT(c)
    n = model.num_parameters() - c.context * c.n_embd  # without the position embeddings
    assert model.num_parameters(non_embedding=True) == n
    assert model.estimate_flops_per_token() == 6 * n + 12 * 2 * 2 * 8 * 16
    assert model.estimate_mfu(1000.0, 1e12) == pytest.approx(model.estimate_flops_per_token() / 1e9)
    # untied, the token embeddings are a lookup and the head a matmul of its own: the same
    # matmuls, the same FLOPs
    untied = GPT(tiny(tie_weights=False))
    assert untied.num_parameters(non_embedding=True) == n
    assert untied.estimate_flops_per_token() == model.estimate_flops_per_token()


def test_init_scales_residual_projections():
    model = GPT(tiny(n_layer=8, n_embd=64, n_head=2))
    std = model.blocks[0].mlp.c_proj.weight.std().item()
    assert std == pytest.approx(0.02 / 4, rel=0.1)  # 0.02 / sqrt(2 * n_layer)
    assert model.blocks[0].mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_init_scales_the_attention_output_projection_too():
    """Both residual branches of a block end in a c_proj: attention's is scaled like the MLP's."""
    model = GPT(tiny(n_layer=8, n_embd=64, n_head=2))
    std = model.blocks[0].attn.c_proj.weight.std().item()
    assert std == pytest.approx(0.02 / 4, rel=0.1)  # 0.02 / sqrt(2 * n_layer)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_a_block_is_two_residual_branches_normalised_before_or_after(norm):
    """pre: h = x + attn(LN1(x)), out = h + mlp(LN2(h)); post: h = LN1(x + attn(x)),
    out = LN2(h + mlp(h)).  The LayerNorms get random gains and biases, so that the two are
    told apart."""
    config = tiny(norm=norm)
    block = Block(config, attn=Attention(config, causal=True)).eval()
    with torch.no_grad():
        for ln in (block.ln_1, block.ln_2):
            ln.weight.normal_(1.0, 0.3)
            ln.bias.normal_(0.0, 0.3)
    x = torch.randn(2, 5, 16)
    if norm == "pre":
        h = x + block.attn(block.ln_1(x))
        expected = h + block.mlp(block.ln_2(h))
    else:
        h = block.ln_1(x + block.attn(x))
        expected = block.ln_2(h + block.mlp(h))
    torch.testing.assert_close(block(x), expected)


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh"])
def test_mlp_is_widen_gelu_project(activation):
    """gelu: x * Phi(x), Phi by erf; gelu_tanh: GPT-2's 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715
    x^3))).  Inputs of size 2 to 3, where the two differ by about 1e-3."""
    mlp = MLP(tiny(activation=activation))
    x = 3 * torch.randn(2, 4, 16)
    h = x @ mlp.c_fc.weight.T + mlp.c_fc.bias
    if activation == "gelu":
        h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
    else:
        h = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
    torch.testing.assert_close(mlp(x), h @ mlp.c_proj.weight.T + mlp.c_proj.bias)


def test_weight_tying():
    model = GPT(tiny())
    assert model.lm_head.weight is model.wte.weight
    untied = GPT(tiny(tie_weights=False))
    assert untied.lm_head.weight is not untied.wte.weight


def test_optimizer_decays_matrices_only():
    model = GPT(tiny())
    optimizer = model.configure_optimizer(weight_decay=0.1, lr=1e-3, betas=(0.9, 0.95))
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert optimizer.defaults["fused"] is True
    assert model.configure_optimizer(0.1, 1e-3, fused=False).defaults["fused"] is False


@torch.no_grad()
def sample_without_cache(model, idx, max_new_tokens, seed, **settings):
    """The reference for sampling with a KV cache: every step the whole model on the last
    `context` tokens, nothing kept between steps (generate(use_cache=False) shares the
    cache's code, which a bug there would pass)."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(max_new_tokens):
        logits = model(idx[:, -model.config.context :])[:, -1]
        idx = torch.cat((idx, sample_next_token(logits, generator=generator, **settings)), 1)
    return idx


def sample_with_cache(model, idx, max_new_tokens, seed, **settings):
    runs = [
        model.generate(
            idx, max_new_tokens, use_cache=c, generator=torch.Generator().manual_seed(seed),
            **settings,
        )
        for c in (True, False)
    ]  # fmt: skip
    assert torch.equal(runs[0], runs[1])  # and without it, as generate does that
    return runs[0]


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("position", POSITIONS)
def test_kv_cache_sampling_gives_the_same_tokens(position, fast):
    """Same seed, same tokens, also past the context window (16 < 5 + 20)."""
    model = GPT(tiny(position=position, fast=fast)).eval()
    prompt = torch.randint(0, 32, (3, 5))
    settings = dict(temperature=1.0, top_k=20, top_p=None)
    cached = sample_with_cache(model, prompt, 20, 7, **settings)
    assert cached.shape == (3, 25)
    assert torch.equal(cached, sample_without_cache(model, prompt, 20, 7, **settings))


def test_the_kv_cache_runs_one_token_a_step_until_the_window_is_full():
    """The first step reads the 5-token prompt; each later one only its newest token, until
    16 (the context) are cached; from then on the window slides and every step reads the
    last 16 tokens afresh."""
    model = GPT(tiny()).eval()
    lengths = []
    model.wte.register_forward_hook(lambda module, args, out: lengths.append(args[0].size(1)))
    model.generate(torch.randint(0, 32, (2, 5)), 20)
    assert lengths == [5] + [1] * 11 + [16] * 8


@pytest.mark.parametrize("attention", ["simple", "qkv"])
def test_kv_cache_sampling_other_attentions(attention):
    model = GPT(tiny(attention=attention, position="rope")).eval()
    prompt = torch.randint(0, 32, (2, 3))
    settings = dict(temperature=1.0, top_k=None, top_p=0.9)
    cached = sample_with_cache(model, prompt, 18, 3, **settings)
    assert torch.equal(cached, sample_without_cache(model, prompt, 18, 3, **settings))


def test_greedy_sampling_is_the_argmax():
    model = GPT(tiny()).eval()
    prompt = torch.randint(0, 32, (2, 4))
    out = model.generate(prompt, 1, temperature=0)
    assert torch.equal(out[:, -1], model(prompt)[:, -1].argmax(-1))


def test_a_padded_vocabulary_samples_only_the_tokenizers_ids():
    model = GPT(tiny()).eval()  # 32 ids; say the tokenizer has the first 5
    prompt = torch.randint(0, 5, (4, 2))
    g = torch.Generator().manual_seed(0)
    out = model.generate(prompt, 30, temperature=3.0, generator=g, vocab=5)
    assert out[:, 2:].max() < 5
    greedy = model.generate(prompt, 1, temperature=0, vocab=5)
    assert torch.equal(greedy[:, -1], model(prompt)[:, -1, :5].argmax(-1))


@pytest.mark.parametrize("filter", [dict(top_k=1), dict(top_p=1e-6)])
def test_the_tightest_top_k_and_top_p_keep_only_the_likeliest_token(filter):
    model = GPT(tiny()).eval()
    prompt = torch.randint(0, 32, (3, 4))
    greedy = model.generate(prompt, 6, temperature=0)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(model.generate(prompt, 6, temperature=2.0, generator=g, **filter), greedy)


@pytest.fixture
def drawn_from(monkeypatch):
    """drawn_from(logits, **filters): the weights sample_next_token hands torch.multinomial."""

    def run(logits: torch.Tensor, **filters) -> torch.Tensor:
        weights = []
        monkeypatch.setattr(
            torch, "multinomial", lambda probs, **kw: weights.append(probs) or probs[:, :1]
        )
        sample_next_token(logits, **filters)
        return weights[0]

    return run


def test_top_p_of_one_keeps_every_token(drawn_from):
    # a peaked distribution over GPT-2's vocabulary: its float32 cumulative sum reaches 1
    # thousands of tokens before the last, which top_p=1 must not drop
    logits = 3 * torch.randn(4, 50257)
    assert torch.equal(drawn_from(logits, top_p=1.0), F.softmax(logits, dim=-1))


def test_top_p_keeps_the_smallest_set_that_reaches_it(drawn_from):
    """Probabilities 1/2, 1/4, 1/4 (exact in float32): the first token alone reaches
    top_p=0.5, so the second goes; top_p just above it keeps the second, not the third."""
    logits = torch.tensor([[math.log(2.0), 0.0, 0.0]])
    assert (drawn_from(logits, top_p=0.5) > 0).tolist() == [[True, False, False]]
    kept = drawn_from(logits, top_p=0.5001)
    assert (kept > 0).tolist() == [[True, True, False]]


def test_a_top_k_beyond_the_vocabulary_keeps_every_token(drawn_from):
    """top_k=50 over 20 tokens (a padded vocabulary's first ids, say) filters nothing, as
    top_k=20 would not."""
    logits = torch.randn(3, 20)
    torch.testing.assert_close(drawn_from(logits, top_k=50), F.softmax(logits, dim=-1))


def test_no_new_tokens_is_the_prompt():
    prompt = torch.randint(0, 32, (2, 4))
    assert torch.equal(GPT(tiny()).generate(prompt, 0), prompt)


def test_a_tiny_temperature_samples_the_likeliest_token():
    """Near zero, sampling becomes greedy; the logits over the temperature must not
    overflow on the way (inf, then NaN weights that multinomial refuses)."""
    logits = 50 * torch.randn(4, 30)
    for temperature in (1e-3, 1e-40, 1e-46, 1e-300):  # the last two: 0 in float32
        drawn = sample_next_token(logits, temperature=temperature, top_p=0.9)
        assert torch.equal(drawn, logits.argmax(dim=-1, keepdim=True)), temperature


def test_top_k_holds_at_a_huge_temperature(drawn_from):
    """Divided by 1e300, every logit rounds to the same value: top-k still keeps the likeliest
    (and top-k 1 is greedy at any temperature)."""
    logits = torch.tensor([[2.0, 1.0, 0.5, 3.0]])
    kept = drawn_from(logits, temperature=1e300, top_k=2)
    assert (kept > 0).tolist() == [[True, False, False, True]]


def filtered_softmax(logits, temperature=1.0, top_k=None, top_p=None) -> torch.Tensor:
    """The definitions: softmax(logits / temperature), then only the top_k likeliest tokens,
    then only the smallest set of the likeliest whose mass reaches top_p; renormalised."""
    probs = F.softmax(logits / temperature, dim=-1)
    for row in probs:
        mass, order = row.sort(descending=True)
        n = len(row) if top_k is None else top_k
        if top_p is not None:  # the prefixes short of top_p, and one more
            n = min(n, int((mass[:n].cumsum(0) / mass[:n].sum() < top_p).sum()) + 1)
        row[order[n:]] = 0.0
    return probs / probs.sum(dim=-1, keepdim=True)


@pytest.mark.parametrize(
    "filters",
    [
        dict(temperature=0.5),
        dict(temperature=2.0),
        dict(top_k=3),
        dict(top_p=0.5),
        dict(temperature=2.0, top_k=3),
        dict(temperature=2.0, top_p=0.5),
        dict(top_k=3, top_p=0.7),  # top_p of the 3 renormalised: keeps 2 in a row, not 3
    ],
    ids=lambda filters: ",".join(f"{name}={value}" for name, value in filters.items()),
)
def test_sampling_draws_from_the_filtered_renormalised_softmax(filters, drawn_from):
    logits = torch.randn(4, 20)
    expected = filtered_softmax(logits, **filters)
    # several tokens stay in each row, so a filter that kept only the likeliest would fail
    assert ((expected > 0).sum(dim=-1) > 1).all()
    weights = drawn_from(logits, **filters)  # multinomial's weights need not sum to one
    assert torch.equal(weights > 0, expected > 0)
    torch.testing.assert_close(weights / weights.sum(dim=-1, keepdim=True), expected)


@pytest.mark.parametrize(
    "bad, named",
    [
        (dict(temperature=-0.5), "temperature=-0.5 must be finite and >= 0"),
        (dict(temperature=float("nan")), "temperature=nan"),
        (dict(temperature=float("inf")), "temperature=inf must be finite and >= 0"),
        (dict(top_k=0), "top_k=0 must be an integer >= 1"),
        (dict(top_k=True), "top_k=True must be an integer >= 1"),  # a bool is not a count
        (dict(top_k=2.0), "top_k=2.0 must be an integer >= 1"),
        (dict(top_p=0.0), "top_p=0.0 must be in (0, 1]"),
        (dict(top_p=1.5), "top_p=1.5 must be in (0, 1]"),
        (dict(max_new_tokens=-1), "max_new_tokens=-1"),
        (dict(idx=torch.tensor([[3, 32]])), "token ids 3..32 are outside the vocabulary [0, 32)"),
        (dict(idx=torch.tensor([[-1]])), "token ids -1..-1 are outside"),
        (dict(idx=torch.zeros(2, 0, dtype=torch.long)), "idx must be a non-empty (B, T) tensor"),
        (dict(idx=torch.zeros(3, dtype=torch.long)), "not torch.int64 of shape (3,)"),
        (dict(idx=torch.zeros(1, 2)), "int64 or int32 token ids, not torch.float32 of shape"),
        (dict(vocab=0), "vocab=0 must be in [1, 32]"),
        (dict(vocab=-3), "vocab=-3 must be in [1, 32]"),
        (dict(vocab=33), "vocab=33 must be in [1, 32]"),
    ],
)
def test_bad_sampling_arguments_are_one_line_errors(bad, named):
    args = dict(idx=torch.zeros(1, 2, dtype=torch.long), max_new_tokens=3) | bad
    with pytest.raises(SamplingError) as error:
        GPT(tiny()).generate(**args)
    assert named in str(error.value) and "\n" not in str(error.value)


def test_too_long_input_is_an_error():
    with pytest.raises(ValueError, match="context"):
        GPT(tiny())(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize("kw", [dict(), dict(norm="post", bias=False, position="alibi", fast=True)])
def test_overfits_a_tiny_batch(kw, train_steps):
    """Four random sequences: a model that can learn memorises them in 150 steps."""
    model = GPT(tiny(n_embd=32, **kw))
    data = torch.randint(0, 32, (4, 17))
    x, y = data[:, :-1], data[:, 1:]

    def loss():
        return F.cross_entropy(model(x).reshape(-1, 32), y.reshape(-1))

    losses = train_steps(model, loss, steps=150)
    assert losses[0] > 3.0  # about ln(32) = 3.47 at the start
    assert losses[-1] < 0.1


def test_bits_of_a_uniform_model():
    """Zero logits are a uniform distribution: exactly log2(V) bits per token."""
    logits = torch.zeros(2, 5, 32)
    targets = torch.randint(0, 32, (2, 5))
    targets[0, 0] = -1  # ignored
    assert nll_bits(logits, targets).item() == pytest.approx(9 * 5.0)
    model = GPT(tiny())
    x = torch.randint(0, 32, (2, 16))
    bits = nll_bits(model(x), x).item()
    nats = F.cross_entropy(model(x).reshape(-1, 32), x.reshape(-1), reduction="mean").item()
    assert bits == pytest.approx(nats * 32 / 0.6931471805599453, rel=1e-5)


def test_config_round_trips_through_json():
    c = tiny(attention="qkv", position="rope", fast=True, dropout=0.1)
    again = GPTConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c
