"""The training loop: learning, guards, budgets, config errors, tracking files."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fromscratch import FromScratchError
from fromscratch.config import ConfigError
from fromscratch.data import PreparedData
from fromscratch.figures import tables
from fromscratch.stages.evaluate import evaluate_stage
from fromscratch.train import NonFiniteLoss, TrainConfig, Trainer, load_config, train
from fromscratch.train.evaluate import evaluate_lm
from fromscratch.train.schedule import learning_rate

from ..conftest import tiny_classifier, tiny_gpt
from .stand_ins import Reads, head_and_tail


def test_classifier_learns_the_demo_task(demo_words, tmp_path):
    summary = train(TrainConfig.from_dict(tiny_classifier(demo_words, max_steps=300)), tmp_path)
    assert summary["test/accuracy"] > 0.68  # chance is 0.5; a bag of words gets 0.77
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["test/accuracy"] == summary["test/accuracy"]
    assert saved["config"]["model"]["family"] == "classifier"
    environment = {"git_commit", "git_changes", "versions", "device"}
    assert environment | {"wall_time_s", "tokens_per_s"} <= saved.keys()


def test_gpt_loss_falls_and_metrics_are_logged(demo_chars, tmp_path):
    summary = train(TrainConfig.from_dict(tiny_gpt(demo_chars, max_steps=60)), tmp_path)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in lines if "loss" in x]
    assert len(losses) == 60 and losses[-1] < losses[0] - 0.5
    assert all("grad_norm" in x and "lr" in x for x in lines if "loss" in x)
    uniform = math.log2(PreparedData(demo_chars).meta["vocab_size"])
    assert summary["test/bits_per_char"] < uniform - 1


def test_the_last_step_is_logged_off_the_log_every_grid(demo_chars, tmp_path):
    train(TrainConfig.from_dict(tiny_gpt(demo_chars, max_steps=7, log_every=5)), tmp_path)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [5, 7]


def nan_weights(trainer):
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))


def an_infinite_gradient(trainer):
    """From the next backward pass on, one weight's gradient is infinite while the loss
    stays finite: only the gradient norm shows it."""
    weight = next(trainer.model.parameters())
    return weight.register_hook(lambda grad: torch.full_like(grad, math.inf))


@pytest.mark.parametrize(
    ("spoil", "what"), [(nan_weights, "loss"), (an_infinite_gradient, "gradient norm")]
)
def test_a_non_finite_step_stops_with_the_step_and_keeps_the_last_checkpoint(
    demo_chars, tmp_path, spoil, what
):
    """The step named as metrics.jsonl and the checkpoints count: the sixth."""
    trainer = Trainer(TrainConfig.from_dict(tiny_gpt(demo_chars, checkpoint_every=5)), tmp_path)
    for _ in range(5):
        trainer.train_step()
    trainer.save_checkpoint()
    spoil(trainer)
    with pytest.raises(
        NonFiniteLoss,
        match=rf"^non-finite {what} at step 6; last good checkpoint: \S*step-00000005\.pt$",
    ):
        trainer.train_step()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-00000005.pt"]


def test_a_batch_that_does_not_fit_in_memory_says_what_to_do(demo_chars, tmp_path):
    """A real allocation that fails: the first activation, windows of 2 tokens 512 wide,
    twice as large as this machine's memory and swap together, which Linux refuses at once
    (the batch of token ids itself: about 1/170 of it)."""
    if Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "1":
        pytest.skip("this kernel grants any allocation, and kills the process as it fills")
    with open("/proc/meminfo") as info:
        kb = {line.split(":")[0]: int(line.split()[1]) for line in info}
    memory = (kb["MemTotal"] + kb["SwapTotal"]) * 1024
    batch = 2 ** math.ceil(math.log2(2 * memory / (2 * 512 * 4)))
    model = {"family": "gpt", "n_layer": 1, "n_head": 1, "n_embd": 512, "context": 2}
    config = TrainConfig.from_dict(tiny_gpt(demo_chars, model=model, batch_size=batch))
    with pytest.raises(FromScratchError) as refused:
        train(config, tmp_path / "run")
    assert str(refused.value) == (
        f"out of memory on cpu at batch_size={batch} of context=2 tokens: train the batch in "
        f"smaller pieces (batch_size={batch // 2}, grad_accum=2), or find the largest that "
        "fits with `fromscratch batch-size`"
    )


def test_an_fp16_overflow_skips_the_step_instead_of_stopping(demo_chars, tmp_path):
    # in fp16 an infinite gradient is the loss scale being too large for once: the scaler
    # skips that update and halves its scale, and the run goes on
    spec = tiny_gpt(demo_chars, precision="fp16", eval_splits="")
    trainer = Trainer(TrainConfig.from_dict(spec), tmp_path)
    trainer.train_step()
    before = {name: w.clone() for name, w in trainer.model.state_dict().items()}
    scale = trainer.scaler.get_scale()
    overflow = an_infinite_gradient(trainer)
    metrics = trainer.train_step()
    overflow.remove()
    assert metrics["grad_norm"] == math.inf and math.isfinite(metrics["loss"])
    assert trainer.scaler.get_scale() == scale / 2
    after = trainer.model.state_dict()
    assert all(torch.equal(after[name], w) for name, w in before.items())
    trainer.train_step()  # at the smaller scale, an update again
    assert not torch.equal(trainer.model.state_dict()["lm_head.weight"], before["lm_head.weight"])
    # and a resumed run goes on at the scale it had come to, not at the first one
    trainer.save_checkpoint()
    resumed = Trainer(TrainConfig.from_dict(spec), tmp_path, resume=True)
    assert resumed.scaler.state_dict() == trainer.scaler.state_dict()
    assert resumed.scaler.get_scale() == scale / 2


def test_token_and_time_budgets_stop_the_run(demo_chars, tmp_path):
    by_tokens = train(
        TrainConfig.from_dict(
            tiny_gpt(
                demo_chars, max_steps=0, token_budget=8 * 32 * 7, clock="tokens", eval_splits=""
            )
        ),
        tmp_path / "t",
    )
    assert by_tokens["steps"] == 7
    # clock: tokens: after warm-up the LR decays over the tokens seen since, to its floor
    # at the budget (not stuck at the floor, as a steps clock with no max_steps would be)
    lines = [json.loads(x) for x in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    lrs = [x["lr"] for x in lines if "lr" in x]
    tokens_per_step = 8 * 32
    expected = [learning_rate(3e-3, step, (step - 5) / 2, warmup_steps=5) for step in range(7)]
    assert lrs == pytest.approx(expected)
    assert lrs[5] > lrs[6] > 3e-4
    assert tokens_per_step * 7 == by_tokens["tokens"]
    by_time = train(
        TrainConfig.from_dict(
            tiny_gpt(demo_chars, max_steps=0, time_budget_s=1.5, clock="time", eval_splits="")
        ),
        tmp_path / "s",
    )
    assert 1.5 <= by_time["train_time_s"] < 3.0


def test_tokens_per_second_counts_training_steps_only(demo_chars, tmp_path):
    # evaluating every 2 steps and logging every 4: each logged rate is the tokens trained
    # since the last log line over the training time since then, evaluation not included
    spec = tiny_gpt(demo_chars, max_steps=12, log_every=4, eval_every=2)
    train(TrainConfig.from_dict(spec), tmp_path)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = [x for x in lines if "tokens_per_s" in x]
    assert [x["tokens"] for x in logged] == [4 * 256, 8 * 256, 12 * 256]
    previous = {"tokens": 0, "elapsed_s": 0.0}
    for x in logged:
        rate = (x["tokens"] - previous["tokens"]) / (x["elapsed_s"] - previous["elapsed_s"])
        assert x["tokens_per_s"] == pytest.approx(rate, rel=1e-9)
        previous = x


def test_gradient_accumulation_matches_one_big_batch(demo_chars, tmp_path):
    def train_steps(**overrides):
        spec = tiny_gpt(demo_chars, max_steps=3, eval_splits="", **overrides)
        spec["model"]["dropout"] = 0.0
        trainer = Trainer(TrainConfig.from_dict(spec), tmp_path / str(overrides))
        trainer.batches = accumulate_as(trainer, overrides.get("grad_accum", 1))
        steps = [trainer.train_step() for _ in range(3)]
        return trainer.model.state_dict(), steps

    def accumulate_as(trainer, accum):
        # The same 8 windows per step, served whole or in `accum` micro-batches.
        whole = trainer.batches
        return lambda index: tuple(
            t[(index % accum) * 8 // accum :][: 8 // accum] for t in whole(index // accum)
        )

    one, one_steps = train_steps(batch_size=8)
    four, four_steps = train_steps(batch_size=8, grad_accum=4)
    # AdamW's update hardly depends on the gradient's scale, and clipping caps it: the
    # weights would agree even if the micro-batches' gradients were summed, not averaged
    norms = [[step["grad_norm"] for step in steps] for steps in (one_steps, four_steps)]
    assert norms[1] == pytest.approx(norms[0], rel=1e-4)
    # AdamW divides by the root of the squared gradients' average: where a gradient is
    # near zero (a rare token's embedding), the order of the sums moves the update by 1e-6
    for name in one:
        torch.testing.assert_close(four[name], one[name], rtol=1e-4, atol=1e-5)
    # the loss logged is the micro-batches' mean, the big batch's: the same weights at the
    # first step, so the same number up to the order of the sums
    assert four_steps[0]["loss"] == pytest.approx(one_steps[0]["loss"], rel=1e-6)


def test_a_classifier_counts_its_tokens_without_the_padding(demo_words, tmp_path):
    spec = tiny_classifier(demo_words, max_steps=3, grad_accum=2, eval_splits="")
    trainer = Trainer(TrainConfig.from_dict(spec), tmp_path)
    summary = trainer.run()
    # a batch is a function of its index: these are the 3 steps' 2 micro-batches each
    masks = [trainer.batches(index)[1] for index in range(3 * 2)]
    assert summary["tokens"] == sum(int(mask.sum()) for mask in masks)
    assert summary["tokens"] < sum(mask.numel() for mask in masks)  # there was padding


def test_a_run_on_joined_splits_trains_on_the_examples_of_both(demo_words, tmp_path, capsys):
    spec = tiny_classifier(demo_words, max_steps=2, train_split="train+ood", eval_splits="test")
    trainer = Trainer(TrainConfig.from_dict(spec), tmp_path / "run")
    data = PreparedData(demo_words)
    batches = trainer.batch_stream(16)
    assert len(batches.labels) == data.examples("train") + data.examples("ood") == 5000
    assert trainer.run()["config"]["train_split"] == "train+ood"
    assert "training data" not in capsys.readouterr().err
    # scored on a split it trains on: said, once, and the run goes on
    spec |= {"eval_splits": "test,ood"}
    Trainer(TrainConfig.from_dict(spec), tmp_path / "scored-on-ood").run()
    assert capsys.readouterr().err.count("warning: eval_splits: ood is scored on training "
                                         "data (ood in train_split=train+ood)\n") == 1  # fmt: skip
    # and so does `evaluate` of the model, on its training data, not on another folder's
    model = str(tmp_path / "run" / "model.pt")
    evaluate_stage(model, {"ood": {"split": "ood"}, "test": {"split": "test"}})
    assert capsys.readouterr().err == (
        "warning: split ood is scored on training data (ood in train_split=train+ood)\n"
    )
    copy = shutil.copytree(demo_words, tmp_path / "copy")
    evaluate_stage(model, {"ood": {"split": "ood", "data": str(copy)}})
    assert "warning" not in capsys.readouterr().err


def test_a_split_scored_with_a_vocabulary_learned_from_it_is_said(tmp_path, capsys):
    from fromscratch.data import prepare

    fitted = tmp_path / "fitted-on-train+ood"
    prepare("demo", fitted, fit_on="train+ood", progress=False)
    spec = tiny_classifier(fitted, max_steps=1, eval_splits="test,ood")
    Trainer(TrainConfig.from_dict(spec), tmp_path / "run").run()
    err = capsys.readouterr().err
    assert err.count("warning: eval_splits") == 1  # not for test: neither trained on nor fitted on
    assert (f"warning: eval_splits: ood is scored with a vocabulary learned from ood ({fitted} "
            "was prepared with fit_on=train+ood)\n") in err  # fmt: skip
    evaluate_stage(str(tmp_path / "run" / "model.pt"), {"ood": {"split": "ood"}})
    assert capsys.readouterr().err == (
        f"warning: split ood is scored with a vocabulary learned from ood ({fitted} was "
        "prepared with fit_on=train+ood)\n"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"schedule": "exponential"},
            "TrainConfig.schedule: 'exponential' is not one of cosine, linear, constant",
        ),
        ({"batchsize": 3}, "unknown keys batchsize"),
        ({"model": {"family": "rnn"}}, "family 'rnn' is not one of gpt, classifier"),
        ({"model": {"family": ["gpt"]}}, r"family \['gpt'\] is not one of gpt, classifier"),
        ({"precision": "fp8"}, "not one of fp32, bf16, fp16"),
        ({"clock": "time"}, "'time' needs time_budget_s > 0"),
        (
            {"max_steps": 0, "token_budget": 1000},
            r"TrainConfig.clock: 'steps' needs max_steps > 0; clocks: steps \(max_steps\), "
            r"time \(time_budget_s\), tokens \(token_budget\)",
        ),
        ({"clock": "tokens"}, "'tokens' needs token_budget > 0"),
        ({"lr": "fast"}, "TrainConfig.lr: 'fast' is not of type float"),
        ({"lr": "nan"}, "TrainConfig.lr: nan must be a finite number"),
        ({"lr": float("inf")}, "TrainConfig.lr: inf must be a finite number"),
        ({"grad_clip": -1.0}, r"TrainConfig.grad_clip: -1.0 must be 0 or more"),
        ({"seed": 2**64}, r"TrainConfig.seed: 18446744073709551616 must be at most 2\*\*63 - 1"),
        ({"weight_decay": -0.1}, r"TrainConfig.weight_decay: -0.1 must be 0 or more"),
        ({"min_lr_ratio": 1.5}, r"TrainConfig.min_lr_ratio: 1.5 must be in \[0, 1\]"),
        ({"min_lr_ratio": -0.1}, r"TrainConfig.min_lr_ratio: -0.1 must be in \[0, 1\]"),
        ({"eval_every": -1}, "TrainConfig.eval_every: -1 must be 0 or more"),
        ({"checkpoint_every": -5}, "TrainConfig.checkpoint_every: -5 must be 0 or more"),
        ({"time_budget_s": -60}, "TrainConfig.time_budget_s: -60 must be 0 or more"),
        ({"token_budget": -1}, "TrainConfig.token_budget: -1 must be 0 or more"),
        ({"max_steps": -1}, "TrainConfig.max_steps: -1 must be 0 or more"),
        ({"head_tokens": -1}, "TrainConfig.head_tokens: -1 must be 0 or more"),
        ({"seed": -1}, "TrainConfig.seed: -1 must be 0 or more"),
        ({"beta1": 1.0}, r"TrainConfig.beta1: 1.0 must be in \[0, 1\)"),
        ({"beta2": -0.5}, r"TrainConfig.beta2: -0.5 must be in \[0, 1\)"),
        ({"log_every": 0}, "TrainConfig.log_every: 0 must be at least 1"),
        ({"keep_checkpoints": 0}, "TrainConfig.keep_checkpoints: 0 must be at least 1"),
        ({"distill_temperature": 0}, "TrainConfig.distill_temperature: 0 must be positive"),
        ({"device": "cuda:"}, "TrainConfig.device: 'cuda:': allowed: auto, cpu, cuda, cuda:N"),
        ({"wandb_project": "a#b"}, "wandb_project: 'a#b': W&B takes 1 to 128 characters"),
    ],
)
def test_bad_config_values_are_named(demo_chars, change, message):
    with pytest.raises(FromScratchError, match=message):
        TrainConfig.from_dict(tiny_gpt(demo_chars, **change))


def test_a_number_yaml_reads_as_text_is_a_number(demo_chars, tmp_path):
    # YAML 1.1 (PyYAML) reads 1e-3, without a dot, as a string
    path = tmp_path / "gpt.yaml"
    spec = {key: value for key, value in tiny_gpt(demo_chars).items() if key != "lr"}
    path.write_text(yaml.safe_dump(spec) + "lr: 1e-3\nmin_lr_ratio: 5e-1\n")
    assert (load_config(path).lr, load_config(path).min_lr_ratio) == (0.001, 0.5)
    assert load_config(path, {"lr": yaml.safe_load("2e-3")}).lr == 0.002


def test_an_empty_override_means_the_default(demo_chars, tmp_path):
    path = tmp_path / "gpt.yaml"
    path.write_text(yaml.safe_dump(tiny_gpt(demo_chars, eval_splits="test", lr=0.5)))
    config = load_config(path, {"eval_splits": None, "lr": None, "model.n_head": None})
    assert (config.eval_splits, config.lr) == ("", TrainConfig.lr)
    assert "n_head" not in config.model and config.model["n_embd"] == 32


def test_an_override_sets_a_field_of_the_default_model(demo_chars, tmp_path):
    path = tmp_path / "gpt.yaml"
    path.write_text(yaml.safe_dump({"data": str(demo_chars)}))  # no model: the default GPT
    assert load_config(path, {"model.n_layer": 1}).model == {"family": "gpt", "n_layer": 1}
    assert TrainConfig.from_dict({"data": str(demo_chars)}).model == {"family": "gpt"}


def test_a_config_that_is_not_utf8_text_is_named(tmp_path):
    path = tmp_path / "gpt.yaml"
    path.write_bytes(b"lr: 1\n\xff\xfe")
    with pytest.raises(FromScratchError, match=r"gpt.yaml: not UTF-8 text \(byte 6\)"):
        load_config(path)
    # a path that is there but no file: said, not "no such file"
    with pytest.raises(FromScratchError, match=r"^\S+: a folder, not a config file \(a YAML"):
        load_config(tmp_path)
    with pytest.raises(FromScratchError, match=r"nowhere.yaml: no such config file$"):
        load_config(tmp_path / "nowhere.yaml")


def test_a_wrong_model_field_fails_before_the_data_is_read(tmp_path):
    # the data is prepared by another step that may not have run yet: a typo in the model
    # should not wait for it
    config = tiny_gpt(tmp_path / "not-prepared-yet", max_steps=1)
    config["model"]["n_hed"] = 2
    with pytest.raises(FromScratchError, match="GPTConfig: unknown keys n_hed"):
        Trainer(TrainConfig.from_dict(config), tmp_path / "run")


def test_tuned_values_flow_in_from_json(demo_chars, tmp_path):
    (tmp_path / "lr.json").write_text('{"lr": 0.0042}')
    (tmp_path / "bs.json").write_text('{"batch_size": 4}')
    config = TrainConfig.from_dict(
        tiny_gpt(
            demo_chars, lr_from=str(tmp_path / "lr.json"), batch_size_from=str(tmp_path / "bs.json")
        )
    )
    resolved = config.resolved()
    assert (resolved.lr, resolved.batch_size) == (0.0042, 4)
    with pytest.raises(FromScratchError, match="no such file"):
        TrainConfig.from_dict(tiny_gpt(demo_chars, lr_from="missing.json")).resolved()
    with pytest.raises(FromScratchError, match=f"^{tmp_path}: a folder, not a file \\(it should"):
        TrainConfig.from_dict(tiny_gpt(demo_chars, lr_from=str(tmp_path))).resolved()


def test_a_tuned_value_file_of_another_kind_is_named(demo_chars, tmp_path):
    torch.save({"model": {}}, tmp_path / "model.pt")
    (tmp_path / "text.json").write_text('{"lr": "abc"}')
    (tmp_path / "list.json").write_text("[0.001]")
    (tmp_path / "half.json").write_text('{"batch_size": 2.5}')
    lr = "it should be the JSON that `fromscratch lr-range` writes, with 'lr'"
    for key, name, named in (
        ("lr_from", "model.pt", f"model.pt: not a JSON file ({lr})"),
        ("lr_from", "text.json", f"text.json: TrainConfig.lr: 'abc' is not of type float ({lr})"),
        ("lr_from", "list.json", f"list.json has no key 'lr' ({lr})"),
        ("batch_size_from", "half.json", "half.json: TrainConfig.batch_size: 2.5 is not of type"),
    ):
        config = TrainConfig.from_dict(tiny_gpt(demo_chars, **{key: str(tmp_path / name)}))
        with pytest.raises(FromScratchError) as error:
            config.resolved()
        assert named in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"eval_splits": "test,tset"}, "has no split 'tset'; it has: train, test, ood"),
        ({"train_split": "trian"}, "has no split 'trian'; it has: train, test, ood"),
        ({"train_split": "train+tset"}, "has no split 'tset'; it has: train, test, ood"),
        ({"model": {"vocab_size": 10}}, "model.vocab_size=10: smaller than the vocabulary of"),
    ],
)
def test_config_that_does_not_fit_the_data_fails_before_training(
    demo_chars, tmp_path, change, message
):
    spec = tiny_gpt(demo_chars)
    spec["model"] |= change.pop("model", {})
    with pytest.raises(FromScratchError, match=message):
        Trainer(TrainConfig.from_dict(spec | change), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_larger_vocabulary_than_the_data_is_padding(demo_chars, tmp_path):
    spec = tiny_gpt(demo_chars)
    spec["model"]["vocab_size"] = PreparedData(demo_chars).meta["vocab_size"] + 3
    assert (
        Trainer(TrainConfig.from_dict(spec), tmp_path).model.config.vocab_size
        == spec["model"]["vocab_size"]
    )


def test_a_classifier_has_an_output_for_each_label_of_its_data():
    """Two-label data sets are all the course has; a third label must get its own output."""
    from fromscratch.train.models import model_config

    meta = {"vocab_size": 50, "labels": ["negative", "neutral", "positive"]}
    assert model_config({"family": "classifier"}, meta).num_classes == 3
    assert model_config({"family": "classifier", "num_classes": 4}, meta).num_classes == 4


def test_head_tokens_beyond_max_length_fail_before_training(demo_words, tmp_path):
    config = TrainConfig.from_dict(tiny_classifier(demo_words, max_length=96, head_tokens=97))
    with pytest.raises(FromScratchError, match="head_tokens=97: more than the max_length=96"):
        Trainer(config, tmp_path)
    Trainer(TrainConfig.from_dict(tiny_classifier(demo_words, head_tokens=96)), tmp_path)


def test_the_optimizer_takes_the_configs_settings(demo_chars, tmp_path):
    """AdamW's betas and weight decay are the config's (beta2 0.99 is the course GPT's
    setting for small batches)."""
    spec = tiny_gpt(demo_chars, beta1=0.8, beta2=0.97, weight_decay=0.05, eval_splits="")
    trainer = Trainer(TrainConfig.from_dict(spec), tmp_path)
    decay, no_decay = trainer.optimizer.param_groups
    assert decay["betas"] == no_decay["betas"] == (0.8, 0.97)
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.05, 0.0)


def test_left_out_the_optimizer_settings_are_gpt3s(demo_chars, tmp_path):
    """A config without them trains with GPT-3's recipe (nanoGPT's too): AdamW betas
    (0.9, 0.95), weight decay 0.1 on matrices, gradients clipped at norm 1.0."""
    spec = tiny_gpt(demo_chars, eval_splits="")
    assert not {"beta1", "beta2", "weight_decay", "grad_clip"} & spec.keys()
    config = TrainConfig.from_dict(spec)
    decay, no_decay = Trainer(config, tmp_path).optimizer.param_groups
    assert decay["betas"] == no_decay["betas"] == (0.9, 0.95)
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)
    assert config.grad_clip == 1.0


def test_schedule_shapes():
    assert learning_rate(1.0, 0, 0.0, warmup_steps=10) == pytest.approx(0.1)
    assert learning_rate(1.0, 9, 0.0, warmup_steps=10) == pytest.approx(1.0)
    assert learning_rate(1.0, 50, 0.0, shape="cosine", min_lr_ratio=0.1) == pytest.approx(1.0)
    assert learning_rate(1.0, 50, 0.5, shape="cosine", min_lr_ratio=0.1) == pytest.approx(0.55)
    assert learning_rate(1.0, 50, 1.0, shape="cosine", min_lr_ratio=0.1) == pytest.approx(0.1)
    assert learning_rate(1.0, 50, 0.5, shape="linear", min_lr_ratio=0.0) == pytest.approx(0.5)
    assert learning_rate(1.0, 50, 2.0, shape="linear", min_lr_ratio=0.0) == pytest.approx(0.0)
    assert learning_rate(1.0, 50, 0.5, shape="linear", min_lr_ratio=0.2) == pytest.approx(0.6)
    assert learning_rate(1.0, 50, 1.0, shape="linear", min_lr_ratio=0.2) == pytest.approx(0.2)
    assert learning_rate(1.0, 50, 0.7, shape="constant") == 1.0


def test_a_run_that_ends_inside_its_warm_up_says_so(demo_chars, tmp_path, capsys):
    spec = tiny_gpt(demo_chars, max_steps=4, warmup_steps=5, lr=3e-3, eval_splits="")
    assert train(TrainConfig.from_dict(spec), tmp_path / "short")["steps"] == 4
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "warning: warmup_steps=5 > max_steps=4: the run ends inside its warm-up, "
        "its lr at most 0.0024 of lr=0.003"
    ]
    # the warm-up's last step is the first at the full lr: five steps reach it
    train(TrainConfig.from_dict({**spec, "max_steps": 5}), tmp_path / "long")
    assert "warmup_steps" not in capsys.readouterr().err
    last = (tmp_path / "long" / "metrics.jsonl").read_text().splitlines()[-1]
    assert json.loads(last)["lr"] == pytest.approx(3e-3)
    # a token (or time) budget that ends inside the warm-up: said when it has
    budget = {**spec, "max_steps": 0, "clock": "tokens", "token_budget": 8 * 32 * 3}
    assert train(TrainConfig.from_dict(budget), tmp_path / "tokens")["steps"] == 3
    assert capsys.readouterr().err.splitlines() == [
        "warning: the run's budget ended at step 3, inside its warm-up (warmup_steps=5): "
        "its lr at most 0.0018 of lr=0.003"
    ]


def test_wandb_offline_run_is_continued_on_resume(demo_chars, tmp_path):
    spec = tiny_gpt(
        demo_chars,
        max_steps=9,
        checkpoint_every=3,
        wandb_mode="offline",
        group="demo",
        job_type="train",
        tags="test,tiny",
        eval_splits="",
    )
    interrupted = Trainer(TrainConfig.from_dict(spec), tmp_path)
    for _ in range(6):
        interrupted.train_step()
    interrupted.save_checkpoint()
    interrupted.tracker.close()
    run_id = interrupted.tracker.run_id
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and runs[0].name.endswith(run_id)
    resumed = train(TrainConfig.from_dict(spec), tmp_path, resume=True)
    assert resumed["wandb_run_id"] == run_id and resumed["steps"] == 9


def test_resume_with_another_config_starts_afresh(demo_chars, tmp_path):
    train(
        TrainConfig.from_dict(
            tiny_gpt(demo_chars, max_steps=4, checkpoint_every=2, eval_splits="")
        ),
        tmp_path,
    )
    # as a run stopped at its last checkpoint: a finished one starts afresh in any case
    (tmp_path / "checkpoints" / "finished").unlink()
    again = train(
        TrainConfig.from_dict(
            tiny_gpt(demo_chars, max_steps=4, checkpoint_every=2, eval_splits="", lr=1e-3)
        ),
        tmp_path,
        resume=True,
    )
    assert again["steps"] == 4
    assert (tmp_path / "checkpoints.stale-1" / "step-00000004.pt").exists()
    logged = [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4]  # the old run's lines are gone


def test_resume_goes_on_when_only_the_watching_changed(demo_chars, tmp_path, capsys):
    # a job killed at step 6, rerun with W&B switched on and other log and checkpoint
    # cadences: the same training, so it resumes instead of starting again
    spec = tiny_gpt(demo_chars, max_steps=9, checkpoint_every=3, eval_splits="")
    uninterrupted = train(TrainConfig.from_dict(spec), tmp_path / "whole")
    killed = Trainer(TrainConfig.from_dict(spec), tmp_path / "run")
    for _ in range(6):
        killed.train_step()
    killed.save_checkpoint()
    killed.tracker.close()
    capsys.readouterr()
    watched = spec | {"wandb_mode": "offline", "tags": "rerun", "run_name": "x/y", "log_every": 2}
    watched |= {"checkpoint_every": 4, "keep_checkpoints": 3}
    # and what is evaluated, and how (a wrong eval_stride would have failed the final
    # evaluation, after every step)
    watched |= {"eval_splits": "test", "eval_every": 4, "eval_max_tokens": 500, "eval_stride": 8}
    resumed = train(TrainConfig.from_dict(watched), tmp_path / "run", resume=True)
    assert "resuming from step 6" in capsys.readouterr().err
    assert resumed["final_train_loss"] == uninterrupted["final_train_loss"]
    assert not (tmp_path / "run" / "checkpoints.stale-1").exists()


def test_a_run_killed_after_its_final_evaluation_logs_each_line_once(demo_chars, tmp_path):
    # the final checkpoint is saved before the final evaluation: a kill before the run is
    # marked finished resumes at that checkpoint's step, evaluates and logs again, once
    spec = tiny_gpt(demo_chars, max_steps=4, checkpoint_every=2, eval_every=2)
    train(TrainConfig.from_dict(spec), tmp_path)
    before = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(before[-1]).keys() >= {"step", "test/loss"}
    (tmp_path / "checkpoints" / "finished").unlink()
    train(TrainConfig.from_dict(spec), tmp_path, resume=True)
    assert (tmp_path / "metrics.jsonl").read_text().splitlines() == before


def test_an_lstm_trains_on_windows_longer_than_its_default_context(demo_chars, tmp_path):
    spec = tiny_gpt(demo_chars, context=48, eval_splits="")
    spec["model"] = {"family": "lstm", "n_layer": 1, "n_embd": 16, "context": 32}
    assert Trainer(TrainConfig.from_dict(spec), tmp_path / "lstm").context == 48
    spec["model"] = tiny_gpt(demo_chars)["model"]  # a GPT's context is a hard limit
    with pytest.raises(FromScratchError, match="context=48: longer than the model's context=32"):
        Trainer(TrainConfig.from_dict(spec), tmp_path / "gpt")


def test_without_eval_splits_no_evaluation_lines_are_logged(demo_chars, tmp_path):
    train(TrainConfig.from_dict(tiny_gpt(demo_chars, max_steps=4, eval_every=2, log_every=4,
                                         eval_splits="")), tmp_path)  # fmt: skip
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    assert [line["step"] for line in lines] == [4] and "loss" in lines[0]


def test_a_fresh_run_sets_an_earlier_runs_checkpoints_aside(demo_chars, tmp_path, capsys):
    spec = tiny_gpt(demo_chars, max_steps=4, checkpoint_every=1, eval_splits="")
    earlier = Trainer(TrainConfig.from_dict(spec), tmp_path)  # stopped after step 4
    for step in range(4):
        earlier.train_step()
        if step >= 2:
            earlier.save_checkpoint()  # step-3 and step-4
    capsys.readouterr()

    # a fresh run in the same folder, interrupted after step 2
    fresh = TrainConfig.from_dict(spec | {"seed": 2, "checkpoint_every": 2})
    interrupted = Trainer(fresh, tmp_path)
    assert capsys.readouterr().err == (
        f"checkpoints of an earlier run moved to {tmp_path / 'checkpoints.stale-1'}; "
        "starting afresh\n"
    )
    for _ in range(2):
        interrupted.train_step()
    interrupted.save_checkpoint()
    names = sorted(p.name for p in (tmp_path / "checkpoints.stale-1").iterdir())
    assert names == ["step-00000003.pt", "step-00000004.pt"]  # nothing lost
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-00000002.pt"]

    resumed = Trainer(fresh, tmp_path, resume=True)
    assert resumed.state.step == 2  # its own checkpoint, not the earlier run's step 4
    for name, weights in resumed.model.state_dict().items():
        assert torch.equal(weights, interrupted.model.state_dict()[name])


def test_a_rerun_of_a_finished_run_trains_again(demo_chars, tmp_path, capsys):
    """The pipeline resumes every run it starts: one it reruns (snakemake -R after a fix,
    or -f) must train again, not resume the finished run's last checkpoint."""
    config = TrainConfig.from_dict(tiny_gpt(demo_chars, max_steps=4, checkpoint_every=2))
    first = train(config, tmp_path, resume=True)
    capsys.readouterr()
    again = train(config, tmp_path, resume=True)
    assert capsys.readouterr().err.startswith(
        f"checkpoints of a finished run moved to {tmp_path / 'checkpoints.stale-1'}; "
    )
    assert again["steps"] == 4 and again["final_train_loss"] == first["final_train_loss"]
    stale = sorted(p.name for p in (tmp_path / "checkpoints.stale-1").iterdir())
    assert stale == ["finished", "step-00000002.pt", "step-00000004.pt"]  # nothing lost
    assert (tmp_path / "model.pt.stale-1").is_file() and (tmp_path / "model.pt").is_file()


