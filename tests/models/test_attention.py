"""Attention: each variant is the lecture's formula; the fast path equals the plain one."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fromscratch.models import ATTENTIONS, POSITIONS, Attention, KVCache, TransformerConfig
from fromscratch.models import attention as attention_module
from fromscratch.models.attention import (
    FUSED_CPU_BF16,
    FUSED_CPU_BF16_MIN_QUERIES,
    attend,
    fused_is_faster,
)
from fromscratch.models.positions import (
    INSIDE_ATTENTION,
    AbsolutePosition,
    ALiBi,
    Rotary,
    alibi_slopes,
)


def config(**kw) -> TransformerConfig:
    base = dict(vocab_size=10, context=32, n_layer=1, n_head=1, n_embd=8)
    return TransformerConfig(**{**base, **kw})


def test_simple_is_the_lecture_formula():
    x = torch.randn(2, 5, 8)
    y = Attention(config(attention="simple"), causal=False)(x)
    expected = torch.softmax(x @ x.transpose(1, 2), dim=-1) @ x
    torch.testing.assert_close(y, expected)
    assert not list(Attention(config(attention="simple"), causal=False).parameters())


def test_scaled_divides_by_sqrt_d():
    x = torch.randn(2, 5, 8)
    y = Attention(config(attention="scaled"), causal=False)(x)
    expected = torch.softmax(x @ x.transpose(1, 2) / math.sqrt(8), dim=-1) @ x
    torch.testing.assert_close(y, expected)


def test_qkv_projects_queries_keys_values():
    x = torch.randn(2, 5, 8)
    attn = Attention(config(attention="qkv"), causal=False)
    wq, wk, wv = attn.c_attn.weight.split(8)
    bq, bk, bv = attn.c_attn.bias.split(8)
    q, k, v = x @ wq.T + bq, x @ wk.T + bk, x @ wv.T + bv
    expected = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(8), dim=-1) @ v
    torch.testing.assert_close(attn(x), expected)
    assert attn.c_proj is None  # the output projection arrives with `multihead`


@pytest.mark.parametrize("kind", ["simple", "scaled"])
def test_parameter_free_variants_attend_per_head_on_slices(kind):
    """With n_head > 1, simple and scaled attention run on each slice of channels alone."""
    x = torch.randn(2, 5, 8)
    y = Attention(config(attention=kind, n_head=2), causal=False)(x)
    one_head = Attention(config(attention=kind, n_head=1, n_embd=4), causal=False)
    expected = torch.cat([one_head(x[..., :4]), one_head(x[..., 4:])], dim=-1)
    torch.testing.assert_close(y, expected)


def test_multihead_is_heads_side_by_side_then_output_projection():
    x = torch.randn(2, 5, 8)
    attn = Attention(config(attention="multihead", n_head=2), causal=True)
    q, k, v = attn.c_attn(x).split(8, dim=-1)
    heads = []
    for h in (slice(0, 4), slice(4, 8)):
        scores = q[..., h] @ k[..., h].transpose(1, 2) / 2.0
        scores = scores.masked_fill(torch.ones(5, 5).triu(1).bool(), float("-inf"))
        heads.append(torch.softmax(scores, dim=-1) @ v[..., h])
    expected = attn.c_proj(torch.cat(heads, dim=-1))
    torch.testing.assert_close(attn(x), expected)


def test_padding_is_never_attended_and_empty_rows_are_zero():
    x = torch.randn(2, 6, 8)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    for fast in (False, True):
        attn = Attention(config(attention="multihead", n_head=2, fast=fast), causal=False)
        y = attn(x, mask=mask)
        x2 = x.clone()
        x2[0, 4:] = 100.0  # whatever sits in the padding
        torch.testing.assert_close(attn(x2, mask=mask)[0, :4], y[0, :4])
        # an example that is all padding: no nan, and zeros before the output projection
        empty = torch.zeros(1, 6, dtype=torch.bool)
        out = attn(x[:1], mask=empty)
        torch.testing.assert_close(out, attn.c_proj.bias.expand_as(out))


@pytest.mark.parametrize("fast", [False, True])
def test_causal_and_padding_together_hide_both_and_a_blind_query_gets_zeros(fast):
    """Left padding under a causal mask: query i sees the real keys 1..i only, so query 0
    sees nothing at all and gets a zero output (no nan in the rows that do see keys)."""
    q, k, v = (torch.randn(1, 1, 4, 2) for _ in range(3))
    key_mask = torch.tensor([[False, True, True, True]])
    y = attend(q, k, v, scale=0.5, causal=True, key_mask=key_mask, fast=fast)
    expected = torch.zeros(1, 1, 4, 2)
    for i in range(1, 4):
        seen = range(1, i + 1)
        weights = torch.softmax(torch.stack([q[0, 0, i] @ k[0, 0, j] * 0.5 for j in seen]), 0)
        expected[0, 0, i] = sum(w * v[0, 0, j] for w, j in zip(weights, seen, strict=True))
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize("fast", [False, True])
def test_a_float_key_mask_is_an_error(fast):
    # 0/1 floats are not a mask: the fused kernel would add them to the scores as a bias
    attn = Attention(config(n_head=2, fast=fast), causal=False)
    with pytest.raises(ValueError, match=r"key_mask must be bool .*, not torch\.float32"):
        attn(torch.randn(2, 6, 8), mask=torch.ones(2, 6))


def test_rope_turns_each_channel_pair_by_position_times_its_frequency():
    """Su et al.'s 2x2 rotation, in the rotate-half pairing: channels c and c + D/2 turn
    by the angle p * 10000^(-2c/D), p the row's position."""
    x = torch.randn(2, 3, 5, 8)
    start = 4
    expected = torch.empty_like(x)
    for t in range(5):
        for c in range(4):
            angle = (start + t) * 10000.0 ** (-2 * c / 8)
            rotation = torch.tensor(
                [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
            )
            expected[:, :, t, [c, c + 4]] = x[:, :, t, [c, c + 4]] @ rotation.T
    torch.testing.assert_close(Rotary(8)(x, start=start), expected)


def test_rope_scores_depend_on_distance_only():
    rotary = Rotary(8)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(i: int, j: int) -> torch.Tensor:
        return (rotary(q, start=i) * rotary(k, start=j)).sum()

    torch.testing.assert_close(score(3, 1), score(10, 8))
    # the distance itself counts, in either direction
    assert not torch.isclose(score(3, 1), score(3, 2))
    assert not torch.isclose(score(3, 1), score(1, 3))


def test_alibi_slopes_are_the_papers():
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0**-i for i in range(1, 9)]))
    # not a power of two: the 4 slopes of 4 heads, then every other one of 8 heads' slopes
    torch.testing.assert_close(
        alibi_slopes(6), torch.tensor([2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3])
    )


