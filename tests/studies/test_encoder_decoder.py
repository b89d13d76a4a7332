"""The encoder/decoder study: the task, both layouts of a batch, matched sizes, the
cross-attention path, training, greedy scoring by length, exact resume, and the figure."""

from __future__ import annotations

import csv
import dataclasses
import inspect
import json
import os
import signal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.colors import to_hex
from submitit.helpers import Checkpointable

from fromscratch import FromScratchError
from fromscratch.data.seq2seq import FIRST_SYMBOL, IGNORE, PAD, START, Seq2SeqTask
from fromscratch.figures import encoder_decoder as figures
from fromscratch.models import GPT, ConfigError, EncoderDecoder
from fromscratch.stages import get_stage
from fromscratch.stages.encoder_decoder import encoder_decoder_stage
from fromscratch.train.loop import Interrupted
from fromscratch.train.seq2seq import (
    Seq2SeqConfig,
    accuracy_by_length,
    accuracy_summary,
    build_model,
    decoder_only_config,
    greedy_answers,
    seq2seq_loss,
)

from ..conftest import SEED_SHIFTS, error_bar_spans

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 32, "fast": True}


def config(**overrides) -> dict:
    return {
        "task": "reverse",
        "symbols": 4,
        "min_length": 1,
        "max_length": 4,
        "test_max_length": 6,
        "test_examples": 20,
        "model": TINY,
        "batch_size": 32,
        "lr": 1e-2,
        "warmup_steps": 10,
        "max_steps": 30,
        "log_every": 10,
        **overrides,
    }


# --------------------------------------------------------------------------- the task


def test_answers_of_padded_rows():
    source = np.array([[2, 3, 4, 5], [5, 2, 4, PAD]])
    lengths = np.array([4, 3])
    assert Seq2SeqTask("reverse").answer(source, lengths).tolist() == [
        [5, 4, 3, 2],
        [4, 2, 5, PAD],
    ]
    assert Seq2SeqTask("sort").answer(source, lengths).tolist() == [[2, 3, 4, 5], [2, 4, 5, PAD]]
    assert Seq2SeqTask("copy").answer(source, lengths).tolist() == source.tolist()


def test_batches_are_a_function_of_seed_and_step():
    task = Seq2SeqTask("sort", symbols=5, min_length=2, max_length=7)
    a, b = task.train_batch(3, 11, 16), task.train_batch(3, 11, 16)
    assert torch.equal(a.source, b.source) and torch.equal(a.target, b.target)
    assert not torch.equal(task.train_batch(3, 12, 16).source, a.source)
    lengths = a.source_mask.sum(1)
    assert lengths.min() >= 2 and lengths.max() <= 7
    assert ((a.source >= 2) == a.source_mask).all()  # symbols where real, PAD elsewhere
    test = task.test_batch(length=9, count=5)  # longer than training, same for everyone
    assert test.source.shape == (5, 9) and test.source_mask.all()
    assert torch.equal(test.source, task.test_batch(length=9, count=5).source)


def test_each_seed_has_batches_of_its_own():
    """A batch is drawn from (seed, step) together: seed 1's first batch is not seed 0's
    second, as it would be were the two added."""
    task = Seq2SeqTask("copy", symbols=10, min_length=1, max_length=8)
    batches = {
        (seed, step): task.train_batch(seed, step, 8).source.tolist()
        for seed in range(4)
        for step in range(4)
    }
    assert batches[1, 0] != batches[0, 1]
    assert len({str(source) for source in batches.values()}) == len(batches)


def test_training_at_one_length_only_is_allowed():
    """min_length = max_length: every training string is of that length."""
    task = Seq2SeqConfig.from_dict(config(min_length=3, max_length=3)).task_spec()
    batch = task.train_batch(0, 0, 16)
    assert batch.source.shape == (16, 3) and batch.source_mask.all()


def test_testing_on_the_trained_lengths_only_is_allowed():
    assert Seq2SeqConfig.from_dict(config(test_max_length=4)).test_max_length == 4
    with pytest.raises(ConfigError, match="test_max_length"):
        Seq2SeqConfig.from_dict(config(test_max_length=3))