def test_bf16_autocast_trains_on_cpu(demo_chars, tmp_path):
    spec = tiny_gpt(demo_chars, max_steps=30, precision="bf16", eval_splits="test")
    trainer = Trainer(TrainConfig.from_dict(spec), tmp_path)
    # a falling loss would not tell bf16 from fp32: the training matmuls' own dtype does
    trained_in = set()
    trainer.model.lm_head.register_forward_hook(
        lambda head, inputs, logits: trained_in.add(logits.dtype) if head.training else None
    )
    summary = trainer.run()
    assert trained_in == {torch.bfloat16}
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [x["loss"] for x in lines if "loss" in x]
    assert losses[-1] < losses[0] and math.isfinite(summary["test/loss"])


def test_steps_taken_outside_the_loop_follow_a_token_or_time_clock(demo_chars, tmp_path):
    """The noise scale's training steps: their tokens and time count, or the schedule of a
    token or time clock would stay at its start."""
    spec = tiny_gpt(demo_chars, clock="tokens", token_budget=4 * 8 * 32, max_steps=0)
    spec |= {"warmup_steps": 0, "schedule": "linear", "min_lr_ratio": 0.0, "eval_splits": ""}
    trainer = Trainer(TrainConfig.from_dict(spec), tmp_path)
    rates = [trainer.train_step()["lr"] for _ in range(4)]
    assert rates == pytest.approx([3e-3, 3e-3 * 0.75, 3e-3 * 0.5, 3e-3 * 0.25])
    assert trainer.state.tokens == 4 * 8 * 32 and trainer.done()
    assert trainer.state.elapsed > 0


