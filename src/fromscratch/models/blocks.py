"""The parts every transformer here is built from: LayerNorm, MLP, Block, and the init.

A Block is one layer: (self-attention), (cross-attention), MLP, each a residual branch
with its own LayerNorm.  Which attentions a block has is decided by the model that builds
it (see gpt.py, encoder_decoder.py, perceiver.py), so the block itself stays one class.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.models.attention import Attention, KVCache


class LayerNorm(nn.Module):
    """(x - mean) / sqrt(var + 1e-5) over the channels, times a gain, plus an optional bias
    (nanoGPT's default has none); eps 1e-5 as GPT-2's, so its weights load exactly."""

    def __init__(self, n_embd: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_embd))
        self.bias = nn.Parameter(torch.zeros(n_embd)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class MLP(nn.Module):
    """Position-wise feed-forward: widen 4x, GELU, back.  Where tokens get "thought about".

    config.activation: `gelu` is the exact GELU (erf); `gelu_tanh` is the tanh
    approximation GPT-2 was trained with (so its weights load exactly, see GPT.from_gpt2).
    """

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.approximate = "tanh" if config.activation == "gelu_tanh" else "none"
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate)))


class Block(nn.Module):
    """One transformer layer: [self-attention] -> [cross-attention] -> MLP.

    attn: the self-attention (None for a block that only cross-attends, as a Perceiver's
    first layer does).  cross: a cross-attention over `context` (an encoder/decoder's
    decoder, a Perceiver).  config.norm picks where the LayerNorms sit:
      pre   x + f(LN(x))   GPT-2: the residual stream is never normalised, gradients flow
                           straight through it, and deep stacks train without warm-up tricks;
      post  LN(x + f(x))   the original transformer (Vaswani et al. 2017).
    """

    def __init__(self, config, attn: Attention | None, cross: Attention | None = None):
        super().__init__()
        self.pre_norm = config.norm == "pre"
        self.ln_1 = LayerNorm(config.n_embd, config.bias) if attn is not None else None
        self.attn = attn
        self.ln_cross = LayerNorm(config.n_embd, config.bias) if cross is not None else None
        self.cross = cross
        self.ln_2 = LayerNorm(config.n_embd, config.bias)
        self.mlp = MLP(config)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C).  mask (B, T): x's key padding; context_mask (B, S)."""
        if self.attn is not None:
            x = self.residual(x, self.ln_1, self.attn, mask=mask, cache=cache)
        if self.cross is not None:
            x = self.residual(x, self.ln_cross, self.cross, context=context, mask=context_mask)
        return self.residual(x, self.ln_2, self.mlp)

    def residual(self, x, norm, sublayer, **kwargs):
        if self.pre_norm:
            return x + sublayer(norm(x), **kwargs)
        return norm(x + sublayer(x, **kwargs))


def init_gpt2(model: nn.Module, n_residual: int) -> None:
    """GPT-2's initialisation: N(0, 0.02) weights, zero biases, and the residual
    projections (`c_proj`) scaled by 1/sqrt(n_residual), n_residual = the number of
    residual branches that write to the stream (2 per layer), so that the stream's variance
    does not grow with depth.  That holds with `multihead` attention, whose branch ends in
    a c_proj; `simple` and `scaled` add averages of the stream itself to it, and `qkv`
    its values unprojected, so there the stream grows layer by layer (a 12-layer GPT 128
    wide, at init: variance 145, 131, 0.5 and 0.002 for the four): an ablation of `attention`
    compares the mechanisms as the lecture defines them, not at equal scale."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(n_residual))
