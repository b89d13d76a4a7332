"""`fromscratch train / evaluate / sample` as users type them."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import fromscratch
from fromscratch import FromScratchError
from fromscratch.cli import main

from ..conftest import as_from_a_terminal, tiny_classifier, tiny_gpt


def test_train_then_evaluate_then_sample(demo_chars, tmp_path, capsys):
    config = tmp_path / "gpt.yaml"
    config.write_text(yaml.safe_dump(tiny_gpt(demo_chars, max_steps=20)))
    out = tmp_path / "run"
    # trained on windows of 16 of the model's 32 positions, scored in windows every 8
    # tokens, over the whole split: `evaluate` scores it alike
    scoring = ["--set", "context=16", "--set", "eval_stride=8", "--set", "eval_max_tokens=0"]
    assert main(["train", str(config), "--out", str(out), "--set", "max_steps=10", *scoring]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["steps"] == 10

    assert (
        main(
            [
                "evaluate",
                str(out / "model.pt"),
                "--split",
                "test",
                "--split",
                "ood",
                "--out",
                str(tmp_path / "eval.json"),
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "eval.json").read_text())
    assert set(results) == {"test", "ood"}
    assert results["test"]["bits_per_char"] == pytest.approx(trained["test/bits_per_char"], 1e-9)
    # the pipeline's stage, over the first 500 tokens only
    from fromscratch.stages.evaluate import evaluate_stage

    head = evaluate_stage(str(out / "model.pt"), {"test": {"split": "test"}}, max_tokens=500)
    assert 0 < head["test"]["tokens"] <= 500 < results["test"]["tokens"]
    with pytest.raises(FromScratchError, match=r"^evaluate: max_tokens=-5 must be an integer >= 0"):
        evaluate_stage(str(out / "model.pt"), {"test": {"split": "test"}}, max_tokens=-5)

    sample = [
        "sample",
        str(out / "model.pt"),
        "--prompt",
        "the film",
        "--tokens",
        "30",
        "--num-samples",
        "2",
        "--seed",
        "3",
    ]
    assert main([*sample, "--out", str(tmp_path / "s.txt")]) == 0
    text = (tmp_path / "s.txt").read_text()
    first, second = text.strip().split("\n\n---\n\n")
    assert first != second
    assert first.startswith("the film") and len(first) == len("the film") + 30
    capsys.readouterr()
    assert main(sample) == 0
    assert capsys.readouterr().out == text  # the same seed, the same samples
    assert main([*sample, "--seed", "4"]) == 0
    assert capsys.readouterr().out != text  # another seed, other samples
    # the narrowest nucleus and a single candidate are greedy decoding, whatever the seed
    assert main([*sample, "--temperature", "0"]) == 0
    greedy = capsys.readouterr().out
    for narrowest in ("--top-p=0.001", "--top-k=1"):
        assert main([*sample, "--seed", "4", "--temperature", "1", narrowest]) == 0
        assert capsys.readouterr().out == greedy, narrowest

    for bad, named in (
        ("--top-p=1.5", "sample: --top-p=1.5 must be in (0, 1]"),
        ("--top-p=0", "sample: --top-p=0.0 must be in (0, 1]"),
        ("--top-k=0", "sample: --top-k=0 must be an integer >= 1"),
        ("--tokens=-3", "sample: --tokens=-3 must be an integer >= 0"),
        ("--temperature=-1", "sample: --temperature=-1.0 must be finite and >= 0 (0: greedy)"),
        ("--temperature=inf", "sample: --temperature=inf must be finite and >= 0"),
        ("--num-samples=0", "sample: --num-samples=0 must be at least 1"),
        (
            "--seed=18446744073709551616",
            "sample: seed=18446744073709551616 must be an integer from",
        ),
        ("--prompt=Zebra", "the prompt 'Zebra': not in the vocabulary: 'Z'; it has"),
    ):
        assert main([*sample, bad]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and named in err

    # a model.pt whose config says one layer more than its weights hold
    saved = torch.load(out / "model.pt", weights_only=False)
    saved["config"]["model"]["n_layer"] += 1
    torch.save(saved, tmp_path / "edited.pt")
    for command in (["sample", str(tmp_path / "edited.pt")],
                    ["evaluate", str(tmp_path / "edited.pt"), "--split", "test"]):  # fmt: skip
        assert main(command) == 1
        err = capsys.readouterr().err
        named = "edited.pt: its weights are not those of the model its config describes (Error"
        assert err.count("\n") == 1 and named in err, err


def test_sample_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    help = " ".join(capsys.readouterr().out.split())
    for flag in ("--prompt", "--tokens", "--temperature", "--top-k", "--top-p", "--seed"):
        assert re.search(rf"{flag} \S+ [a-z]", help), flag  # the flag, its value, its help
    assert re.search(r"--num-samples \S+ how many", help)


def test_numbers_and_empty_values_as_students_write_them(demo_chars, tmp_path, capsys):
    config = tmp_path / "gpt.yaml"
    spec = tiny_gpt(demo_chars, max_steps=2, eval_splits="test")
    config.write_text(yaml.safe_dump(spec).replace("lr: 0.003", "lr: 3e-3"))
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--set", "min_lr_ratio=1e-2"]) == 0
    saved = json.loads((out / "summary.json").read_text())["config"]
    assert (saved["lr"], saved["min_lr_ratio"]) == (0.003, 0.01)
    capsys.readouterr()
    assert main(["train", str(config), "--out", str(out), "--set", "eval_splits="]) == 0
    assert "test/loss" not in json.loads(capsys.readouterr().out)  # the default: none


def test_out_below_a_file_is_a_one_line_error(tmp_path, capsys):
    config = tmp_path / "gpt.yaml"
    config.write_text("data: x\nmodel: {family: gpt}\n")
    for command in ("train", "lr-range", "batch-size", "noise-scale"):
        assert main([command, str(config), "--out", str(config / "x")]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert f"error: --out {config / 'x'}: {config} is a file, not a folder" in err


def test_bad_config_fails_before_training(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("data: x\nmodel: {family: gpt}\nschedule: wavy\n")
    assert main(["train", str(config), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "schedule: 'wavy' is not one of" in err
    assert not (tmp_path / "o").exists()
    config.write_text("data: x\nmodel: {family: gpt}\nwandb_mode: off\n")  # YAML: False
    assert main(["train", str(config), "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err.endswith(
        "wandb_mode: False is not of type str (YAML reads on/off/yes/no as true/false: quote it)\n"
    )
    for field, joined in (("eval_splits", "',': val,test"), ("train_split", "'+': val+test")):
        config.write_text(f"data: x\nmodel: {{family: gpt}}\n{field}: [val, test]\n")
        assert main(["train", str(config), "--out", str(tmp_path / "o")]) == 1
        assert capsys.readouterr().err.endswith(
            f"{field}: ['val', 'test'] is not of type str (several are one text, joined by "
            f"{joined})\n"
        )
    config.write_text("data: [x, y]\n")  # a field that holds one name: no joining to offer
    assert main(["train", str(config), "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err.endswith("data: ['x', 'y'] is not of type str\n")


def test_a_model_used_away_from_its_training_data_says_where_that_was(
    demo_chars, tmp_path, capsys, monkeypatch
):
    """model.pt names its training data as training was given it, relative to where it ran:
    sampled from elsewhere (a copy of runs/ on a laptop), it says so and what to give."""
    shutil.copytree(demo_chars, tmp_path / "there" / "data")
    monkeypatch.chdir(tmp_path / "there")
    config = tmp_path / "gpt.yaml"
    config.write_text(yaml.safe_dump(tiny_gpt("data", max_steps=1, eval_splits="")))
    assert main(["train", str(config), "--out", "run"]) == 0
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    model = str(tmp_path / "there" / "run" / "model.pt")
    for command in (["sample", model, "--tokens", "3"], ["evaluate", model, "--split", "test"]):
        assert main(command) == 1
        assert capsys.readouterr().err == (
            "fromscratch: error: the model's training data data (relative to where it trained) "
            "is not here: run from there, or give --data DIR (a folder prepared with its "
            "tokenizer)\n"
        )
    assert main(["sample", model, "--tokens", "3", "--data", "there/data"]) == 0


def test_a_missing_or_foreign_model_file_is_a_one_line_error(tmp_path, capsys):
    foreign = tmp_path / "model.pt"
    foreign.write_text("{}")  # not a torch file
    folder = f"a folder, not a model file; did you mean {tmp_path / 'model.pt'}?"
    cases = ((tmp_path / "none.pt", "no such model file"), (foreign, "not a model"))
    for path, named in (*cases, (tmp_path, folder)):
        for command in (["sample", str(path)], ["evaluate", str(path), "--split", "test"]):
            assert main(command) == 1
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and f"{path}: {named}" in err


def test_a_model_of_the_encoder_decoder_study_is_named_as_such(tmp_path, capsys):
    """Its model.pt is no language model or classifier: the message says what it is."""
    from fromscratch.train.seq2seq import Seq2SeqConfig, train_seq2seq

    from .test_run_end import SEQ2SEQ

    train_seq2seq(Seq2SeqConfig.from_dict(SEQ2SEQ), tmp_path / "run")
    model = tmp_path / "run" / "model.pt"
    for command in (["sample", str(model)], ["evaluate", str(model), "--split", "test"]):
        assert main(command) == 1
        assert capsys.readouterr().err == (
            f"fromscratch: error: {model}: not a model saved by `fromscratch train` (a "
            "decoder_only model of `run encoder-decoder` on task reverse, scored in its run's "
            "accuracy.csv)\n"
        )


def renumbered_copy(chars: Path, out: Path) -> Path:
    """A copy of a chars folder with the same characters numbered the other way round:
    every id means another character."""
    shutil.copytree(chars, out)
    spec = json.loads((out / "tokenizer.json").read_text())
    (out / "tokenizer.json").write_text(json.dumps(spec | {"chars": spec["chars"][::-1]}))
    return out


def test_data_with_another_tokenizer_is_a_one_line_error(demo_chars, demo_words, tmp_path, capsys):
    config = tmp_path / "gpt.yaml"
    # a vocabulary padded beyond the data's (as nanoGPT pads GPT-2's to 50,304)
    padded = json.loads((demo_chars / "meta.json").read_text())["vocab_size"] + 11
    config.write_text(yaml.safe_dump(tiny_gpt(demo_chars, max_steps=5)))
    run = ["train", str(config), "--out", str(tmp_path / "run")]
    assert main([*run, "--set", f"model.vocab_size={padded}"]) == 0
    model = str(tmp_path / "run" / "model.pt")
    assert main(["sample", model, "--tokens", "5", "--out", str(tmp_path / "s.txt")]) == 0

    # the training data's own tokenizer, in a copy of the folder: accepted
    copy = tmp_path / "copy"
    shutil.copytree(demo_chars, copy)
    assert main(["evaluate", model, "--split", "test", "--data", str(copy)]) == 0
    renumbered = renumbered_copy(demo_chars, tmp_path / "renumbered")
    capsys.readouterr()

    cases = ((demo_words, "a vocabulary of"), (renumbered, "its tokenizer is not"))
    for data, named in cases:
        for command in (["evaluate", model, "--split", "test"], ["sample", model]):
            assert main([*command, "--data", str(data)]) == 1
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and f"{data}: {named}" in err
            assert f"--tokenizer-from {demo_chars}" in err


def test_a_model_checks_other_data_without_its_training_data(
    demo_chars, tmp_path, capsys, monkeypatch
):
    """model.pt keeps its tokenizer's fingerprint: the check holds when the model trained
    on a relative path is used from elsewhere, or on a machine without that folder."""
    work = tmp_path / "work"
    shutil.copytree(demo_chars, work / "chars")
    shutil.copytree(demo_chars, tmp_path / "same")
    renumbered_copy(demo_chars, tmp_path / "renumbered")
    monkeypatch.chdir(work)
    (work / "gpt.yaml").write_text(yaml.safe_dump(tiny_gpt("chars", max_steps=3)))
    assert main(["train", "gpt.yaml", "--out", "run"]) == 0
    shutil.rmtree(work / "chars")
    monkeypatch.chdir(tmp_path)
    model = str(work / "run" / "model.pt")
    evaluate = ["evaluate", model, "--split", "test", "--data"]
    assert main([*evaluate, str(tmp_path / "same")]) == 0
    capsys.readouterr()
    assert main([*evaluate, str(tmp_path / "renumbered")]) == 1
    assert "its tokenizer is not the one the model was trained with" in capsys.readouterr().err


def test_a_checkpoint_checks_a_tokenizer_against_its_data_while_that_is_there(demo_chars, tmp_path):
    """A checkpoint keeps no fingerprint of its tokenizer (model.pt does): its training
    data's tokenizer is the reference, and without that folder nothing is refused."""
    from fromscratch.data import PreparedData
    from fromscratch.train.models import tokenizers_agree

    renumbered = renumbered_copy(demo_chars, tmp_path / "renumbered")
    same, other = PreparedData(demo_chars).tokenizer, PreparedData(renumbered).tokenizer
    checkpoint = {"data": str(demo_chars)}
    assert tokenizers_agree(same, checkpoint) and not tokenizers_agree(other, checkpoint)
    assert tokenizers_agree(other, {"data": str(tmp_path / "gone")})


