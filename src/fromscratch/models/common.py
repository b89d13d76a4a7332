"""What every model shares: the transformer config, the base class, bits, sampling, FLOP/s.

Nothing here is a transformer part (those are in `blocks.py`); this is the plumbing that
makes every model report, save and sample the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fromscratch import FromScratchError
from fromscratch.config import Config
from fromscratch.models.positions import AT_THE_INPUT, INSIDE_ATTENTION

ATTENTIONS = ("simple", "scaled", "qkv", "multihead")
POSITIONS = ("none", *AT_THE_INPUT, *INSIDE_ATTENTION)
NORMS = ("pre", "post")
ACTIVATIONS = ("gelu", "gelu_tanh")


@dataclasses.dataclass
class TransformerConfig(Config):
    """The fields every transformer here shares (each model's config adds its own).

    vocab_size: tokens in the vocabulary.  context: the longest sequence (block size).
    attention: simple | scaled | qkv | multihead, the four steps of the lecture.
    position: none | learned | sinusoidal (added to the embeddings) or relative | rope |
    alibi (inside attention).  norm: pre (GPT-2) or post (the original transformer).
    dropout: on the embeddings and every residual branch.  attn_dropout: on the attention
    weights; None = the same as dropout.  On CPU, dropping attention weights under a
    padding mask sends PyTorch's fused kernel to its slow unfused fallback (a classifier
    step measured 2.5x slower), so a classifier may keep dropout and set attn_dropout=0.
    bias: biases in Linear and LayerNorm.  activation: the MLP's GELU, exact (gelu) or
    GPT-2's tanh approximation (gelu_tanh: loads GPT-2 weights exactly; slower on CPU).
    fast: PyTorch's fused attention kernel instead of the plain code (same numbers,
    tested).  relative_clip: Shaw et al.'s clipping distance.
    """

    vocab_size: int = 256
    context: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    attn_dropout: float | None = None
    bias: bool = True
    attention: str = "multihead"
    position: str = "learned"
    norm: str = "pre"
    activation: str = "gelu"
    fast: bool = False
    relative_clip: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_positive("vocab_size", "context", "n_layer", "n_head", "n_embd")
        self._check_positive("relative_clip")
        self._check_dropout("dropout", "attn_dropout")
        self._check_choice("attention", ATTENTIONS)
        self._check_choice("position", POSITIONS)
        self._check_choice("norm", NORMS)
        self._check_choice("activation", ACTIVATIONS)
        if self.n_embd % self.n_head:
            self._fail("n_embd", f"{self.n_embd} is not divisible by n_head={self.n_head}")
        if self.n_embd % width_multiple(self.n_head, self.position):
            paired = "head size (n_embd / n_head)" if self.position == "rope" else "n_embd"
            self._fail("position", f"{self.position} needs an even {paired}")


def width_multiple(n_head: int, position: str) -> int:
    """The widths (n_embd) a transformer config takes are the multiples of this: the heads
    split the width evenly, and rope turns each head's features in pairs, sinusoidal
    positions the embedding's."""
    if position == "rope":
        return 2 * n_head
    if position == "sinusoidal":
        return math.lcm(2, n_head)
    return n_head


# --------------------------------------------------------------------------- models


class Model(nn.Module):
    """Base class of every model: parameter count and the optimizer, done one way."""

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Parameters, each shared (tied) tensor counted once.

        non_embedding=True leaves out the embedding lookups (not matmuls), for nanoGPT's FLOP
        estimate: learned position embeddings, and token embeddings unless they are tied to
        the output layer (then they are its matmul, and stay in as nanoGPT's do).
        """
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            wte, wpe, head = (getattr(self, name, None) for name in ("wte", "wpe", "lm_head"))
            if wpe is not None:
                n -= sum(p.numel() for p in wpe.parameters())
            if wte is not None and (head is None or head.weight is not wte.weight):
                n -= wte.weight.numel()
        return n

    def configure_optimizer(
        self,
        weight_decay: float,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.95),
        fused: bool | None = None,
    ) -> torch.optim.AdamW:
        """AdamW with weight decay on matrices and embeddings (>= 2-D) only.

        Biases and LayerNorm gains are 1-D: decaying them towards zero only hurts.
        fused=None uses PyTorch's fused kernel (one kernel for all tensors; CPU and GPU).
        """
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused is None or fused)


class LanguageModel(Model):
    """A model of p(next token | previous tokens): forward(idx) -> logits (B, T, V).

    Subclasses may override `next_token_logits` to reuse work between sampling steps (a
    KV cache, an LSTM state); `generate` itself is the same for every model.
    """

    config: Any

    def next_token_logits(self, idx: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """Logits (B, V) of the token after idx, and what to pass next time (None: nothing)."""
        return self(idx[:, -self.config.context :])[:, -1], None

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        vocab: int | None = None,
    ) -> torch.Tensor:
        """Append max_new_tokens sampled tokens to idx (B, T) and return (B, T + new).

        temperature=0 is greedy; top_k keeps the k likeliest tokens, top_p the smallest set
        whose probability reaches p.  With use_cache the model reuses work between steps and
        samples the same tokens (for the same generator) as without.  vocab: sample only ids
        below it, for a vocabulary padded beyond the tokenizer's (the padding ids decode to
        nothing).  Call `model.eval()` first if the model has dropout: this method leaves the
        mode alone.
        """
        check_sampling(max_new_tokens, temperature, top_k, top_p)
        check_token_ids(idx, self.config.vocab_size)
        if vocab is not None and not 1 <= vocab <= self.config.vocab_size:
            raise SamplingError(f"generate: vocab={vocab} must be in [1, {self.config.vocab_size}]")
        cache = None
        for _ in range(max_new_tokens):
            logits, cache = self.next_token_logits(idx, cache if use_cache else None)
            logits = logits[..., :vocab]  # the ids keep their places: only the tail goes
            next_token = sample_next_token(logits, temperature, top_k, top_p, generator)
            idx = torch.cat((idx, next_token), dim=1)
        return idx


def check_padding_mask(mask: torch.Tensor | None, tokens: torch.Tensor, who: str) -> None:
    """A padding mask is bool (True = real token) and shaped as its tokens (B, T): checked
    here, where attention would fail deep inside, or broadcast a (1, T) one silently."""
    if mask is not None and (mask.dtype != torch.bool or mask.shape != tokens.shape):
        raise ValueError(
            f"{who}: a mask of {mask.dtype} {tuple(mask.shape)}; it must be bool (True = real "
            f"token) and shaped as the tokens {tuple(tokens.shape)}"
        )


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> (B, C): the mean over the positions where mask (B, T) is True; zeros
    where none is."""
    real = mask[:, :, None]
    # where, not multiply: a padded position may hold anything, even inf
    return torch.where(real, x, 0.0).sum(dim=1) / real.sum(dim=1).clamp(min=1)


