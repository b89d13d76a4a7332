"""A "recurrent" GPT: read a long document in chunks, each run remembering the last one.

A GPT sees at most `context` (c) tokens.  To read further without retraining, run the
document in chunks and hand each run a memory of the previous one:

  run 0      tokens x_0 .. x_{c-1}, predicting x_1 .. x_c
  run k > 0  m memory positions, then the next c - m tokens (m = memory_tokens, 1 by
             default), predicting the token after each of them

The memory sits at positions 0 .. m-1 and the chunk at positions m .. c-1, so a run never
exceeds the context.  What the memory is gives the four variants of this module:

  sliding    no chunks: every token is predicted from a window of the c tokens before it
             (windows every `stride` tokens) -- the most a model of context c can see;
  truncated  the chunks alone (positions 0 ..), no memory -- the least;
  input      the previous run's *last hidden representation* -- the final hidden state
             (after the last LayerNorm, what the head turns into logits) at its last m
             positions -- replaces the token embeddings of the memory positions (the
             position embeddings are added as for any token).  With tied embeddings that
             vector lives in the token-embedding space: its dot product with a token's
             embedding is that token's logit;
  layers     at the input of *every* block, the memory positions hold the hidden state
             that the previous run's last m positions had at the input of that block.
             Every layer then attends to the keys and values those tokens had, computed
             with the longer context they saw: Transformer-XL with an m-token memory.

Tokens are predicted exactly once across runs: x_s, the first token of a chunk, was already
predicted by the last position of the previous run (with its full context), so run k
scores only the predictions of its chunk positions.  With memory_tokens=0 every run is the
plain model on c tokens (tested).  Nothing is trained; the memory is fed as is.

The same code drives the project's GPT (module by module) and Hugging Face's
GPT2LMHeadModel (through `inputs_embeds` and a forward pre-hook on each block), so a
pretrained GPT-2 and a GPT trained here are measured the same way.
"""

from __future__ import annotations

import torch

from fromscratch import FromScratchError
from fromscratch.models.common import evaluating, token_bits

VARIANTS = ("sliding", "truncated", "input", "layers")


