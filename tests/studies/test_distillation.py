"""Distilling a transformer into an LSTM: the loss, the frozen teacher, the checks, and the
evaluation at several lengths."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
import yaml

from fromscratch import FromScratchError
from fromscratch.cli import main
from fromscratch.data import PreparedData
from fromscratch.models import ConfigError
from fromscratch.stages.distillation import distillation_stage
from fromscratch.train import TrainConfig, Trainer, train
from fromscratch.train.distill import Teacher, distillation_loss
from fromscratch.train.evaluate import evaluate_lm
from fromscratch.train.models import load_language_model, load_model, weights_fingerprint

from ..conftest import SEED_SHIFTS, chart_x_axis, tiny_classifier, tiny_gpt, wandb_records
from .conftest import refused


def tiny_lstm(data, **overrides) -> dict:
    return {
        "data": str(data),
        "model": {"family": "lstm", "n_layer": 1, "n_embd": 32, "context": 32},
        "batch_size": 8,
        "lr": 3e-3,
        "warmup_steps": 2,
        "max_steps": 8,
        "log_every": 1,
        "eval_splits": "",
        "seed": 0,
        **overrides,
    }


@pytest.fixture(scope="module")
def teacher(demo_chars, tmp_path_factory):
    """A GPT of context 32 (with dropout) trained a few steps on demo-chars: its model.pt."""
    out = tmp_path_factory.mktemp("teacher")
    train(TrainConfig.from_dict(tiny_gpt(demo_chars, max_steps=10, eval_splits="")), out)
    return str(out / "model.pt")


def test_distillation_loss_equals_the_hand_computed_value():
    # Two positions over a vocabulary of two tokens, temperature 2, weight 1/4.
    T, weight = 2.0, 0.25
    student = torch.tensor([[0.0, 0.0], [math.log(4), 0.0]])
    teacher = torch.tensor([[2 * math.log(3), 0.0], [0.0, 0.0]])
    targets = torch.tensor([0, 1])
    # At T = 2 the teacher says (3/4, 1/4) and (1/2, 1/2); the student (1/2, 1/2), (2/3, 1/3).
    kl_first = 3 / 4 * math.log((3 / 4) / (1 / 2)) + 1 / 4 * math.log((1 / 4) / (1 / 2))
    kl_second = 1 / 2 * math.log((1 / 2) / (2 / 3)) + 1 / 2 * math.log((1 / 2) / (1 / 3))
    # At T = 1 the student gives its targets 1/2 and 1/5.
    cross_entropy = (math.log(2) + math.log(5)) / 2
    expected = weight * T**2 * (kl_first + kl_second) / 2 + (1 - weight) * cross_entropy
    loss = distillation_loss(student, teacher, targets, T, weight)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # A student that already is the teacher has nothing left to learn from it.
    assert distillation_loss(teacher, teacher, targets, T, 1.0).item() == pytest.approx(0, abs=1e-7)


def test_distill_weight_zero_is_plain_training_exactly(demo_chars, teacher, tmp_path):
    dropout = {"model": {"family": "lstm", "n_embd": 32, "context": 32, "dropout": 0.2}}
    plain = train(TrainConfig.from_dict(tiny_lstm(demo_chars, **dropout)), tmp_path / "plain")
    zero = train(
        TrainConfig.from_dict(
            tiny_lstm(demo_chars, teacher=teacher, distill_weight=0.0, **dropout)
        ),
        tmp_path / "zero",
    )
    half = train(
        TrainConfig.from_dict(
            tiny_lstm(demo_chars, teacher=teacher, distill_weight=0.5, **dropout)
        ),
        tmp_path / "half",
    )
    assert zero["final_train_loss"] == plain["final_train_loss"]
    weights = {run: load_model(str(tmp_path / run / "model.pt"))[0] for run in ("plain", "zero")}
    for a, b in zip(weights["plain"].parameters(), weights["zero"].parameters(), strict=True):
        assert torch.equal(a, b)
    assert half["final_train_loss"] != plain["final_train_loss"]  # the teacher does matter


def test_the_teacher_is_frozen_and_recorded(demo_chars, teacher, tmp_path):
    config = tiny_lstm(demo_chars, teacher=teacher, distill_weight=1.0, checkpoint_every=3)
    trainer = Trainer(TrainConfig.from_dict(config), tmp_path, progress_bar=False)
    before = {k: v.clone() for k, v in trainer.teacher.model.state_dict().items()}
    for _ in range(3):
        trainer.train_step()
        trainer.evaluate()  # evaluation puts the student back in train mode, not the teacher
    model = trainer.teacher.model
    assert not model.training and not any(m.training for m in model.modules())
    assert all(not p.requires_grad and p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in trainer.model.parameters())  # zeroed after the step
    record = trainer.config_dict()["teacher_model"]
    assert record["source"] == teacher and record["model"]["family"] == "gpt"
    assert record["weights_sha256"] == weights_fingerprint(load_model(teacher)[0])


def test_teacher_and_student_must_fit_together(demo_chars, demo_words, teacher, tmp_path):
    with pytest.raises(FromScratchError, match=r"demo-words: .*--tokenizer-from .*demo-chars"):
        Trainer(TrainConfig.from_dict(tiny_lstm(demo_words, teacher=teacher)), tmp_path)
    longer = tiny_lstm(demo_chars, teacher=teacher, model={"family": "lstm", "context": 64})
    with pytest.raises(FromScratchError, match=r"context is 32 tokens, shorter than .* 64"):
        Trainer(TrainConfig.from_dict(longer), tmp_path)
    with pytest.raises(ConfigError, match=r"distill_weight: 1\.5 must be in"):
        TrainConfig.from_dict(tiny_lstm(demo_chars, teacher=teacher, distill_weight=1.5))
    with pytest.raises(ConfigError, match="teacher: distils language models only"):
        TrainConfig.from_dict(tiny_classifier(demo_chars, teacher=teacher))


def test_a_student_with_a_padded_vocabulary_learns_from_the_real_tokens(
    demo_chars, teacher, tmp_path
):
    vocab_size = json.loads((demo_chars / "meta.json").read_text())["vocab_size"]
    padded = {"family": "lstm", "n_layer": 1, "n_embd": 32, "context": 32, "vocab_size": 64}
    assert vocab_size < 64
    trainer = Trainer(
        TrainConfig.from_dict(tiny_lstm(demo_chars, teacher=teacher, model=padded)), tmp_path
    )
    x, y = (t[:2] for t in trainer.batches(0))
    logits = trainer.model(x)
    assert logits.size(-1) == 64
    loss = trainer.teacher.loss(logits, x, y)
    # the same as the loss over the data's tokens alone: the padding plays no part
    with torch.no_grad():
        teacher_logits = trainer.teacher.model(x)
    expected = distillation_loss(logits[..., :vocab_size], teacher_logits, y, 2.0, 0.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert math.isfinite(trainer.train_step()["loss"])


def test_a_gpt2_teacher_needs_gpt2_tokens(demo_chars, tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=1, n_head=2)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    model, saved = load_language_model(str(tmp_path / "gpt2"))
    assert saved["model"]["family"] == "gpt" and model.config.context == 32
    student = tiny_lstm(demo_chars, teacher=str(tmp_path / "gpt2"))
    with pytest.raises(FromScratchError, match=r"is GPT-2, but .* 'chars'.*--tokenizer gpt2"):
        Trainer(TrainConfig.from_dict(student), tmp_path / "run")


def test_lengths_are_evaluated_on_the_same_tokens(demo_chars, teacher, tmp_path):
    logged = {"wandb_mode": "offline", "run_name": "distillation/control/lstm1/seed0"}
    train(TrainConfig.from_dict(tiny_lstm(demo_chars) | logged), tmp_path / "lstm")
    out = tmp_path / "lengths.json"
    distillation_stage(
        str(tmp_path / "lstm" / "model.pt"), str(demo_chars), str(out), lengths=[32, 64, 256],
        max_tokens=3000,
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert [r["length"] for r in result["results"]] == [32, 64, 256]
    assert {r["tokens"] for r in result["results"]} == {2999}  # every token after the first
    # each length in windows of its own: the test split read 32, 64, 256 tokens at a time
    lstm, _ = load_language_model(str(tmp_path / "lstm" / "model.pt"))
    for row in result["results"]:
        alone = evaluate_lm(lstm, PreparedData(demo_chars), "test", row["length"], max_tokens=3000)
        assert row["bits_per_token"] == pytest.approx(alone["bits_per_token"]), row["length"]
    assert len({r["bits_per_token"] for r in result["results"]}) == 3
    assert (result["family"], result["context"], result["n_layer"]) == ("lstm", 32, 1)
    assert result["parameters"] == sum(p.numel() for p in lstm.parameters())
    # beside the student's training run in W&B: bits against the length, its settings
    run = json.loads((tmp_path / "lengths.json.wandb" / "summary.json").read_text())
    assert run["bits_per_token/length_256"] == result["results"][2]["bits_per_token"]
    assert (run["config"]["seed"], run["config"]["lengths"]) == (0, [32, 64, 256])
    assert "run_name" not in run["config"]  # the training run's, not this one's
    assert chart_x_axis(wandb_records(tmp_path / "lengths.json.wandb")) == "length"
    # The teacher, a GPT, is evaluated at its own context, and cannot read beyond it.
    distillation_stage(teacher, str(demo_chars), str(out), max_tokens=3000)
    result = json.loads(out.read_text())
    assert [r["length"] for r in result["results"]] == [32]
    gpt, _ = load_language_model(teacher)  # all of its parameters, its positions' too
    assert result["parameters"] == sum(p.numel() for p in gpt.parameters())
    with pytest.raises(FromScratchError, match="cannot read 64 tokens at once"):
        distillation_stage(teacher, str(demo_chars), str(out), lengths=[32, 64])


def test_the_split_asked_for_is_the_one_evaluated_and_every_length_is_checked(
    demo_chars, teacher, tmp_path
):
    out = tmp_path / "ood.json"
    returned = distillation_stage(
        teacher, str(demo_chars), str(out), split="ood", lengths=[32, 16], max_tokens=2000
    )
    result = json.loads(out.read_text())
    assert result["split"] == "ood"
    gpt, _ = load_language_model(teacher)
    for row in result["results"]:
        alone = evaluate_lm(gpt, PreparedData(demo_chars), "ood", row["length"], max_tokens=2000)
        assert row["bits_per_token"] == pytest.approx(alone["bits_per_token"]), row["length"]
    # what the stage reports: the first length asked for (here the training length)
    assert returned == {"lengths": 2, "bits_per_token": result["results"][0]["bits_per_token"]}
    # a length beyond a GPT's context is refused wherever it is in the list
    with pytest.raises(FromScratchError, match="cannot read 64 tokens at once"):
        distillation_stage(teacher, str(demo_chars), str(out), lengths=[64, 32])


def test_a_teacher_that_is_nowhere_is_a_one_line_error(demo_chars, tmp_path, capsys):
    # Hugging Face's own reason (a paragraph, offline) comes along, on the same line
    path = tmp_path / "student.yaml"
    path.write_text(yaml.safe_dump(tiny_lstm(demo_chars, teacher="no-such-teacher")))
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "teacher 'no-such-teacher': neither a model.pt" in err


def test_the_evaluation_refuses_data_of_another_tokenizer(
    demo_chars, demo_words, teacher, tmp_path, capsys
):
    """A model of characters on a folder of words would read each id as another token (or
    none: an index error); `fromscratch evaluate` refuses it, and so does this stage."""
    args = {"model": teacher, "data": str(demo_words), "out": str(tmp_path / "d.json")}
    command = ["run", "distillation", "--args", json.dumps(args), "--log-dir", str(tmp_path)]
    assert main(command) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--tokenizer-from {demo_chars}" in err
    assert not (tmp_path / "d.json").exists()


def test_a_gpt2_model_is_evaluated_on_gpt2_tokens_only(demo_chars, tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=1, n_head=2)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(FromScratchError, match=r"is GPT-2, but .* 'chars'.*--tokenizer gpt2"):
        distillation_stage(str(tmp_path / "gpt2"), str(demo_chars), str(tmp_path / "d.json"))


def relabelled(data, out):
    """A copy of the prepared folder `data` whose last character is another one: as many
    tokens, but not the same."""
    shutil.copytree(data, out)
    spec = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    spec["chars"] = spec["chars"][:-1] + chr(ord(spec["chars"][-1]) + 1)
    (out / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    return out


def test_every_stage_that_loads_a_language_model_checks_its_tokenizer(
    demo_chars, teacher, tmp_path
):
    """One loader for a model.pt or GPT-2 (train/distill.py), one check of the data: the
    same vocabulary size is not enough, the tokens must be the model's."""
    from fromscratch.stages.recurrent_gpt2 import recurrent_gpt2_stage
    from fromscratch.stages.sentence_vae import sentence_vae_stage

    other = str(relabelled(demo_chars, tmp_path / "other"))
    named = "its tokenizer is not the one the model was trained with"
    with pytest.raises(FromScratchError, match=named):
        distillation_stage(teacher, other, str(tmp_path / "d.json"))
    with pytest.raises(FromScratchError, match=named):
        recurrent_gpt2_stage(teacher, other, "test", str(tmp_path / "r"), chunks=2)
    with pytest.raises(FromScratchError, match=named):
        sentence_vae_stage(
            base={"model": teacher}, data=other, out=str(tmp_path / "v"),
            sentences={"train": 10, "test": 10, "max_tokens": 16},
        )  # fmt: skip
    assert not any((tmp_path / name).exists() for name in ("d.json", "r", "v"))
    # and each names the families it can use
    train(TrainConfig.from_dict(tiny_lstm(demo_chars, max_steps=1)), tmp_path / "lstm")
    lstm = str(tmp_path / "lstm" / "model.pt")
    with pytest.raises(FromScratchError, match=r"a lstm model; allowed families: gpt$"):
        recurrent_gpt2_stage(lstm, str(demo_chars), "test", str(tmp_path / "r"))
    with pytest.raises(FromScratchError, match=r"a lstm model; allowed families: gpt$"):
        sentence_vae_stage(
            base={"model": lstm}, data=str(demo_chars), out=str(tmp_path / "v"),
            sentences={"train": 10, "test": 10},
        )  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"lengths": [0]}, "lengths[0]=0 must be an integer >= 1 (tokens per window; a GPT's"),
        ({"lengths": [64, -4]}, "lengths[1]=-4 must be an integer >= 1"),
        ({"max_tokens": -1}, "max_tokens=-1 must be an integer >= 0 (0: all)"),
        ({"split": "nosuch"}, "has no split 'nosuch'; it has: train, test, ood"),
    ],
)
def test_bad_lengths_and_tokens_are_refused_before_the_model_loads(
    demo_chars, tmp_path, capsys, settings, named
):
    # the model is nowhere: the settings are checked before it would be loaded
    args = {"model": str(tmp_path / "nowhere.pt"), "data": str(demo_chars),
            "out": str(tmp_path / "d.json"), **settings}  # fmt: skip
    assert named in refused(capsys, "distillation", args, tmp_path / "logs")
    assert not (tmp_path / "d.json").exists()