def test_no_test_string_is_ever_trained_on():
    """Training draws every string of the short lengths many times over (10 symbols:
    100 strings of length 2): the test strings are held out of it, each length's distinct,
    all of them where there are fewer than asked for."""
    task = Seq2SeqTask("copy", symbols=10, min_length=1, max_length=4)
    trained = set()
    for step in range(200):
        batch = task.train_batch(0, step, 32)
        for row, n in zip(batch.source.tolist(), batch.source_mask.sum(1).tolist(), strict=True):
            trained.add(tuple(row[:n]))
    assert set(map(len, trained)) == {1, 2, 3, 4}
    for length, expected in ((1, 2), (2, 20), (3, 50), (6, 50)):
        tested = [tuple(row) for row in task.test_batch(length, count=50).source.tolist()]
        assert len(tested) == len(set(tested)) == expected, length
        assert not trained & set(tested), length
    assert len([s for s in trained if len(s) == 2]) == 100 - 20  # every other one trained


def test_every_symbol_of_a_string_counts_for_its_hold_out():
    task = Seq2SeqConfig.from_dict(config(symbols=10)).task_spec()
    source, length = np.full((1, 6), FIRST_SYMBOL), np.array([6])
    assert task.held_out(source, length)[0]  # the all-first-symbol string always is
    for position in range(6):
        changed = source.copy()
        changed[0, position] += 1
        assert not task.held_out(changed, length)[0], position


def test_test_strings_of_a_length_are_distinct():
    task = Seq2SeqConfig.from_dict(config(symbols=4)).task_spec()
    for length in (5, 6):  # 4^5 strings and more: drawn, not listed
        source = task.test_batch(length, 20).source
        assert len(source) == len(np.unique(source.numpy(), axis=0)) == 20


def test_bad_task_names_what_is_allowed():
    with pytest.raises(FromScratchError, match="copy, reverse, sort"):
        Seq2SeqTask("rotate")
    with pytest.raises(ConfigError, match="architecture"):
        Seq2SeqConfig.from_dict(config(architecture="encoder_only"))
    with pytest.raises(ConfigError, match="follow from the task"):
        Seq2SeqConfig.from_dict(config(model={**TINY, "context": 8}))
    with pytest.raises(ConfigError, match="gpt_layers: -2 must be 0 or more"):
        Seq2SeqConfig.from_dict(config(gpt_layers=-2))


def test_both_layouts_score_the_same_target_tokens():
    source = np.array([[2, 3, 4], [5, 6, PAD]])
    batch = Seq2SeqTask("reverse", symbols=5).examples(source, np.array([3, 2]))
    sequence, labels = batch.decoder_only_inputs()
    x = IGNORE
    assert sequence.tolist() == [[2, 3, 4, START, 4, 3], [5, 6, START, 6, PAD, PAD]]
    assert labels.tolist() == [[x, x, x, 4, 3, 2], [x, x, 6, 5, x, x]]
    decoder_input, target_labels = batch.encoder_decoder_inputs()
    assert decoder_input.tolist() == [[START, 4, 3], [START, 6, 5]]
    assert target_labels.tolist() == [[4, 3, 2], [6, 5, x]]
    # the same tokens are scored, in the same order, by both architectures
    assert labels[labels != x].tolist() == target_labels[target_labels != x].tolist()


# --------------------------------------------------------------------------- the models


@pytest.mark.parametrize("model", [TINY, {"n_layer": 2, "n_head": 4, "n_embd": 64}])
def test_the_gpt_is_matched_in_parameters(model):
    def parameters(architecture: str, gpt_width: int = 0) -> int:
        c = Seq2SeqConfig.from_dict(config(architecture=architecture, model=model))
        if gpt_width:
            return GPT(
                dataclasses.replace(decoder_only_config(c), n_embd=gpt_width)
            ).num_parameters()
        return build_model(c).num_parameters()

    target = parameters("encoder_decoder")
    width = decoder_only_config(Seq2SeqConfig.from_dict(config(model=model))).n_embd
    assert width % model["n_head"] == 0
    gap = abs(parameters("decoder_only") - target)
    assert gap / target < 0.05
    for neighbour in (width - model["n_head"], width + model["n_head"]):  # no closer width
        assert abs(parameters("decoder_only", neighbour) - target) > gap
    # the search builds models, but the seed alone decides the trained GPT's first weights
    c = Seq2SeqConfig.from_dict(config(architecture="decoder_only", model=model))
    torch.manual_seed(5)
    searched = build_model(c)
    torch.manual_seed(5)
    torch.testing.assert_close(GPT(searched.config).state_dict(), searched.state_dict())