class OwnGPT:
    """The project's GPT (models/gpt.py), run module by module."""

    def __init__(self, gpt):
        self.model = gpt
        self.context = gpt.config.context

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """Token embeddings (B, T, C), without positions."""
        return self.model.wte(idx)

    def run(
        self, embeddings: torch.Tensor, layer_memory: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (B, T, V) and the hidden states: the input of every block, then the final
        (normalised) state.  layer_memory[i] (B, m, C) replaces the first m positions of the
        input of block i."""
        gpt = self.model
        x = gpt.block_input(embeddings)
        states = []
        for i, block in enumerate(gpt.blocks):
            if layer_memory is not None:
                x = _with_memory(x, layer_memory[i])
            states.append(x)
            x = block(x)
        x = gpt.ln_f(x)
        states.append(x)
        return gpt.lm_head(x), states


class HFGPT2:
    """A Hugging Face GPT2LMHeadModel: embeddings go in as `inputs_embeds` (the model adds
    its position embeddings), and a pre-hook on each block records (and for `layers`
    replaces) the block's input."""

    def __init__(self, model):
        self.model = model
        self.context = model.config.n_positions

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model.transformer.wte(idx)

    def run(
        self, embeddings: torch.Tensor, layer_memory: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        states = []

        def before_block(i):
            def hook(module, args, kwargs):
                x = args[0]  # GPT2Model calls every block with the hidden states first
                if layer_memory is not None:
                    x = _with_memory(x, layer_memory[i])
                states.append(x)
                return (x, *args[1:]), kwargs

            return hook

        blocks = self.model.transformer.h
        hooks = [
            block.register_forward_pre_hook(before_block(i), with_kwargs=True)
            for i, block in enumerate(blocks)
        ]
        try:
            out = self.model.transformer(inputs_embeds=embeddings, use_cache=False)
        finally:
            for hook in hooks:
                hook.remove()
        hidden = out.last_hidden_state  # after ln_f
        states.append(hidden)
        return self.model.lm_head(hidden), states


def backbone(model) -> OwnGPT | HFGPT2:
    """The driver for `model`: the project's GPT or a Hugging Face GPT2LMHeadModel."""
    from fromscratch.models.gpt import GPT

    if isinstance(model, GPT):
        return OwnGPT(model)
    if type(model).__name__ == "GPT2LMHeadModel":
        return HFGPT2(model)
    raise FromScratchError(
        f"recurrent: cannot drive a {type(model).__name__}; allowed: GPT, GPT2LMHeadModel"
    )


def _with_memory(x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """x with its first m positions replaced by memory (B, m, C)."""
    return torch.cat((memory.to(x.dtype), x[:, memory.size(1) :]), dim=1)


def document_length(context: int, chunks: int, memory_tokens: int = 1) -> int:
    """Tokens in a document of `chunks` runs: c, then c - m new tokens per run, plus the
    last target.  Documents of this length are split into whole runs for every variant."""
    return context + (chunks - 1) * (context - memory_tokens) + 1


def chunk_positions(position, context: int, memory_tokens: int = 1):
    """For targets at `position` (their index in the document, an array): the run that
    predicts each (0, 1, ...) and how many tokens of that run's chunk it sees (its offset:
    1 .. c in run 0, 1 .. c - m in the later runs)."""
    import numpy as np

    new = context - memory_tokens  # tokens per later chunk
    later = np.maximum(position - context - 1, 0) // new
    first = position <= context
    chunk = np.where(first, 0, 1 + later)
    offset = np.where(first, position, position - context - later * new)
    return chunk, offset


@torch.no_grad()
def document_bits(
    model,
    docs: torch.Tensor,
    variant: str,
    memory_tokens: int = 1,
    stride: int = 1,
    batch_size: int = 64,
) -> torch.Tensor:
    """Bits of every predicted token of the documents docs (B, N): (B, N - 1), column t the
    bits of token t + 1.  variant: one of VARIANTS; model: a GPT or a GPT2LMHeadModel."""
    if variant not in VARIANTS:
        raise FromScratchError(
            f"recurrent: variant {variant!r} is not one of {', '.join(VARIANTS)}"
        )
    net = backbone(model)
    c = net.context
    check_memory_tokens(memory_tokens, c)
    if docs.size(1) < c + 1:
        raise FromScratchError(f"recurrent: documents of {docs.size(1)} tokens; need > {c}")
    with evaluating(model):  # no dropout: the bits of the model itself
        if variant == "sliding":
            return _sliding_bits(net, docs, stride, batch_size)
        return _chunked_bits(net, docs, variant, memory_tokens)


def _chunked_bits(net, docs: torch.Tensor, variant: str, m: int) -> torch.Tensor:
    """Run after run, each with the memory of the previous one (see the module docstring)."""
    c, N = net.context, docs.size(1)
    logits, states = net.run(net.embed(docs[:, :c]))
    bits = [token_bits(logits, docs[:, 1 : c + 1])]
    start = c  # the first token of the next chunk (already predicted)
    while start < N - 1:
        chunk = docs[:, start : min(start + c - m, N - 1)]
        L = chunk.size(1)
        if variant == "truncated" or m == 0:
            logits, new_states = net.run(net.embed(chunk))
        elif variant == "input":
            memory = states[-1][:, -m:]  # the final hidden state of the last m positions
            logits, new_states = net.run(torch.cat((memory, net.embed(chunk)), dim=1))
        else:  # layers: the last m tokens stand in the memory positions (only their ids:
            # every block's input there is replaced by the hidden states they had)
            ids = docs[:, start - m : start + L]
            logits, new_states = net.run(net.embed(ids), [s[:, -m:] for s in states[:-1]])
        bits.append(token_bits(logits[:, -L:], docs[:, start + 1 : start + L + 1]))
        states, start = new_states, start + L
    return torch.cat(bits, dim=1)


def check_memory_tokens(memory_tokens: int, context: int, who: str = "recurrent") -> None:
    """0 to context/2: each later run then still reads at least as many new tokens as
    it carries over."""
    if not 0 <= memory_tokens <= context // 2:
        raise FromScratchError(
            f"{who}: memory_tokens={memory_tokens} must be between 0 and context/2 = {context // 2}"
        )


def check_stride(stride: int, context: int, who: str = "recurrent") -> None:
    """The sliding windows' stride: 1 to the context (a longer one would leave the tokens
    between two windows unscored)."""
    if not 1 <= stride <= context:
        raise FromScratchError(
            f"{who}: stride={stride} must be between 1 and the model's context {context}"
        )


def _sliding_bits(net, docs: torch.Tensor, stride: int, batch_size: int) -> torch.Tensor:
    """Windows of c tokens ending every `stride` tokens; each scores only its new targets,
    so every token after the first window is predicted with c - stride + 1 to c tokens of
    context (stride 1: exactly c)."""
    c, (B, N) = net.context, docs.shape
    check_stride(stride, c)
    ends = [*range(c, N - 1, stride), N - 1]  # a window predicts the tokens up to `end`
    windows = torch.stack([docs[:, e - c : e + 1] for e in ends], dim=1).flatten(0, 1)
    bits = torch.cat(
        [token_bits(net.run(net.embed(w[:, :-1]))[0], w[:, 1:]) for w in windows.split(batch_size)]
    ).view(B, len(ends), c)
    kept = [bits[:, 0]]  # the first window scores all its c targets
    for i in range(1, len(ends)):
        kept.append(bits[:, i, c - (ends[i] - ends[i - 1]) :])
    return torch.cat(kept, dim=1)