def test_an_evaluation_that_cannot_run_fails_before_training(demo_chars, tmp_path):
    """eval_stride past the positions a model predicts, or one token to score, would fail
    only at the final evaluation, after every step."""
    spec = tiny_gpt(demo_chars, max_steps=400, eval_stride=33)  # context 32
    with pytest.raises(FromScratchError, match="eval_stride=33: more than the 32 positions"):
        Trainer(TrainConfig.from_dict(spec), tmp_path)
    with pytest.raises(ConfigError, match=r"eval_max_tokens: 1 must be 0 \(all\) or at least 2"):
        TrainConfig.from_dict(tiny_gpt(demo_chars, eval_max_tokens=1))
    for key in ("eval_max_tokens", "eval_stride"):  # a classifier would ignore them
        with pytest.raises(ConfigError, match=rf"{key}: is a language model's; a classifier "):
            TrainConfig.from_dict(tiny_classifier(demo_chars, **{key: 5000}))


def test_an_evaluation_setting_leaves_the_training_as_it_is(demo_chars, tmp_path):
    """eval_stride is checked on the model before the first step, in eval mode: with
    dropout on, a check in training mode would draw masks and shift every mask after it
    (the batch-size search and the LR range test take it for no training setting)."""

    def weights(**evaluation):
        spec = tiny_gpt(demo_chars, eval_splits="", **evaluation)
        trainer = Trainer(TrainConfig.from_dict(spec), tmp_path / str(evaluation))
        for _ in range(3):
            trainer.train_step()
        return torch.cat([p.detach().flatten() for p in trainer.model.parameters()])

    assert torch.equal(weights(), weights(eval_stride=16))


