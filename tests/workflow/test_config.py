"""The config is validated before any job starts; the full preset's DAG is complete."""

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from fromscratch.models import ClassifierConfig, GPTConfig
from fromscratch.train import TrainConfig
from fromscratch.train.lr_range import check_options as check_lr_range_options

from .conftest import BIN, ROOT, planned_jobs, snakemake

MALFORMED = [
    ("launcher=pbs", r"'pbs' is not one of \['', 'local', 'debug', 'slurm'\]"),
    ("preset=huge", r"preset 'huge' is not defined; defined: demo, small, full"),
    ("wandb={mode: sometimes, project: x}", r"'sometimes' is not one of \['online'"),
    ("wandb={mode: offline, project: course/fs}", r"wandb.project: 'course/fs': 1 to 128 char"),
    (
        "unknown_key=1",
        r"config: unknown key 'unknown_key'; allowed: preset, launcher, mirror, wandb, cluster, "
        r"presets, ablations$",
    ),
    ("cluster={default: {gpus: two}}", r"config: cluster.default.gpus: 'two' is not of type 'int"),
    ("cluster={train: {max_requeues: -1}}", r"cluster.train.max_requeues: -1 is less than the min"),
    ("cluster={train: {signal_delay_s: 1.5}}", r"signal_delay_s: 1.5 is not of type 'integer'"),
    ("presets={demo: {seeds: []}}", r"\[\] should be non-empty"),
    # the schema's bounds let NaN and infinity through; a job would refuse them only later
    (
        "presets={demo: {gpt: {train: {lr: .nan}}}}",
        r"^config: presets.demo.gpt.train.lr: nan must be a finite number$",
    ),
    ("cluster={train: {mem_gb: .inf}}", r"^config: cluster.train.mem_gb: inf must be a finite"),
    # text that is no YAML: what it is, not a parser's traceback
    (
        "presets={demo: {seeds: [0, 1]}",
        r"^config: presets: '\{demo: \{seeds: \[0, 1\]\}' is not of",
    ),
    (
        "ablations={cramming: {demo: {split: val}}}",
        r"split 'val' must be one of presets.demo.gpt.eval_splits \(test\)",
    ),
    (
        "presets={demo: {classifier: {model: {attention: dense}}}}",
        r"'dense' is not one of \['simple', 'scaled', 'qkv', 'multihead'\]",
    ),
    ("presets={demo: {gpt: {data: {dataset: wikitext}}}}", r"'wikitext' is not one of \['imdb'"),
    # a misspelt training or model key fails here, not in its job after data and tuning
    (
        "presets={demo: {classifier: {train: {max_stpes: 9}}}}",
        r"config: presets.demo.classifier.train: unknown key 'max_stpes'; allowed: batch_size, ",
    ),
    (
        "presets={demo: {gpt: {model: {n_hed: 2}}}}",
        r"config: presets.demo.gpt.model: unknown key 'n_hed'; allowed: tie_weights, .*n_head",
    ),
    # a field of the other model family
    ("presets={demo: {gpt: {model: {pooling: max}}}}", r"gpt.model: unknown key 'pooling'"),
    # a study's settings are per preset
    (
        "ablations={cramming: {tiny: {}}}",
        r"config: ablations.cramming: unknown key 'tiny'; allowed: enabled, demo, small, full$",
    ),
    (
        "presets={demo: {compare: {pool: {model: gpt, field: pooling, variants: [max]}}}}",
        r"compare.pool: 'pooling' is neither a field of the gpt nor a training one",
    ),
    (
        "presets={demo: {classifier: {train: {max_length: -1}}}}",
        r"config: presets.demo.classifier.train.max_length: -1 is less than the minimum of 0",
    ),
    ("ablations={cramming: {enabled: maybe}}", r"ablations.cramming.enabled: 'maybe' is not of"),
    # keys that the schema knows but this place would ignore
    (
        "presets={demo: {classifier: {sample: {tokens: 5}}}}",
        r"presets.demo.classifier.sample: a classifier draws no samples \(only gpt has sample\)$",
    ),
    (
        "ablations={distillation: {demo: {data: {dataset: imdb, tokenizer: bytes}}}}",
        r"distillation.demo.data: teacher: pipeline distils on the course GPT's data; data is",
    ),
    ("ablations={distillation: {demo: {teacher: gpt2}}}", r"demo: 'data' is a required property"),
    (
        "cluster={default: {partition: x}, trian: {partition: gpu}}",
        r"cluster.trian is neither a group nor a stage of this workflow; allowed: augment",
    ),
    (
        "cluster={evaluate: {tasks: 2}}",
        r"cluster.evaluate.tasks=2: only training runs on several processes; set tasks in",
    ),
    # resources `fromscratch run` refuses: here, not as each job of the stage starts
    (
        "cluster={train: {time_min: 1}}",
        r"^config: cluster.train, as the distillation jobs take it: signal_delay_s: 90 s must "
        r"be less than time_min=1 minutes$",
    ),
    (
        "cluster={train: {gpus: 1, tasks: 2}}",
        r"^config: cluster.train, as the train jobs take it: tasks: 2 processes a node need as "
        r"many GPUs, not gpus=1",
    ),
    (
        "ablations={cramming: {demo: {budget_fractions: [0.5, 0.50000001]}}}",
        r"budget_fractions: two budgets within a millisecond \(3, 3, 6 s\); leave one out",
    ),
    (
        "ablations={cramming: {demo: {train: {lr: 1.0}}}}",
        r"cramming.demo.train.lr: set by the study: the LR of the recipe's own LR range test",
    ),
    (
        "ablations={cramming: {demo: {ablations: {baseline: {model: {bias: true}}}}}}",
        r"ablations: 'baseline' names the recipe itself; call the ablation something else",
    ),
    (
        "ablations={cramming: {demo: {ablations: {Bigger: {model: {n_layer: 3}}}}}}",
        r"ablations: 'Bigger': a name of lower-case letters, digits and _, a letter first",
    ),
    (
        "presets={demo: {gpt: {train: {device: gpu}}}}",
        r"config: presets.demo.gpt.train.device: 'gpu': must be auto, cpu, cuda, cuda:N or mps",
    ),
    (
        "ablations={perceiver: {demo: {data: [{dataset: demo, tokenizer: chars, eval_split: "
        "test}, {dataset: demo, tokenizer: chars, eval_split: ood}]}}}",
        r"ablations.perceiver.demo.data: a data set with one tokenizer comes once",
    ),
    (
        "ablations={distillation: {demo: {lengths: [2, 4]}}}",
        r"distillation.demo.lengths: must include 1, the training length itself",
    ),
    (
        "presets={demo: {gpt: {model: {n_head: 3}}}}",
        r"config: presets.demo.gpt.model: n_embd=64 is not divisible by n_head=3",
    ),
    # comparisons of one's own
    (
        "presets={demo: {compare: {heads: {model: classifier, field: n_heads, variants: [1]}}}}",
        r"compare.heads: 'n_heads' is neither a field of the classifier nor a training one",
    ),
    (
        "presets={demo: {compare: {warm: {model: gpt, field: train.warmup, variants: [1]}}}}",
        r"compare.warm: 'train.warmup' is neither .* allowed: .*train.warmup_steps",
    ),
    (
        "presets={demo: {compare: {w: {model: gpt, field: train.warmup_steps, variants: [-5]}}}}",
        r"compare.w: variant -5 of gpt.train.warmup_steps: -5 is less than the minimum of 0",
    ),
    (
        "presets={demo: {compare: {heads: {model: classifier, field: n_head, variants: [1.5]}}}}",
        r"compare.heads: variant 1.5 of classifier.n_head: 1.5 is not of type 'integer'",
    ),
    (
        "presets={demo: {compare: {heads: {model: classifier, field: n_head, variants: [2, 3]}}}}",
        r"compare.heads: variant 3 of classifier.n_head: n_embd=64 is not divisible by n_head=3",
    ),
    (
        "presets={demo: {compare: {distil: {model: gpt, field: train.teacher, "
        "variants: [results/demo/runs/position/learned/seed0/model.pt]}}}}",
        r"variant 'results/demo/runs/position/learned/seed0/model.pt' of gpt.train.teacher: a "
        r"variant names its runs' folder, so it cannot be a path$",
    ),
    (
        "presets={demo: {compare: {norm: {model: gpt, variants: [pre, middle]}}}}",
        r"compare.norm: variant 'middle' of gpt.norm: 'middle' is not one of \['pre', 'post'\]",
    ),
    (
        "presets={demo: {compare: {norm: {model: lstm, variants: [post]}}}}",
        r"'lstm' is not one of \['classifier', 'gpt'\]",
    ),
    (
        "presets={demo: {compare: {'norm-2': {model: gpt, field: norm, variants: [post]}}}}",
        r"'norm-2' does not match",
    ),
    # a list that lacks what the course needs says what it must hold
    (
        "presets={demo: {compare: {position: [none, rope]}}}",
        r"^config: presets.demo.compare.position: must include learned, the course's GPT",
    ),
    (
        "presets={demo: {compare: {attention: [simple, scaled]}}}",
        r"^config: presets.demo.compare.attention: must include multihead",
    ),
    # ...but where it lacks it for a misspelling, the misspelt item is named
    (
        "presets={demo: {compare: {attention: [simple, multihed]}}}",
        r"^config: presets.demo.compare.attention.1: 'multihed' is not one of \['simple', ",
    ),
    # lengths a job would refuse as it starts (TrainConfig.lengths; a test keeps the two equal)
    (
        "presets={demo: {classifier: {train: {head_tokens: 200}}}}",
        r"^config: presets.demo.classifier: head_tokens=200: more than the max_length=128 tok",
    ),
    (
        "presets={demo: {compare: {ctx: {model: classifier, field: context, variants: [64]}}}}",
        r"^config: compare.ctx: variant 64 of classifier.context: max_length=128: longer than ",
    ),
    (
        "ablations={cramming: {demo: {ablations: {longer: {train: {context: 128}}}}}}",
        r"^config: ablations.cramming.demo: recipe longer: context=128: longer than the model",
    ),
    (
        "ablations={augmentation: {demo: {classifier: {train: {max_length: 256}}}}}",
        r"^config: ablations.augmentation.demo.classifier: max_length=256: longer than the ",
    ),
    # a study's own training split, which picks its data folder
    (
        "ablations={cramming: {demo: {train: {train_split: trian}}}}",
        r"^config: ablations.cramming.demo: recipe baseline: train_split: demo has no split 'tri",
    ),
    (
        "ablations={augmentation: {demo: {classifier: {train: {train_split: train+val}}}}}",
        r"^config: ablations.augmentation.demo.classifier: train_split: demo has no split 'val'",
    ),
    # a field left to the model's default is the default's (not a KeyError)
    (
        "presets={demo: {gpt: {model: {n_head: null, n_embd: 66}}}}",
        r"^config: presets.demo.gpt.model: n_embd=66 is not divisible by n_head=4$",
    ),
    (
        "ablations={encoder_decoder: {demo: {task: {min_length: 12}}}}",
        r"^config: ablations.encoder_decoder.demo.task.max_length: 10 is below min_length=12$",
    ),
    (
        "ablations={encoder_decoder: {demo: {task: {test_max_length: 8}}}}",
        r"encoder_decoder.demo.task.test_max_length: 8 is below max_length=10$",
    ),
    # a split the data set does not have: an error here, not after the training it scores
    (
        "presets={demo: {classifier: {eval_splits: val}}}",
        r"presets.demo.classifier.eval_splits: demo has no split 'val'; it has: train, test, ood$",
    ),
    (
        "presets={demo: {gpt: {train: {train_split: train+val}}}}",
        r"presets.demo.gpt.train.train_split: demo has no split 'val'; it has: train, test, ood$",
    ),
    (
        "presets={demo: {compare: {split: {model: gpt, field: train.train_split, "
        "variants: [train, train+val]}}}}",
        r"config: compare.split: variant 'train\+val': demo has no split 'val'; it has: train,",
    ),
    (
        "ablations={augmentation: {demo: {classifier: {ood: {demo: tset}}}}}",
        r"augmentation.demo.classifier.ood.demo: 'tset' is not one of \['train', 'test', 'ood'\]",
    ),
    (
        "ablations={augmentation: {demo: {lm: {dataset: pang-lee-reviews}}}}",
        r"augmentation.demo.lm.dataset: 'pang-lee-reviews' is not one of \['imdb', 'demo'\]",
    ),
    (
        "ablations={recurrent_gpt2: {demo: {corpora: {demo: val}}}}",
        r"recurrent_gpt2.demo.corpora.demo: 'val' is not one of \['train', 'test', 'ood'\]",
    ),
    (
        "ablations={perceiver: {demo: {data: [{dataset: demo, tokenizer: chars, "
        "eval_split: val}]}}}",
        r"ablations.perceiver.demo.data: demo has no split 'val'; it has: train, test, ood$",
    ),
    (
        "ablations={distillation: {demo: {eval_split: val}}}",
        r"ablations.distillation.demo.eval_split: demo has no split 'val'; it has: train, test",
    ),
    # every split named is checked, not the first alone
    (
        "presets={demo: {classifier: {eval_splits: 'test,val'}}}",
        r"presets.demo.classifier.eval_splits: demo has no split 'val'; it has: train, test, ood$",
    ),
    # the comparisons plot the first split's metric: a model scored on none has none
    (
        "presets={demo: {gpt: {eval_splits: ''}}}",
        r"^config: presets.demo.gpt.eval_splits is empty; name the splits the comparisons score",
    ),
    # a compared width that the heads do not split evenly, as a compared head count
    (
        "presets={demo: {compare: {w: {model: gpt, field: n_embd, variants: [64, 66]}}}}",
        r"^config: compare.w: variant 66 of gpt.n_embd: n_embd=66 is not divisible by n_head=4$",
    ),
]


