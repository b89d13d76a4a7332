"""An encoder/decoder transformer for sequence-to-sequence tasks (Vaswani et al. 2017).

The encoder reads the source with bidirectional self-attention.  The decoder is a GPT
whose every block also cross-attends to the encoder's output, so each target token is
predicted from the earlier target tokens and the whole source.  Source and target share
one vocabulary and one embedding matrix (which is also the output layer).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from fromscratch.models.attention import Attention
from fromscratch.models.blocks import Block, LayerNorm, init_gpt2
from fromscratch.models.common import (
    Model,
    TransformerConfig,
    check_padding_mask,
    check_sampling,
    check_token_ids,
    sample_next_token,
)
from fromscratch.models.positions import absolute_position


@dataclasses.dataclass
class EncoderDecoderConfig(TransformerConfig):
    """See TransformerConfig for the shared fields.  n_layer: blocks in the encoder and
    again in the decoder.  context: the longest source and the longest target."""


class EncoderDecoder(Model):
    def __init__(self, config: EncoderDecoderConfig):
        super().__init__()
        self.config = config
        C = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, C)
        self.wpe = absolute_position(config)
        self.drop = nn.Dropout(config.dropout)
        self.encoder = nn.ModuleList(
            Block(config, attn=Attention(config, causal=False)) for _ in range(config.n_layer)
        )
        # source and target positions are unrelated: no positions in cross-attention
        self.decoder = nn.ModuleList(
            Block(
                config,
                attn=Attention(config, causal=True),
                cross=Attention(config, causal=False, cross=True, position="none"),
            )
            for _ in range(config.n_layer)
        )
        pre = config.norm == "pre"
        self.ln_encoder = LayerNorm(C, config.bias) if pre else nn.Identity()
        self.ln_f = LayerNorm(C, config.bias) if pre else nn.Identity()
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight
        # two residual streams, each scaled for its own branches: the decoder's 3 a block
        # (self-attention, cross-attention, MLP), then the encoder's 2
        init_gpt2(self, n_residual=3 * config.n_layer)
        init_gpt2(self.encoder, n_residual=2 * config.n_layer)

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.size(1) > self.config.context:
            raise ValueError(
                f"EncoderDecoder: {idx.size(1)} tokens exceed context={self.config.context}"
            )
        x = self.wte(idx)
        if self.wpe is not None:
            x = x + self.wpe(idx.size(1))
        return self.drop(x)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        """src (B, S) -> memory (B, S, C).  src_mask (B, S) bool: True = real token."""
        check_padding_mask(src_mask, src, "EncoderDecoder")
        x = self.embed(src)
        for block in self.encoder:
            x = block(x, mask=src_mask)
        return self.ln_encoder(x)

    def decode(
        self, tgt: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """tgt (B, T) -> logits (B, T, V); logits[:, t] predict tgt[:, t+1]."""
        x = self.embed(tgt)
        for block in self.decoder:
            x = block(x, context=memory, context_mask=src_mask)
        return self.lm_head(self.ln_f(x))

    def forward(
        self, src: torch.Tensor, tgt: torch.Tensor, src_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """src (B, S), tgt (B, T) -> logits (B, T, V).  Padding in tgt goes at the end (the
        causal mask keeps it out of view of the real tokens) and gets ignore_index targets."""
        return self.decode(tgt, self.encode(src, src_mask), src_mask)

    @torch.no_grad()
    def generate(
        self,
        src: torch.Tensor,
        tgt: torch.Tensor,
        max_new_tokens: int,
        src_mask: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Continue tgt (B, T) (e.g. a start token) by max_new_tokens sampled tokens."""
        check_sampling(max_new_tokens, temperature, top_k, top_p)
        check_token_ids(src, self.config.vocab_size, name="src")
        check_token_ids(tgt, self.config.vocab_size, name="tgt")
        memory = self.encode(src, src_mask)  # once: the source does not change
        for _ in range(max_new_tokens):
            logits = self.decode(tgt[:, -self.config.context :], memory, src_mask)[:, -1]
            tgt = torch.cat(
                (tgt, sample_next_token(logits, temperature, top_k, top_p, generator)), 1
            )
        return tgt
