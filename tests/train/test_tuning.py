"""LR range test and batch-size search: real sweeps on the demo corpus, outputs that a
training config reads back."""

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fromscratch import FromScratchError
from fromscratch.cli import main
from fromscratch.train import TrainConfig
from fromscratch.train.batch_size import (
    full_length,
    out_of_memory,
    probe,
    probe_in_child,
    search,
)
from fromscratch.train.loop import Trainer
from fromscratch.train.lr_range import choose, lr_range_test, why_no_lr_helped
from fromscratch.train.noise_scale import (
    measure_noise_scale,
    noise_scale_from,
    noise_scale_of,
    write_noise_scale,
)

from ..conftest import chart_x_axis, children, tiny_classifier, tiny_gpt, wandb_records


def test_choice_rule_on_a_known_curve():
    lrs = np.logspace(-6, 0, 61)
    # Flat, then falling fastest around 1e-3, lowest at 1e-2, then diverging.
    smoothed = 2 - np.tanh((np.log10(lrs) + 3) * 2) + np.maximum(np.log10(lrs) + 2, 0) ** 2 * 10
    result = choose(lrs, smoothed)
    assert result["lr_at_min_loss"] == pytest.approx(1e-2, rel=0.3)
    assert result["lr"] == pytest.approx(result["lr_at_min_loss"] / 10)
    assert result["lr_steepest"] == pytest.approx(1e-3, rel=0.3)
    # a curve still falling at the sweep's end: steepest where it ends, at its minimum
    falling = choose(np.array([1e-4, 1e-3, 1e-2, 1e-1]), np.array([5.0, 4.9, 4.8, 1.0]))
    assert falling["lr_steepest"] == falling["lr_at_min_loss"] == 1e-1
    # the steepest fall is the one on the way to the minimum, not a plunge after a blow-up
    rebound = choose(np.logspace(-4, 0, 5), np.array([5.0, 4.0, 1.0, 9.0, 2.0]))
    assert rebound["lr_at_min_loss"] == pytest.approx(1e-2)
    assert rebound["lr_steepest"] == pytest.approx(1e-3)


def test_a_sweep_whose_lowest_loss_is_its_last_finite_one_chooses_no_lr(demo_chars, monkeypatch):
    """Lowest at one step, not finite at the next: the minimum lies somewhere between, and
    a tenth of the LR before it says nothing about where the loss turns."""
    from fromscratch.train.loop import NonFiniteLoss

    losses = iter([4.0, 3.0, 2.0])

    def sweep_step(self, lr=None):
        loss = next(losses, None)
        if loss is None:
            raise NonFiniteLoss("non-finite loss at step 4")
        return {"loss": loss}

    monkeypatch.setattr(Trainer, "train_step", sweep_step)
    config = TrainConfig.from_dict(tiny_gpt(demo_chars))
    with pytest.raises(FromScratchError, match=r"lowest at lr 1e-08 and not finite at the next"):
        lr_range_test(config, "unused", steps=10, min_lr=1e-12, max_lr=1e6)


