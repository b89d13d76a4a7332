"""Fixtures for the SLURM integration tests: the cluster, the demo corpus, a tiny GPT.

The cluster is the one `bash tests/slurm/cluster.sh start` brings up (or any SLURM that
`sinfo` reaches, with `sacct` working). Without one these tests are skipped, except in CI,
where `.ci/run` starts it and a missing cluster is a failure.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from fromscratch.data import prepare

START = "bash tests/slurm/cluster.sh start"


def _answers(*command: str) -> bool:
    try:
        done = subprocess.run(command, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """A SLURM cluster that takes jobs and answers `sacct` (submitit polls it)."""
    if _answers("sinfo", "-h") and _answers("sacct", "-n", "-X", "-S", "now"):
        return
    if os.environ.get("CI"):
        pytest.fail(f"no SLURM cluster (sinfo or sacct fails): CI must run `{START}` first")
    pytest.skip(f"no SLURM cluster (sinfo or sacct fails); start one with `{START}`")


@pytest.fixture(scope="session")
def demo_chars(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "demo-chars"
    prepare("demo", out, tokenizer="chars", progress=False)
    return out


def tiny_gpt(data: Path, **overrides) -> dict:
    """A GPT small enough for a CPU core: about 15 ms a step here, when the core is free."""
    return {
        "data": str(data),
        "model": {
            "family": "gpt",
            "n_layer": 2,
            "n_head": 2,
            "n_embd": 32,
            "context": 32,
            "dropout": 0.0,
        },
        "batch_size": 8,
        "lr": 3e-3,
        "warmup_steps": 5,
        "log_every": 1,
        "checkpoint_every": 10,
        "seed": 1,
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