def test_a_setting_of_the_other_kind_of_model_is_refused(demo_chars):
    """Each would be ignored without a word: a GPT trains at its context whatever max_length
    says, a classifier reads max_length tokens of a review whatever context says."""
    for key in ("max_length", "head_tokens"):
        with pytest.raises(ConfigError, match=rf"{key}: is a classifier's; a language model's "):
            TrainConfig.from_dict(tiny_gpt(demo_chars, **{key: 16}))
    with pytest.raises(ConfigError, match=r"context: is a language model's; a classifier's "):
        TrainConfig.from_dict(tiny_classifier(demo_chars, context=16))


def test_max_steps_left_out_cuts_no_token_or_time_budget(demo_chars, tmp_path):
    """Left out, max_steps is 1,000 on the steps clock; on a token clock it stopped a run
    at step 1,000 with the budget half spent and the rate half decayed."""
    spec = tiny_gpt(demo_chars, eval_splits="", batch_size=1)
    del spec["max_steps"]
    assert TrainConfig.from_dict(spec).max_steps == 1000
    tokens = spec | {"clock": "tokens", "token_budget": 1001 * 32, "log_every": 1000}
    summary = train(TrainConfig.from_dict(tokens), tmp_path)
    assert summary["steps"] == 1001 and summary["tokens"] == 1001 * 32