def test_alibi_bias_is_minus_slope_times_distance():
    # queries are the last 3 of 5 positions (a KV cache): query i sits at position 2 + i
    bias = ALiBi(6)(3, 5)
    slopes = alibi_slopes(6)
    expected = torch.tensor(
        [[[-slopes[h] * abs(j - (2 + i)) for j in range(5)] for i in range(3)] for h in range(6)]
    )
    torch.testing.assert_close(bias, expected[None])


@pytest.mark.parametrize("position", ["rope", "alibi"])
def test_positions_inside_attention_enter_the_scores_only(position):
    """Scaled attention over 2 heads of 4 channels: rope turns queries and keys (never the
    values), alibi adds -slope_h |i - j| to head h's scores (slopes 2^-4, 2^-8)."""
    x = torch.randn(2, 5, 8)
    y = Attention(config(attention="scaled", n_head=2, position=position), causal=False)(x)
    heads = x.view(2, 5, 2, 4).transpose(1, 2)  # (B, H, T, D)
    q = k = Rotary(4)(heads) if position == "rope" else heads
    scores = q @ k.transpose(-2, -1) / 2.0
    if position == "alibi":
        distance = (torch.arange(5)[None, :] - torch.arange(5)[:, None]).abs()
        scores = scores - torch.tensor([2.0**-4, 2.0**-8])[:, None, None] * distance
    expected = (F.softmax(scores, dim=-1) @ heads).transpose(1, 2).reshape(2, 5, 8)
    torch.testing.assert_close(y, expected)


