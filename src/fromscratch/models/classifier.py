"""A transformer sequence classifier: tokens -> blocks -> one vector -> class logits.

Bidirectional (no causal mask): every token may look at every other real token.  Batches
of texts of different lengths are padded; a key padding mask keeps the padding out of
attention and out of the pooling, so a padded batch gives the same logits as classifying
the examples one by one.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.models.attention import Attention
from fromscratch.models.blocks import Block, LayerNorm, init_gpt2
from fromscratch.models.common import (
    Model,
    TransformerConfig,
    check_padding_mask,
    masked_mean,
)
from fromscratch.models.positions import absolute_position

POOLINGS = ("mean", "max", "cls")


@dataclasses.dataclass
class ClassifierConfig(TransformerConfig):
    """See TransformerConfig for the shared fields.

    num_classes: size of the output.  pooling: how the sequence becomes one vector:
    mean or max over the real tokens, or cls (a learned class token prepended to the
    input, whose output vector alone is classified, as in BERT).  token_dropout: in
    training, each word's embedding is zeroed with this probability (word dropout, Iyyer
    et al. 2015): a review's label rarely hangs on one word, and a model that cannot count
    on any one word overfits the training reviews later.  local_kernel: before the
    blocks, add to each word's embedding a depthwise convolution of its neighbours' (this
    many words wide, centred, one weight per channel and offset; 0: none).  Then "not good"
    is visible in the vectors themselves, instead of a head having to learn to look one
    word back at every absolute position.
    """

    num_classes: int = 2
    pooling: str = "mean"
    token_dropout: float = 0.0
    local_kernel: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_classes < 2:  # a softmax over one class is always 1: nothing to learn
            self._fail("num_classes", f"{self.num_classes!r} must be at least 2")
        self._check_choice("pooling", POOLINGS)
        self._check_dropout("token_dropout")
        if self.local_kernel < 0 or (self.local_kernel and self.local_kernel % 2 == 0):
            self._fail("local_kernel", f"{self.local_kernel!r} must be 0 (none) or odd")


class Classifier(Model):
    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        C = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, C)
        k = config.local_kernel
        # PyTorch's own init (uniform, +-1/sqrt(k)), not init_gpt2's: these few weights must
        # mix neighbours strongly from the start.  Started at zero, they grew to ~0.05 in a
        # whole IMDb run, which then scored no better than without them.  Its bias too (the
        # same range): an offset per channel, the same for every word.
        self.local = nn.Conv1d(C, C, k, padding=k // 2, groups=C) if k else None
        self.cls_token = nn.Parameter(torch.zeros(1, 1, C)) if config.pooling == "cls" else None
        n_positions = config.context + (config.pooling == "cls")  # the class token's place
        self.wpe = absolute_position(config, n_positions)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(config, attn=Attention(config, causal=False)) for _ in range(config.n_layer)
        )
        self.ln_f = LayerNorm(C, config.bias) if config.norm == "pre" else nn.Identity()
        self.head = nn.Linear(C, config.num_classes, bias=config.bias)
        init_gpt2(self, n_residual=2 * config.n_layer)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)

    def forward(self, idx: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """idx (B, T) token ids -> logits (B, num_classes).

        mask (B, T) bool: True = real token, False = padding.  Pad at the end (right
        padding): learned and sinusoidal positions count from the first column.
        """
        B, T = idx.shape
        if idx.size(1) > self.config.context:
            raise ValueError(f"Classifier: {T} tokens exceed context={self.config.context}")
        check_padding_mask(mask, idx, "Classifier")
        if mask is None:
            mask = torch.ones(B, T, dtype=torch.bool, device=idx.device)
        x = self.wte(idx)
        if self.training and self.config.token_dropout > 0:  # whole words, not channels
            x = x * F.dropout(x.new_ones(B, T, 1), self.config.token_dropout)
        if self.local is not None:  # padding must look like the zeros past a sequence's end
            x = torch.where(mask[:, :, None], x, 0.0)
            x = x + self.local(x.transpose(1, 2)).transpose(1, 2)
        if self.cls_token is not None:  # position 0, always real
            x = torch.cat((self.cls_token.expand(B, 1, -1), x), dim=1)
            mask = torch.cat((mask.new_ones(B, 1), mask), dim=1)
        if self.wpe is not None:
            x = x + self.wpe(x.size(1))
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, mask=mask)
        x = self.ln_f(x)
        return self.head(self.pool(x, mask))

    def pool(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, C), over the real tokens only."""
        if self.config.pooling == "cls":
            return x[:, 0]
        if self.config.pooling == "max":
            real = mask[:, :, None]
            largest = x.masked_fill(~real, float("-inf")).max(dim=1).values
            # an empty text (no real token) pools to zeros, as with mean pooling, not -inf
            return torch.where(real.any(dim=1), largest, 0.0)
        return masked_mean(x, mask)