def test_the_decoder_sees_the_source_through_cross_attention_and_is_causal():
    model = build_model(Seq2SeqConfig.from_dict(config())).eval()
    assert isinstance(model, EncoderDecoder)
    source = torch.tensor([[2, 3, 4, 5, 2, 3]])
    target = torch.tensor([[START, 5, 4, 3, 2, 5]])
    logits = model(source, target)
    other_source = torch.tensor([[5, 5, 2, 4, 3, 2]])
    assert not torch.allclose(model(other_source, target), logits, atol=1e-4)
    # causal in the target: changing its later tokens leaves the earlier outputs alone
    later = target.clone()
    later[0, 3:] = torch.tensor([2, 2, 2])
    torch.testing.assert_close(model(source, later)[:, :3], logits[:, :3])
    assert not torch.allclose(model(source, later)[:, 3:], logits[:, 3:], atol=1e-4)
    # and the source reaches the decoder only through cross-attention: silence it, and
    # the source no longer matters
    for block in model.decoder:
        torch.nn.init.zeros_(block.cross.c_proj.weight)
        torch.nn.init.zeros_(block.cross.c_proj.bias)
    torch.testing.assert_close(model(other_source, target), model(source, target))


@pytest.mark.parametrize("architecture", ["encoder_decoder", "decoder_only"])
def test_both_learn_to_reverse_and_answer_greedily(architecture):
    """Lengths 1..4 of 4 symbols: 500 steps give near-perfect answers to the strings that
    were never trained on (the task's test strings, 67 of them)."""
    c = Seq2SeqConfig.from_dict(
        config(architecture=architecture, symbols=4, max_length=4, lr=3e-3, max_steps=500)
    )
    task = c.task_spec()
    model = build_model(c)
    optimizer = model.configure_optimizer(0.0, c.lr)
    losses = []
    for step in range(c.max_steps):
        loss, _ = seq2seq_loss(model, task.train_batch(0, step, 32), torch.device("cpu"))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # the last 50 batches' mean: one batch's loss still spikes now and then (to 0.2 on the
    # encoder/decoder's last step on an AVX2 CPU, where the mean is 0.05)
    assert np.mean(losses[-50:]) < 0.1
    right = []
    for length in range(1, 5):
        test = task.test_batch(length=length, count=50)
        answers = greedy_answers(model.eval(), test.source, length)
        right += (answers == test.source.flip(1)).all(dim=1).tolist()
    assert len(right) == 1 + 3 + 13 + 50 and sum(right) / len(right) >= 0.9


@pytest.mark.parametrize("architecture", ["encoder_decoder", "decoder_only"])
def test_scoring_is_greedy_and_says_which_lengths_were_trained(architecture):
    c = Seq2SeqConfig.from_dict(config(min_length=2, architecture=architecture))
    task, model = c.task_spec(), build_model(c)
    runs = []
    for seed in (0, 1):  # answers sampled, not greedy, would differ with the seed
        torch.manual_seed(seed)
        runs.append(accuracy_by_length(model, task, 6, 20, torch.device("cpu")))
    assert runs[0] == runs[1]
    # training lengths 2..4: length 1 is shorter than any, 5 and 6 longer
    assert [r["trained"] for r in runs[0]] == [False, True, True, True, False, False]


@pytest.mark.parametrize("architecture", ["encoder_decoder", "decoder_only"])
def test_an_answer_is_exact_only_when_every_token_is_right_and_dropout_is_off(architecture):
    """Scored on a half-trained model with dropout, left in training mode: the answers are
    the model's without dropout, and an answer counts as exact when all of its tokens are
    right; token accuracy counts the tokens."""
    c = Seq2SeqConfig.from_dict(config(architecture=architecture, model={**TINY, "dropout": 0.3}))
    task = c.task_spec()
    torch.manual_seed(0)
    model = build_model(c)
    optimizer = model.configure_optimizer(0.0, c.lr)
    for step in range(60):
        loss, _ = seq2seq_loss(model, task.train_batch(0, step, 32), torch.device("cpu"))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    rows = accuracy_by_length(model.train(), task, 6, 20, torch.device("cpu"))
    assert model.training  # the mode it had
    partly = 0
    for row in rows:
        test = task.test_batch(row["length"], 20)
        answers = greedy_answers(model.eval(), test.source, row["length"]).tolist()
        model.train()
        targets = test.target.tolist()
        exact = [a == b for a, b in zip(answers, targets, strict=True)]
        tokens = [
            x == y for a, b in zip(answers, targets, strict=True) for x, y in zip(a, b, strict=True)
        ]
        assert row["exact_match"] == pytest.approx(sum(exact) / len(exact)), row
        assert row["token_accuracy"] == pytest.approx(sum(tokens) / len(tokens)), row
        partly += 0 < sum(exact) < len(exact)
    assert partly  # a length where some answers are right and some wrong