def schema_defs() -> dict:
    schema = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    return yaml.safe_load(schema.read_text())["$defs"]


def test_the_schema_knows_every_training_and_model_field():
    # keys outside these lists are errors before any job starts, so they must be complete
    set_by_the_rules = {"data", "model", "eval_splits", "seed", "lr_from", "batch_size_from"}
    set_by_the_rules |= {"wandb_mode", "wandb_project", "wandb_entity", "group", "job_type"}
    set_by_the_rules |= {"tags", "run_name"}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(schema_defs()["train"]["properties"]) == train_fields - set_by_the_rules
    from_the_data = {"vocab_size", "num_classes"}
    shared = set(schema_defs()["transformer"]["properties"])
    for family, config in (("gpt", GPTConfig), ("classifier", ClassifierConfig)):
        fields = {f.name for f in dataclasses.fields(config)} - from_the_data
        assert shared | set(schema_defs()[f"{family}_model"]["properties"]) == fields


def test_the_schema_takes_the_kinds_the_models_know_and_lists_them_once():
    """A kind added to the models (a position encoding of a student's own) is a value the
    pipeline takes once it is added to the schema's one list of it."""
    from fromscratch.models import common

    schema = (ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text()
    for name in ("attention", "position", "norm", "activation"):
        choices = getattr(common, f"{name.upper()}S")
        assert tuple(schema_defs()[f"{name}_kinds"]["enum"]) == choices
        assert schema.count(f"[{', '.join(choices)}]") == 1, f"{name}: a copy of the list"


def test_the_schema_knows_the_splits_and_tokenizers_of_every_data_set():
    from fromscratch.data import DATASETS

    for key, field in (("dataset_splits", "splits"), ("dataset_tokenizers", "tokenizers")):
        known = schema_defs()[key]["properties"]
        assert {name: tuple(s["enum"]) for name, s in known.items()} == {
            name: getattr(dataset, field) for name, dataset in DATASETS.items()
        }


def test_cluster_entries_may_name_every_stage_the_cli_runs(workdir):
    from fromscratch.stages import STAGES

    common = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    listed = re.search(r"^STAGE_NAMES = \{(.*?)^\}", common, re.M | re.S).group(1)
    assert set(re.findall(r'"([\w-]+)"', listed)) == set(STAGES)
    # a study switched off keeps its stage's entry valid: both are settings of config.yaml
    result = snakemake(
        workdir, "-n", "--config", "cluster={perceiver-cost: {gpus: 1}}",
        "ablations={perceiver: {enabled: false}}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize(("override", "message"), MALFORMED)
def test_malformed_config_fails_before_any_job(workdir, override, message):
    result = snakemake(workdir, "-n", "--config", override)
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert re.search(message, said, re.MULTILINE), result.stderr[-2000:]
    # the message in one line: not the whole schema, and no traceback frames around it
    lines = [line for line in said.splitlines() if not line.startswith("Using workflow")]
    assert len(lines) == 1 and lines[0].startswith(("config: ", "`fromscratch`")), said[-2000:]
    assert not (workdir / "results").exists()


def test_a_key_written_twice_in_the_config_file_is_a_one_line_error(workdir):
    """YAML's reader (Snakemake's) keeps the second without a word: every GPT job would
    lose the first `train:` block's warm-up, evaluation and logging."""
    text = (ROOT / "config.yaml").read_text()
    line = next(line for line in text.splitlines(keepends=True) if "sample: {prompt:" in line)
    twice = workdir / "twice.yaml"
    twice.write_text(text.replace(line, line + "      train: {max_steps: 5}\n", 1))
    result = snakemake(workdir, "-n", config=twice)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("Using workflow")]
    number = text[: text.index(line)].count("\n") + 2
    assert result.returncode != 0 and lines == [
        f"config: {twice}: not valid YAML at line {number}, column 7: the key 'train' appears twice"
    ], result.stderr[-2000:]


def test_full_preset_dry_run_lists_every_job(workdir):
    result = snakemake(workdir, "-n", "--config", "preset=full")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = planned_jobs(result)
    # The course: 2 data sets, 2 × (batch size, LR range), (4 attention + 6 position
    # variants) × 3 seeds, 6 samples, the tables, 8 figures and the poster.
    course = {
        "batch_size": 2,
        "lr_range": 2,
        "train": 30,
        "sample": 6,
        "tables": 1,
        "figure_lr_range": 2,
        "figure_batch_size": 2,
        "figure_curves": 2,
        "figure_comparison": 2,
        "figure_samples": 1,
        "poster": 1,
    }
    # The studies at full scale, 3 seeds each (see config.yaml's ablations).
    studies = {
        "augmentation_ood_data": 5,  # Pang & Lee (x2) for the classifier; + Shakespeare for the LM
        "augmentation_augment": 8,  # 5 classifier + 3 LM strategies
        "augmentation_train": 30,  # (6 + 4 strategies) x 3 seeds
        "augmentation_evaluate": 30,
        "recurrent_gpt2_evaluate": 2,  # GPT-2 on IMDb and Tiny Shakespeare
        "distill_student": 24,  # 4 depths x (distilled, control) x 3 seeds
        "distill_lengths": 24,
        "distill_teacher_lengths": 1,
        "perceiver_train": 30,  # 5 contexts x 2 models x 3 seeds
        "cramming_train": 27,  # (1 + 2 budget fractions + 6 ablations) x 3 seeds
        "cramming_lr_range": 1,
        "sentence_vae_run": 9,  # 3 variants x 3 seeds
        "encoder_decoder_train": 6,
    }
    assert {k: counts[k] for k in course} == course
    assert {k: counts[k] for k in studies} == studies
    assert {k: n for k, n in counts.items() if k.startswith("poster_")} == {  # one each
        f"poster_{study}": 1
        for study in yaml.safe_load((ROOT / "config.yaml").read_text())["ablations"]
    }
    # enwik8, IMDb words (course); IMDb and Shakespeare in GPT-2 tokens; IMDb bytes
    assert counts["prepare_data"] == 5
    assert "results/full/data/enwik8-bytes/meta.json" in result.stdout


def test_lint_is_clean(workdir):
    result = snakemake(workdir, "--lint")
    assert result.returncode == 0
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_rule_files_are_formatted():
    rules = [str(ROOT / "Snakefile"), str(ROOT / "workflow")]
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", *rules], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr  # `make format` formats them


def test_without_fromscratch_on_path_the_workflow_says_so_before_any_job(workdir):
    bare = {key: value for key, value in os.environ.items() if key != "PATH"}
    files = ["--snakefile", str(ROOT / "Snakefile"), "--configfile", str(ROOT / "config.yaml")]
    result = subprocess.run(
        [str(BIN / "snakemake"), *files, "--directory", str(workdir), "-n"],
        env={**bare, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "`fromscratch` is not on PATH, and the rules call it" in result.stdout + result.stderr
    assert not (workdir / "results").exists()


def test_make_cluster_profile_lets_profile_slurm_find_the_project_profile(workdir, monkeypatch):
    """`snakemake --profile slurm`, as users type it: after `make cluster-profile` every
    job goes to SLURM; a profile of another name already there is kept, with a message."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(workdir / "config"))
    for _ in range(2):  # running it again is fine
        made = subprocess.run(
            ["make", "-s", "-C", str(ROOT), "cluster-profile"], capture_output=True, text=True
        )
        assert made.returncode == 0, made.stderr
    link = workdir / "config" / "snakemake" / "slurm"
    assert link.resolve() == (ROOT / "profiles" / "slurm").resolve()
    # a `--config` of its own, as the README's cluster command has, keeps the launcher;
    # an explicit launcher wins over the profile's
    for extra, launcher in [((), "slurm"), (("--config", "preset=full"), "slurm"),
                            (("--config", "launcher=debug"), "debug")]:  # fmt: skip
        result = snakemake(workdir / "run", "--profile", "slurm", "-n", "-p", *extra)
        assert result.returncode == 0, result.stderr[-3000:]
        commands = [line for line in result.stdout.splitlines() if "fromscratch run" in line]
        assert commands and all(f"--launcher {launcher} " in line for line in commands)

    link.unlink()
    link.mkdir()
    refused = subprocess.run(
        ["make", "-s", "-C", str(ROOT), "cluster-profile"], capture_output=True, text=True
    )
    assert refused.returncode != 0
    assert f"{link} is another profile; remove it" in refused.stderr


def test_nested_config_values_keep_their_yaml_types(workdir):
    """Snakemake reads values nested in --config as strings; the commands the README and
    config.yaml show must still work as the same YAML in a file would."""
    default = planned_jobs(snakemake(workdir, "-n"))
    three_seeds = snakemake(workdir, "-n", "--config", "presets={demo: {seeds: [0, 1, 2]}}")
    assert three_seeds.returncode == 0, three_seeds.stderr[-2000:]
    assert planned_jobs(three_seeds)["train"] == default["train"] // 2 * 3
    no_cramming = snakemake(workdir, "-n", "--config", "ablations={cramming: {enabled: false}}")
    assert no_cramming.returncode == 0, no_cramming.stderr[-2000:]
    assert "cramming_train" in default and "cramming_train" not in planned_jobs(no_cramming)
    # two entries of one key merge, as Snakemake merges them, their values still YAML's
    neither = snakemake(workdir, "-n", "--config", "ablations={cramming: {enabled: false}}",
                        "ablations={augmentation: {enabled: false}}")  # fmt: skip
    assert neither.returncode == 0, neither.stderr[-2000:]
    assert not {"cramming_train", "augmentation_train"} & set(planned_jobs(neither))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["preset=full", "presets={full: {gpt: {data: {tokenizer: chars}}}}"],
            "config: presets.full.gpt.data: tokenizer 'chars' does not fit data set 'enwik8'; "
            "allowed: bytes\n",
        ),
        (
            ["preset=small", "ablations={sentence_vae: {small: {data: {dataset: shakespeare, "
             "tokenizer: chars}, base: {source: train}}}}"],
            "config: ablations.sentence_vae.small.data: shakespeare has no split 'test'; ",
        ),
        (
            ["ablations={sentence_vae: {demo: {data: {dataset: demo, tokenizer: words}}}}"],
            "config: ablations.sentence_vae.demo.data must equal the pipeline GPT's data ",
        ),
    ],
)  # fmt: skip
def test_data_a_study_cannot_use_fails_before_any_job(workdir, overrides, message):
    """Not in a prepare job after the other downloads, or a study's job after hours."""
    result = snakemake(workdir, "-n", "--config", *overrides)
    assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]


def test_a_preset_of_your_own_runs_the_studies_you_give_it_settings_for(workdir):
    """A preset named in presets may have each study's settings under its name (here the
    demo's, so the same DAG under results/mini)."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    config["presets"]["mini"] = config["presets"]["demo"]
    for settings in config["ablations"].values():
        settings["mini"] = settings["demo"]
    own = workdir / "own.yaml"
    own.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    demo = snakemake(workdir, "-n", config=own)
    mini = snakemake(workdir, "-n", "--config", "preset=mini", config=own)
    assert mini.returncode == 0, mini.stderr[-2000:]
    assert planned_jobs(mini) == planned_jobs(demo) and "results/mini/studies/" in mini.stdout
    # a name that is no preset is a typo
    config["ablations"]["cramming"]["mnii"] = config["ablations"]["cramming"].pop("mini")
    own.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    typo = snakemake(workdir, "-n", "--config", "preset=mini", config=own)
    assert typo.returncode != 0
    assert (
        "config: ablations.cramming: unknown key 'mnii'; allowed: enabled, demo, small, "
        "full, mini" in typo.stderr
    )


def test_a_null_in_an_override_removes_the_entry(workdir):
    """Mappings merge into config.yaml's, so an override alone could only add to them."""
    default = planned_jobs(snakemake(workdir, "-n", "augmentation"))
    # two of the demo classifier's six strategies, each trained over two seeds
    strategies = "{strategies: {mix: null, typos: null}}"
    override = "ablations={augmentation: {demo: {classifier: " + strategies + "}}}"
    fewer = snakemake(workdir, "-n", "--config", override, "--", "augmentation")
    assert fewer.returncode == 0, fewer.stderr[-2000:]
    assert planned_jobs(fewer)["augmentation_train"] == default["augmentation_train"] - 2 * 2


def stage_arguments(result, stage, option="--args") -> list[dict]:
    """The arguments (or, with option="--resources", the SLURM resources) of every
    `fromscratch run STAGE` a dry run with -p prints."""
    marker = f"fromscratch run {stage} "
    arguments = []
    for line in result.stdout.splitlines():
        if marker in line:
            command = shlex.split(line[line.index(marker) :])
            arguments.append(json.loads(command[command.index(option) + 1]))
    return arguments


def test_a_study_short_of_data_trains_every_strategy_on_the_drawn_reviews(workdir):
    """With `reviews` (the demo's), every strategy's runs train on a folder of that many
    reviews and their copies, `none` too; with all of them, `none` trains on the course's
    own data folder."""
    result = snakemake(workdir, "-n", "-p", "augmentation")
    assert result.returncode == 0, result.stderr[-2000:]
    demo = yaml.safe_load((ROOT / "config.yaml").read_text())["ablations"]["augmentation"]["demo"]
    models = {model: demo[model] for model in ("classifier", "lm")}
    assert all(settings["reviews"] > 0 for settings in models.values())
    made = {
        (args["out"].split("/")[-2], args["strategy"]): args["reviews"]
        for args in stage_arguments(result, "augment")
    }
    assert made == {
        (model, strategy): settings["reviews"]
        for model, settings in models.items()
        for strategy in settings["strategies"]
    }
    runs = [args for args in stage_arguments(result, "train") if "/augmentation/" in args["out"]]
    assert len(runs) == len(made) * len(demo["seeds"])
    assert all("/augmented-" in run["config"]["data"] for run in runs)
    every_review = "ablations={augmentation: {demo: {classifier: {reviews: 0}}}}"
    result = snakemake(workdir, "-n", "-p", "--config", every_review, "--", "augmentation")
    data = {
        args["out"].split("/augmentation/runs/")[1]: args["config"]["data"]
        for args in stage_arguments(result, "train")
        if "/augmentation/" in args["out"]
    }
    assert data["classifier/none/seed0"] == "results/demo/data/demo-words"
    assert data["lm/none/seed0"].endswith("/augmented-none")


def course_runs(result) -> dict[str, dict]:
    """The training config of every comparison run a dry run with -p prints, by its folder
    under runs/ (attention/multihead/seed0)."""
    return {
        args["out"].split("runs/")[1]: args["config"]
        for args in stage_arguments(result, "train")
        if "/runs/" in args["out"] and "/studies/" not in args["out"]
    }


def job_inputs(result, rule: str) -> dict[str, list[str]]:
    """The input files of every job of `rule` a dry run prints, by its first output's
    folder."""
    inputs = {}
    for block in re.split(r"^(?:local)?rule ", result.stdout, flags=re.M)[1:]:
        if block.startswith(f"{rule}:"):
            files = dict(re.findall(r"^\s+(input|output): (.*)$", block, re.M))
            output = files["output"].split(", ")[0]
            inputs[os.path.dirname(output)] = files.get("input", "").split(", ")
    return inputs


def test_requeue_settings_of_a_cluster_entry_reach_the_launcher(workdir):
    from fromscratch.launch import Resources

    override = "cluster={train: {gpus: 1, time_min: 240, max_requeues: 5, signal_delay_s: 120}}"
    result = snakemake(workdir, "-n", "-p", "--config", override)
    assert result.returncode == 0, result.stderr[-2000:]
    trains = stage_arguments(result, "train", "--resources")
    assert trains and all(r["max_requeues"] == 5 and r["signal_delay_s"] == 120 for r in trains)
    resources = Resources.from_dict(trains[0])
    assert (resources.max_requeues, resources.signal_delay_s) == (5, 120)
    assert resources.submitit_parameters("job")["slurm_signal_delay_s"] == 120
    (data,) = {json.dumps(r) for r in stage_arguments(result, "prepare", "--resources")}
    assert "max_requeues" not in data  # the train entry's alone; the launcher's default


def test_extra_sbatch_flags_of_a_group_add_to_the_defaults(workdir):
    """A mail address for every job in `default`, an exclusive node for training."""
    mail = "{mail-type: FAIL, mail-user: me@uni.edu}"
    override = f"cluster={{default: {{extra: {mail}}}, train: {{extra: {{exclusive: true}}}}}}"
    result = snakemake(workdir, "-n", "-p", "--config", override)
    assert result.returncode == 0, result.stderr[-2000:]
    mailed = {"mail-type": "FAIL", "mail-user": "me@uni.edu"}
    trains = stage_arguments(result, "train", "--resources")
    assert trains and all(r["extra"] == mailed | {"exclusive": True} for r in trains)
    assert all(r["extra"] == mailed for r in stage_arguments(result, "prepare", "--resources"))


def test_several_processes_are_for_training_alone(workdir):
    """cluster.train's tasks run the training jobs with DDP; the other stages of the train
    group (the studies' evaluations, their own loops) are written for one process, and
    would run once a task, each writing the same files."""
    result = snakemake(workdir, "-n", "-p", "--config", "cluster={train: {gpus: 2, tasks: 2}}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert {r["tasks"] for r in stage_arguments(result, "train", "--resources")} == {2}
    for stage in ("evaluate", "encoder-decoder", "sentence-vae", "distillation"):
        assert {r["tasks"] for r in stage_arguments(result, stage, "--resources")} == {1}, stage


def test_every_run_has_a_name_of_its_own_in_wandb(workdir):
    """W&B lists runs by name: every training and tuning job of the demo DAG gets its own,
    from its study and tags, e.g. position/learned/seed0; all go to config.yaml's entity."""
    result = snakemake(workdir, "-n", "-p", "--config", "wandb={entity: course-team}")
    assert result.returncode == 0, result.stderr[-2000:]
    configs = [
        a["config"]
        for stage in ("train", "encoder-decoder", "lr-range", "batch-size", "noise-scale")
        for a in stage_arguments(result, stage)
    ]
    configs += [a["train"] for a in stage_arguments(result, "sentence-vae")]
    names = [config["run_name"] for config in configs]
    assert len(names) > 20 and len(set(names)) == len(names), sorted(names)
    assert {"position/learned/seed0", "tune/gpt/lr-range", "cramming/lr-range"} <= set(names)
    assert {config["wandb_mode"] for config in configs} == {"offline"}  # config.yaml's
    assert {config["wandb_entity"] for config in configs} == {"course-team"}


def test_the_studies_build_on_the_course_runs_of_the_presets_seeds(workdir):
    """The distillation teacher, the sentence VAE's base and the cramming reference are
    course GPT runs of the preset's seeds: none is scheduled for a seed it does not have."""
    result = snakemake(workdir, "-n", "--config", "presets={demo: {seeds: [1, 2]}}")
    assert result.returncode == 0, result.stderr[-2000:]
    course_runs = set(re.findall(r"results/demo/runs/\w+/[\w.-]+/seed(\d+)/", result.stdout))
    assert course_runs == {"1", "2"}
    teacher = "results/demo/runs/position/learned/seed1/model.pt"
    for rule in ("distill_teacher_lengths", "sentence_vae_run"):
        job = re.search(rf"^rule {rule}:\n    input: (.*)$", result.stdout, re.M)
        assert job and teacher in job.group(1).split(", "), rule
    cramming = re.search(r"^rule cramming_figures:\n    input: (.*)$", result.stdout, re.M)
    references = re.findall(r"results/demo/runs/position/learned/seed(\d)/", cramming.group(1))
    assert references == ["1", "2"]


def config_without(workdir, *keys, **settings):
    """config.yaml with each of `keys` (dotted paths) left out and each of `settings`
    (dotted paths, with __ for the dots) set; the path of the copy."""
    settings = {key.replace("__", "."): value for key, value in settings.items()}
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    for path, value in [(key, None) for key in keys] + list(settings.items()):
        *parents, name = path.split(".")
        section = config
        for parent in parents:
            section = section[parent]
        if value is None:
            del section[name]
        else:
            section[name] = value
    copy = workdir / "config.yaml"
    copy.write_text(yaml.safe_dump(config))
    return copy


def test_a_gpt_on_a_token_budget_without_max_steps_plans(workdir):
    """The cramming figure describes the course GPT by the budget its preset sets."""
    config = config_without(
        workdir,
        "presets.demo.gpt.train.max_steps",
        presets__demo__gpt__train__token_budget=200_000,
        presets__demo__gpt__train__clock="tokens",
    )
    result = snakemake(workdir, "-n", "-p", config=config)
    assert result.returncode == 0, result.stderr[-2000:]
    gpt = [a["config"] for a in stage_arguments(result, "train") if "/runs/position/" in a["out"]]
    assert gpt and all("max_steps" not in c and c["token_budget"] == 200_000 for c in gpt)


def test_samples_are_drawn_at_the_temperature_the_figure_states(workdir):
    """Without a temperature in the preset, the workflow passes its own default, which is
    the sample stage's (the samples figure's title states the workflow's)."""
    import inspect

    from fromscratch.stages.evaluate import sample_stage

    config = config_without(workdir, "presets.demo.gpt.sample.temperature")
    result = snakemake(workdir, "-n", "-p", config=config)
    assert result.returncode == 0, result.stderr[-2000:]
    default = inspect.signature(sample_stage).parameters["temperature"].default
    samples = stage_arguments(result, "sample")
    assert samples and all(args["temperature"] == default for args in samples)


def test_numbers_in_exponent_form_are_numbers(workdir):
    # YAML 1.1 (PyYAML, Snakemake) reads 1e-3, without a dot, as text
    result = snakemake(
        workdir, "-n", "-p", "--config", "presets={demo: {gpt: {train: {lr: 1e-3, "
        "max_steps: 3e2}, sample: {prompt: '2e3'}}, compare: {wd: {model: gpt, "
        "field: train.weight_decay, variants: [1e-2, 1E-1]}}}}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    runs = {args["out"]: args["config"] for args in stage_arguments(result, "train")}
    assert runs["results/demo/runs/position/learned/seed0"]["lr"] == 1e-3
    steps = runs["results/demo/runs/position/learned/seed0"]["max_steps"]
    assert steps == 300 and type(steps) is int  # a whole number: an integer, as training takes
    assert runs["results/demo/runs/wd/0.1/seed1"]["weight_decay"] == 0.1
    # where the schema wants text, text that looks like a number stays text
    assert {args["prompt"] for args in stage_arguments(result, "sample")} == {"2e3"}


def test_a_comparison_of_ones_own_trains_each_value_and_joins_the_poster(workdir):
    own = (
        "presets={demo: {compare: {heads: {model: classifier, field: n_head, variants: [1, 8]},"
        " warmup: {model: gpt, field: train.warmup_steps, variants: [0, 100]},"
        " lr: {model: gpt, field: train.lr, variants: [0.001, 0.01]}}}}"
    )
    result = snakemake(workdir, "-n", "-p", "--config", own)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = course_runs(result)
    for seed in (0, 1):
        for value in (1, 8):
            model = runs[f"heads/{value}/seed{seed}"]["model"]
            assert (model["family"], model["n_head"]) == ("classifier", value)
        for value in (0, 100):
            config = runs[f"warmup/{value}/seed{seed}"]
            assert (config["model"]["family"], config["warmup_steps"]) == ("gpt", value)
            assert config["lr_from"] and config["batch_size_from"]
        for value in (0.001, 0.01):  # a compared LR replaces the tuned one
            config = runs[f"lr/{value}/seed{seed}"]
            assert config["lr"] == value and "lr_from" not in config
            assert config["batch_size_from"]
    # ...and the LR range test is no input of those runs: run again, it retrains none of them
    tuned = {folder.split("runs/")[1]: [os.path.basename(f) for f in files if "/tune/" in f]
             for folder, files in job_inputs(result, "train").items()}  # fmt: skip
    assert tuned["lr/0.01/seed0"] == ["batch_size.json"]
    assert sorted(tuned["warmup/100/seed0"]) == ["batch_size.json", "lr_range.json"]
    assert runs["attention/multihead/seed0"]["model"]["n_head"] == 4  # the course's: as before
    for name in ("heads", "warmup", "lr"):
        for figure in (f"compare-{name}", f"curves-{name}"):
            assert f"results/demo/figures/{figure}.png" in result.stdout


def test_each_study_runs_alone_under_its_own_name(workdir):
    everything = planned_jobs(snakemake(workdir, "-n"))
    studies = ["augmentation", "recurrent_gpt2", "distillation", "perceiver", "cramming",
               "sentence_vae", "encoder_decoder"]  # fmt: skip
    for study in studies:
        result = snakemake(workdir, "-n", study)
        assert result.returncode == 0, result.stderr[-2000:]
        planned = planned_jobs(result)
        assert planned[study] == 1 and "poster" not in planned
        assert sum(planned.values()) < sum(everything.values())


def test_small_preset_studies_run_over_their_own_seeds(workdir):
    result = snakemake(workdir, "-n", "--config", "preset=small")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = planned_jobs(result)
    # Studies with `seeds` of their own run over those, not the preset's three.
    assert counts["perceiver_train"] == 12  # 3 contexts x 2 models x 2 seeds
    assert counts["cramming_train"] == 18  # (1 + 2 budget fractions + 6 ablations) x 2 seeds
    assert counts["recurrent_gpt2_evaluate"] == 4  # (learned, rope) x 2 seeds
    assert "studies/perceiver/shakespeare-chars/runs/gpt-1024/seed1/" in result.stdout
    assert "studies/perceiver/shakespeare-chars/runs/gpt-1024/seed2/" not in result.stdout


def test_an_lr_and_batch_size_of_the_preset_replace_the_tuned_ones(workdir):
    """A value the preset sets is the one every run trains at: a tuned `lr_from` beside it
    would win inside the run, and the setting would change nothing but rerun the jobs."""
    chosen = "presets={demo: {gpt: {train: {lr: 3.0e-3, batch_size: 4}}}}"
    result = snakemake(workdir, "-n", "-p", "--config", chosen)
    assert result.returncode == 0, result.stderr[-2000:]
    gpt_runs = [
        args["config"]
        for args in stage_arguments(result, "train")
        if args["config"]["model"]["family"] == "gpt" and "/cramming/" not in args["out"]
    ]
    assert len(gpt_runs) >= 12  # the position comparison, and the studies' GPTs
    for config in gpt_runs:
        assert (config["lr"], config["batch_size"]) == (3.0e-3, 4)
        assert "lr_from" not in config and "batch_size_from" not in config
    (lr_range,) = [
        args["config"] for args in stage_arguments(result, "lr-range") if "tune/gpt" in args["out"]
    ]
    assert lr_range["batch_size"] == 4 and "batch_size_from" not in lr_range
    # the noise scale is measured on the course run's first steps: at its LR and batch size
    noise = {args["out"]: args["config"] for args in stage_arguments(result, "noise-scale")}
    gpt, classifier = noise["results/demo/tune/gpt"], noise["results/demo/tune/classifier"]
    assert (gpt["lr"], gpt["batch_size"]) == (3.0e-3, 4) and "lr_from" not in gpt
    assert classifier["lr_from"] == "results/demo/tune/classifier/lr_range.json"
    assert classifier["batch_size_from"] == "results/demo/tune/classifier/batch_size.json"
    # a W&B run of its own beside the other tuning runs
    assert {(c["group"], c["job_type"]) for c in noise.values()} == {
        ("demo-tune/gpt/noise-scale", "noise-scale"),
        ("demo-tune/classifier/noise-scale", "noise-scale"),
    }


def test_runs_that_train_on_more_splits_learn_their_vocabulary_from_them(workdir):
    """A final run (train+val) with a vocabulary fitted on train alone would read val's own
    words as <unk>: its data folder's vocabulary is fitted on the splits it trains on. One
    split, or a fixed vocabulary, keeps the folder the other runs share."""
    final = (
        "presets={demo: {classifier: {train: {train_split: test+train}, eval_splits: ood},"
        " compare: {split: {model: classifier, field: train.train_split,"
        " variants: [train, train+ood]}}}}"
    )
    result = snakemake(workdir, "-n", "-p", "--config", final)
    assert result.returncode == 0, result.stderr[-2000:]
    data, fitted = "results/demo/data", "results/demo/data/demo-words-fit-train+test"
    prepared = {args["out"]: args for args in stage_arguments(result, "prepare")}
    assert prepared[fitted]["fit_on"] == "train+test"  # in the data set's order
    assert prepared[f"{data}/demo-words-fit-train+ood"]["fit_on"] == "train+ood"
    assert "fit_on" not in prepared[f"{data}/demo-words"] | prepared[f"{data}/demo-chars"]
    runs = {run: config["data"] for run, config in course_runs(result).items()}
    assert runs["attention/multihead/seed0"] == fitted
    assert runs["split/train/seed1"] == f"{data}/demo-words"
    assert runs["split/train+ood/seed1"] == f"{data}/demo-words-fit-train+ood"
    assert runs["position/learned/seed0"] == f"{data}/demo-chars"  # the GPT trains on train
    tuned = {args["out"]: args["config"]["data"] for args in stage_arguments(result, "lr-range")}
    assert tuned["results/demo/tune/classifier"] == fitted

    made = snakemake(workdir, "--cores", "2", f"{fitted}/meta.json", f"{data}/demo-words/meta.json")
    assert made.returncode == 0, made.stderr[-2000:]
    from fromscratch.data.prepare import PreparedData

    final_data, shared = PreparedData(workdir / fitted), PreparedData(workdir / data / "demo-words")
    assert (final_data.fit_on, shared.fit_on) == ("train+test", "train")

    def unknown_in_test(folder):
        return int((folder.tokens("test") == folder.tokenizer.ids["<unk>"]).sum())

    assert unknown_in_test(shared) > 0 and unknown_in_test(final_data) == 0
    # a name typed by hand that the workflow would not give: no second copy of a folder
    typed = snakemake(workdir, "-n", f"{data}/demo-words-fit-test+train/meta.json")
    assert typed.returncode != 0
    said = typed.stdout + typed.stderr
    assert f"{data}/demo-words-fit-test+train: this workflow names that folder {fitted}" in said


def test_a_study_reads_the_folder_of_the_model_it_builds_on_or_of_its_own_split(workdir):
    """The course GPT a final run (train+test here): the studies of that trained model
    read its folder (a vocabulary of another would be refused in their jobs); cramming,
    which trains GPTs of its own on train, and augmentation, on its own split, read theirs.
    """
    final = (
        "presets={demo: {gpt: {data: {dataset: demo, tokenizer: words},"
        " train: {train_split: train+test}}}}"
    )
    studies = (  # the augmentation study on all the training reviews: its base folder
        "ablations={sentence_vae: {demo: {data: {tokenizer: words}}},"
        " augmentation: {demo: {classifier: {reviews: 0, train: {train_split: train+test}}}}}"
    )
    result = snakemake(workdir, "-n", "-p", "--config", final, studies)
    assert result.returncode == 0, result.stderr[-2000:]
    data, fitted = "results/demo/data", "results/demo/data/demo-words-fit-train+test"

    def folders(stage, under=""):
        return {
            args.get("data") or args["config"]["data"]
            for args in stage_arguments(result, stage)
            if under in args["out"]
        }

    assert folders("train", "runs/position/") == {fitted}
    for stage in ("recurrent-gpt2", "distillation", "sentence-vae"):
        assert folders(stage) == {fitted}, stage
    assert folders("train", "studies/cramming/") == {f"{data}/demo-words"}
    assert folders("lr-range", "studies/cramming/") == {f"{data}/demo-words"}
    assert folders("train", "augmentation/runs/classifier/none/") == {fitted}
    assert folders("train", "runs/attention/") == {f"{data}/demo-words"}
    # the sentence VAE's own base GPT (small: trained here) on its own split
    own_base = "ablations={sentence_vae: {small: {base: {train: {train_split: train+val}}}}}"
    result = snakemake(workdir, "-n", "-p", "--config", "preset=small", own_base)
    assert result.returncode == 0, result.stderr[-2000:]
    assert folders("sentence-vae") == {"results/small/data/imdb-chars-fit-train+val"}


def test_the_workflows_copies_of_the_packages_constants_are_the_same():
    """The workflow runs without the package (--sdm conda): what it needs to know of it,
    it keeps a copy of."""
    from fromscratch.data import tokenizers
    from fromscratch.models import ClassifierConfig, GPTConfig

    common = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    listed = re.search(r"^FITTED_TOKENIZERS = \((.*?)\)", common, re.M).group(1)
    assert tuple(re.findall(r'"(\w+)"', listed)) == tokenizers.FITTED
    defaults = re.search(r"^MODEL_DEFAULTS = (\{.*\})$", common, re.M).group(1)
    for name, value in json.loads(defaults).items():
        assert value == getattr(GPTConfig(), name) == getattr(ClassifierConfig(), name)


@pytest.mark.parametrize(
    "family, model, training",
    [
        ("classifier", {"context": 128}, {"max_length": 256}),
        ("classifier", {"context": 128}, {"head_tokens": 129}),
        ("classifier", {"context": None}, {"max_length": 300}),  # the model's default
        ("gpt", {"context": 64}, {"context": 65}),
        ("gpt", {"context": 64}, {"eval_stride": 65}),
        # windows shorter than the model's context: the stride is the window's to exceed
        ("gpt", {"context": 64}, {"context": 32, "eval_stride": 48}),
    ],
)
def test_planning_refuses_the_lengths_a_training_job_would(workdir, family, model, training):
    """Before any job starts, in the job's own words: the workflow cannot import the
    package (--sdm conda), so it checks them itself (length_error in common.smk).
    model: the preset's model fields changed (None: left to the model's default)."""
    from fromscratch import FromScratchError
    from fromscratch.models import GPT
    from fromscratch.train.evaluate import check_stride

    fields = {key: value for key, value in model.items() if value is not None}
    built = {"classifier": ClassifierConfig, "gpt": GPTConfig}[family](vocab_size=10, **fields)
    config = TrainConfig(data="x", model={"family": family, **fields}, **training)
    with pytest.raises(FromScratchError) as refused:  # as the training loop checks them
        window, _ = config.lengths(built.context)
        check_stride(GPT(built), window, config.eval_stride, "cpu")
    setting = f"presets={{demo: {{{family}: {{model: {model}, train: {training}}}}}}}"
    result = snakemake(workdir, "-n", "--config", setting.replace("'", "").replace("None", "null"))
    assert result.returncode != 0
    assert f"config: presets.demo.{family}: {refused.value}\n" in result.stderr


@pytest.mark.parametrize(
    "model",
    [
        {"n_embd": 66, "n_head": 4},
        {"n_embd": 68, "n_head": 4, "position": "rope"},
        {"n_embd": 65, "n_head": 5, "position": "sinusoidal"},
    ],
    ids=["heads", "rope", "sinusoidal"],
)
def test_planning_refuses_the_widths_a_model_config_would(workdir, model):
    """Before any job starts, in the model config's own words (width_error in common.smk,
    which cannot import the package)."""
    from fromscratch import FromScratchError

    with pytest.raises(FromScratchError) as refused:
        GPTConfig(vocab_size=10, **model)
    words = str(refused.value).split(": ", 1)[1]  # after "GPTConfig.<field>: "
    setting = f"presets={{demo: {{gpt: {{model: {model}}}}}}}".replace("'", "")
    result = snakemake(workdir, "-n", "--config", setting)
    assert result.returncode != 0
    assert "config: presets.demo.gpt.model: " in result.stderr
    assert words in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize(
    ("setting", "job", "refusal"),
    [
        (
            "{gpt: {train: {max_length: 32}}}",
            "augmentation_train (model=lm, strategy=delete_swap, seed=0)",
            lambda: TrainConfig(data="x", model={"family": "gpt"}, max_length=32),
        ),
        (
            "{classifier: {train: {clock: time}}}",
            "augmentation_train (model=classifier, strategy=crop, seed=0)",
            lambda: TrainConfig(data="x", model={"family": "classifier"}, clock="time"),
        ),
        (
            "{tune: {lr_range: {min_lr: 2.0}}}",
            "cramming_lr_range",
            lambda: check_lr_range_options(steps=150, min_lr=2.0, max_lr=1.0),
        ),
    ],
    ids=["classifier-key-on-gpt", "clock-without-budget", "lr-range"],
)
def test_a_setting_only_a_job_reads_fails_the_run_before_the_first_job(
    workdir, setting, job, refusal
):
    """A dry run stays quick and passes them; the run itself checks every job it is about
    to run, as `fromscratch run` would at the job's start (check_jobs_to_run), and stops
    with that job's message before any has run."""
    from fromscratch import FromScratchError

    with pytest.raises(FromScratchError) as refused:
        refusal()
    override = f"presets={{demo: {setting}}}"
    assert snakemake(workdir, "-n", "--config", override).returncode == 0
    result = snakemake(workdir, "--cores", "1", "--config", override)
    assert result.returncode != 0
    line = result.stderr.strip().splitlines()[-1]
    assert line == f"config: the job {job} would fail: {refused.value}", result.stderr[-2000:]
    assert not (workdir / "results").exists()  # nothing ran


def test_the_conda_environment_installs_this_checkout_from_where_snakemake_copies_it(tmp_path):
    """`--sdm conda` creates the environment from a copy of envs/fromscratch.yaml under
    .snakemake/conda/, where conda's pip runs: the checkout comes from FROMSCRATCH_ROOT,
    which the Snakefile sets for it, not from a path relative to the file."""
    env = yaml.safe_load((ROOT / "envs" / "fromscratch.yaml").read_text())
    pip = next(entry["pip"] for entry in env["dependencies"] if isinstance(entry, dict))
    copy = tmp_path / "work" / ".snakemake" / "conda"
    copy.mkdir(parents=True)
    project = [line for line in pip if not line.startswith("torch")]  # torch: a big download
    (copy / "requirements.txt").write_text("\n".join(project) + "\n")
    install = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index"]
    install += ["--no-build-isolation", "-r", "requirements.txt"]
    result = subprocess.run(
        install,
        cwd=copy,
        env={**os.environ, "FROMSCRATCH_ROOT": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert "Would install fromscratch" in result.stdout, result.stderr[-2000:]
    common = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    assert "os.environ.update(FROMSCRATCH_ROOT=workflow.basedir)" in common


def test_a_study_without_seeds_of_its_own_takes_the_presets(workdir):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["presets"]["demo"]["seeds"] = [0, 1, 2]
    for name in ("augmentation", "distillation", "sentence_vae", "encoder_decoder"):
        del config["ablations"][name]["demo"]["seeds"]
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "-n", "-p", config=workdir / "config.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    for stage, study in (
        ("train", "augmentation"),
        ("train", "distillation"),
        ("sentence-vae", "sentence_vae"),
        ("encoder-decoder", "encoder_decoder"),
    ):
        outs = [args["out"] for args in stage_arguments(result, stage) if "out" in args]
        seeds = {re.search(r"seed(\d+)", out)[1] for out in outs if f"/{study}/" in out}
        assert seeds == {"0", "1", "2"}, study


def test_quoted_text_in_a_nested_config_value_stays_text(workdir):
    # Snakemake reads nested values as text without their quotes; "1984" is a prompt here
    result = snakemake(
        workdir, "-n", "-p", "--config",
        'presets={demo: {gpt: {sample: {prompt: "1984"}}, seeds: [0]}}', 'wandb={project: "2024"}',
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert {args["prompt"] for args in stage_arguments(result, "sample")} == {"1984"}
    projects = {args["config"]["wandb_project"] for args in stage_arguments(result, "train")}
    assert projects == {"2024"}
    course = [a["out"] for a in stage_arguments(result, "train") if "/studies/" not in a["out"]]
    assert course and all(out.endswith("seed0") for out in course)  # a list is still a list


def test_quoted_text_in_a_config_file_stays_text(workdir):
    """A --configfile is read as YAML reads it: "1984" and "null" are a prompt's text, not
    a number and a removed setting."""
    for prompt in ("1984", "null"):
        given = workdir / f"{prompt}.yaml"
        text = (ROOT / "config.yaml").read_text()
        given.write_text(text.replace('prompt: "the film"', f'prompt: "{prompt}"', 1))
        result = snakemake(workdir, "-n", "-p", config=given)
        assert result.returncode == 0, result.stderr[-2000:]
        assert {args["prompt"] for args in stage_arguments(result, "sample")} == {prompt}


def test_default_resources_of_ones_own_keep_the_slurm_profiles_launcher(workdir):
    """They replace the profile's as a whole: without launcher='slurm' every job would run
    on the login node, without a word."""
    slurm = ["-n", "-p", "--profile", str(ROOT / "profiles" / "slurm"), "--default-resources"]
    result = snakemake(workdir, *slurm, "mem_mb=2000")
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "config: --default-resources replaces the slurm profile's launcher='slurm'" in said
    result = snakemake(workdir, *slurm, "mem_mb=2000", "launcher='slurm'")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--launcher slurm" in result.stdout and "--launcher local" not in result.stdout


def test_a_failed_jobs_error_is_on_the_console(workdir, monkeypatch):
    monkeypatch.setenv("FROMSCRATCH_CACHE", str(workdir / "cache"))  # nothing downloaded
    missing = workdir / "no-mirror"
    result = snakemake(
        workdir, "--cores", "1", "--config", "preset=small", f"mirror={missing}",
        "--", "results/small/data/shakespeare-chars/meta.json",
    )  # fmt: skip
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert f"local run failed: mirror {missing}: no such folder" in said


def test_a_context_added_to_the_perceiver_study_plans_and_trains_its_runs_alone(workdir):
    """Each context has a plan of its own, so a run of a context planned before is left as
    it is when another context is added: only the new context is planned and trained."""
    before = planned_jobs(snakemake(workdir, "-n"))
    run = "results/demo/studies/perceiver/demo-chars/runs/gpt-64/seed0/summary.json"
    made = snakemake(workdir, "--cores", "2", run)
    assert made.returncode == 0, made.stderr[-2000:]
    longer = "ablations={perceiver: {demo: {contexts: [64, 128, 256, 512]}}}"
    result = snakemake(workdir, "-n", "--config", longer)
    assert result.returncode == 0, result.stderr[-2000:]
    after = planned_jobs(result)
    assert (before["perceiver_plan"], after["perceiver_plan"]) == (3, 3)  # 64's is made
    # the new context's runs, and all the others but the one trained
    assert after["perceiver_train"] == before["perceiver_train"] // 3 * 4 - 1
    outputs = " ".join(re.findall(r"^\s+output: (.*)$", result.stdout, re.M))
    assert run not in outputs and run.replace("gpt-64", "gpt-512") in outputs


def test_course_runs_are_scored_on_the_presets_splits_and_tagged_with_its_name(workdir):
    """A run trained on another single split (a comparison of train_split) learns its
    vocabulary there, in a folder named after it; every course run is evaluated on its
    model's eval_splits (config.yaml's demo: the classifier on test and ood, the GPT on
    test), and its W&B tags start with the preset's name."""
    split = (
        "presets={demo: {compare: {split: {model: classifier, field: train.train_split,"
        " variants: [train, ood]}}}}"
    )
    result = snakemake(workdir, "-n", "-p", "--config", split)
    assert result.returncode == 0, result.stderr[-2000:]
    data = "results/demo/data"
    runs = course_runs(result)
    assert runs["split/ood/seed1"]["data"] == f"{data}/demo-words-fit-ood"
    assert runs["split/train/seed1"]["data"] == f"{data}/demo-words"
    prepared = {args["out"]: args for args in stage_arguments(result, "prepare")}
    assert prepared[f"{data}/demo-words-fit-ood"]["fit_on"] == "ood"
    scored = {"attention": "test,ood", "split": "test,ood", "position": "test"}
    assert {run: config["eval_splits"] for run, config in runs.items()} == {
        run: scored[run.split("/")[0]] for run in runs
    }
    assert runs["position/learned/seed0"]["tags"] == "demo,position,learned,seed0"
    assert {config["tags"].split(",")[0] for config in runs.values()} == {"demo"}
    # a W&B group a setting: its seeds drawn as one curve, the others apart
    groups = {run: config["group"] for run, config in runs.items()}
    assert groups["position/learned/seed0"] == groups["position/learned/seed1"]
    assert groups["position/learned/seed0"] == "demo-position/learned"
    assert len(set(groups.values())) == len({run.rsplit("/", 1)[0] for run in runs})


def printed_by_the_workflow(tmp_path, expression, *args):
    """What `expression`, evaluated inside the project's workflow, is in a dry run with
    `args`: a Snakefile of the test's own includes the project's and prints it as JSON;
    beside it, the project's folders, which the workflow finds by its place."""
    for folder in ("workflow", "src", "envs"):
        if not (tmp_path / folder).exists():
            (tmp_path / folder).symlink_to(ROOT / folder)
    probe = tmp_path / "probe.smk"
    probe.write_text(
        f'include: "{ROOT / "Snakefile"}"\n\n\n'
        "from types import SimpleNamespace\n\n"
        f'print("PRINTED", json.dumps({expression}), file=sys.stderr)\n'
    )
    result = snakemake(tmp_path / "w", "-n", *args, snakefile=probe)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = re.search(r"^PRINTED (.*)$", result.stderr, re.M)
    assert printed, result.stderr[-2000:]
    return json.loads(printed.group(1))


def test_the_comparisons_plot_the_first_eval_splits_metric_in_the_gpts_unit(tmp_path):
    """The figures of a comparison score each model on its first eval split: the
    classifier's accuracy, the GPT's bits per character (chars) or per byte (bytes), the
    units its summary holds."""
    expected = {
        # demo: classifier eval_splits test,ood; GPT demo chars, eval_splits test
        "demo": {"classifier": "test/accuracy", "gpt": "test/bits_per_char"},
        # full: classifier test,val; GPT enwik8 bytes, eval_splits val,test
        "full": {"classifier": "test/accuracy", "gpt": "val/bits_per_byte"},
    }
    for preset, metric in expected.items():
        printed = printed_by_the_workflow(tmp_path, "MODEL_METRIC", "--config", f"preset={preset}")
        assert printed == metric, preset


def test_tuning_reruns_for_what_it_reads_and_for_nothing_else(tmp_path):
    """The settings Snakemake records with each tuning job's output, whose change reruns
    it: the course GPT's model, but not how its training run is evaluated and logged, nor
    where W&B keeps it; its schedule only for the noise scale, measured on the run's first
    steps (the batch-size search and the LR range test set their own LRs)."""
    tuning = ("batch_size", "lr_range", "noise_scale")
    settings = (
        "{name: getattr(rules, name).params.settings(SimpleNamespace(model='gpt'))"
        f" for name in {tuning}}}"
    )

    base = printed_by_the_workflow(tmp_path, settings)

    def changed(*override):
        other = printed_by_the_workflow(tmp_path, settings, "--config", *override)
        return {name for name in tuning if other[name] != base[name]}

    train = "presets={demo: {gpt: {train: %s}}}"
    assert changed(train % "{eval_every: 7, log_every: 3, eval_max_tokens: 99}") == set()
    assert changed("wandb={mode: disabled, project: elsewhere}") == set()
    assert changed(train % "{warmup_steps: 7, max_steps: 99}") == {"noise_scale"}
    assert changed("presets={demo: {gpt: {model: {n_embd: 32}}}}") == set(tuning)


def test_each_stage_gets_its_groups_resources_then_its_own(workdir):
    """config.yaml's order: `default`, the stage's group (tune: batch-size search, noise
    scale, LR range test; data: prepare), then an entry named after the stage; tasks in
    `default` are for training alone, as the message of a stage's own tasks says."""
    cluster = (
        "cluster={default: {tasks: 2}, tune: {partition: gpu-short},"
        " perceiver-cost: {partition: cpu}, train: {partition: gpu-long, gpus: 2}}"
    )
    result = snakemake(workdir, "-n", "-p", "--config", cluster)
    assert result.returncode == 0, result.stderr[-2000:]

    def given(stage, key):
        return {r[key] for r in stage_arguments(result, stage, "--resources")}

    for stage in ("noise-scale", "lr-range", "batch-size"):
        assert (given(stage, "partition"), given(stage, "time_min")) == ({"gpu-short"}, {30})
        assert given(stage, "tasks") == {1}, stage
    assert given("perceiver-cost", "partition") == {"cpu"}
    assert (given("train", "partition"), given("train", "time_min")) == ({"gpu-long"}, {240})
    assert given("prepare", "partition") == {""}
    assert (given("train", "tasks"), given("train", "gpus")) == ({2}, {2})
    for stage in ("evaluate", "encoder-decoder", "sentence-vae", "distillation", "prepare"):
        assert given(stage, "tasks") == {1}, stage


def test_each_studys_poster_shows_its_own_figures_after_the_courses(workdir):
    result = snakemake(workdir, "-n")
    assert result.returncode == 0, result.stderr[-2000:]
    studies = list(yaml.safe_load((ROOT / "config.yaml").read_text())["ablations"])
    for study in studies:
        job = re.search(rf"^rule poster_{study}:\n    input: (.*)$", result.stdout, re.M)
        panels = job.group(1).split(", ")
        assert "results/demo/figures/samples.png" in panels, study  # the course's
        shown = {m[1] for p in panels if (m := re.match(r"results/demo/figures/(\w+)/", p))}
        assert shown == {study}, study


@pytest.mark.parametrize("named", ["--profile", "--profile=", "SNAKEMAKE_PROFILE"])
def test_the_slurm_profile_is_seen_however_it_is_named(workdir, monkeypatch, named):
    """Own --default-resources without its launcher are refused with each way of naming
    profiles/slurm; `--config launcher=slurm`, the message's other fix, sends every job
    to SLURM."""
    profile = str(ROOT / "profiles" / "slurm")
    if named == "SNAKEMAKE_PROFILE":
        monkeypatch.setenv("SNAKEMAKE_PROFILE", profile)
        flags = []
    else:
        flags = [named, profile] if named == "--profile" else [named + profile]
    own = [*flags, "-n", "-p", "--default-resources", "mem_mb=2000"]
    result = snakemake(workdir, *own)
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "config: --default-resources replaces the slurm profile's launcher='slurm'" in said
    result = snakemake(workdir, *own, "--config", "launcher=slurm")
    assert result.returncode == 0, result.stderr[-2000:]
    commands = [line for line in result.stdout.splitlines() if "fromscratch run" in line]
    assert commands and all("--launcher slurm " in line for line in commands)


@pytest.mark.parametrize("form", ["list", "mapping"])
def test_a_copy_of_the_slurm_profile_is_known_by_what_it_says(workdir, form):
    """A profile saved under another name that names launcher='slurm' in its default
    resources (as a list, or as a mapping) is protected as profiles/slurm is; one that
    names no launcher is not refused."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    if form == "mapping":
        profile["default-resources"] = {"launcher": "slurm", "mem_mb": 1000}
    copy = workdir / "profiles" / "cluster"
    copy.mkdir(parents=True)
    (copy / "config.yaml").write_text(yaml.safe_dump(profile))
    own = ["--profile", str(copy), "-n", "-p", "--default-resources", "mem_mb=2000"]
    result = snakemake(workdir / "run", *own)
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "config: --default-resources replaces the cluster profile's launcher='slurm'" in said

    del profile["default-resources"]
    (copy / "config.yaml").write_text(yaml.safe_dump(profile))
    result = snakemake(workdir / "run", *own)
    assert result.returncode == 0, result.stderr[-2000:]
    commands = [line for line in result.stdout.splitlines() if "fromscratch run" in line]
    assert commands and all("--launcher local " in line for line in commands)


def test_a_sample_prompt_the_gpts_characters_cannot_spell_stops_the_run_once_its_data_is_made(
    workdir,
):
    """The sample jobs check their prompt against the vocabulary of the GPT's data where it
    is prepared already (every run after the first), before any job runs: not after the
    training, when the model is there. A dry run plans, as for every setting a job reads."""
    from fromscratch.data import prepare

    odd = "presets={demo: {gpt: {sample: {prompt: 'ROMEO: é'}}}}"
    prepare("demo", workdir / "results/demo/data/demo-chars", tokenizer="chars", progress=False)
    assert snakemake(workdir, "-n", "--config", odd).returncode == 0
    result = snakemake(workdir, "--cores", "1", "--config", odd)
    assert result.returncode != 0
    line = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"config: the job sample \(experiment=position, variant=\w+, seed=\d\) would fail: "
        r"sample: the prompt 'ROMEO: é': not in the vocabulary: 'R', 'O', 'M', 'E', ':', 'é'; "
        r"it has \d+ characters: .*",
        line,
    ), result.stderr[-2000:]
    assert not (workdir / "results/demo/runs").exists()  # nothing ran
