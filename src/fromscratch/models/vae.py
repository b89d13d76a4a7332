"""A sentence VAE made of a frozen GPT and adapters (Bowman et al. 2016; Li et al. 2020).

    encoder   tokens -> GPT blocks, each followed by an encoder adapter -> LayerNorm
              -> mean over the sentence's tokens -> Linear -> (mu, log sigma^2)
    latent    z = mu + sigma * eps                      (the reparameterisation trick)
    decoder   [prefix(z), x_1 .. x_{T-1}] -> GPT blocks, each followed by a decoder adapter
              that also adds W z into its bottleneck -> logits predicting x_1 .. x_T

The GPT's own weights never change: the encoder and the decoder share it, and only the
adapters, the posterior head and the prefix train. An adapter's up-projection starts at
zero, so at initialisation each adapter is the identity and both stacks compute exactly
what the GPT computes. z reaches the decoder twice: as a soft first token (the prefix,
which also stands in for a beginning-of-sentence token) and added in every layer, which
makes it harder for a strong decoder to ignore z (posterior collapse).

The objective (the negative ELBO, in nats per sentence) is

    -log p(x | z) + beta * KL(q(z | x) || N(0, I))

with beta annealed during training and, optionally, "free bits": each latent dimension's
KL counts at least `free_bits` nats, so the optimizer gains nothing from pushing it lower.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from fromscratch.config import Config
from fromscratch.models.blocks import LayerNorm
from fromscratch.models.common import Model, check_padding_mask, masked_mean
from fromscratch.models.gpt import GPT


@dataclasses.dataclass
class VAEConfig(Config):
    """latent: dimensions of z.  bottleneck: width of each adapter's hidden layer."""

    latent: int = 32
    bottleneck: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_positive("latent", "bottleneck")


class Adapter(nn.Module):
    """A bottleneck MLP with a residual (Houlsby et al. 2019), placed after a GPT block:

        x + up(gelu(down(LN(x)) + W_z z))

    `up` starts at zero, so the adapter starts as the identity. latent > 0 adds z (one
    vector per sentence) into the bottleneck at every position.
    """

    def __init__(self, n_embd: int, bottleneck: int, latent: int = 0):
        super().__init__()
        self.ln = LayerNorm(n_embd, bias=True)
        self.down = nn.Linear(n_embd, bottleneck)
        self.from_z = nn.Linear(latent, bottleneck, bias=False) if latent else None
        self.up = nn.Linear(bottleneck, n_embd)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        h = self.down(self.ln(x))
        if self.from_z is not None:
            h = h + self.from_z(z)[:, None, :]
        return x + self.up(F.gelu(h))


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per dimension, in nats: the closed form
    0.5 * (mu^2 + sigma^2 - log sigma^2 - 1).  Shapes (B, D) -> (B, D)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)


def free_bits_kl(kl: torch.Tensor, free_bits: float) -> torch.Tensor:
    """The KL term of the loss, nats per sentence: sum over dimensions d of
    max(free_bits, mean over the batch of kl[:, d]).

    Clamped per dimension after averaging over the batch (Kingma et al. 2016, dimension-
    wise as in Li et al. 2019): a dimension below the threshold contributes a constant and
    no gradient, so the encoder can use it for free; free_bits=0 is the plain KL.
    """
    return kl.mean(dim=0).clamp(min=free_bits).sum()


class SentenceVAE(Model):
    def __init__(self, gpt: GPT, config: VAEConfig):
        super().__init__()
        self.config = config
        self.gpt = gpt.requires_grad_(False)
        C, D, width = gpt.config.n_embd, config.latent, config.bottleneck
        self.encoder = nn.ModuleList(Adapter(C, width) for _ in gpt.blocks)
        self.to_posterior = nn.Linear(C, 2 * D)  # mu and log sigma^2
        self.decoder = nn.ModuleList(Adapter(C, width, latent=D) for _ in gpt.blocks)
        self.to_prefix = nn.Linear(D, C)
        nn.init.normal_(self.to_prefix.weight, std=0.02)  # as small as a token embedding
        nn.init.zeros_(self.to_posterior.bias)
        self.train()  # the frozen GPT out of dropout from the start, whatever its mode was

    def train(self, mode: bool = True) -> SentenceVAE:
        super().train(mode)
        self.gpt.eval()  # the frozen GPT stays deterministic (no dropout) in training too
        return self

    def run_gpt(
        self,
        adapters: nn.ModuleList,
        idx: torch.Tensor,
        prefix: torch.Tensor | None = None,
        z: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """GPT.forward up to the final LayerNorm, with an adapter after every block.

        idx (B, T) token ids; prefix (B, P, C) embeddings placed before them; z (B, D) for
        the decoder's adapters.  Returns the hidden states (B, P + T, C).
        """
        gpt = self.gpt
        x = gpt.wte(idx)
        if prefix is not None:
            x = torch.cat((prefix, x), dim=1)
        x = gpt.block_input(x)
        for block, adapter in zip(gpt.blocks, adapters, strict=True):
            x = adapter(block(x), z)
        return gpt.ln_f(x)

    def encode(self, idx: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentences idx (B, T), right-padded where mask (B, T) is False -> mu, logvar (B, D).

        The GPT is causal, so padding after a sentence changes none of its hidden states;
        the mean runs over the sentence's own tokens only.
        """
        check_padding_mask(mask, idx, "SentenceVAE")
        h = self.run_gpt(self.encoder, idx)
        mu, logvar = self.to_posterior(masked_mean(h, mask)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, V): position t predicts idx[:, t] from z and idx[:, :t]."""
        prefix = self.to_prefix(z).unsqueeze(1)
        h = self.run_gpt(self.decoder, idx[:, :-1], prefix=prefix, z=z)
        return self.gpt.lm_head(h)

    def forward(
        self, idx: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, sample z with the reparameterisation trick, decode: (logits, mu, logvar)."""
        mu, logvar = self.encode(idx, mask)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + (0.5 * logvar).exp() * eps
        return self.decode(z, idx), mu, logvar

    @torch.no_grad()
    def generate(self, z: torch.Tensor, max_tokens: int) -> torch.Tensor:
        """Greedy decoding from z (B, D): token ids (B, max_tokens).  Sentences are short,
        so each step reruns the whole prefix instead of keeping a KV cache."""
        idx = torch.zeros(z.size(0), 0, dtype=torch.long, device=z.device)
        for _ in range(max_tokens):
            dummy = torch.zeros_like(idx[:, :1])  # decode() drops the last input token
            logits = self.decode(z, torch.cat((idx, dummy), dim=1))
            idx = torch.cat((idx, logits[:, -1].argmax(dim=-1, keepdim=True)), dim=1)
        return idx

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The weights this model adds to the GPT (what a run saves: the GPT is its base)."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {n: t for n, t in self.state_dict().items() if n in names}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load what trainable_state saved, all of it and nothing else."""
        expected, given = {n for n, p in self.named_parameters() if p.requires_grad}, set(state)
        if given != expected:
            raise ValueError(
                "adapter weights do not fit this model: "
                f"missing {sorted(expected - given)}, unexpected {sorted(given - expected)}"
            )
        self.load_state_dict(state, strict=False)