def test_lr_range_test_smooths_its_sweep_and_its_choice_feeds_training(demo_words, tmp_path):
    config = TrainConfig.from_dict(tiny_classifier(demo_words))
    result = lr_range_test(config, tmp_path, steps=80, min_lr=1e-5, max_lr=10.0)
    rows = list(csv.DictReader((tmp_path / "lr_range.csv").open()))
    assert len(rows) == result["steps"] >= 20
    lrs, losses, smoothed = (
        np.array([float(r[k]) for r in rows]) for k in ("lr", "loss", "smoothed")
    )
    assert lrs == pytest.approx(np.geomspace(1e-5, 10.0, 80)[: len(rows)])
    # a sweep to lr 10 blows up, and stops there: no row past 4x the smoothed minimum
    assert result["diverged"] and len(rows) < 80
    lowest = np.minimum.accumulate(smoothed)
    assert (smoothed[:-1] <= 4 * lowest[:-1]).all() and smoothed[-1] > 4 * lowest[-1]
    # the documented smoothing, redone from the raw losses: a bias-corrected moving average
    # with beta = 1 - 20 / steps
    beta, average = 1 - 20 / 80, 0.0
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        assert smoothed[i] == pytest.approx(average / (1 - beta ** (i + 1)), rel=1e-9)
    # the rule: a tenth of the LR at the minimum of the smoothed loss
    best = np.argmin(smoothed)
    chosen = (result["lr"], result["min_smoothed_loss"])
    assert chosen == pytest.approx((lrs[best] / 10, smoothed[best]), rel=1e-12)
    assert json.loads((tmp_path / "lr_range.json").read_text())["lr"] == result["lr"]
    tuned = TrainConfig.from_dict(
        tiny_classifier(demo_words, lr_from=str(tmp_path / "lr_range.json"))
    )
    assert tuned.resolved().lr == result["lr"]


def test_a_sweep_whose_first_loss_is_its_lowest_says_why():
    """A loss flat within its noise until the LR grows large (a sweep too short for the
    model to learn in) is not a min_lr too large: lowering it would change nothing."""
    lrs = np.geomspace(1e-6, 1.0, 40).tolist()
    noise = np.random.default_rng(0).normal(0, 0.005, 40)
    flat = 0.693 + noise + np.where(np.arange(40) > 30, (np.arange(40) - 30) * 0.1, 0.0)
    rising = 0.693 + noise + np.arange(40) * 0.05
    # flat for the first 15 steps, past a quarter of the sweep: that was no rise at once
    late = 0.693 + noise + np.maximum(np.arange(40) - 15, 0) * 0.05
    # a sweep of 200 steps stopped at its 4th: past 4x its minimum at once, its few losses
    # all rise, and their spread is no noise to measure "flat" by
    exploded = [4.2, 15.4, 17.0, 61.6]
    for losses, steps, said in (
        (flat, 40, "the loss stayed flat (within its noise) from min_lr=1e-06 up to lr 0.041 "),
        (rising, 40, "the loss rose from the first step on; min_lr=1e-06 is already too large"),
        (late, 40, "the loss stayed flat (within its noise) from min_lr=1e-06 up to lr "),
        (exploded, 200, "the loss rose from the first step on; min_lr=1e-06 is already too"),
    ):
        beta, average, smoothed = 0.5, 0.0, []
        for i, loss in enumerate(losses):
            average = beta * average + (1 - beta) * loss
            smoothed.append(average / (1 - beta ** (i + 1)))
        swept = lrs[: len(losses)]
        assert why_no_lr_helped(swept, list(losses), smoothed, 1e-6, steps).startswith(said)


def test_an_lr_sweep_still_falling_at_max_lr_says_so(demo_chars, tmp_path, capsys):
    config = TrainConfig.from_dict(tiny_gpt(demo_chars))
    result = lr_range_test(config, tmp_path, steps=30, min_lr=1e-5, max_lr=1e-3)
    assert not result["diverged"]
    assert result["smoothing_beta"] == 0.5  # 1 - 20 / 30 would forget too fast
    assert result["lr_at_min_loss"] == pytest.approx(1e-3)
    assert "the loss was still falling at max_lr=0.001" in capsys.readouterr().err