def test_set_changes_one_field_of_the_model(demo_chars, tmp_path, capsys):
    config = tmp_path / "gpt.yaml"
    config.write_text(yaml.safe_dump(tiny_gpt(demo_chars, max_steps=2)))
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--set", "model.n_head=4"]) == 0
    model = torch.load(out / "model.pt", weights_only=False)["config"]["model"]
    assert model["n_head"] == 4 and model["n_embd"] == 32 and model["family"] == "gpt"
    capsys.readouterr()  # the run's own lines (a warm-up longer than its 2 steps)

    for bad, named in (
        ("lr.x=1", "lr is not a mapping"),
        ("lr", "--set 'lr': expected KEY=VALUE"),  # the value forgotten: no reset to the default
        ("model.nhead=4", "unknown keys nhead"),
        ("lr=[", "--set 'lr=[': not valid YAML at line 1, column 2"),
        ("=3", "--set '=3': a KEY with an empty name in it"),
        (".n_head=3", "--set '.n_head=3': a KEY with an empty name in it"),
    ):
        assert main(["train", str(config), "--out", str(tmp_path / "bad"), "--set", bad]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and named in err


def test_a_tuned_value_and_its_file_are_one_setting(tmp_path, capsys):
    from fromscratch.train import load_config

    config = tmp_path / "gpt.yaml"
    config.write_text("data: x\nbatch_size: 8\nbatch_size_from: tune/batch_size.json\n")
    assert main(["train", str(config), "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err.endswith(
        "batch_size and batch_size_from both set, and batch_size_from's value would replace "
        "batch_size: keep one\n"
    )
    config.write_text("data: x\nlr_from: tune/lr_range.json\nbatch_size: 8\n")
    overridden = load_config(config, {"lr": 0.01})  # the override wins over the file too
    assert (overridden.lr, overridden.lr_from) == (0.01, "")
    tuned = load_config(config, {"batch_size_from": "b.json"})
    assert (tuned.batch_size_from, tuned.lr_from) == ("b.json", "tune/lr_range.json")
    assert load_config(config, {"batch_size_from": None}).batch_size == 8  # unset: kept
    with pytest.raises(FromScratchError, match="--set lr and --set lr_from: keep one"):
        load_config(config, {"lr": 0.01, "lr_from": "b.json"})  # neither may drop the other


def test_a_config_that_is_not_yaml_is_a_one_line_error(tmp_path, capsys):
    config = tmp_path / "gpt.yaml"
    config.write_text("data: results/data\n  model: {family: gpt}\n")  # indented by mistake
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{config}: not valid YAML at line 2, column 8" in err
    # a key given twice: PyYAML alone would train on the second one without a word
    config.write_text("data: results/a\nmodel: {family: gpt, n_head: 2, n_head: 4}\n")
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 2, column 33: the key 'n_head' appears twice" in err


def test_a_device_that_is_not_here_is_a_one_line_error(demo_chars, tmp_path, capsys):
    config = tmp_path / "gpt.yaml"
    config.write_text(yaml.safe_dump(tiny_gpt(demo_chars, max_steps=1)))
    absent = ["mps"] if torch.cuda.is_available() else ["cuda", "cuda:1"]
    cases = [(d, "device: {!r}: allowed: auto, cpu") for d in ("gpu", "xpu", "meta", "cuda:x")]
    cases += [(d, "device {!r}: there is none here") for d in absent]
    for device, named in cases:
        out = tmp_path / device
        for command in ("train", "batch-size"):  # the search read the name with torch's words
            args = [command, str(config), "--out", str(out), "--set", f"device={device}"]
            assert main(args) == 1
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and named.format(device) in err, err


def test_out_naming_this_folder_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    """An unset variable (--out "$RUN_DIR"): the run's files would land all over this one."""
    config = tmp_path / "gpt.yaml"
    config.write_text("data: x\nmodel: {family: gpt}\n")
    monkeypatch.chdir(tmp_path)
    for out in ("", "."):
        for command in ("train", "lr-range", "batch-size"):
            assert main([command, str(config), "--out", out]) == 1
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "names this folder; give the run a folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpt.yaml"]


def test_a_model_on_the_wrong_kind_of_data_is_a_one_line_error(
    demo_chars, shared_mirror, tmp_path, capsys
):
    shakespeare = tmp_path / "shakespeare"
    prepare = ["data", "prepare", "shakespeare", "--out", str(shakespeare), "--quiet"]
    assert main([*prepare, "--mirror", str(shared_mirror)]) == 0
    config = tmp_path / "classifier.yaml"
    config.write_text(yaml.safe_dump(tiny_classifier(shakespeare, max_steps=2)))
    assert main(["train", str(config), "--out", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shakespeare has no labels to classify" in err
    assert not (tmp_path / "c").exists()

    # a classifier trained on labelled data classifies, and does not write text
    config.write_text(yaml.safe_dump(tiny_classifier(demo_chars, max_steps=2)))
    assert main(["train", str(config), "--out", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "c" / "model.pt")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a classifier; only language models" in err


def test_inputs_longer_than_the_model_fail_before_training(demo_chars, tmp_path, capsys):
    # they would fail at the first batch that long, in the middle of a run
    for family, config, key in (
        ("gpt", tiny_gpt(demo_chars, context=64), "context=64"),
        ("classifier", tiny_classifier(demo_chars, max_length=200), "max_length=200"),
    ):
        path = tmp_path / f"{family}.yaml"
        path.write_text(yaml.safe_dump(config))
        assert main(["train", str(path), "--out", str(tmp_path / family)]) == 1
        err = capsys.readouterr().err
        context = config["model"]["context"]
        assert err.count("\n") == 1 and f"{key}: longer than the model's context={context}" in err
    for key in ("warmup_steps", "context", "max_length"):
        path.write_text(yaml.safe_dump(tiny_gpt(demo_chars, **{key: -1})))
        assert main(["train", str(path), "--out", str(tmp_path / "w")]) == 1
        assert f"{key}: -1 must be 0 or more" in capsys.readouterr().err


@pytest.mark.parametrize(
    "cut", [{}, {"max_length": 40, "head_tokens": 8}], ids=["model's context", "head and tail"]
)
def test_evaluate_reads_a_classifiers_reviews_as_its_training_did(
    demo_chars, tmp_path, capsys, cut
):
    # without max_length the model's context (48 here) is the default; with it, a review
    # longer than max_length is its first head_tokens and its end: in training and in
    # `evaluate` alike
    config = tiny_classifier(demo_chars, max_steps=3)
    del config["max_length"]
    config["model"]["context"] = 48
    config |= cut
    path = tmp_path / "classifier.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--out", str(tmp_path / "c")]) == 0
    trained = json.loads(capsys.readouterr().out)
    model = str(tmp_path / "c" / "model.pt")
    assert main(["evaluate", model, "--split", "test", "--out", str(tmp_path / "e.json")]) == 0
    evaluated = json.loads((tmp_path / "e.json").read_text())["test"]
    assert evaluated["accuracy"] == trained["test/accuracy"]
    assert evaluated["loss"] == trained["test/loss"]


def test_version_names_the_package(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == f"fromscratch {fromscratch.__version__}"


def test_data_list_names_every_data_set(capsys):
    from fromscratch.data import DATASETS

    assert main(["data", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # one line per data set of the registry: its name, its task, its description
    assert len(lines) == len(DATASETS)
    for line, d in zip(lines, DATASETS.values(), strict=True):
        assert line.split()[:2] == [d.name, d.task] and line.endswith(d.description)
    assert {"demo", "shakespeare", "imdb", "enwik8"} <= {line.split()[0] for line in lines}


def run_stage(capsys, tmp_path, stage: str, args: dict, *flags: str) -> tuple[int, str]:
    """`fromscratch run STAGE` on SLURM: a bad rule must fail before anything is submitted."""
    command = ["run", stage, "--args", json.dumps(args), "--launcher", "slurm"]
    command += ["--log-dir", str(tmp_path / "logs"), *flags]
    code = main(command)
    assert not (tmp_path / "logs").exists()  # no job was submitted
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("stage", "args", "named"),
    [
        # the tuning stages name their options: a misspelt one, or one of the wrong type,
        # fails here, not in the job
        ("batch-size", {"max_batch_size": "32"}, 'max_batch_size="32" is not of type int'),
        ("batch-size", {"max_batch": 32}, "unknown max_batch; batch-size takes config, out, "),
        ("noise-scale", {"drawz": 4}, "unknown drawz; noise-scale takes config, out, micro_batch"),
        ("noise-scale", {"draws": 4.5}, "draws=4.5 is not of type int"),
        ("noise-scale", {"after_steps": True}, "after_steps=true is not of type int"),
        # every stage's values are checked against its annotations
        ("lr-range", {"min_lr": "1e-5"}, 'min_lr="1e-5" is not of type float'),
        ("train", {"resume": "yes"}, 'resume="yes" is not of type bool'),
        ("train", {"config": "gpt.yaml"}, 'config="gpt.yaml" is not of type dict'),
    ],
)
def test_run_checks_the_types_and_names_of_a_stages_arguments(capsys, tmp_path, stage, args, named):
    code, err = run_stage(capsys, tmp_path, stage, {"config": {}, "out": "o", **args})
    assert code == 1 and err.count("\n") == 1 and named in err, err


def test_run_takes_numbers_where_a_float_is_asked_and_null_where_none_is_allowed():
    from fromscratch.config import is_of_type  # what `run` checks --args with

    assert is_of_type(3, float) and not is_of_type(True, float) and not is_of_type(3.5, int)
    assert is_of_type(None, int | None) and not is_of_type(None, int)
    assert is_of_type([1, 2], list[int] | None) and not is_of_type([1, "2"], list[int])
    assert is_of_type({"a": {}}, dict[str, dict]) and not is_of_type({"a": 1}, dict[str, dict])


def test_the_tuning_stages_keep_the_defaults_of_what_they_run():
    """The pipeline's stages and the commands run the same function: left out, a setting
    is the same whichever way it is run."""
    import inspect

    from fromscratch.cli import build_parser
    from fromscratch.stages.evaluate import sample_stage
    from fromscratch.stages.tune import batch_size_stage, lr_range_stage, noise_scale_stage
    from fromscratch.train.batch_size import search
    from fromscratch.train.lr_range import lr_range_test
    from fromscratch.train.noise_scale import measure_noise_scale

    def defaults(function) -> dict:
        return {
            name: p.default
            for name, p in inspect.signature(function).parameters.items()
            if p.default is not p.empty
        }

    assert defaults(batch_size_stage) == defaults(search)
    assert defaults(noise_scale_stage) == defaults(measure_noise_scale)
    assert defaults(lr_range_stage) == defaults(lr_range_test)
    parser = build_parser()
    for command, function in (
        ("lr-range", lr_range_test),
        ("batch-size", search),
        ("noise-scale", measure_noise_scale),
        ("sample", sample_stage),
    ):
        flags = vars(
            parser.parse_args(
                [command, "some-file", *(["--out", "o"] if command != "sample" else [])]
            )
        )
        own = {name: value for name, value in defaults(function).items() if name in flags}
        assert own and own == {name: flags[name] for name in own}, command


@pytest.mark.parametrize("threads", ["-3", "-1"])
def test_negative_threads_are_a_one_line_error(capsys, tmp_path, threads):
    code, err = run_stage(
        capsys, tmp_path, "train", {"config": {}, "out": "o"}, "--threads", threads
    )
    assert code == 1 and err.count("\n") == 1
    assert f"--threads={threads} must be >= 0" in err


def test_an_out_file_that_cannot_be_written_fails_before_the_model_loads(
    tmp_path, capsys, monkeypatch
):
    """A folder at --out ("" is this folder), or a file above it, used to fail only at the
    write, after the whole evaluation, and with a traceback: the model named here does not
    even exist, so the --out error must come first."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file").write_text("mine")
    model = str(tmp_path / "none.pt")
    cases = (
        (tmp_path / "a-folder", "it is a folder; give the path of a file to write"),
        ("", "it is a folder"),
        (tmp_path / "a-file" / "x.json", f"{tmp_path / 'a-file'} is a file, not a folder"),
    )
    for out, named in cases:
        for command in (["evaluate", model, "--split", "test"], ["sample", model]):
            assert main([*command, "--out", str(out)]) == 1
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and f"error: --out {Path(out)}: cannot be written" in err
            assert named in err
    assert (tmp_path / "a-file").read_text() == "mine"
    assert not any((tmp_path / "a-folder").iterdir())


def test_evaluating_a_classifier_on_data_without_labels_is_a_one_line_error(
    shared_mirror, tmp_path, capsys
):
    """As `train` says it: not a FileNotFoundError for SPLIT.labels.npy."""
    prepare = ["data", "prepare", "--quiet", "--mirror", str(shared_mirror)]
    demo, shakespeare = tmp_path / "demo", tmp_path / "shakespeare"
    assert main([*prepare, "demo", "--out", str(demo), "--tokenizer", "bytes"]) == 0
    # one tokenizer for both, so that only the labels differ
    tokenizer = ["--tokenizer-from", str(demo)]
    assert main([*prepare, "shakespeare", "--out", str(shakespeare), *tokenizer]) == 0
    config = tmp_path / "classifier.yaml"
    config.write_text(yaml.safe_dump(tiny_classifier(tmp_path / "demo", max_steps=2)))
    assert main(["train", str(config), "--out", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    evaluate = ["evaluate", str(tmp_path / "c" / "model.pt"), "--split", "train"]
    out = tmp_path / "eval.json"
    assert main([*evaluate, "--data", str(tmp_path / "shakespeare"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{tmp_path / 'shakespeare'}: shakespeare has no labels to classify" in err
    assert not out.exists()
    assert main([*evaluate, "--out", str(out)]) == 0  # its own, labelled, data
    assert "accuracy" in json.loads(out.read_text())["train"]


def test_a_prompt_that_is_not_utf8_is_a_one_line_error(tmp_path, capsys):
    """Bytes of argv that are not UTF-8 reach Python as lone surrogates: a chars model
    failed on them with a UnicodeEncodeError, a words model read them as <unk>. Checked
    before the model loads (there is none here)."""
    assert main(["sample", str(tmp_path / "none.pt"), "--prompt", "ab\udcffcd"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "sample: --prompt 'ab\\udcffcd': not UTF-8 text (at character 2)" in err
    assert "the prompt must be UTF-8 text" in err


def test_a_sample_without_a_prompt_is_only_the_generated_text(
    demo_words, demo_chars, tmp_path, capsys
):
    """Generation starts from the document separator when there is no prompt, as a
    document starts; it is no part of the text shown."""
    from fromscratch.data import PreparedData
    from fromscratch.data.tokenizers import EOT

    for name, data in (("words", demo_words), ("chars", demo_chars)):
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump(tiny_gpt(data, max_steps=2)))
        assert main(["train", str(config), "--out", str(tmp_path / name)]) == 0
        capsys.readouterr()
        out = tmp_path / f"{name}.txt"
        model = str(tmp_path / name / "model.pt")
        assert (
            main(["sample", model, "--tokens", "7", "--num-samples", "2", "--out", str(out)]) == 0
        )
        assert capsys.readouterr().out == out.read_text()
        assert PreparedData(data).tokenizer.eot is not None
        for text in out.read_text().removesuffix("\n").split("\n\n---\n\n"):
            # seven tokens: seven words, seven characters (or separators the model wrote)
            shown = text.split(" ") if name == "words" else text.split(EOT)
            count = len(shown) if name == "words" else len("".join(shown)) + len(shown) - 1
            assert count == 7, (name, text)


def test_train_does_not_write_into_a_prepared_data_folder(demo_chars, tmp_path, capsys):
    """`data prepare` replaces such a folder whole, and the run in it would go with it."""
    data = tmp_path / "data"
    shutil.copytree(demo_chars, data)
    before = sorted(p.name for p in data.iterdir())
    config = tmp_path / "gpt.yaml"
    config.write_text(yaml.safe_dump(tiny_gpt(data, max_steps=2)))
    for command in ("train", "lr-range", "batch-size", "noise-scale"):
        assert main([command, str(config), "--out", str(data)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert f"--out {data}: a prepared data folder (it holds tokenizer.json)" in err
        assert "give a new path, an empty folder or an earlier run's folder" in err
    assert sorted(p.name for p in data.iterdir()) == before
    # an earlier run's folder is fine, and so is resuming in it
    run = ["train", str(config), "--out", str(tmp_path / "run"), "--set", "checkpoint_every=1"]
    assert main(run) == 0
    capsys.readouterr()
    assert main([*run, "--resume", "--set", "max_steps=3"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 3


@pytest.mark.parametrize(
    ("stage", "args", "named"),
    [
        # a training config is built as the job builds it
        ("train", {"config": {"data": "d", "lrr": 1}, "out": "o"}, "TrainConfig: unknown keys lrr"),
        ("lr-range", {"config": {"data": "d", "schedule": "wavy"}, "out": "o"}, "'wavy' is not"),
        ("encoder-decoder", {"config": {"nope": 1}, "out": "o"}, "Seq2SeqConfig: unknown keys"),
        # ...and its model, as far as it can be without the data: its fields, its lengths
        (
            "train",
            {"config": {"data": "d", "model": {"family": "gpt", "n_hed": 2}}, "out": "o"},
            "GPTConfig: unknown keys n_hed",
        ),
        (
            "train",
            {"config": {"data": "d", "model": {"family": "gpt", "n_head": 3}}, "out": "o"},
            "is not divisible by n_head=3",
        ),
        (
            "train",
            {
                "config": {
                    "data": "d",
                    "model": {"family": "classifier", "context": 64},
                    "max_length": 128,
                },
                "out": "o",
            },
            "max_length=128: longer than the model's context=64",
        ),
        (
            "encoder-decoder",
            {"config": {"model": {"n_head": 3}}, "out": "o"},
            "EncoderDecoderConfig.n_embd",
        ),
        # what W&B would refuse at the start of every job
        (
            "train",
            {"config": {"data": "d", "wandb_project": "course/fs"}, "out": "o"},
            "wandb_project: 'course/fs': W&B takes 1 to 128 characters, none of / \\ # ? % :",
        ),
        ("train", {"config": {"data": "d", "tags": "a," + "b" * 65}, "out": "o"}, "64 at most"),
        # a data set with a tokenizer that does not fit it
        ("prepare", {"dataset": "enwik8", "out": "o", "tokenizer": "chars"}, "allowed: bytes"),
        ("prepare", {"dataset": "imdb", "out": "o", "vocab_size": 0}, "vocab_size"),
        # the stages' own checks of their options
        ("noise-scale", {"config": {"data": "d"}, "out": "o", "draws": 0}, "draws=0"),
        ("lr-range", {"config": {"data": "d"}, "out": "o", "steps": 2}, "steps=2"),
        (
            "batch-size",
            {"config": {"data": "d"}, "out": "o", "memory_cap_mb": 0},
            "memory_cap_mb=0",
        ),
        (
            "evaluate",
            {"model": "m.pt", "sets": {"t": {"splt": "test"}}},
            "sets.t: unknown key splt; allowed: split, data",
        ),
        ("evaluate", {"model": "m.pt", "sets": {"t": {"data": "d"}}}, "sets.t: no split given"),
        ("evaluate", {"model": "m.pt", "sets": {"t": {"split": 1}}}, "split=1 is not of type str"),
        ("sample", {"model": "m.pt", "out": "s.txt", "prompt": "a\udcff"}, "not UTF-8 text"),
        ("sample", {"model": "m.pt", "out": "s.txt", "num_samples": 0}, "num_samples=0"),
        ("sample", {"model": "m.pt", "out": "s.txt", "top_k": 0}, "top_k=0 must be an integer"),
        ("sample", {"model": "m.pt", "out": "s.txt", "tokens": -1}, "sample: tokens=-1 must be"),
        ("sample", {"model": "m.pt", "out": "s.txt", "temperature": -1}, "temperature=-1 must"),
        (
            "augment",
            {"base": "b", "out": "o", "strategy": "typo", "rate": 0.1},
            "unknown augmentation 'typo'; allowed: none",
        ),
        ("augment", {"base": "b", "out": "o", "strategy": "unk", "rate": 7.0}, "rate 7.0 must"),
    ],
)
def test_run_checks_the_values_of_a_stages_arguments_before_launching(
    capsys, tmp_path, stage, args, named
):
    code, err = run_stage(capsys, tmp_path, stage, args)
    assert code == 1 and err.count("\n") == 1 and "error: --args: " in err and named in err, err


def test_run_checks_where_a_stage_writes_before_launching(demo_chars, capsys, tmp_path):
    (tmp_path / "a-file").write_text("mine")
    (tmp_path / "a-folder").mkdir()
    a_file, a_folder = str(tmp_path / "a-file"), str(tmp_path / "a-folder")
    config = {"data": str(demo_chars)}
    for stage, args, named in (
        ("train", {"config": config, "out": a_file}, f"out={a_file}: {a_file} is a file"),
        ("train", {"config": config, "out": f"{a_file}/run"}, f"{a_file} is a file"),
        ("lr-range", {"config": config, "out": str(demo_chars)}, "a prepared data folder"),
        ("evaluate", {"model": "m.pt", "sets": {}, "out": a_folder}, "it is a folder"),
        ("sample", {"model": "m.pt", "out": a_folder}, "it is a folder"),
        ("distillation", {"model": "m.pt", "data": "d", "out": f"{a_file}/x.json"}, "is a file"),
    ):
        code, err = run_stage(capsys, tmp_path, stage, args)
        assert code == 1 and err.count("\n") == 1 and "error: --args: out=" in err, err
        assert named in err, err
    assert (tmp_path / "a-file").read_text() == "mine"
    assert not any((tmp_path / "a-folder").iterdir())


def test_run_checks_that_a_data_folder_it_replaces_is_its_own_before_launching(
    demo_chars, capsys, tmp_path
):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    for stage, args in (
        ("prepare", {"dataset": "demo", "out": str(theirs)}),
        ("augment", {"base": str(demo_chars), "out": str(theirs), "strategy": "unk", "rate": 0.1}),
    ):
        code, err = run_stage(capsys, tmp_path, stage, args)
        assert code == 1 and err.count("\n") == 1, err
        assert f"error: --args: {theirs}: exists and is not an earlier output" in err, err
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]


def test_the_workflow_checks_a_job_as_run_does_but_for_the_inputs_earlier_jobs_make(
    capsys, tmp_path
):
    """check_run_arguments, which the workflow calls for every job before the first starts:
    an augment job's settings, not yet its base folder (the data job before it makes it)."""
    from fromscratch.cli import check_run_arguments

    base, out = str(tmp_path / "not-yet"), str(tmp_path / "copy")
    args = {"base": base, "out": out, "strategy": "unk", "rate": 0.1}
    check_run_arguments("augment", args)
    with pytest.raises(FromScratchError, match=r"rate 7\.0 must"):
        check_run_arguments("augment", {**args, "rate": 7.0})
    with pytest.raises(FromScratchError, match="unknown rte; augment takes base, out"):
        check_run_arguments("augment", {**args, "rte": 0.1})
    code, err = run_stage(capsys, tmp_path, "augment", args)  # the job itself reads it
    assert code == 1 and f"error: --args: {base} is not a prepared data folder" in err, err


def test_run_checks_values_here_with_the_local_launcher_too(tmp_path, capsys):
    """The stage runs in this process: its arguments are checked here, before it starts,
    not reported as a failed run with a log."""
    args = json.dumps({"config": {"data": "d", "lrr": 1}, "out": str(tmp_path / "o")})
    assert main(["run", "train", "--args", args, "--log-dir", str(tmp_path / "logs")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: --args: TrainConfig: unknown keys lrr" in err
    assert not (tmp_path / "logs").exists() and not (tmp_path / "o").exists()


def test_run_with_a_log_dir_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    logs = tmp_path / "logs"
    logs.write_text("mine")
    args = json.dumps({"model": "m.pt", "sets": {}})
    assert main(["run", "evaluate", "--args", args, "--log-dir", str(logs)]) == 1
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and f"error: --log-dir {logs}: {logs} is a file, not a folder" in err
    )


@pytest.mark.parametrize(
    ("flag", "text", "key"),
    [
        ("--args", '{"config": {}, "out": "a", "out": "b"}', "out"),
        ("--args", '{"config": {"lr": 1, "lr": 2}, "out": "a"}', "lr"),  # at any depth
        ("--resources", '{"gpus": 1, "gpus": 2}', "gpus"),
    ],
)
def test_run_refuses_a_key_given_twice(capsys, tmp_path, flag, text, key):
    """As the YAML configs do: json.loads alone would keep the last value silently."""
    given = {"--args": '{"config": {}, "out": "o"}', "--resources": "{}", flag: text}
    command = ["run", "train", "--launcher", "slurm", "--log-dir", str(tmp_path / "logs")]
    assert main([*command, "--args", given["--args"], "--resources", given["--resources"]]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: {flag}: the key {key!r} appears twice" in err
    assert not (tmp_path / "logs").exists()


def test_run_keeps_several_processes_for_training(capsys, tmp_path):
    args = json.dumps({"model": "m.pt", "sets": {}})
    command = ["run", "evaluate", "--args", args, "--log-dir", str(tmp_path / "logs")]
    assert main([*command, "--resources", '{"tasks": 2}']) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "error: --resources: tasks=2: evaluate runs in one process; only train runs" in err


def test_the_checks_run_makes_take_the_stages_own_arguments():
    """OPTION_CHECKS and CONFIG_CLASSES name real functions and classes, of stages that
    take what they check: a renamed argument would otherwise fail every `run` of it."""
    import inspect
    from pkgutil import resolve_name

    from fromscratch.cli import CONFIG_CLASSES, OPTION_CHECKS
    from fromscratch.stages import STAGES, get_stage

    for stage, check in OPTION_CHECKS.items():
        takes = inspect.signature(get_stage(stage)).parameters
        assert set(inspect.signature(resolve_name(check)).parameters) <= set(takes), stage
    for stage, config_class in CONFIG_CLASSES.items():
        assert "config" in inspect.signature(get_stage(stage)).parameters
        assert hasattr(resolve_name(config_class), "from_dict")
    assert set(OPTION_CHECKS) | set(CONFIG_CLASSES) <= set(STAGES)


NO_TORCH_HERE = """
import sys
from fromscratch.cli import main

args = '{"config": {"data": "d", "lrr": 1}, "out": "o"}'
code = main(["run", "train", "--args", args, "--launcher", "slurm", "--log-dir", "logs"])
print(code, "torch" in sys.modules)
"""


def test_run_for_slurm_checks_a_config_without_torch_in_its_own_process(tmp_path):
    """With the slurm launcher `run` only waits on its job, dozens of them at once on a
    login node: the checks of a config, which import torch, run in a process of their own."""
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH_HERE], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.stdout == "1 False\n", done.stderr
    assert "--args: TrainConfig: unknown keys lrr" in done.stderr


def test_the_checks_before_slurm_submissions_take_turns(tmp_path):
    """Each check imports torch in a process of its own (~200 MB): dozens of jobs made
    ready at once run at most CHECK_SLOTS of them at a time."""
    import fcntl
    import threading

    from fromscratch.cli import CHECK_SLOTS, a_check_slot

    held = [open(tmp_path / f"slot-{i}", "a") for i in range(CHECK_SLOTS)]  # noqa: SIM115
    for slot in held:
        fcntl.flock(slot, fcntl.LOCK_EX)  # as other checks would
    entered = threading.Event()

    def check():
        with a_check_slot(tmp_path):
            entered.set()

    waiting = threading.Thread(target=check)
    waiting.start()
    assert not entered.wait(1.0)  # every slot taken: it waits
    held[2].close()  # one check ends
    assert entered.wait(5.0)
    waiting.join()
    for slot in held:
        slot.close()


def test_a_sample_without_a_prompt_starts_from_the_document_separator(demo_chars, tmp_path, capsys):
    """Made into a model that always predicts the token after the one it reads (id + 1),
    a GPT greedily sampled without a prompt writes the tokens after the separator's id:
    what it wrote first was conditioned on the separator, not on token 0."""
    from fromscratch.data import PreparedData

    tokenizer = PreparedData(demo_chars).tokenizer
    V = tokenizer.vocab_size
    config = tiny_gpt(demo_chars, max_steps=1)
    config["model"].update(n_embd=64, position="none", tie_weights=False)
    assert V <= 64 and tokenizer.eot not in (None, 0)
    (tmp_path / "gpt.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "gpt.yaml"), "--out", str(tmp_path / "gpt")]) == 0

    path = tmp_path / "gpt" / "model.pt"
    saved = torch.load(path, weights_only=False)
    weights = saved["model"]
    for name in weights:
        if ".c_proj." in name:  # every block adds nothing to the residual stream
            weights[name].zero_()
    weights["ln_f.weight"].fill_(1.0)
    weights["ln_f.bias"].zero_()
    weights["wte.weight"].copy_(torch.eye(V, 64))  # token i: channel i
    normalised = torch.nn.functional.layer_norm(torch.eye(V, 64), (64,))
    weights["lm_head.weight"].copy_(normalised.roll(1, dims=0))  # reads i, writes i + 1
    torch.save(saved, path)

    out = tmp_path / "sample.txt"
    assert main(["sample", str(path), "--tokens", "5", "--top-k", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    after_separator = [(tokenizer.eot + 1 + i) % V for i in range(5)]
    assert out.read_text() == tokenizer.decode(after_separator) + "\n"


def test_set_reads_dotted_keys_and_yaml_values_and_the_last_one_wins():
    """A value may hold "=" (only the first one splits the pair), is read as YAML (numbers,
    booleans, lists, null for an empty value), and a key set twice takes its last value,
    as argparse's own flags do."""
    from fromscratch.cli import parse_overrides

    assert parse_overrides(
        ["run_name=a=b", "model.n_head=8", "lr=3e-4", "compile=true", "eval_splits=",
         "lengths=[64, 128]", "lr=0.5"]
    ) == {
        "run_name": "a=b",
        "model.n_head": 8,
        "lr": 0.5,
        "compile": True,
        "eval_splits": None,
        "lengths": [64, 128],
    }  # fmt: skip
    for bad in ("model.=8", "model..n_head=8", "a.=1"):
        with pytest.raises(FromScratchError, match="a KEY with an empty name in it"):
            parse_overrides([bad])


def test_batch_size_takes_a_memory_cap_with_a_fraction():
    from fromscratch.cli import build_parser

    args = build_parser().parse_args(
        ["batch-size", "c.yaml", "--out", "o", "--memory-cap-mb", "1536.5"]
    )
    assert args.memory_cap_mb == 1536.5


def test_an_error_naming_a_path_with_a_line_break_is_one_line(tmp_path, capsys):
    """Whatever the message holds (a path with a line break in it, a library's paragraph),
    stderr gets one line."""
    config = tmp_path / "two\nlines.yaml"
    config.write_text("data: x\n  model: {}\n")  # not YAML
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "two lines.yaml: not valid YAML" in err


def test_ctrl_c_ends_the_command_with_code_130(tmp_path):
    """As a shell reports a process that SIGINT stopped: 128 + 2, and a line saying so.
    The command is stopped while it waits for a turn to check a stage's arguments."""
    import contextlib
    import fcntl
    import os
    import signal
    import time

    from fromscratch.cli import CHECK_SLOTS

    slots = tmp_path / f"fromscratch-checks-{os.getuid()}"  # in the command's $TMPDIR
    slots.mkdir()
    held = [open(slots / f"slot-{i}", "a") for i in range(CHECK_SLOTS)]  # noqa: SIM115
    for slot in held:
        fcntl.flock(slot, fcntl.LOCK_EX)  # every turn taken: the command waits
    args = json.dumps({"config": {"data": "d"}, "out": str(tmp_path / "o")})
    command = subprocess.Popen(
        [sys.executable, "-m", "fromscratch.cli", "run", "train", "--args", args,
         "--launcher", "slurm", "--log-dir", str(tmp_path / "logs")],
        env=os.environ | {"TMPDIR": str(tmp_path)}, stderr=subprocess.PIPE, text=True,
        preexec_fn=as_from_a_terminal,
    )  # fmt: skip
    last = str(slots / f"slot-{CHECK_SLOTS - 1}")

    def waiting() -> bool:  # it holds every slot file open: it waits for one
        with contextlib.suppress(OSError):
            fds = Path(f"/proc/{command.pid}/fd").iterdir()
            return any(os.readlink(fd) == last for fd in fds)
        return False

    deadline = time.monotonic() + 60
    while not waiting():
        assert command.poll() is None, command.stderr.read()
        assert time.monotonic() < deadline, "the command never waited for a turn"
        time.sleep(0.05)
    command.send_signal(signal.SIGINT)
    assert command.wait(30) == 130
    assert command.stderr.read() == "fromscratch: interrupted\n"
    for slot in held:
        slot.close()


def test_run_lets_a_stage_write_over_its_own_earlier_output_file(tmp_path):
    """A stage writing a file (evaluate's results) may run again: the check is of the
    folder that holds it, not of the file already there."""
    from fromscratch.cli import _check_stage_values

    earlier = tmp_path / "results.json"
    earlier.write_text("{}")
    _check_stage_values("distillation", {"model": "m.pt", "data": "d", "out": str(earlier)})
    with pytest.raises(FromScratchError, match="is a file, not a folder"):
        _check_stage_values("distillation", {"out": str(earlier / "x.json")})


def test_run_shows_a_wrong_value_whole_up_to_40_characters(capsys, tmp_path):
    fits, too_long = "x" * 38, "x" * 39  # as JSON: 40 and 41 characters
    for value, shown in ((fits, json.dumps(fits)), (too_long, json.dumps(too_long)[:37] + "...")):
        code, err = run_stage(
            capsys, tmp_path, "train", {"config": {}, "out": "o", "resume": value}
        )
        assert code == 1 and f"resume={shown} is not of type bool" in err, err


def test_the_help_gives_the_vocabulary_sizes_the_tokenizers_default_to(capsys):
    """Written out in the help (the CLI does not import the tokenizers to start): kept equal."""
    from fromscratch.data.tokenizers import DEFAULT_VOCAB

    with pytest.raises(SystemExit):
        main(["data", "prepare", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    words, bpe = DEFAULT_VOCAB["words"], DEFAULT_VOCAB["bpe"]
    assert f"(default: {words:,} words, {bpe:,} bpe)" in shown


AS_INSTALLED = """
import atexit, gc, sys
from fromscratch.cli import console_script

atexit.register(lambda: print("atexit handlers ran, objects frozen:", gc.get_freeze_count() > 0))
sys.exit(console_script())
"""


def test_the_installed_command_keeps_each_exit_code_and_runs_atexit_handlers(tmp_path):
    """`fromscratch` freezes its objects before it exits (to skip the garbage collector's
    passes over torch's): the exit codes and the atexit handlers (W&B's) stay as main's."""
    command = Path(sys.executable).parent / "fromscratch"
    failed = subprocess.run([command, "evaluate", "missing.pt", "--split", "test"],
                            cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert failed.returncode == 1
    assert (
        failed.stderr
        == "fromscratch: error: missing.pt: no such model file (a model.pt or checkpoint)\n"
    )
    arguments = ["data", "prepare", "demo", "--out", "demo", "--tokenizer", "chars", "--quiet"]
    done = subprocess.run([sys.executable, "-c", AS_INSTALLED, *arguments],
                          cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("atexit handlers ran, objects frozen: True\n")
    assert (tmp_path / "demo" / "meta.json").is_file()
