"""The end of a run, for each training loop (the Trainer, seq2seq, the sentence VAE): a run
stopped at any moment after its last step (in the final evaluation, writing its outputs,
before it is marked finished) resumes at that step and only evaluates again, to the same
summary and metric lines as a run never stopped; a failed run ends its W&B run as failed."""

from __future__ import annotations

import json
import math
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from wandb.sdk.wandb_run import Run

from fromscratch import exit_on_termination
from fromscratch.data import PreparedData
from fromscratch.models import GPT, GPTConfig, SentenceVAE, VAEConfig
from fromscratch.track import Tracker
from fromscratch.train import NonFiniteLoss, TrainConfig, Trainer, seq2seq, train, vae
from fromscratch.train.seq2seq import Seq2SeqConfig, train_seq2seq
from fromscratch.train.vae import VAETrainConfig, sentences_of, train_vae

from ..conftest import tiny_gpt

SEQ2SEQ = {
    "architecture": "decoder_only",
    "task": "reverse",
    "symbols": 4,
    "max_length": 4,
    "test_max_length": 6,
    "test_examples": 20,
    "model": {"n_layer": 1, "n_head": 2, "n_embd": 32},
    "batch_size": 32,
    "lr": 1e-2,
    "warmup_steps": 2,
    "max_steps": 6,
    "log_every": 2,
}
VAE = {"max_steps": 6, "batch_size": 8, "warmup_steps": 2, "log_every": 2, "examples": 4}


def run_gpt(data, out: Path, **settings) -> dict:
    return train(TrainConfig.from_dict(tiny_gpt(data, max_steps=6, **settings)), out, resume=True)


def run_seq2seq(data, out: Path, **settings) -> dict:
    return train_seq2seq(Seq2SeqConfig.from_dict(SEQ2SEQ | settings), out, resume=True)


def run_vae(data, out: Path, **settings) -> dict:
    """A VAE on a tiny random GPT of our own (a model.pt base would be one too)."""
    prepared = PreparedData(data)
    config = VAETrainConfig.from_dict(VAE | settings)
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=prepared.meta["vocab_size"], n_layer=1, n_head=2, n_embd=32))
    model = SentenceVAE(gpt, VAEConfig(latent=4, bottleneck=8))
    sentences = sentences_of(prepared, "train", 100, 48)
    test = sentences_of(prepared, "test", 40, 48, seed=1)
    run_config = {"data": str(data), "train": config.to_dict()}
    return train_vae(
        model, sentences, test, config, out, prepared.tokenizer, run_config, resume=True
    )


@dataclass
class Loop:
    run: Any  # run(data, out, **settings) -> summary
    final: tuple  # (module or class, name): what only the end of a run calls
    outputs: tuple[str, ...]  # what the run writes besides metrics.jsonl and summary.json


LOOPS = {
    "trainer": Loop(run_gpt, (Trainer, "evaluate"), ("model.pt",)),
    "seq2seq": Loop(run_seq2seq, (seq2seq, "accuracy_by_length"), ("model.pt", "accuracy.csv")),
    # the VAE's probe comes after its final evaluation's line: a resume logs that line once
    "vae": Loop(
        run_vae, (vae, "probe_and_examples"), ("adapters.pt", "latents.npz", "examples.json")
    ),
}
loops = pytest.mark.parametrize("loop", LOOPS.values(), ids=LOOPS.keys())


def stopped_in(monkeypatch, target: tuple, stop) -> None:
    """Make the first call of `target` call stop() before it does its work."""
    owner, name = target
    original = getattr(owner, name)

    def stopping(*args, **kwargs):
        monkeypatch.setattr(owner, name, original)
        stop()
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, stopping)


def kill() -> None:
    raise KeyboardInterrupt("killed")


def outcome(out: Path) -> tuple[dict, list]:
    """summary.json and metrics.jsonl without the clock's numbers (strict JSON: no NaN)."""

    def no_constants(name):
        raise ValueError(f"{name} in {out}")

    def steady(record: dict) -> dict:
        clocked = ("time", "elapsed", "per_s", "wandb_run_id")
        return {k: v for k, v in record.items() if not any(c in k for c in clocked)}

    summary = json.loads((out / "summary.json").read_text(), parse_constant=no_constants)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return steady(summary), [
        steady(json.loads(line, parse_constant=no_constants)) for line in lines
    ]


