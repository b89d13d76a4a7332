"""Helpers for the SLURM integration tests (the cluster fixture, `slurm_cluster`, and the
demo corpus are in tests/conftest.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ..conftest import tiny_gpt as base_tiny_gpt


def tiny_gpt(data: Path, **overrides) -> dict:
    """The tests' tiny GPT without dropout or evaluation, checkpointing every 10 steps."""
    return {
        **base_tiny_gpt(data, dropout=0.0),
        "checkpoint_every": 10,
        "eval_splits": "",
        **overrides,
    }


def wait_until(condition, timeout_s: float, what: str, poll_s: float = 0.5):
    """Poll `condition()` until it returns something truthy; fail naming `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(poll_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
