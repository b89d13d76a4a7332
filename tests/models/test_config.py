"""Configs: bad values fail at construction with one line naming field and allowed values."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import ClassVar

import pytest
import yaml

from fromscratch import FromScratchError
from fromscratch.config import Config, check_integer, is_of_type
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


@dataclasses.dataclass
class Probe(Config):
    """A config of the field kinds the real ones use, for the base class's checks."""

    JOINED_BY: ClassVar[dict[str, str]] = {"splits": "+"}

    share: float | None = None  # unset: another field's value
    rate: float = 0.5
    count: int | None = None
    splits: str = "train"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_in("[0, 1)", "share", "rate")


def test_an_unset_field_does_not_end_the_checks_of_the_others():
    assert Probe(rate=0.25).share is None
    with pytest.raises(ConfigError, match=re.escape("Probe.rate: 2.0 must be in [0, 1)")):
        Probe(rate=2.0)


def test_a_type_error_names_null_and_the_joined_form():
    with pytest.raises(ConfigError, match=re.escape("Probe.count: 'x' is not of type int or null")):
        Probe(count="x")
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "Probe.splits: ['train', 'val'] is not of type str (several are one text, "
            "joined by '+': train+val)"
        ),
    ):
        Probe(splits=["train", "val"])


def test_a_whole_number_with_a_signed_exponent_is_a_fine_integer():
    # 1e+3 is a string to PyYAML, as 1e3 is
    assert yaml.safe_load("a: 1e+3") == {"a": "1e+3"}
    assert GPTConfig(context="1e+3").context == 1000 and Probe(count="2E+1").count == 20


def test_unknown_keys_name_every_allowed_one():
    allowed = ", ".join(f.name for f in dataclasses.fields(Probe))
    with pytest.raises(ConfigError) as error:
        Probe.from_dict({"rate": 0.1, "rte": 0.2})
    assert str(error.value) == f"Probe: unknown keys rte; allowed: {allowed}"


def test_a_mappings_keys_are_checked_as_its_values_are():
    # YAML reads `1: x` with an integer key; JSON keys are always text
    assert is_of_type({"a": 1}, dict[str, int])
    assert not is_of_type({1: 1}, dict[str, int]) and not is_of_type({"a": "1"}, dict[str, int])


@pytest.mark.parametrize("value", ["3", None, 2.0, [1], True])
def test_check_integer_refuses_other_types_in_one_line(value):
    """A stage's argument from Python or a plain dict: no TypeError from comparing it."""
    with pytest.raises(ConfigError, match=re.escape(f"stage: n={value!r} must be an integer >= 1")):
        check_integer("stage", "n", value)
