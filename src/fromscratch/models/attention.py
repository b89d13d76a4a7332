"""Self-attention, in the order the course teaches it.

Every output vector is a weighted average of value vectors; the weights say how much
token i "attends" to token j.  We build it up in four steps, each selectable by name
(`attention=` in every model config), each adding exactly one idea:

1. simple     y_i = sum_j w_ij x_j,  w_ij = softmax_j(x_i . x_j).
              No parameters at all: the input is query, key and value at once.
2. scaled     w_ij = softmax_j(x_i . x_j / sqrt(d)).  Dot products of d-dimensional
              vectors grow like sqrt(d); unscaled, the softmax saturates and its gradient
              vanishes.
3. qkv        q_i = W_q x_i, k_j = W_k x_j, v_j = W_v x_j: each token plays three roles
              (what it looks for, what it offers, what it passes on), each learned.
4. multihead  several attentions side by side, each on a slice of d/H channels (the cheap
              "narrow" form: project to d once, split into H heads), then an output
              projection W_o that mixes what the heads found.

Heads, for every variant: the n_embd channels are split into n_head slices and each slice
attends on its own (with n_head=1 you get exactly the single-head formulas above).  For
`simple` and `scaled` that means attention on slices of the input itself.  We chose this
over demanding n_head=1 so that `n_head` means the same thing for every variant and an
ablation can switch `attention` alone.  What `multihead` adds on top of `qkv` is then the
output projection that lets the heads' findings interact.

Then: masking (a causal mask so that token i cannot see the future; a key padding mask
so that nothing attends to padding), positions that live inside attention (rope,
relative, alibi: see positions.py), cross-attention (queries from one sequence, keys and
values from another), a KV cache for fast sampling, and the fast path: PyTorch's fused
`scaled_dot_product_attention`, switched on by `fast=True` (except in bfloat16 on a CPU,
where the plain code is faster unless the CPU has AMX and the sequence is long: see
fused_is_faster) and tested to give the same outputs and gradients as the plain code below.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.models.positions import ALiBi, RelativePosition, Rotary


def visible(
    T: int, S: int, causal: bool, key_mask: torch.Tensor | None, device: torch.device
) -> torch.Tensor | None:
    """Which keys each query may see (True): bool (T, S), (B, 1, 1, S) or (B, 1, T, S).

    None means "all of them".  The T queries are the last T of the S positions, so with a
    causal mask query i sees keys j <= i + S - T (everything up to and including itself).
    key_mask: (B, S) bool, True = a real token, False = padding nobody should attend to.
    Two shortcuts take the causal mask as given, and a mask of another shape (a local
    window) must change them too: a single query below, and `attend`'s fused call with
    is_causal=True, which never asks this function.
    """
    allowed = None
    if causal and T > 1:  # a single query at the end sees every key anyway
        allowed = torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)
    if key_mask is not None:
        if key_mask.dtype != torch.bool:  # the fused kernel would add a float mask to the scores
            raise ValueError(f"key_mask must be bool (True = real token), not {key_mask.dtype}")
        padding = key_mask[:, None, None, :]  # (B, 1, 1, S): the same for every head, query
        allowed = padding if allowed is None else allowed & padding
    return allowed


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float,
    causal: bool = False,
    key_mask: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    dropout: float = 0.0,
    fast: bool = False,
) -> torch.Tensor:
    """Attention of queries q (B, H, T, D) over keys k and values v (B, H, S, D).

    weights = softmax(q k^T * scale + bias), masked; output = weights v, (B, H, T, D).
    bias: float, broadcastable to (B, H, T, S): relative positions or ALiBi.
    A query that may see no key at all (an all-padding row) gets a zero output, as the
    fused kernel gives.
    """
    T, S = q.size(-2), k.size(-2)
    fast = fast and fused_is_faster(q)
    if fast and causal and T == S and bias is None and key_mask is None:
        # the common case of training a GPT: the kernel makes the causal mask itself (and
        # skips the hidden blocks), so no (T, S) mask is ever built
        return F.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout, is_causal=True, scale=scale
        )
    allowed = visible(T, S, causal, key_mask, q.device)
    if fast:
        mask = allowed
        if bias is not None:  # the kernel adds a float mask to the scores: bias, -inf = hidden
            mask = bias if allowed is None else bias.masked_fill(~allowed, float("-inf"))
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout, scale=scale
        )

    scores = (q @ k.transpose(-2, -1)) * scale  # (B, H, T, S): how well q_i matches k_j
    if bias is not None:
        scores = scores + bias
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))  # exp(-inf) = 0: never seen
    weights = F.softmax(scores, dim=-1)  # each row sums to one
    if key_mask is not None:  # a row that sees nothing is 0/0 = nan: make it zero instead
        weights = weights.masked_fill(~allowed.any(dim=-1, keepdim=True), 0.0)
    weights = F.dropout(weights, dropout)
    return weights @ v


class KVCache:
    """The keys and values one attention layer has seen so far, for sampling.

    Sampling token t+1 needs the keys and values of tokens 0..t; without a cache they are
    recomputed every step.  With it, each step only computes those of the newest token.
    """

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.size(-2)

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new keys and values (B, H, T, D); return all of them so far."""
        self.k = k if self.k is None else torch.cat((self.k, k), dim=-2)
        self.v = v if self.v is None else torch.cat((self.v, v), dim=-2)
        return self.k, self.v