def test_a_perceiver_student_learns_from_the_teachers_predictions_at_its_latents(
    demo_chars, teacher, tmp_path
):
    """A Perceiver AR predicts only its last `latents` positions: the teacher's logits are
    cut to those, position for position."""
    spec = tiny_gpt(demo_chars, max_steps=3, eval_splits="", teacher=teacher, distill_weight=1.0)
    spec["model"] = {"family": "perceiver", "n_layer": 1, "n_head": 2, "n_embd": 32,
                     "context": 32, "latents": 8}  # fmt: skip
    trainer = Trainer(TrainConfig.from_dict(spec), tmp_path)
    x, y = trainer.batches(0)
    with torch.no_grad():
        student, taught = trainer.model(x), trainer.teacher.model(x)
    assert student.shape[1] == 8
    expected = distillation_loss(student, taught[:, -8:], y[:, -8:], 2.0, 1.0)
    assert trainer.train_step()["loss"] == pytest.approx(expected.item(), rel=1e-5)


def test_a_perceiver_is_not_read_beyond_its_context_either(demo_chars, tmp_path):
    spec = tiny_gpt(demo_chars, max_steps=1, eval_splits="")
    spec["model"] = {"family": "perceiver", "n_layer": 1, "n_head": 2, "n_embd": 32,
                     "context": 32, "latents": 8}  # fmt: skip
    train(TrainConfig.from_dict(spec), tmp_path / "perceiver")
    model = str(tmp_path / "perceiver" / "model.pt")
    with pytest.raises(FromScratchError, match="a Perceiver cannot read 64 tokens at once; its"):
        distillation_stage(model, str(demo_chars), str(tmp_path / "d.json"), lengths=[32, 64])