def test_sinusoidal_table_is_vaswanis_scaled_to_a_learned_tables_size():
    # the code's scale: RMS 0.02 like a learned table's init, so tokens are not drowned
    expected = torch.empty(10, 8)
    for p in range(10):
        for i in range(4):
            angle = p / 10000.0 ** (2 * i / 8)
            expected[p, 2 * i], expected[p, 2 * i + 1] = math.sin(angle), math.cos(angle)
    table = AbsolutePosition("sinusoidal", 10, 8).weight
    torch.testing.assert_close(table, 0.02 * math.sqrt(2) * expected)


def test_a_sinusoidal_table_is_recomputed_not_saved():
    """Nothing learned, so nothing in a checkpoint; a learned table is a parameter, saved."""
    assert "weight" not in AbsolutePosition("sinusoidal", 10, 8).state_dict()
    assert "weight" in AbsolutePosition("learned", 10, 8).state_dict()


# ------------------------------------------------------------------ fast path == plain path
# Tolerance: float32, atol=1e-5 and rtol=1e-4 on outputs and on every gradient (the two
# paths sum in different orders; the differences we see are around 1e-6).
TOLERANCE = dict(atol=1e-5, rtol=1e-4)

SETTINGS = {
    "causal": dict(causal=True, cross=False, mask=False),
    "padded": dict(causal=False, cross=False, mask=True),
    "cross-causal": dict(causal=True, cross=True, mask=False),  # Perceiver AR
    "cross-padded": dict(causal=False, cross=True, mask=True),  # a decoder over a padded source
}


@pytest.fixture
def fused_calls(monkeypatch):
    """A list that grows by one with every call attention.py makes to the fused kernel."""
    calls = []
    fused = attention_module.F.scaled_dot_product_attention

    def counted(*args, **kwargs):
        calls.append(kwargs)
        return fused(*args, **kwargs)

    monkeypatch.setattr(attention_module.F, "scaled_dot_product_attention", counted)
    return calls


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("position", ["none", *INSIDE_ATTENTION])
@pytest.mark.parametrize("kind", ATTENTIONS)
def test_fast_path_equals_plain_path(kind, position, setting, fused_calls):
    s = SETTINGS[setting]
    T, S = (4, 7) if s["cross"] else (7, 7)
    plain = Attention(
        config(attention=kind, n_head=2, position=position, fast=False),
        causal=s["causal"],
        cross=s["cross"],
    )
    fast = Attention(
        config(attention=kind, n_head=2, position=position, fast=True),
        causal=s["causal"],
        cross=s["cross"],
    )
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(3, T, 8, requires_grad=True)
    context = torch.randn(3, S, 8, requires_grad=True) if s["cross"] else None
    mask = None
    if s["mask"]:
        mask = torch.ones(3, S, dtype=torch.bool)
        mask[0, -3:] = False
        mask[1, -1:] = False

    outputs, grads = [], []
    for attn in (plain, fast):
        fused_calls.clear()
        y = attn(x, context=context, mask=mask)
        # float32 takes the fused kernel on every device: else this compares plain with plain
        assert len(fused_calls) == (1 if attn is fast else 0)
        target = torch.randn_like(y, generator=torch.Generator().manual_seed(1))
        (y * target).sum().backward()
        inputs = [x] + ([context] if context is not None else []) + list(attn.parameters())
        grads.append([t.grad.clone() for t in inputs])
        outputs.append(y.detach())
        for t in inputs:
            t.grad = None
    torch.testing.assert_close(outputs[1], outputs[0], **TOLERANCE)
    for g_fast, g_plain in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(g_fast, g_plain, **TOLERANCE)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("T", [16, FUSED_CPU_BF16_MIN_QUERIES])
