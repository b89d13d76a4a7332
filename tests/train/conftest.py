"""Fixtures for the training tests: the demo corpus prepared once, tiny configs."""

import pytest

from fromscratch.data import prepare


@pytest.fixture(scope="session")
def demo_words(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "demo-words"
    prepare("demo", out, progress=False)
    return out


@pytest.fixture(scope="session")
def demo_chars(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "demo-chars"
    prepare("demo", out, tokenizer="chars", progress=False)
    return out


def tiny_gpt(data, **overrides):
    return {
        "data": str(data),
        "model": {
            "family": "gpt",
            "n_layer": 2,
            "n_head": 2,
            "n_embd": 32,
            "context": 32,
            "dropout": 0.1,
        },
        "batch_size": 8,
        "lr": 3e-3,
        "warmup_steps": 5,
        "max_steps": 40,
        "log_every": 1,
        "eval_splits": "test",
        "eval_max_tokens": 4000,
        "seed": 1,
        **overrides,
    }


def tiny_classifier(data, **overrides):
    return {
        "data": str(data),
        "model": {"family": "classifier", "n_layer": 1, "n_head": 2, "n_embd": 32, "context": 96},
        "batch_size": 16,
        "max_length": 96,
        "lr": 3e-3,
        "max_steps": 30,
        "log_every": 5,
        "eval_splits": "test",
        "seed": 0,
        **overrides,
    }