# The figures: LSTMs of 1 and 2 layers trained on 64 tokens, evaluated at 1×-8× that
# length, three seeds shifted by SEED_SHIFTS; the distilled students are better than the control
# ones, every student is worse on longer windows, and the teacher reads 256 tokens.
TRAINED, LENGTHS = 64, [64, 128, 256, 512]
MODE_BITS = {"distilled": 2.3, "control": 2.5}


def student_bits(mode: str, layers: int, length: int, seed: int) -> float:
    return MODE_BITS[mode] - 0.1 * layers + 0.05 * math.log2(length / TRAINED) + SEED_SHIFTS[seed]


@pytest.fixture
def study_table(tmp_path):
    """The results table of the study above, from each model's lengths.json as
    distillation_stage writes them."""
    from fromscratch.figures import distillation

    def lengths_json(name, context, layers, lengths, bits):
        results = [
            {"length": n, "tokens": 2999, "bits_per_token": b, "bits_per_char": b / 3,
             "bits_per_byte": b / 3} for n, b in zip(lengths, bits, strict=True)
        ]  # fmt: skip
        result = {"family": "lstm", "context": context, "n_layer": layers, "split": "test",
                  "parameters": 10_000 * layers, "results": results}  # fmt: skip
        (tmp_path / name).write_text(json.dumps(result))
        return str(tmp_path / name)

    students, files = [], []
    for mode in MODE_BITS:
        for layers in (1, 2):
            for seed in range(len(SEED_SHIFTS)):
                bits = [student_bits(mode, layers, n, seed) for n in LENGTHS]
                files.append(lengths_json(f"{mode}{layers}-{seed}.json", TRAINED, layers,
                                          LENGTHS, bits))  # fmt: skip
                students.append({"mode": mode, "layers": layers, "seed": seed})
    teacher = lengths_json("teacher.json", 256, 4, [256], [1.9])
    return distillation.results_table(students, files, teacher)