class Attention(nn.Module):
    """One attention layer: any of the four variants, self- or cross-attention.

    config supplies n_embd, n_head, attention, bias, dropout, attn_dropout, fast,
    relative_clip (and position unless given).  causal: hide later positions.  cross: keys
    and values come from `context` (another sequence), with their own projection.
    position: only the kinds that live inside attention matter here (relative, rope,
    alibi); pass "none" for cross-attention between unrelated sequences (an
    encoder/decoder's).
    """

    def __init__(self, config, *, causal: bool, cross: bool = False, position: str | None = None):
        super().__init__()
        n_embd, n_head = config.n_embd, config.n_head
        self.kind, self.n_head, self.causal, self.cross = config.attention, n_head, causal, cross
        self.fast = config.fast
        self.attn_dropout = config.dropout if config.attn_dropout is None else config.attn_dropout
        head_dim = n_embd // n_head
        # step 2: scaling; `simple` keeps the raw dot products of the lecture's first slide
        self.scale = 1.0 if self.kind == "simple" else head_dim**-0.5

        # step 3: projections.  One Linear makes q, k and v at once (one matmul, not three);
        # cross-attention projects its queries and its context separately.
        if self.kind in ("qkv", "multihead"):
            if cross:
                self.c_q = nn.Linear(n_embd, n_embd, bias=config.bias)
                self.c_kv = nn.Linear(n_embd, 2 * n_embd, bias=config.bias)
            else:
                self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=config.bias)
        # step 4: the output projection that mixes the heads
        self.c_proj = (
            nn.Linear(n_embd, n_embd, bias=config.bias) if self.kind == "multihead" else None
        )
        self.resid_dropout = nn.Dropout(config.dropout)

        position = config.position if position is None else position
        self.rotary = Rotary(head_dim) if position == "rope" else None
        self.relative = (
            RelativePosition(head_dim, config.relative_clip) if position == "relative" else None
        )
        self.alibi = ALiBi(n_head) if position == "alibi" else None

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C).

        context (B, S, C): what cross-attention attends to (its queries are the last T of
        those S positions, which is what Perceiver AR needs; an encoder/decoder's
        cross-attention is neither causal nor positional, so there it does not matter).
        mask (B, S) bool: True = a real key, False = padding.  With a cache it must cover
        the cached keys too.  cache: a KVCache that this call extends (self-attention).
        """
        if (context is not None) != self.cross:
            raise ValueError("Attention: pass context exactly when built with cross=True")
        B, T, C = x.shape
        source = x if context is None else context

        # (a) queries, keys and values
        if self.kind in ("simple", "scaled"):
            q, k, v = x, source, source  # the input itself, in all three roles
        elif self.cross:
            q = self.c_q(x)
            k, v = self.c_kv(source).split(C, dim=2)
        else:
            q, k, v = self.c_attn(x).split(C, dim=2)

        # (b) heads: (B, T, C) -> (B, H, T, D), every head a slice of D = C / H channels
        q, k, v = (
            t.view(B, t.size(1), self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)
        )

        # (c) positions inside attention, then the cache
        past = cache.length if cache is not None else 0
        if self.rotary is not None:
            k = self.rotary(k, start=past)  # new keys sit after the cached ones
            q = self.rotary(q, start=past + k.size(-2) - T)  # queries: the last T positions
        if cache is not None:
            k, v = cache.extend(k, v)
        S = k.size(-2)
        bias = None
        if self.relative is not None:
            bias = self.relative(q, S) * self.scale  # scaled like q.k (Shaw et al. eq. 4)
        elif self.alibi is not None:
            bias = self.alibi(T, S).to(q.dtype)

        # (d) attention, heads side by side again, and the output projection
        y = attend(
            q,
            k,
            v,
            scale=self.scale,
            causal=self.causal,
            key_mask=mask,
            bias=bias,
            dropout=self.attn_dropout if self.training else 0.0,
            fast=self.fast,
        )
        y = y.transpose(1, 2).reshape(B, T, C)
        if self.c_proj is not None:
            y = self.c_proj(y)
        return self.resid_dropout(y)


# ----------------------------------------------------------------------- the fast path

# PyTorch's fused CPU kernel runs bfloat16 on AMX tiles (Intel's matrix units) where there
# are any; without them it converts every block and is slower than the plain code.  Even
# with AMX it pays off only for long sequences.  Forward and backward, fused over plain:
#   AVX-512 AMD EPYC, no AMX:   3x slower at context 64, 1.5x slower at 256;
#   Intel Xeon with AMX:        3.8x slower at 64, 1.1x slower at 256, level at 512,
#                               2x faster at 1024, 3.5-5x faster at 2048.
FUSED_CPU_BF16 = getattr(torch.cpu, "_is_amx_tile_supported", lambda: True)()
FUSED_CPU_BF16_MIN_QUERIES = 512


def fused_is_faster(q: torch.Tensor) -> bool:
    """Whether PyTorch's fused kernel beats the plain code for these queries (B, H, T, D)."""
    if q.device.type != "cpu" or q.dtype != torch.bfloat16:
        return True
    return FUSED_CPU_BF16 and q.size(-2) >= FUSED_CPU_BF16_MIN_QUERIES
