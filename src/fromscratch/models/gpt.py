"""GPT: a decoder-only transformer language model (Radford et al. 2018, 2019).

Tokens -> embeddings (+ positions) -> n_layer causal blocks -> LayerNorm -> logits over
the vocabulary for the next token at every position.  The shape of this file follows
nanoGPT's model.py; the blocks themselves are in blocks.py, attention in attention.py.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
from torch import nn

from fromscratch.models.attention import Attention, KVCache
from fromscratch.models.blocks import Block, LayerNorm, init_gpt2
from fromscratch.models.common import LanguageModel, TransformerConfig
from fromscratch.models.positions import absolute_position


@dataclasses.dataclass
class GPTConfig(TransformerConfig):
    """See TransformerConfig for the shared fields.

    tie_weights: the output layer reuses the token embedding matrix (GPT-2 does; it saves
    vocab_size * n_embd parameters and works as well or better).
    """

    tie_weights: bool = True


class GPT(LanguageModel):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        C = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, C)
        self.wpe = absolute_position(config)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(config, attn=Attention(config, causal=True)) for _ in range(config.n_layer)
        )
        # pre-norm leaves the residual stream unnormalised: normalise once before the head
        self.ln_f = LayerNorm(C, config.bias) if config.norm == "pre" else nn.Identity()
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight
        init_gpt2(self, n_residual=2 * config.n_layer)

    def forward(self, idx: torch.Tensor, cache: list[KVCache] | None = None) -> torch.Tensor:
        """idx (B, T) token ids -> logits (B, T, vocab_size); logits[:, t] predict idx[:, t+1].

        cache: one KVCache per layer; idx then holds only the tokens after the cached ones.
        """
        past = cache[0].length if cache is not None else 0
        x = self.block_input(self.wte(idx), past)
        for i, block in enumerate(self.blocks):
            x = block(x, cache=cache[i] if cache is not None else None)
        return self.lm_head(self.ln_f(x))

    def block_input(self, embeddings: torch.Tensor, past: int = 0) -> torch.Tensor:
        """The first block's input: embeddings (B, T, C) at positions past .. past + T - 1,
        with their positions added (learned or sinusoidal; the others live inside attention)
        and dropout.  Vectors other than token embeddings may stand in for some tokens: a
        latent prefix (vae.py), the memory of the previous run (recurrent.py).
        """
        T = embeddings.size(1)
        if past + T > self.config.context:
            raise ValueError(f"GPT: {past + T} tokens exceed context={self.config.context}")
        if self.wpe is not None:
            embeddings = embeddings + self.wpe(T, offset=past)
        return self.drop(embeddings)

    # ----------------------------------------------------------------------- sampling

    def next_token_logits(
        self, idx: torch.Tensor, cache: list[KVCache] | None
    ) -> tuple[torch.Tensor, list[KVCache]]:
        """With a cache from the previous step, run only the newest token.

        Once the window is full (context tokens cached), the oldest token must drop out,
        and every cached key was computed with it in view: we start a fresh cache on the
        last `context` tokens, which is exactly what sampling without a cache computes.
        """
        if cache is not None and cache[0].length < self.config.context:
            return self(idx[:, -1:], cache)[:, -1], cache
        cache = [KVCache() for _ in self.blocks]
        return self(idx[:, -self.config.context :], cache)[:, -1], cache

    # ----------------------------------------------------------------------- speed

    def estimate_flops_per_token(self) -> float:
        """Training FLOPs per token, nanoGPT's (PaLM appendix B's) estimate.

        6N for the matmuls with the parameters (2 forward, 4 backward per multiply-add),
        plus 12 * L * H * Q * T for attention's two (T x T) products, at full context T.
        """
        c = self.config
        N = self.num_parameters(non_embedding=True)
        return 6 * N + 12 * c.n_layer * c.n_head * (c.n_embd // c.n_head) * c.context

    def estimate_mfu(self, tokens_per_second: float, peak_flops: float) -> float:
        """Model FLOPs utilisation: achieved training FLOP/s over the hardware's peak."""
        return self.estimate_flops_per_token() * tokens_per_second / peak_flops

    # ----------------------------------------------------------------------- GPT-2

    @classmethod
    def from_gpt2(cls, model_or_path: Any) -> GPT:
        """A GPT holding the weights of a Hugging Face GPT2LMHeadModel.

        model_or_path: the model, or a local folder written by its `save_pretrained`
        (nothing is downloaded).  GPT-2 is this architecture with learned positions,
        pre-norm, biases and GELU's tanh approximation, its output layer tied to the token
        embeddings or not.  Any other setting is an error, rather than a model that loads
        and computes something else.  HF stores its projections as Conv1D, whose weight is
        the transpose of a Linear's.
        """
        from transformers import GPT2LMHeadModel

        if isinstance(model_or_path, str | os.PathLike):
            hf = GPT2LMHeadModel.from_pretrained(model_or_path, local_files_only=True)
        else:
            hf = model_or_path
        h = hf.config
        if h.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(
                f"GPT.from_gpt2: activation_function={h.activation_function!r}; only GELU's "
                "tanh approximation (gelu_new, gelu_pytorch_tanh)"
            )
        scaling = "only GPT-2's standard 1/sqrt(d) attention scaling"
        if h.scale_attn_by_inverse_layer_idx:
            raise ValueError(f"GPT.from_gpt2: scale_attn_by_inverse_layer_idx=True; {scaling}")
        if not h.scale_attn_weights:
            raise ValueError(f"GPT.from_gpt2: scale_attn_weights=False; {scaling}")
        if (h.n_inner or 4 * h.n_embd) != 4 * h.n_embd:
            raise ValueError(f"GPT.from_gpt2: n_inner={h.n_inner}; only 4 * n_embd={4 * h.n_embd}")
        if h.layer_norm_epsilon != 1e-5:  # GPT-2's, which our LayerNorm hard-codes
            raise ValueError(f"GPT.from_gpt2: layer_norm_epsilon={h.layer_norm_epsilon}; only 1e-5")
        if h.add_cross_attention:
            raise ValueError("GPT.from_gpt2: add_cross_attention=True; GPT has no cross-attention")
        config = GPTConfig(
            vocab_size=h.vocab_size,
            context=h.n_positions,
            n_layer=h.n_layer,
            n_head=h.n_head,
            n_embd=h.n_embd,
            dropout=0.0,
            bias=True,
            attention="multihead",
            position="learned",
            norm="pre",
            activation="gelu_tanh",
            tie_weights=h.tie_word_embeddings,
        )
        model = cls(config)
        theirs = hf.state_dict()
        conv1d = (
            "attn.c_attn.weight",
            "attn.c_proj.weight",
            "mlp.c_fc.weight",
            "mlp.c_proj.weight",
        )
        ours = {
            "wte.weight": theirs["transformer.wte.weight"],
            "wpe.weight": theirs["transformer.wpe.weight"],
            "ln_f.weight": theirs["transformer.ln_f.weight"],
            "ln_f.bias": theirs["transformer.ln_f.bias"],
        }
        for i in range(config.n_layer):
            for name in (
                "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
            ):  # fmt: skip
                w = theirs[f"transformer.h.{i}.{name}"]
                ours[f"blocks.{i}.{name}"] = w.t() if name in conv1d else w
        ours["lm_head.weight"] = theirs["lm_head.weight"]  # wte's own tensor, when tied
        model.load_state_dict(ours, strict=True)
        return model
