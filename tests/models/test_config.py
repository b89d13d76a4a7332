"""Configs: bad values fail at construction with one line naming field and allowed values."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from fromscratch import FromScratchError
from fromscratch.models import (
    ClassifierConfig,
    ConfigError,
    EncoderDecoderConfig,
    GPTConfig,
    LSTMConfig,
    PerceiverConfig,
)

ALL = [GPTConfig, ClassifierConfig, PerceiverConfig, EncoderDecoderConfig]


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("attention", "foo", "simple, scaled, qkv, multihead"),
        ("position", "absolute", "none, learned, sinusoidal, relative, rope, alibi"),
        ("norm", "sandwich", "pre, post"),
        ("activation", "relu", "gelu, gelu_tanh"),
    ],
)
def test_bad_choice_names_field_and_allowed_values(cls, field, value, allowed):
    with pytest.raises(ValueError) as error:
        cls(**{field: value})
    message = str(error.value)
    assert "\n" not in message
    assert f"{cls.__name__}.{field}" in message and repr(value) in message and allowed in message
    assert isinstance(error.value, FromScratchError)


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(n_embd=30, n_head=4), "n_embd"),
        (dict(n_embd=12, n_head=4, position="rope"), "position"),  # head size 3 is odd
        (dict(dropout=1.0), "dropout"),
        (dict(n_layer=0), "n_layer"),
        (dict(n_head="4"), "n_head"),  # a string from a sloppy YAML file
        (dict(fast="yes"), "fast"),
        (dict(dropout=None), "dropout"),
        (dict(attn_dropout=-0.1), "attn_dropout"),
    ],
)
def test_bad_numbers_and_types(kw, field):
    with pytest.raises(ConfigError, match=re.escape(f"GPTConfig.{field}")):
        GPTConfig(**kw)


def test_model_specific_fields():
    with pytest.raises(
        ConfigError, match=re.escape("ClassifierConfig.pooling: 'sum' is not one of mean")
    ):
        ClassifierConfig(pooling="sum")
    with pytest.raises(ConfigError, match=re.escape("PerceiverConfig.latents")):
        PerceiverConfig(context=8, latents=16)
    with pytest.raises(ConfigError, match=re.escape("LSTMConfig.n_embd")):
        LSTMConfig(n_embd=0)


def test_an_int_is_a_fine_float():
    assert GPTConfig(dropout=0).dropout == 0


def test_a_number_written_as_text_is_a_fine_float():
    # YAML 1.1 (PyYAML's) reads 1e-1, a number without a dot, as the string "1e-1"
    assert GPTConfig(dropout="1e-1").dropout == 0.1
    assert yaml.safe_load("dropout: 1e-1") == {"dropout": "1e-1"}
    for text in ("nan", "-inf", float("inf")):
        with pytest.raises(ConfigError, match=r"GPTConfig.dropout: -?(nan|inf) must be a finite"):
            GPTConfig(dropout=text)
    with pytest.raises(ConfigError, match=r"GPTConfig.dropout: 'none' is not of type float"):
        GPTConfig(dropout="none")
    with pytest.raises(ConfigError, match=r"GPTConfig.n_head: '4' is not of type int"):
        GPTConfig(n_head="4")  # text is forgiven for floats, and exponents


def test_a_whole_number_in_exponent_form_is_a_fine_integer():
    # 2.0e+6 is a float to YAML, 1e3 a string: either names an integer
    assert yaml.safe_load("a: 2.0e+6\nb: 1e3") == {"a": 2000000.0, "b": "1e3"}
    config = GPTConfig(context=2.0e3, n_embd="1.28e2")
    assert (config.context, config.n_embd) == (2000, 128)
    assert type(config.context) is int and type(config.n_embd) is int
    with pytest.raises(ConfigError, match=r"GPTConfig.context: 2500.5 is not of type int"):
        GPTConfig(context=2.5005e3)


@pytest.mark.parametrize("cls", [*ALL, LSTMConfig])
def test_from_dict_rejects_unknown_keys(cls):
    with pytest.raises(
        ConfigError, match=re.escape(f"{cls.__name__}: unknown keys n_heads, blocksize")
    ):
        cls.from_dict({"n_layer": 2, "n_heads": 2, "blocksize": 8})


@pytest.mark.parametrize("cls", [*ALL, LSTMConfig])
@pytest.mark.parametrize("settings", [1, "n_layer: 2", ["n_layer", 2]])
def test_from_dict_wants_a_mapping(cls, settings):
    with pytest.raises(ConfigError, match=f"{cls.__name__}: expected a mapping of settings, got"):
        cls.from_dict(settings)


@pytest.mark.parametrize("cls", [*ALL, LSTMConfig])
def test_round_trip_through_json_and_yaml(cls):
    config = cls(n_layer=3, dropout=0.1)
    assert cls.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert cls.from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict()))) == config
