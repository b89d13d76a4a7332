"""An LSTM language model, with the same interface as GPT (the distillation student).

Embedding -> n_layer LSTM -> logits.  No attention and no context limit: the state
carries the past, which is also the LSTM's "KV cache" when sampling.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from fromscratch.config import Config
from fromscratch.models.common import LanguageModel

State = tuple[torch.Tensor, torch.Tensor]


@dataclasses.dataclass
class LSTMConfig(Config):
    """vocab_size; context: the training sequence length (the LSTM has no limit itself);
    n_layer stacked LSTMs of n_embd units (also the embedding size); dropout on the
    embeddings, between layers and before the head; bias in the LSTM gates; tie_weights:
    head = embedding."""

    vocab_size: int = 256
    context: int = 256
    n_layer: int = 2
    n_embd: int = 256
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_positive("vocab_size", "context", "n_layer", "n_embd")
        self._check_dropout("dropout")


class LSTMLanguageModel(LanguageModel):
    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = config
        C = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, C)
        self.drop = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            C, C, config.n_layer, bias=config.bias, batch_first=True,
            dropout=config.dropout if config.n_layer > 1 else 0.0,
        )  # fmt: skip
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        # Unit-variance embeddings (nn.Embedding's own init), not GPT's std 0.02: an LSTM
        # layer shrinks its input, and from inputs that small a stack of two or more
        # layers passes almost nothing on and stays stuck at unigram statistics.
        nn.init.normal_(self.wte.weight, std=1.0)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (B, T) -> logits (B, T, vocab_size); logits[:, t] predict idx[:, t+1]."""
        return self.forward_with_state(idx)[0]

    def forward_with_state(
        self, idx: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """Also return the final (h, c) state, to continue from it later."""
        x, state = self.lstm(self.drop(self.wte(idx)), state)
        return self.lm_head(self.drop(x)), state

    def next_token_logits(
        self, idx: torch.Tensor, state: State | None
    ) -> tuple[torch.Tensor, State]:
        """With the state of the previous step, read only the newest token; without, read
        all of idx (not just the last `context` tokens: the state sees everything, so this
        is what the cached path computes too)."""
        if state is None:
            logits, state = self.forward_with_state(idx)
        else:
            logits, state = self.forward_with_state(idx[:, -1:], state)
        return logits[:, -1], state