def test_the_summary_averages_the_trained_lengths_and_those_beyond_them():
    rows = [
        {"length": n, "trained": 2 <= n <= 4, "exact_match": n / 10, "token_accuracy": n / 5}
        for n in range(1, 7)
    ]
    summary = accuracy_summary(rows)
    assert summary["test/exact_match_trained"] == pytest.approx(0.3)  # lengths 2, 3, 4
    assert summary["test/exact_match_longer"] == pytest.approx(0.55)  # 5 and 6, not 1
    assert summary["test/token_accuracy_longer"] == pytest.approx(1.1)
    assert "test/exact_match_longer" not in accuracy_summary(rows[:4])


def test_gradients_are_clipped_to_grad_clip(tmp_path):
    weights = {}
    for clip in (0.0, 1e-3):  # 0: no clipping
        out = tmp_path / f"clip-{clip}"
        encoder_decoder_stage(config(max_steps=5, grad_clip=clip, log_every=1), str(out))
        weights[clip] = torch.load(out / "model.pt")["model"]
        lines = (out / "metrics.jsonl").read_text().splitlines()
        norms = [json.loads(line)["grad_norm"] for line in lines if "grad_norm" in line]
        assert len(norms) == 5 and min(norms) > 1e-3  # the norm before clipping
    assert any(not torch.equal(weights[0.0][k], weights[1e-3][k]) for k in weights[0.0])


# --------------------------------------------------------------------------- the stage


def test_stage_writes_the_run_and_resumes_exactly(tmp_path, capsys):
    settings = config(architecture="decoder_only", checkpoint_every=15, keep_checkpoints=2)
    first = encoder_decoder_stage(settings, str(tmp_path / "a"))
    run = tmp_path / "a"
    with open(run / "accuracy.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["length"]) for r in rows] == list(range(1, 7))
    assert [r["trained"] for r in rows] == ["True"] * 4 + ["False"] * 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["architecture"] == "decoder_only"
    assert first["test/exact_match_trained"] == summary["test/exact_match_trained"]

    # a run stopped after its step-15 checkpoint continues to the very same weights (the
    # mark of a finished run goes too: with it, the run would start afresh and still match)
    (run / "checkpoints" / "step-00000030.pt").unlink()
    (run / "checkpoints" / "finished").unlink()
    weights = torch.load(run / "model.pt")["model"]

    def logged() -> list[dict]:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if "loss" in line]

    before = logged()
    capsys.readouterr()
    encoder_decoder_stage(settings, str(run))
    assert "resuming from step 15 " in capsys.readouterr().err
    for name, tensor in torch.load(run / "model.pt")["model"].items():
        assert torch.equal(tensor, weights[name]), name
    after = logged()
    assert [m["step"] for m in after] == [10, 20, 30]
    # the count of target tokens goes on from the checkpoint's, as the losses do
    for key in ("target_tokens", "loss"):
        assert [m[key] for m in after] == [m[key] for m in before], key

    # the figure and tables read the run folders
    encoder_decoder_stage(config(seed=1), str(tmp_path / "b"))
    table = figures.accuracy_table([tmp_path / "a", tmp_path / "b"])
    assert set(table["architecture"]) == {"decoder_only", "encoder_decoder"}
    assert len(figures.run_table(table)) == 2
    written = figures.accuracy_by_length(table, tmp_path / "figure.png", "test")
    assert all(path.stat().st_size > 0 for path in written)


def test_the_stage_counts_real_target_tokens_and_reports_every_score(tmp_path):
    """target_tokens: the target tokens trained on so far, padding left out; evaluations
    during training score the longer lengths too; the stage returns every test score."""
    out = tmp_path / "run"
    result = encoder_decoder_stage(config(max_steps=10, log_every=5, eval_every=5), str(out))
    c = Seq2SeqConfig.from_dict(config())
    task = c.task_spec()
    real = [int(task.train_batch(c.seed, step, 32).target_mask.sum()) for step in range(10)]
    assert sum(real) < 10 * 32 * 4  # strings of 1 to 4 symbols: padded batches
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    counted = {m["step"]: m["target_tokens"] for m in metrics if "target_tokens" in m}
    assert counted == {5: sum(real[:5]), 10: sum(real)}
    during = [m for m in metrics if m["step"] == 5 and "test/exact_match_trained" in m]
    assert len(during) == 1
    assert {"test/exact_match_longer", "test/token_accuracy_longer"} <= set(during[0])
    summary = json.loads((out / "summary.json").read_text())
    scores = {k: v for k, v in summary.items() if k.startswith("test/")}
    assert len(scores) == 4 and {k: result[k] for k in scores} == scores