@pytest.mark.parametrize("clock", ["steps", "tokens"])
def test_the_decay_starts_at_the_end_of_warm_up(demo_chars, tmp_path, clock):
    """Counted from 0, the decay stood a third of the way down (here) in the first step
    after warm-up."""
    tokens = 8 * 32  # a step's
    if clock == "tokens":
        spec = tiny_gpt(demo_chars, clock="tokens", token_budget=6 * tokens, max_steps=0)
    else:
        spec = tiny_gpt(demo_chars, max_steps=6)
    spec |= {"warmup_steps": 2, "schedule": "linear", "min_lr_ratio": 0.0, "eval_splits": ""}
    trainer = Trainer(TrainConfig.from_dict(spec), tmp_path)
    rates = [trainer.train_step()["lr"] for _ in range(3)]
    if clock == "tokens":
        assert trainer.state.warmup_tokens == 2 * tokens
    # stopped after warm-up and resumed: the decay goes on from the same end of warm-up
    trainer.save_checkpoint()
    resumed = Trainer(TrainConfig.from_dict(spec), tmp_path, resume=True)
    rates += [resumed.train_step()["lr"] for _ in range(3)]
    assert rates == pytest.approx([3e-3 * r for r in (0.5, 1.0, 1.0, 0.75, 0.5, 0.25)])