def test_batch_size_search_on_cpu(demo_chars, tmp_path, capsys):
    config = TrainConfig.from_dict(tiny_gpt(demo_chars))
    result = search(config, tmp_path, max_batch_size=4, memory_cap_mb=16_384)
    assert [t["batch_size"] for t in result["tried"]] == [1, 2, 4]
    assert result["batch_size"] == 4 and result["device"] == "cpu"
    # every size fit: 4 is the search's ceiling, not the memory's limit, and it says so
    assert "every batch size up to max_batch_size=4 fits" in capsys.readouterr().err
    assert all(t["peak_memory_mb"] > 50 and t["tokens_per_s"] > 0 for t in result["tried"])
    for tried in result["tried"]:  # a step's tokens (batch x context 32) over its time
        assert tried["tokens_per_s"] == pytest.approx(tried["batch_size"] * 32 / tried["step_s"])
    fastest = max(result["tried"], key=lambda t: t["tokens_per_s"])
    assert result["fastest_batch_size"] == fastest["batch_size"]
    # each probe's child runs on the job's threads, as its training would
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        (one,) = search(config, tmp_path / "one", max_batch_size=1, memory_cap_mb=16_384)["tried"]
    finally:
        torch.set_num_threads(threads)
    assert one["threads"] == 1 and all(t["threads"] == threads for t in result["tried"])
    assert json.loads((tmp_path / "batch_size.json").read_text())["batch_size"] == 4


def test_batch_size_search_chooses_the_largest_size_that_fits(demo_chars, tmp_path, monkeypatch):
    """Not the first that does not: memory grows with the batch, 100 MB a sequence here,
    so under a cap of 250 MB batches of 1 and 2 fit and 4 does not."""
    from fromscratch.train import batch_size as searching

    def measured(config, batch_size, steps=searching.PROBE_STEPS):
        speed = {1: 1000.0, 2: 3000.0, 4: 5000.0}[batch_size]
        return {"step_s": 1.0, "tokens_per_s": speed, "threads": 1}, 100.0 * batch_size

    monkeypatch.setattr(searching, "measure", measured)
    config = TrainConfig.from_dict(tiny_gpt(demo_chars))
    result = search(config, tmp_path, max_batch_size=64, memory_cap_mb=250)
    assert [(t["batch_size"], t["fits"]) for t in result["tried"]] == [
        (1, True),
        (2, True),
        (4, False),
    ]
    assert result["batch_size"] == result["fastest_batch_size"] == 2