def test_resume_false_starts_the_run_afresh(tmp_path, capsys):
    settings = config(architecture="decoder_only", checkpoint_every=15)
    run = tmp_path / "run"
    whole = encoder_decoder_stage(settings, str(run))
    (run / "checkpoints" / "step-00000030.pt").unlink()  # stopped after step 15
    (run / "checkpoints" / "finished").unlink()
    capsys.readouterr()
    again = encoder_decoder_stage(settings, str(run), resume=False)
    assert "resuming" not in capsys.readouterr().err
    assert again.pop("train_time_s") > 0 and whole.pop("train_time_s") > 0
    assert again == whole  # all 30 steps again, to the same end


def test_the_figure_marks_longer_lengths_only_where_there_are_some(monkeypatch):
    kept = []
    monkeypatch.setattr(figures.plots, "save", lambda fig, out: kept.append(fig))
    for test_max_length in (4, 6):  # training lengths 1..4
        table = pd.DataFrame(
            [
                {"task": "reverse", "architecture": a, "seed": 0, "parameters": 1000, "length": n,
                 "trained": n <= 4, "exact_match": 0.5, "token_accuracy": 0.6}
                for a in ("encoder_decoder", "decoder_only")
                for n in range(1, test_max_length + 1)
            ]
        )  # fmt: skip
        figures.accuracy_by_length(table, "unused", "t")
        said = [t.get_text() for ax in kept[-1].axes for t in ax.texts]
        assert said == ["longer than\nin training"] * 2 * (test_max_length > 4)
    plt.close("all")


def test_at_its_time_limit_the_stage_job_requeues_itself_resuming(tmp_path, capsys):
    """At SLURM's warning before the time limit submitit asks the job for its checkpoint()
    submission and requeues that: the run resumes. A plain function has no checkpoint(),
    and its job would fail at the time limit."""
    job = get_stage("encoder-decoder")  # what `fromscratch run encoder-decoder` submits
    assert isinstance(job, Checkpointable)
    assert inspect.signature(job) == inspect.signature(encoder_decoder_stage)  # checked args
    settings = config(architecture="decoder_only", checkpoint_every=15)
    run = tmp_path / "run"
    first = job(config=settings, out=str(run))
    # as if the warning had come after the step-15 checkpoint
    (run / "checkpoints" / "step-00000030.pt").unlink()
    (run / "checkpoints" / "finished").unlink()
    requeued = job.checkpoint(config=settings, out=str(run), resume=False)
    assert requeued.function is job and requeued.kwargs["resume"] is True
    capsys.readouterr()
    resumed = requeued.result()
    assert "resuming from step 15 " in capsys.readouterr().err
    assert resumed.pop("train_time_s") > 0 and first.pop("train_time_s") > 0
    assert resumed == first


def test_a_signal_mid_run_checkpoints_and_the_resumed_run_ends_identically(
    tmp_path, monkeypatch, capsys
):
    settings = config(architecture="encoder_decoder")
    encoder_decoder_stage(settings, str(tmp_path / "whole"))

    # SLURM's warning arrives while step 7 runs; with no requeueing handler (SIG_IGN
    # before training) the run saves after that step and stops
    batch = Seq2SeqTask.train_batch

    def train_batch(self, seed, step, batch_size):
        if step == 7:
            os.kill(os.getpid(), signal.SIGUSR2)
        return batch(self, seed, step, batch_size)

    monkeypatch.setattr(Seq2SeqTask, "train_batch", train_batch)
    previous = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        with pytest.raises(Interrupted, match="at step 8"):
            encoder_decoder_stage(settings, str(tmp_path / "cut"))
    finally:
        signal.signal(signal.SIGUSR2, previous)
    monkeypatch.undo()
    saved = sorted(p.name for p in (tmp_path / "cut" / "checkpoints").glob("*.pt"))
    assert saved == ["step-00000008.pt"]

    capsys.readouterr()
    encoder_decoder_stage(settings, str(tmp_path / "cut"))
    assert "resuming from step 8 " in capsys.readouterr().err  # not a fresh start
    whole = torch.load(tmp_path / "whole" / "model.pt")["model"]
    for name, tensor in torch.load(tmp_path / "cut" / "model.pt")["model"].items():
        assert torch.equal(tensor, whole[name]), name