class SamplingError(FromScratchError, ValueError):
    """Bad arguments to generate: a one-line message naming the argument and what is allowed."""


def check_sampling(
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    where: str = "generate",
    names: dict[str, str] | None = None,
) -> None:
    """A one-line SamplingError for the first argument out of range.  where, names: what the
    message calls the caller and each argument (`fromscratch sample` and its flags)."""
    limits = (
        (
            "max_new_tokens",
            max_new_tokens,
            is_count(max_new_tokens) and max_new_tokens >= 0,
            "an integer >= 0",
        ),
        # a negative temperature would make the unlikeliest tokens likeliest
        ("temperature", temperature, 0 <= temperature < math.inf, "finite and >= 0 (0: greedy)"),
        ("top_k", top_k, top_k is None or (is_count(top_k) and top_k >= 1), "an integer >= 1"),
        ("top_p", top_p, top_p is None or 0 < top_p <= 1, "in (0, 1]"),
    )
    for argument, value, ok, allowed in limits:
        if not ok:
            name = (names or {}).get(argument, argument)
            raise SamplingError(f"{where}: {name}={value} must be {allowed}")


def is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_token_ids(idx: torch.Tensor, vocab_size: int, name: str = "idx") -> None:
    """A prompt's ids are typed by hand or come from another tokenizer: check them once
    here, where the model would fail deep inside (the embedding lookup only says "index out
    of range in self").  name: what the message calls the prompt."""
    if idx.dim() != 2 or idx.numel() == 0 or idx.dtype not in (torch.long, torch.int):
        raise SamplingError(
            f"generate: {name} must be a non-empty (B, T) tensor of int64 or int32 token ids, "
            f"not {idx.dtype} of shape {tuple(idx.shape)}"
        )
    if idx.min() < 0 or idx.max() >= vocab_size:
        raise SamplingError(
            f"generate: token ids {idx.min().item()}..{idx.max().item()} are outside the "
            f"vocabulary [0, {vocab_size})"
        )


def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample one token id per row from logits (B, V); returns (B, 1)."""
    if temperature < torch.finfo(torch.float32).tiny:  # 0, or too small for the division
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float()
    if top_k is not None:  # before the division: a huge temperature would round them level
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    # the largest logit 0 first: divided by a tiny temperature, it would overflow to inf
    # (and the softmax give NaN), where the rest only fall to -inf; a temperature past
    # float32's range would be inf, and a masked -inf over it NaN
    temperature = min(temperature, torch.finfo(torch.float32).max)
    logits = (logits - logits.amax(dim=-1, keepdim=True)) / temperature
    probs = F.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1:  # 1 keeps all (float32 sums reach 1 before the tail)
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the likelier tokens
        sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)  # the first always stays
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, num_samples=1, generator=generator)


# --------------------------------------------------------------------------- metrics


@contextlib.contextmanager
def evaluating(model: nn.Module):
    """The model in eval mode (no dropout) inside, and in the mode it was in after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def token_bits(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -1) -> torch.Tensor:
    """Negative log-likelihood of every target, in bits: a float tensor shaped as targets.

    logits (..., V) and targets (...) of the same leading shape; a target equal to
    ignore_index gets 0 bits.
    """
    nats = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        targets.reshape(-1),
        ignore_index=ignore_index,
        reduction="none",
    )
    return (nats / math.log(2)).view(targets.shape)


def nll_bits(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -1) -> torch.Tensor:
    """Summed negative log-likelihood of targets, in bits (a 0-d float tensor).

    Divide by the number of tokens (or bytes) scored to get exact bits per token (byte): a
    sum, not a mean of means, so batches of any size add up.
    """
    return token_bits(logits, targets, ignore_index).sum()


def measure_matmul_flops(
    size: int = 1024, seconds: float = 1.0, dtype=torch.float32, device: str = "cpu"
) -> float:
    """This device's achievable FLOP/s for a square matmul: the denominator of MFU."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    on_gpu = torch.device(device).type == "cuda"
    sync = torch.cuda.synchronize if on_gpu else lambda: None
    burst = 10 if on_gpu else 1  # queue several before waiting, so a GPU never idles
    for _ in range(3):  # warm-up: thread pool, caches, clocks
        torch.mm(a, b)
    sync()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(burst):
            torch.mm(a, b)
            n += 1
        sync()
    return 2 * size**3 * n / (time.perf_counter() - start)