def test_the_table_counts_each_length_in_multiples_of_the_training_length(study_table):
    students = study_table[study_table["mode"] != "teacher"]
    assert students["multiple"].tolist() == [n / TRAINED for n in LENGTHS] * 12
    teacher = study_table[study_table["mode"] == "teacher"]
    assert (teacher["length"].tolist(), teacher["multiple"].tolist()) == ([256], [1.0])


def test_by_layers_draws_each_modes_mean_and_sd_at_the_training_length_only(study_table, drawn):
    from fromscratch.figures import distillation

    distillation.by_layers(study_table, "unused", "GPT")
    ax = drawn[-1].axes[0]
    shift, sd = np.mean(SEED_SHIFTS), np.std(SEED_SHIFTS, ddof=1)
    bars = {c.get_label().split(" ")[0]: c for c in ax.containers}
    for mode in MODE_BITS:
        line, _, (span,) = bars[mode].lines
        expected = [student_bits(mode, layers, TRAINED, 0) + shift for layers in (1, 2)]
        np.testing.assert_allclose(line.get_ydata().astype(float), expected, err_msg=mode)
        heights = [np.ptp(segment[:, 1]) for segment in span.get_segments()]
        np.testing.assert_allclose(heights, 2 * sd, err_msg=mode)
    assert f"training length ({TRAINED} tokens)" in ax.get_title()


