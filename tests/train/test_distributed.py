"""Two CPU processes with gloo take the same steps as one process with the same global batch."""

import os
import socket
import subprocess
import sys

import pytest
import torch
import yaml

from fromscratch.data import PreparedData
from fromscratch.train import TrainConfig
from fromscratch.train.models import build_model

from ..conftest import tiny_gpt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(demo_chars, tmp_path):
    config = tmp_path / "config.yaml"
    # No dropout: each process would draw its own masks.
    spec = tiny_gpt(demo_chars, max_steps=8, eval_splits="")
    spec["model"]["dropout"] = 0.0
    config.write_text(yaml.safe_dump(spec))
    command = [sys.executable, "-m", "fromscratch.cli", "train", str(config), "--out"]

    single = subprocess.run([*command, str(tmp_path / "one")], capture_output=True, text=True)
    assert single.returncode == 0, single.stderr

    port = str(free_port())
    env = {
        **os.environ,
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": port,
        "OMP_NUM_THREADS": "1",
    }
    ranks = [
        subprocess.Popen(
            [*command, str(tmp_path / "two")],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    for r in ranks:
        _, err = r.communicate(timeout=300)
        assert r.returncode == 0, err

    one = torch.load(tmp_path / "one" / "model.pt", weights_only=False)["model"]
    two = torch.load(tmp_path / "two" / "model.pt", weights_only=False)["model"]
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-5)
    # ...and both really trained: the weights moved away from the initial ones.
    torch.manual_seed(spec["seed"])
    initial = build_model(TrainConfig.from_dict(spec), PreparedData(demo_chars).meta).state_dict()
    assert any(not torch.equal(initial[name], one[name]) for name in one)