def test_an_evaluation_sits_at_the_tokens_of_its_own_step(demo_chars, tmp_path):
    # eval_every not a multiple of log_every: the last training line is of another step
    spec = tiny_gpt(demo_chars, max_steps=30, log_every=10, eval_every=15, eval_max_tokens=500)
    run = tmp_path / "runs" / "eval" / "odd" / "seed0"
    train(TrainConfig.from_dict(spec), run)
    per_step = spec["batch_size"] * spec["model"]["context"]
    curves = tables.curves([run / "summary.json"])
    evaluations = curves[curves["metric"] == "test/loss"]
    assert list(evaluations["step"]) == [15, 30]  # at step 15, and the final one
    assert list(evaluations["tokens"]) == [15 * per_step, 30 * per_step]


def test_the_floor_is_a_share_of_the_peak_rate():
    """min_lr_ratio scales lr: a floor of 0.1 under lr = 2 is 0.2, not 0.1."""
    for shape in ("cosine", "linear"):
        assert learning_rate(2.0, 50, 1.0, shape=shape, min_lr_ratio=0.1) == pytest.approx(0.2)
    assert learning_rate(2.0, 50, 0.5, shape="linear", min_lr_ratio=0.1) == pytest.approx(1.1)
    assert learning_rate(2.0, 50, 0.5, shape="cosine", min_lr_ratio=0.1) == pytest.approx(1.1)


