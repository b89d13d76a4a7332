"""The models of the course, built from scratch (read attention.py first).

Every language model: forward(idx (B, T)) -> logits (B, T, V) (Perceiver AR: its last
min(latents, T) positions only) and generate(...); nll_bits(logits, targets), a function
of this package, gives exact bits from any of them.
Every config: a plain dataclass with from_dict/to_dict that rejects bad values at once.
"""

from fromscratch.config import ConfigError
from fromscratch.models.attention import Attention, KVCache, attend
from fromscratch.models.blocks import MLP, Block, LayerNorm
from fromscratch.models.classifier import Classifier, ClassifierConfig
from fromscratch.models.common import (
    ACTIVATIONS,
    ATTENTIONS,
    POSITIONS,
    SamplingError,
    TransformerConfig,
    measure_matmul_flops,
    nll_bits,
    sample_next_token,
)
from fromscratch.models.encoder_decoder import EncoderDecoder, EncoderDecoderConfig
from fromscratch.models.gpt import GPT, GPTConfig
from fromscratch.models.lstm import LSTMConfig, LSTMLanguageModel
from fromscratch.models.perceiver import Perceiver, PerceiverConfig, PerceiverLayer
from fromscratch.models.recurrent import document_bits
from fromscratch.models.vae import SentenceVAE, VAEConfig

__all__ = [
    "ACTIVATIONS",
    "ATTENTIONS",
    "GPT",
    "MLP",
    "POSITIONS",
    "Attention",
    "Block",
    "Classifier",
    "ClassifierConfig",
    "ConfigError",
    "EncoderDecoder",
    "EncoderDecoderConfig",
    "GPTConfig",
    "KVCache",
    "LSTMConfig",
    "LSTMLanguageModel",
    "LayerNorm",
    "Perceiver",
    "PerceiverConfig",
    "PerceiverLayer",
    "SamplingError",
    "SentenceVAE",
    "TransformerConfig",
    "VAEConfig",
    "attend",
    "document_bits",
    "measure_matmul_flops",
    "nll_bits",
    "sample_next_token",
]
