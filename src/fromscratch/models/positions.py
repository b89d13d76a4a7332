"""Position information: attention itself cannot tell where a token is.

Self-attention is permutation-equivariant: shuffle the input and the output is shuffled
the same way.  A model of language needs order, so we add it in one of two places.

At the input, added to the token embeddings (`AbsolutePosition`):
  learned     a trained vector per position (GPT-2);
  sinusoidal  fixed sines and cosines of geometric wavelengths (Vaswani et al. 2017).

Inside attention, as a function of the distance between query and key:
  relative    Shaw et al. 2018: a learned vector per clipped distance, added to the keys;
  rope        rotary embeddings (Su et al. 2021): rotate queries and keys by their position,
              so q_i . k_j depends only on i - j;
  alibi       Press et al. 2021: no parameters, a per-head linear penalty on distance.

Everywhere in this package the T queries are the *last* T of the S key positions: query i
sits at position S - T + i (S == T in plain self-attention, S > T with a KV cache or in
Perceiver AR).
"""

from __future__ import annotations

import math

import torch
from torch import nn

AT_THE_INPUT = ("learned", "sinusoidal")  # AbsolutePosition
INSIDE_ATTENTION = ("relative", "rope", "alibi")  # built by attention.Attention


class AbsolutePosition(nn.Module):
    """A vector per position, added to the token embeddings: `learned` or `sinusoidal`."""

    def __init__(self, kind: str, context: int, n_embd: int):
        super().__init__()
        if kind == "learned":
            self.weight = nn.Parameter(torch.zeros(context, n_embd))
            nn.init.normal_(self.weight, std=0.02)
        elif kind == "sinusoidal":
            # PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d))
            position = torch.arange(context, dtype=torch.float32)[:, None]
            frequency = torch.exp(torch.arange(0, n_embd, 2) * (-math.log(10000.0) / n_embd))
            table = torch.zeros(context, n_embd)
            table[:, 0::2] = torch.sin(position * frequency)
            table[:, 1::2] = torch.cos(position * frequency)
            # Vaswani et al. multiply the token embeddings by √d so that they are as loud as
            # the unit-amplitude sinusoids. Here the embeddings start at GPT-2's N(0, 0.02),
            # so the sinusoids are scaled down to that size instead; unscaled, they drown
            # the tokens and a small model never learns (measured: stuck at unigram loss).
            table *= 0.02 * math.sqrt(2)  # RMS 0.02, like a learned table's initialisation
            self.register_buffer("weight", table, persistent=False)  # recomputed, not saved
        else:
            raise ValueError(
                f"AbsolutePosition: kind {kind!r} is not one of {', '.join(AT_THE_INPUT)}"
            )

    def forward(self, length: int, offset: int = 0) -> torch.Tensor:
        """Vectors (length, n_embd) for positions offset, ..., offset + length - 1."""
        return self.weight[offset : offset + length]


def absolute_position(config, length: int | None = None) -> AbsolutePosition | None:
    """The table added to the token embeddings for the kinds that are one (learned,
    sinusoidal), for `length` positions (default: the context); None for the others."""
    if config.position not in AT_THE_INPUT:
        return None
    return AbsolutePosition(config.position, length or config.context, config.n_embd)


class Rotary(nn.Module):
    """Rotary position embedding: rotate pairs of channels by angle position * frequency.

    A query at position i and a key at position j, both rotated, have a dot product that
    depends on their content and on i - j only.  Nothing is learned.  We use the
    "rotate half" pairing (channel c with c + D/2), as GPT-NeoX and Llama do.
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Rotate x (B, H, T, D) whose rows sit at positions start, ..., start + T - 1."""
        T = x.size(-2)
        position = torch.arange(start, start + T, device=x.device, dtype=torch.float32)
        angle = position[:, None] * self.inv_freq[None, :]  # (T, D/2)
        cos = torch.cat((angle.cos(), angle.cos()), dim=-1).to(x.dtype)
        sin = torch.cat((angle.sin(), angle.sin()), dim=-1).to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def distances(T: int, S: int, device: torch.device | None = None) -> torch.Tensor:
    """(T, S) signed distances key position - query position, query i at S - T + i."""
    query = torch.arange(S - T, S, device=device)
    key = torch.arange(S, device=device)
    return key[None, :] - query[:, None]


class RelativePosition(nn.Module):
    """Shaw et al. 2018: a learned key vector a_(j-i) per clipped distance.

    The score of query i for key j becomes q_i . (k_j + a_clip(j-i)), so we add the bias
    q_i . a_clip(j-i) to the scores.  Distances beyond +-clip share one vector (the paper:
    precise distance matters little far away).  We keep only the key term: the paper's
    value term made no measurable difference in its ablation, and leaving it out lets the
    fast kernel take the bias as an additive mask.  One table per layer, shared by heads.
    """

    def __init__(self, head_dim: int, clip: int):
        super().__init__()
        self.clip = clip
        self.table = nn.Parameter(torch.zeros(2 * clip + 1, head_dim))
        nn.init.normal_(self.table, std=0.02)

    def forward(self, q: torch.Tensor, S: int) -> torch.Tensor:
        """Bias (B, H, T, S) for queries q (B, H, T, D) over S keys."""
        B, H, T, _ = q.shape
        index = distances(T, S, q.device).clamp(-self.clip, self.clip) + self.clip  # (T, S)
        per_distance = q @ self.table.t()  # (B, H, T, 2 clip + 1): q_i . a_d for every d
        return per_distance.gather(-1, index.expand(B, H, T, S))


def alibi_slopes(n_head: int) -> torch.Tensor:
    """The geometric head slopes of the ALiBi paper: 2^(-8/n), 2^(-16/n), ...

    For a head count that is not a power of two the paper takes the slopes of the closest
    smaller power of two and fills up with every other slope of the next one.
    """

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (h + 1) for h in range(n)]

    closest = 2 ** math.floor(math.log2(n_head))
    slopes = power_of_two(closest)
    if closest < n_head:
        slopes += power_of_two(2 * closest)[0::2][: n_head - closest]
    return torch.tensor(slopes)


class ALiBi(nn.Module):
    """Attention with linear biases: head h adds -slope_h * |i - j| to its scores.

    Nothing is learned; nearer tokens simply count more, at a different rate per head.  In
    causal models only j <= i is ever seen; bidirectional ones use the symmetric distance
    (as MosaicBERT does). Symmetric, it tells near from far but not left from right: a
    bidirectional model with nothing else to go by (an encoder, a classifier pooling by
    mean or max) gives a text and its reverse the same output, so the encoder/decoder's
    `reverse` task is beyond it; the causal mask, or a class token at the start, breaks the
    symmetry.
    """

    def __init__(self, n_head: int):
        super().__init__()
        self.register_buffer("slopes", alibi_slopes(n_head), persistent=False)

    def forward(self, T: int, S: int) -> torch.Tensor:
        """Bias (1, H, T, S)."""
        distance = distances(T, S, self.slopes.device).abs().to(self.slopes.dtype)
        return (-self.slopes[:, None, None] * distance)[None]
