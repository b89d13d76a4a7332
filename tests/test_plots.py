"""Axis labels name the quantity, its split and its unit."""

import pytest

from fromscratch.figures.plots import label


@pytest.mark.parametrize(
    "metric, text",
    [
        ("loss", "training loss (nats/token)"),
        ("val/loss", "validation loss (nats/token)"),
        ("test/loss", "test loss (nats/token)"),
        ("test/accuracy", "test accuracy"),
        ("val/bits_per_char", "validation bits per character"),
        ("grad_norm", "grad norm"),
    ],
)
def test_label(metric, text):
    assert label(metric) == text