def test_by_length_draws_each_depth_against_the_tokens_in_its_own_modes_panel(study_table, drawn):
    """x is the evaluation length in tokens, as the axis says, the dotted line at the
    training length, and the teacher's star at its context."""
    from fromscratch.figures import distillation

    distillation.by_length(study_table, "unused", "GPT")
    shift = np.mean(SEED_SHIFTS)
    for ax, mode in zip(drawn[-1].axes, MODE_BITS, strict=True):
        assert ax.get_title() == f"{mode} LSTMs"
        lines = {line.get_label(): line for line in ax.get_lines()}
        for layers, name in ((1, "1 layer"), (2, "2 layers")):
            expected = [student_bits(mode, layers, n, 0) + shift for n in LENGTHS]
            np.testing.assert_array_equal(lines[name].get_xdata(), LENGTHS)
            np.testing.assert_allclose(lines[name].get_ydata(), expected, err_msg=name)
        assert list(lines["training length"].get_xdata()) == [TRAINED] * 2
        assert list(lines["teacher (GPT) at its context"].get_xdata()) == [256]


def test_by_layers_of_one_seed_draws_its_values_and_claims_no_spread(study_table, drawn):
    """With a single seed the marks are that seed's values, and neither the legend nor
    the title speaks of a mean, an sd or seeds in the plural."""
    from fromscratch.figures import distillation

    def of_seeds(*seeds):
        return study_table[study_table["seed"].isin(seeds) | (study_table["mode"] == "teacher")]

    distillation.by_layers(of_seeds(0, 2), "unused", "GPT")
    assert "\n2 seeds each; lower is better" in drawn[-1].axes[0].get_title()
    distillation.by_layers(of_seeds(0), "unused", "GPT")
    ax = drawn[-1].axes[0]
    assert "\n1 seed each; lower is better" in ax.get_title()
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert [label for label in labels if label in MODE_BITS] == list(MODE_BITS)
    assert not any("mean" in label or "sd" in label for label in labels), labels
    bars = {c.get_label(): c for c in ax.containers}
    for mode in MODE_BITS:
        line, _, (span,) = bars[mode].lines
        expected = [student_bits(mode, layers, TRAINED, 0) for layers in (1, 2)]
        np.testing.assert_allclose(line.get_ydata().astype(float), expected, err_msg=mode)
        assert all(np.ptp(segment[:, 1]) == 0 for segment in span.get_segments()), mode


def test_a_teacher_with_a_padded_vocabulary_teaches_over_the_real_tokens():
    """A teacher whose output layer is wider than the data's vocabulary (padding to a
    multiple of 64): its padding columns are no tokens and play no part in the loss."""
    vocab, padding = 5, 3
    table = torch.randn(vocab, vocab + padding, generator=torch.Generator().manual_seed(0))
    table[:, vocab:] = 20.0  # padding the teacher, unmasked, would put all its mass on
    model = torch.nn.Embedding.from_pretrained(table)  # logits: a row of the table a token
    teacher = Teacher(model, temperature=2.0, weight=0.5, record={}, vocab_size=vocab)
    x = torch.tensor([[0, 1, 2, 3], [4, 3, 2, 1]])
    y = torch.tensor([[1, 2, 3, 4], [3, 2, 1, 0]])
    student = torch.randn(2, 4, vocab, generator=torch.Generator().manual_seed(1))
    expected = distillation_loss(student, table[x][..., :vocab], y, 2.0, 0.5)
    assert teacher.loss(student, x, y).item() == pytest.approx(expected.item(), rel=1e-6)
