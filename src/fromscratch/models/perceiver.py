"""Perceivers: let a few latent vectors cross-attend to a long input.

Self-attention over T tokens costs T^2.  A Perceiver (Jaegle et al. 2021) lets L << T
latent vectors attend to the input once (cost L * T) and does its deep processing on the
latents only (cost L^2 per layer).

`PerceiverLayer` is that first step on its own: learned latents cross-attend to a sequence
(the course's week-6 task), e.g. to shrink a long document before a classifier.

`Perceiver` is Perceiver AR (Hawthorne et al. 2022), the autoregressive version: the
latents are the last L positions of the input themselves.  Each one cross-attends, under
a causal mask, to the whole prefix up to and including its own position, then the latents
go through causal self-attention blocks.  The model predicts the token after each of the
last L positions; a long context costs only one L x T attention.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from fromscratch.models.attention import Attention
from fromscratch.models.blocks import Block, LayerNorm, init_gpt2
from fromscratch.models.common import LanguageModel, TransformerConfig, check_padding_mask
from fromscratch.models.positions import absolute_position


@dataclasses.dataclass
class PerceiverConfig(TransformerConfig):
    """See TransformerConfig for the shared fields.

    context: the (long) input length; latents: L, the number of latent positions;
    n_layer: self-attention blocks on the latents (after the one cross-attention block).
    """

    latents: int = 64
    tie_weights: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_positive("latents")
        if self.latents > self.context:
            self._fail("latents", f"{self.latents} is more than context={self.context}")


class PerceiverLayer(nn.Module):
    """config.latents learned vectors cross-attend to x: (B, T, C) -> (B, latents, C).

    The latents are queries only; keys and values come from x, so its length T can be
    anything and the output size is fixed.  No causal mask and no positions inside the
    cross-attention: give x its positions before (e.g. learned or sinusoidal embeddings).
    """

    def __init__(self, config: PerceiverConfig):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(config.latents, config.n_embd) * 0.02)
        self.ln_context = LayerNorm(config.n_embd, config.bias)
        cross = Attention(config, causal=False, cross=True, position="none")
        self.block = Block(config, attn=None, cross=cross)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """mask (B, T) bool: True = real token (the latents never attend to padding)."""
        check_padding_mask(mask, x[..., 0], "PerceiverLayer")
        latents = self.latents.expand(x.size(0), -1, -1)
        return self.block(latents, context=self.ln_context(x), context_mask=mask)


class Perceiver(LanguageModel):
    """Perceiver AR: forward(idx (B, T)) -> logits (B, min(latents, T), V).

    The logits are those of the last min(latents, T) positions of idx only, and predict
    the token after each of them: for training, score them against
    targets[:, -logits.size(1):].
    """

    def __init__(self, config: PerceiverConfig):
        super().__init__()
        self.config = config
        C = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, C)
        self.wpe = absolute_position(config)
        self.drop = nn.Dropout(config.dropout)
        # the inputs as keys and values: normalised once (pre-norm for the cross-attention)
        self.ln_context = LayerNorm(C, config.bias)
        # causal cross-attention: latent i (at position T - L + i) sees inputs 0 .. T - L + i
        self.cross = Block(config, attn=None, cross=Attention(config, causal=True, cross=True))
        self.blocks = nn.ModuleList(
            Block(config, attn=Attention(config, causal=True)) for _ in range(config.n_layer)
        )
        self.ln_f = LayerNorm(C, config.bias) if config.norm == "pre" else nn.Identity()
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight
        init_gpt2(self, n_residual=2 * (config.n_layer + 1))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.size(1)
        if idx.size(1) > self.config.context:
            raise ValueError(f"Perceiver: {T} tokens exceed context={self.config.context}")
        x = self.wte(idx)
        if self.wpe is not None:
            # A window shorter than the context (the start of a text, a short prompt) sits at
            # the context's end, as the latents always do in training: from the start, its
            # latents would take positions they never held (positions 0.. as queries).
            x = x + self.wpe(T, offset=self.config.context - T)
        x = self.drop(x)
        L = min(self.config.latents, T)
        latents = self.cross(x[:, -L:], context=self.ln_context(x))  # each reads its prefix
        for block in self.blocks:  # then the latents talk among themselves, causally
            latents = block(latents)
        return self.lm_head(self.ln_f(latents))

    def estimate_flops_per_token(self) -> float:
        """Training FLOPs per input token, counted like GPT.estimate_flops_per_token.

        In a full window of T = context tokens, only the keys and values of the
        cross-attention see all T tokens; every other parameter multiplies the L latents
        alone.  Attention: L x T products in the cross-attention, L x L in each block.
        6 FLOPs per multiply-add (2 forward, 4 backward), divided by the T input tokens.
        """
        c = self.config
        T, L, C = c.context, c.latents, c.n_embd
        kv = [p for name, p in self.named_parameters() if name.startswith("cross.cross.c_kv")]
        per_input = sum(p.numel() for p in kv)
        per_latent = self.num_parameters(non_embedding=True) - per_input
        multiply_adds = T * per_input + L * per_latent + 2 * L * T * C + c.n_layer * 2 * L * L * C
        return 6 * multiply_adds / T