# --------------------------------------------------------------------------- the tables and figure

# Trained on lengths 2..6, tested on 1..9; each seed shifted by SEED_SHIFTS, and the two
# architectures' curves apart.
LENGTHS, TRAINED = range(1, 10), range(2, 7)
ARCHITECTURES = {"encoder_decoder": (0.98, 121_000), "decoder_only": (0.80, 118_000)}


def exact_match(architecture: str, seed: int, length: int) -> float:
    return ARCHITECTURES[architecture][0] - 0.05 * length - SEED_SHIFTS[seed]


def write_runs(root) -> list:
    """A run folder per (architecture, seed): accuracy.csv and summary.json, as the stage
    writes them."""
    folders = []
    for architecture, (_, parameters) in ARCHITECTURES.items():
        for seed in range(len(SEED_SHIFTS)):
            folder = root / f"{architecture}-{seed}"
            folder.mkdir()
            em = [exact_match(architecture, seed, n) for n in LENGTHS]
            pd.DataFrame(
                {"length": LENGTHS, "trained": [n in TRAINED for n in LENGTHS], "exact_match": em,
                 "token_accuracy": np.add(em, 0.01), "examples": 50}
            ).to_csv(folder / "accuracy.csv", index=False)  # fmt: skip
            summary = {"architecture": architecture, "seed": seed, "parameters": parameters,
                       "task": "reverse"}  # fmt: skip
            (folder / "summary.json").write_text(json.dumps(summary))
            folders.append(folder)
    return folders


def test_the_run_table_averages_the_trained_lengths_and_those_beyond_them(tmp_path):
    """One row per run; "trained" is the mean over the trained lengths only (not the shorter
    untrained length 1), "longer" over the lengths past the longest trained one."""
    runs = figures.run_table(figures.accuracy_table(write_runs(tmp_path)))
    runs = runs.set_index(["architecture", "seed"]).sort_index()
    assert runs.index.tolist() == sorted(
        (a, s) for a in ARCHITECTURES for s in range(len(SEED_SHIFTS))
    )
    for (architecture, seed), row in runs.iterrows():
        trained = np.mean([exact_match(architecture, seed, n) for n in TRAINED])
        longer = np.mean([exact_match(architecture, seed, n) for n in (7, 8, 9)])
        assert row["exact_match_trained"] == pytest.approx(trained)
        assert row["exact_match_longer"] == pytest.approx(longer)
        assert row["token_accuracy_longer"] == pytest.approx(longer + 0.01)


def test_the_figure_draws_each_architecture_over_seeds_under_its_name(tmp_path, drawn):
    """Each legend entry names the curve it marks (mean over the 3 seeds), with bars of ±
    one sample sd; the dashed line sits between the longest trained length and the next."""
    figures.accuracy_by_length(figures.accuracy_table(write_runs(tmp_path)), "unused", "t")
    fig = drawn[-1]
    assert "over 3 seeds" in fig._suptitle.get_text()
    ax = fig.axes[0]
    dashed = [line.get_xdata() for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert [list(x) for x in dashed] == [[6.5, 6.5]]
    legend = fig.axes[1].get_legend()
    handles = zip(legend.texts, legend.legend_handles, strict=True)
    colors = {text.get_text(): to_hex(handle.get_color()) for text, handle in handles}
    names = {
        "encoder/decoder (121k parameters)": "encoder_decoder",
        "decoder-only GPT (118k parameters)": "decoder_only",
    }
    assert set(colors) == set(names)
    lines = [line for line in ax.get_lines() if line.get_marker() == "o" and len(line.get_xdata())]
    curves = {to_hex(line.get_color()): line.get_ydata() for line in lines}  # not legend keys
    for name, architecture in names.items():
        means = [np.mean([exact_match(architecture, s, n) for s in range(3)]) for n in LENGTHS]
        assert curves[colors[name]].tolist() == pytest.approx(means), name
    spans = [2 * np.std(SEED_SHIFTS, ddof=1)] * 2 * len(LENGTHS)
    assert error_bar_spans(ax) == pytest.approx(spans)