def test_fast_path_in_bfloat16_on_a_cpu_runs_the_faster_code(T, causal):
    # the fused kernel only for long sequences on a CPU with AMX; else exactly the plain code
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, T, 8, dtype=torch.bfloat16) for _ in range(3))
    fast, plain = (
        attend(q, k, v, scale=8**-0.5, causal=causal, fast=flag) for flag in (True, False)
    )
    fused = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=8**-0.5)
    assert not torch.equal(fused, plain)  # so the equality below tells the two apart
    expected = fused if FUSED_CPU_BF16 and T >= FUSED_CPU_BF16_MIN_QUERIES else plain
    assert torch.equal(fast, expected)
    assert fused_is_faster(q.float())  # in float32 the fused kernel at every length


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("position", ["none", *INSIDE_ATTENTION])
def test_kv_cache_gives_the_full_computation(position, fast):
    attn = Attention(config(n_head=2, position=position, fast=fast), causal=True).eval()
    x = torch.randn(2, 6, 8)
    full = attn(x)
    cache = KVCache()
    parts = [attn(x[:, :3], cache=cache), attn(x[:, 3:4], cache=cache), attn(x[:, 4:], cache=cache)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, **TOLERANCE)


def test_dropout_is_off_in_eval():
    attn = Attention(config(n_head=2, dropout=0.5), causal=True).eval()
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(attn(x), attn(x))


@pytest.mark.parametrize("attn_dropout, weights_dropped", [(None, True), (0.0, False)])
@pytest.mark.parametrize(
    "fast, position", [(False, "learned"), (True, "learned"), (True, "alibi")]
)  # the fused kernel's two calls: the causal mask its own, or a float mask given
def test_attn_dropout_drops_attention_weights_only(attn_dropout, weights_dropped, fast, position):
    # dropout=0.5 on the output either way: where both runs kept an output entry, the
    # entries agree exactly unless the attention weights underneath were dropped too
    settings = dict(dropout=0.5, attn_dropout=attn_dropout, fast=fast, position=position)
    attn = Attention(config(n_head=2, **settings), causal=True)
    x = torch.randn(2, 16, 8)
    torch.manual_seed(1)
    first = attn(x)
    torch.manual_seed(2)
    second = attn(x)
    both_kept = (first != 0) & (second != 0)
    assert both_kept.sum() > 20
    assert torch.equal(first[both_kept], second[both_kept]) != weights_dropped


def test_relative_bias_is_the_clipped_key_term():
    """Shaw et al.: score_ij = q_i . (k_j + a_clip(j-i)) / sqrt(d)."""
    attn = Attention(config(attention="qkv", position="relative", relative_clip=2), causal=False)
    x = torch.randn(1, 6, 8)
    q, k, v = attn.c_attn(x).split(8, dim=-1)
    table = attn.relative.table
    a = torch.stack([torch.stack([table[max(-2, min(2, j - i)) + 2] for j in range(6)])
                     for i in range(6)])  # (T, S, D)  # fmt: skip
    scores = (q[0, :, None, :] * (k[0, None, :, :] + a)).sum(-1) / math.sqrt(8)
    expected = F.softmax(scores, dim=-1) @ v[0]
    torch.testing.assert_close(attn(x)[0], expected)


def test_every_position_kind_is_known():
    assert set(POSITIONS) == {"none", "learned", "sinusoidal", "relative", "rope", "alibi"}


@pytest.mark.parametrize("position", INSIDE_ATTENTION)
@pytest.mark.parametrize("fast", [False, True])
def test_causal_cross_attention_places_its_queries_at_the_end(position, fast):
    """Perceiver AR's queries are the last T of the S positions: attending from x[-T:]
    over all of x is then the last T rows of causal self-attention over x, distances and
    all (with parameter-free attention, so the two need no shared weights but the
    relative table's)."""
    settings = config(attention="scaled", n_head=2, position=position, fast=fast)
    self_attention = Attention(settings, causal=True)
    cross = Attention(settings, causal=True, cross=True)
    cross.load_state_dict(self_attention.state_dict())
    x = torch.randn(2, 7, 8)
    whole = self_attention(x)
    torch.testing.assert_close(cross(x[:, -3:], context=x), whole[:, -3:])