def test_the_tuning_curves_are_wandb_runs_of_their_own(demo_chars, tmp_path):
    """The loss against the LR and the throughput against the batch size reach W&B (here
    offline) under the tuning stage's name and job type, a row a step, the choice in
    the summary (the gradient noise scale: its summary alone); without W&B, nothing but
    the stage's own files."""
    tracking = {"wandb_mode": "offline", "group": "demo-tune", "run_name": "tune/gpt/lr-range",
                "job_type": "lr-range"}  # fmt: skip
    config = TrainConfig.from_dict(tiny_gpt(demo_chars) | tracking)
    chosen = lr_range_test(config, tmp_path, steps=30, min_lr=1e-4, max_lr=1.0)
    sizes = search(replace(config, job_type="batch-size"), tmp_path, max_batch_size=2)
    noise = write_noise_scale(replace(config, job_type="noise-scale"), tmp_path, draws=2)
    # each drawn against what it varies, as its figure is: the LR, the batch size
    steps = (
        ("lr-range", chosen["steps"], "lr"),
        ("batch-size", len(sizes["tried"]), "batch_size"),
        ("noise-scale", 0, ""),
    )
    for stage, rows, x_axis in steps:
        records = wandb_records(tmp_path / stage)
        (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
        assert (run.job_type, run.run_group) == (stage, "demo-tune")
        history = [r for r in records if r.WhichOneof("record_type") == "history"]
        assert len(history) == rows
        assert chart_x_axis(records) == x_axis
    summary = json.loads((tmp_path / "lr-range" / "summary.json").read_text())
    assert summary["lr"] == chosen["lr"]
    assert json.loads((tmp_path / "batch-size" / "summary.json").read_text())["batch_size"] == 2
    measured = json.loads((tmp_path / "noise-scale" / "summary.json").read_text())
    assert measured["noise_scale"] == noise["noise_scale"] and measured["config"]["draws"] == 2
    lines = [json.loads(line) for line in (tmp_path / "lr-range" / "metrics.jsonl").open()]
    assert {"lr", "loss", "smoothed_loss"} <= set(lines[0]) and len(lines) == chosen["steps"]
    quiet = TrainConfig.from_dict(tiny_gpt(demo_chars))  # W&B off: no run folder
    lr_range_test(quiet, tmp_path / "off", steps=30, min_lr=1e-4, max_lr=1.0)
    assert sorted(p.name for p in (tmp_path / "off").iterdir()) == ["lr_range.csv", "lr_range.json"]


def test_a_probe_times_full_length_batches(demo_chars, demo_words):
    """A GPT's batch fills its context, a classifier's its max_length: the tokens a step's
    tokens/s counts are the tokens it trained on."""
    for settings, length in (
        (tiny_gpt(demo_chars), "context"),
        (tiny_classifier(demo_words), "max_length"),
    ):
        config = TrainConfig.from_dict(settings)
        trainer = Trainer.scratch(config, batch_size=3, grad_accum=1, batch_size_from="")
        tokens = 3 * getattr(trainer, length)
        assert full_length(trainer)(0)[0].numel() == tokens
        timed = probe(config, 3, steps=1)
        assert timed["tokens_per_s"] * timed["step_s"] == pytest.approx(tokens)


def test_a_probe_counts_its_own_memory_not_the_searchs(demo_chars):
    """A child's rusage (ru_maxrss) holds the parent's size at the fork too: a search
    running in a large process would find smaller batches than fit."""
    config = TrainConfig.from_dict(tiny_gpt(demo_chars)).to_dict()
    _, alone = probe_in_child(config, 1, steps=1)
    ballast = torch.ones(2**29, dtype=torch.uint8) + 1  # 512 MB resident here
    _, beside = probe_in_child(config, 1, steps=1)
    del ballast
    assert beside < alone + 100


# a search stopped while its probe runs (Snakemake stopping the rule sends SIGTERM to the
# search's process alone)
STOPPED_WHILE_PROBING = """
import json, sys
from fromscratch import exit_on_termination
from fromscratch.train.batch_size import probe_in_child
with exit_on_termination():
    probe_in_child(json.loads(sys.argv[1]), 1, steps=10**9)
"""


def test_a_search_stopped_while_it_probes_stops_the_probe(demo_chars):
    config = json.dumps(TrainConfig.from_dict(tiny_gpt(demo_chars)).to_dict())
    searching = subprocess.Popen([sys.executable, "-c", STOPPED_WHILE_PROBING, config])
    deadline = time.monotonic() + 60
    while not children(searching.pid):
        assert time.monotonic() < deadline and searching.poll() is None, "no probe started"
        time.sleep(0.05)
    [probe_pid] = children(searching.pid)
    try:
        time.sleep(1)  # into the probe's steps
        searching.send_signal(signal.SIGTERM)
        assert searching.wait(timeout=60) == 128 + signal.SIGTERM
        assert not Path(f"/proc/{probe_pid}").exists(), "the probe runs on alone"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(probe_pid, signal.SIGKILL)


def test_batch_size_search_respects_the_memory_cap(demo_chars, tmp_path):
    config = TrainConfig.from_dict(tiny_gpt(demo_chars))
    with pytest.raises(FromScratchError, match="not even a batch of 1 fits in 1 MB"):
        search(config, tmp_path, max_batch_size=4, memory_cap_mb=1)


def test_batch_size_search_tells_a_broken_config_from_one_that_does_not_fit(
    demo_chars, tmp_path, capsys
):
    # a model that cannot be built: named before any attempt
    spec = tiny_classifier(demo_chars)
    spec["model"] |= {"n_head": 3, "n_embd": 64}
    with pytest.raises(FromScratchError, match=r"ClassifierConfig.n_embd"):
        search(TrainConfig.from_dict(spec), tmp_path, max_batch_size=4)
    # data that is not there: named before any attempt too
    missing = TrainConfig.from_dict(tiny_gpt(tmp_path / "not-prepared"))
    with pytest.raises(FromScratchError) as error:
        search(missing, tmp_path, max_batch_size=4)
    assert str(error.value) == (
        f"{tmp_path / 'not-prepared'} is not a prepared data folder (no meta.json); make one "
        f"with `fromscratch data prepare DATASET --out {tmp_path / 'not-prepared'}` (a "
        "relative path is from the current folder)"
    )
    # a setting the attempt refuses: its message as it is, not "batch 1 failed" nor "does
    # not fit" (both would say memory) nor the module path of its error
    too_long = TrainConfig.from_dict(tiny_gpt(demo_chars, context=4096))
    with pytest.raises(FromScratchError) as error:
        search(too_long, tmp_path, max_batch_size=4)
    assert str(error.value) == "context=4096: longer than the model's context=32"
    assert "does not fit" not in capsys.readouterr().err
    assert not (tmp_path / "batch_size.json").exists()


def test_only_a_failed_allocation_is_out_of_memory():
    with pytest.raises(RuntimeError) as cpu:
        torch.empty(2**60, dtype=torch.uint8)  # more than any machine: refused at once
    assert out_of_memory(cpu.value)
    assert out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert not out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not out_of_memory(FromScratchError("x is not a prepared data folder"))


def test_noise_scale_recovers_a_known_gradient_noise():
    # Per-example gradients mu + sigma * noise in d dimensions: tr(cov) = d sigma^2 and
    # |G|^2 = |mu|^2; a micro-batch of b examples has noise sigma / sqrt(b).
    generator = torch.Generator().manual_seed(0)
    d, sigma, b = 1000, 0.5, 4
    mu = 0.1 * torch.randn(d, generator=generator)
    draws = [
        [mu + sigma / b**0.5 * torch.randn(d, generator=generator) for _ in range(8)]
        for _ in range(50)
    ]
    result = noise_scale_of(draws, micro_batch=b)
    assert result["trace_covariance"] == pytest.approx(d * sigma**2, rel=0.05)
    assert result["grad_norm_sq"] == pytest.approx(mu.square().sum().item(), rel=0.1)
    assert result["noise_scale"] == pytest.approx(d * sigma**2 / mu.square().sum().item(), rel=0.1)
    with pytest.raises(ValueError, match="0 < small < big"):
        noise_scale_from(1.0, 0.5, 8, 8)
    # few draws of a noisy gradient: |G|² estimated below 0 gives no noise scale (it was
    # infinity, written "Infinity", which JSON readers do not take)
    unmeasured = noise_scale_from(1.0, 0.1, 1, 8)  # |G|² = (8 * 0.1 - 1.0) / 7 < 0
    assert unmeasured["grad_norm_sq"] < 0 and unmeasured["noise_scale"] is None
    # ... and so does tr(Σ) below 0 (the small batch's gradients the less noisy)
    unmeasured = noise_scale_from(0.5, 1.0, 1, 8)
    assert unmeasured["trace_covariance"] < 0 < unmeasured["grad_norm_sq"]
    assert unmeasured["noise_scale"] is None
    assert json.loads(json.dumps(unmeasured, allow_nan=False))["noise_scale"] is None


def test_cli_measures_the_gradient_noise_scale_after_training(demo_chars, tmp_path, capsys):
    import yaml

    config = tiny_gpt(demo_chars, dropout=0.0)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    options = ["--draws", "3", "--micro-batch", "2", "--accumulate", "4", "--after-steps", "5"]
    assert main(["noise-scale", str(path), "--out", str(tmp_path), *options]) == 0
    assert "gradient noise scale" in capsys.readouterr().out
    noise = json.loads((tmp_path / "noise_scale.json").read_text())
    assert noise["grad_norm_sq"] > 0 and noise["trace_covariance"] > 0
    assert noise["after_steps"] == 5  # the training steps the weights took
    assert noise["noise_scale_tokens"] == pytest.approx(noise["noise_scale"] * 32)
    # training and micro-batches are functions of the seed: measuring again agrees, and
    # the untrained model's gradients are another matter
    again = measure_noise_scale(TrainConfig.from_dict(config), 2, 4, 3, after_steps=5)
    assert again["noise_scale"] == pytest.approx(noise["noise_scale"], rel=1e-5)
    untrained = measure_noise_scale(TrainConfig.from_dict(config), 2, 4, 3)
    assert untrained["grad_norm_sq"] != pytest.approx(noise["grad_norm_sq"], rel=1e-3)


def test_noise_scale_trains_at_the_tuned_lr_and_batch_size(demo_chars, tmp_path):
    """The course run's first steps, as its tuned values make them, and the JSON and the
    W&B run's config say so."""
    (tmp_path / "lr_range.json").write_text(json.dumps({"lr": 0.01}))
    (tmp_path / "batch_size.json").write_text(json.dumps({"batch_size": 4}))
    tuned = tiny_gpt(demo_chars, dropout=0.0, lr_from=str(tmp_path / "lr_range.json"))
    tuned |= {"batch_size_from": str(tmp_path / "batch_size.json"), "wandb_mode": "offline"}
    options = {"micro_batch": 2, "accumulate": 4, "draws": 3, "after_steps": 5}
    noise = write_noise_scale(TrainConfig.from_dict(tuned), tmp_path / "out", **options)
    assert noise["trained_at"] == {"lr": 0.01, "batch_size": 4}
    logged = json.loads((tmp_path / "out" / "noise-scale" / "summary.json").read_text())
    assert (logged["config"]["lr"], logged["config"]["batch_size"]) == (0.01, 4)
    direct = tiny_gpt(demo_chars, dropout=0.0, lr=0.01, batch_size=4)
    same = measure_noise_scale(TrainConfig.from_dict(direct), 2, 4, 3, after_steps=5)
    assert same["grad_norm_sq"] == pytest.approx(noise["grad_norm_sq"], rel=1e-6)


def test_noise_scale_measures_the_gradients_training_takes_dropout_included(demo_chars):
    # the same seed gives the same weights and micro-batches with and without dropout, so
    # the two measurements differ only if dropout is on while the gradients are taken
    def measured(dropout: float) -> dict:
        config = TrainConfig.from_dict(tiny_gpt(demo_chars, dropout=dropout))
        return measure_noise_scale(config, 2, 4, 2)

    plain, dropped = measured(0.0), measured(0.3)
    assert dropped["trace_covariance"] != pytest.approx(plain["trace_covariance"], rel=1e-3)
    assert dropped["grad_norm_sq"] != pytest.approx(plain["grad_norm_sq"], rel=1e-3)


def test_noise_scale_after_training_takes_no_gradient_on_a_batch_trained_on(
    demo_chars, monkeypatch
):
    """Micro-batch i is drawn with the key of training's batch i, so the measurement starts
    at the batch training would draw next (steps × grad_accum), not at batch 0."""
    drawn = {"batch_size": [], "micro_batch": []}
    batch_stream = Trainer.batch_stream

    def recorded(self, batch_size, name="batch_size"):
        batches = batch_stream(self, batch_size, name)

        def draw(index):
            drawn[name].append(index)
            return batches(index)

        return draw

    monkeypatch.setattr(Trainer, "batch_stream", recorded)
    config = TrainConfig.from_dict(tiny_gpt(demo_chars, grad_accum=2))
    measure_noise_scale(config, 2, accumulate=4, draws=3, after_steps=5)
    assert drawn["batch_size"] == list(range(10))  # 5 steps of 2 micro-batches
    assert drawn["micro_batch"] == list(range(10, 22))  # 3 draws of 4


def test_noise_scale_of_a_classifier_counts_reviews(demo_words, monkeypatch):
    noise = measure_noise_scale(TrainConfig.from_dict(tiny_classifier(demo_words)), 2, 4, 2)
    assert noise["trace_covariance"] > 0 and noise["noise_scale_tokens"] is None

    # more reviews a micro-batch than the split has: named as the noise scale's option,
    # before any training step is spent
    def no_training(self, *args, **kwargs):
        raise AssertionError("a training step before the micro-batch was checked")

    monkeypatch.setattr(Trainer, "train_step", no_training)
    config = TrainConfig.from_dict(tiny_classifier(demo_words))
    with pytest.raises(FromScratchError, match=r"^micro_batch 1000000 is more than the \d+ exa"):
        measure_noise_scale(config, 10**6, 4, 2, after_steps=100)


def test_cli_lr_range(demo_words, tmp_path, capsys):
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_classifier(demo_words)))
    assert (
        main(
            [
                "lr-range",
                str(path),
                "--out",
                str(tmp_path / "o"),
                "--steps",
                "30",
                "--set",
                "batch_size=8",
            ]
        )
        == 0
    )
    assert "chosen lr" in capsys.readouterr().out
    assert json.loads((tmp_path / "o" / "lr_range.json").read_text())["batch_size"] == 8
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["lr_range.csv", "lr_range.json"]