@loops
def test_a_stop_signal_in_the_final_evaluation_costs_only_the_evaluation(
    loop, demo_chars, tmp_path, monkeypatch, capsys
):
    """No checkpoint_every: the checkpoint after the last step is the one to resume from."""
    loop.run(demo_chars, tmp_path / "whole")
    stopped_in(monkeypatch, loop.final, lambda: os.kill(os.getpid(), signal.SIGTERM))
    with pytest.raises(SystemExit) as stop, exit_on_termination():  # as `fromscratch` runs
        loop.run(demo_chars, tmp_path / "cut")
    assert stop.value.code == 128 + signal.SIGTERM
    capsys.readouterr()
    loop.run(demo_chars, tmp_path / "cut")
    assert "resuming from step 6 " in capsys.readouterr().err  # not trained again
    assert outcome(tmp_path / "cut") == outcome(tmp_path / "whole")
    assert all((tmp_path / "cut" / name).is_file() for name in loop.outputs)


@loops
def test_a_run_stopped_before_it_is_marked_finished_resumes(
    loop, demo_chars, tmp_path, monkeypatch, capsys
):
    """W&B's finish can take seconds after summary.json: the finished mark comes after it,
    so a stop before the mark leaves a run that resumes instead of training again."""
    loop.run(demo_chars, tmp_path / "whole", checkpoint_every=3)
    stopped_in(monkeypatch, (Tracker, "finish"), kill)
    with pytest.raises(KeyboardInterrupt):
        loop.run(demo_chars, tmp_path / "cut", checkpoint_every=3)
    capsys.readouterr()
    loop.run(demo_chars, tmp_path / "cut", checkpoint_every=3)
    assert "resuming from step 6 " in capsys.readouterr().err
    assert outcome(tmp_path / "cut") == outcome(tmp_path / "whole")
    assert (tmp_path / "cut" / "checkpoints" / "finished").exists()


@pytest.mark.parametrize("loop", [LOOPS["trainer"], LOOPS["seq2seq"]], ids=["trainer", "seq2seq"])
def test_a_run_resumed_after_its_last_step_keeps_its_final_train_loss(
    loop, demo_chars, tmp_path, monkeypatch
):
    whole = loop.run(demo_chars, tmp_path / "whole", checkpoint_every=3)
    stopped_in(monkeypatch, loop.final, kill)
    with pytest.raises(KeyboardInterrupt):
        loop.run(demo_chars, tmp_path / "cut", checkpoint_every=3)
    resumed = loop.run(demo_chars, tmp_path / "cut", checkpoint_every=3)
    assert math.isfinite(whole["final_train_loss"])
    assert resumed["final_train_loss"] == whole["final_train_loss"]
    assert outcome(tmp_path / "cut")[0]["final_train_loss"] == whole["final_train_loss"]


@pytest.fixture
def wandb_exit_codes(monkeypatch) -> list:
    """The exit code of every W&B run that ends (None: a success)."""
    codes, finish = [], Run.finish

    def recorded(run, exit_code=None, **kwargs):
        codes.append(exit_code)
        return finish(run, exit_code=exit_code, **kwargs)

    monkeypatch.setattr(Run, "finish", recorded)
    return codes


@loops
def test_a_run_that_fails_ends_its_wandb_run_as_failed(
    loop, demo_chars, tmp_path, monkeypatch, wandb_exit_codes
):
    def fail():
        raise RuntimeError("out of memory")

    stopped_in(monkeypatch, loop.final, fail)
    with pytest.raises(RuntimeError, match="out of memory"):
        loop.run(demo_chars, tmp_path, wandb_mode="offline")
    assert wandb_exit_codes == [1]


def test_a_nan_loss_ends_the_wandb_run_as_failed(demo_chars, tmp_path, wandb_exit_codes):
    trainer = Trainer(TrainConfig.from_dict(tiny_gpt(demo_chars, wandb_mode="offline")), tmp_path)
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(math.nan)
    with pytest.raises(NonFiniteLoss):
        trainer.run()
    assert wandb_exit_codes == [1]


def test_a_runs_outputs_reach_their_names_whole_by_a_rename(demo_chars, tmp_path, monkeypatch):
    """model.pt, summary.json, and metrics.jsonl cut back to the checkpoint on a resume are
    each written beside their name and renamed onto it: a kill mid-write leaves the earlier
    file or the new one whole, never half of one."""
    config = TrainConfig.from_dict(
        tiny_gpt(demo_chars, max_steps=4, checkpoint_every=2, keep_checkpoints=5, eval_splits="")
    )
    train(config, tmp_path)
    checkpoints = tmp_path / "checkpoints"
    for stopped_after_step_3 in ("finished", "step-00000004.pt"):
        (checkpoints / stopped_after_step_3).unlink()
    renamed_onto = []
    rename = os.replace

    def recorded(source, target):
        renamed_onto.append(Path(target).name)
        rename(source, target)

    monkeypatch.setattr(os, "replace", recorded)
    train(config, tmp_path, resume=True)
    assert {"metrics.jsonl", "model.pt", "summary.json"} <= set(renamed_onto)