def test_on_a_time_clock_the_decay_starts_at_the_end_of_warm_up(demo_chars, tmp_path):
    """The first step after warm-up runs at the full rate; from there the rate falls with
    the training time since warm-up ended, over what is left of the time budget."""
    budget = 60.0
    spec = tiny_gpt(demo_chars, clock="time", time_budget_s=budget, max_steps=0)
    spec |= {"warmup_steps": 2, "schedule": "linear", "min_lr_ratio": 0.0, "eval_splits": ""}
    trainer = Trainer(TrainConfig.from_dict(spec), tmp_path)
    rates = [trainer.train_step()["lr"] for _ in range(2)]
    warmed_up = trainer.state.elapsed  # the training time of the two warm-up steps
    assert trainer.state.warmup_elapsed == warmed_up > 0
    rates.append(trainer.train_step()["lr"])
    assert rates == pytest.approx([1.5e-3, 3e-3, 3e-3], rel=1e-12)
    since = trainer.state.elapsed - warmed_up  # the third step's time
    expected = 3e-3 * (1 - since / (budget - warmed_up))
    assert trainer.train_step()["lr"] == pytest.approx(expected, rel=1e-9)
    assert expected < 3e-3


def test_a_runs_evaluation_takes_its_evaluation_settings(demo_chars, demo_words, tmp_path):
    """head_tokens cuts the reviews the evaluation reads as it cuts the training batches;
    eval_stride and eval_max_tokens set the windows a language model is scored in."""
    spec = tiny_classifier(demo_words, max_length=16, head_tokens=5)
    trainer = Trainer(TrainConfig.from_dict(spec), tmp_path / "classifier")
    trainer.model = Reads()
    trainer.evaluate()
    assert max(np.diff(trainer.data.offsets("test"))) > 16  # some reviews are cut
    assert sorted(trainer.model.read) == head_and_tail(trainer.data, "test", 16, 5)

    spec = tiny_gpt(demo_chars, eval_stride=8, eval_max_tokens=500)
    trainer = Trainer(TrainConfig.from_dict(spec), tmp_path / "gpt")
    for _ in range(5):
        trainer.train_step()
    metrics = trainer.evaluate()

    def bits(stride):
        model, data = trainer.model, trainer.data
        return evaluate_lm(model, data, "test", 32, max_tokens=500, stride=stride)["bits_per_token"]

    assert metrics["test/bits_per_token"] == pytest.approx(bits(8), rel=1e-9)
    assert metrics["test/bits_per_token"] != pytest.approx(bits(32), rel=1e-9)


def test_the_first_rate_logged_after_a_resume_counts_the_steps_since_it(demo_chars, tmp_path):
    """tokens/s over the training since the last log line: after a resume, since the
    checkpoint's step, not since the start of the run that saved it."""
    spec = tiny_gpt(demo_chars, max_steps=8, log_every=4, checkpoint_every=4, eval_splits="")
    spec["keep_checkpoints"] = 5
    train(TrainConfig.from_dict(spec), tmp_path / "straight")
    resumed = tmp_path / "resumed" / "checkpoints"
    shutil.copytree(tmp_path / "straight" / "checkpoints", resumed)
    (resumed / "step-00000008.pt").unlink()
    (resumed / "finished").unlink()
    at = torch.load(resumed / "step-00000004.pt", weights_only=False)["progress"]
    train(TrainConfig.from_dict(spec), tmp_path / "resumed", resume=True)
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    (last,) = [x for x in map(json.loads, lines) if x["step"] == 8 and "tokens_per_s" in x]
    rate = (last["tokens"] - at["tokens"]) / (last["elapsed_s"] - at["elapsed"])
    assert last["tokens_per_s"] == pytest.approx(rate, rel=1e-9)