def test_sweeps_that_cannot_answer_fail_in_one_line(demo_chars, tmp_path, capsys):
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_gpt(demo_chars)))
    out = ["--out", str(tmp_path / "o")]
    for options, named in (
        (["--steps", "2"], "steps=2; it needs at least 10"),
        (["--min-lr", "1", "--max-lr", "0.1"], "min_lr=1, max_lr=0.1; it needs 0 < min_lr"),
        (["--min-lr", "0"], "min_lr=0, max_lr=1; it needs 0 < min_lr"),
        (
            ["--max-lr", "inf"],
            "min_lr=1e-06, max_lr=inf; it needs 0 < min_lr < max_lr, both finite",
        ),
        (["--max-lr", "nan"], "max_lr=nan; it needs 0 < min_lr < max_lr, both finite"),
        # the loss only rises: the choice would be min_lr / 10, a number about nothing
        (["--steps", "20", "--min-lr", "1e8", "--max-lr", "1e9"], "min_lr=1e+08 is already"),
        # ... also where its second step is finite (3.6 nats, then 23: past 4x at once)
        (["--steps", "20", "--min-lr", "1", "--max-lr", "100"], "min_lr=1 is already too"),
    ):
        assert main(["lr-range", str(path), *out, *options]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and named in err, options
    assert not (tmp_path / "o").exists()  # nothing written, not even an empty folder

    # the batch-size search and the noise scale check their options before any training
    for command, options, named in (
        ("batch-size", ["--max-batch-size", "0"], "max_batch_size=0 must be an integer >= 1"),
        ("batch-size", ["--memory-cap-mb", "-1"], "memory_cap_mb=-1; it must be a finite number"),
        ("batch-size", ["--memory-cap-mb", "nan"], "memory_cap_mb=nan; it must be a finite number"),
        ("batch-size", ["--set", "data=nosuch"], "error: nosuch is not a prepared data folder"),
        ("noise-scale", ["--accumulate", "1"], "accumulate=1 must be an integer >= 2"),
        ("noise-scale", ["--micro-batch", "0"], "micro_batch=0 must be an integer >= 1"),
        ("noise-scale", ["--draws", "0"], "draws=0 must be an integer >= 1"),
    ):
        assert main([command, str(path), *out, *options]) == 1
        err = capsys.readouterr().err  # one line: no probe's progress line before it
        assert err.count("\n") == 1 and named in err, options
    assert not (tmp_path / "o" / "noise_scale.json").exists()


def test_a_gpu_named_by_its_index_is_searched_as_a_gpu(demo_chars, monkeypatch):
    """cuda:0 took the CPU's path: a child process's resident memory against the CPU cap."""
    from fromscratch.train.batch_size import on_a_gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU node
    for device, gpu in (("auto", True), ("cuda", True), ("cuda:1", True), ("cpu", False)):
        assert on_a_gpu(TrainConfig.from_dict(tiny_gpt(demo_chars, device=device))) == gpu
