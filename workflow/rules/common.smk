# Helpers shared by all the rules (the preset, paths, training specs, launcher commands).
import json
import os
import shlex

import yaml
from snakemake.utils import update_config, validate


def yaml_scalars(value):
    """Snakemake reads the values nested in `--config key={...}` as strings (`{enabled:
    false}` gives "false"): read those that are YAML numbers, booleans or null as such,
    as the same text in config.yaml would be."""
    if isinstance(value, dict):
        return {key: yaml_scalars(item) for key, item in value.items()}
    if isinstance(value, list):
        return [yaml_scalars(item) for item in value]
    if isinstance(value, str) and value:
        parsed = yaml.safe_load(value)
        if parsed is None or isinstance(parsed, bool | int | float):
            return parsed
    return value


update_config(config, yaml_scalars(workflow.config_settings.overwrite_config))
validate(config, "../schemas/config.schema.yaml")

PRESET = config["preset"]
if PRESET not in config["presets"]:
    raise ValueError(
        f"config: preset {PRESET!r} is not defined; defined: {', '.join(config['presets'])}"
    )
P = config["presets"][PRESET]
RESULTS = f"results/{PRESET}"
SEEDS = P["seeds"]
MODELS = ("classifier", "gpt")
# Which model each comparison trains, and the model config field it varies.
COMPARISONS = {
    "attention": ("classifier", "attention"),
    "position": ("gpt", "position"),
}
# The variant of each comparison that is also "the" model of the course (samples, curves).
MAIN_VARIANT = {"attention": "multihead", "position": "learned"}
FAMILY = {"classifier": "classifier", "gpt": "gpt"}
# The package source, found from the Snakefile (runs may use another --directory).
SOURCE = os.path.join(workflow.basedir, "src", "fromscratch")
# The environment of every rule under --sdm conda.
CONDA_ENV = os.path.join(workflow.basedir, "envs", "fromscratch.yaml")
MIRROR = config["mirror"] or os.environ.get("FROMSCRATCH_MIRROR", "")


def comparison_model(experiment):
    return COMPARISONS[experiment][0]


def lm_metric():
    """Bits per character/byte/token of the GPT, whichever its tokenizer makes exact."""
    split = P["gpt"]["eval_splits"].split(",")[0]
    unit = {"chars": "bits_per_char", "bytes": "bits_per_byte"}
    return f"{split}/{unit.get(P['gpt']['data']['tokenizer'], 'bits_per_token')}"


def data_dir(model):
    data = P[model]["data"]
    return f"{RESULTS}/data/{data['dataset']}-{data['tokenizer']}"


def train_spec(model, seed=0, **model_fields):
    """The training config (a TrainConfig dict) of `model` in this preset."""
    spec = P[model]
    return {
        "data": data_dir(model),
        "model": {"family": FAMILY[model], **spec["model"], **model_fields},
        "eval_splits": spec.get("eval_splits", ""),
        "seed": seed,
        "wandb_mode": config["wandb"]["mode"],
        "wandb_project": config["wandb"]["project"],
        **spec.get("train", {}),
    }


# The `cluster:` entry whose resources a stage gets after `default`: data preparation and
# tuning have their own; everything else trains or runs a model ("train": a GPU at scale).
# An entry named after a stage (e.g. `perceiver-cost`) refines that stage alone.
RESOURCE_GROUPS = {
    "prepare": "data",
    "augment": "data",
    "batch-size": "tune",
    "lr-range": "tune",
    "sample": "sample",
}
STAGE_NAMES = set()  # every stage of the workflow: what `cluster:` entries may name


def resources(stage):
    """The stage's SLURM resources: the defaults, then its group's, then its own."""
    cluster = config["cluster"]
    group = RESOURCE_GROUPS.get(stage, "train")
    return {**cluster["default"], **cluster.get(group, {}), **cluster.get(stage, {})}


def check_cluster_entries():
    """Fail before any job starts if a `cluster:` entry names no group and no stage."""
    allowed = {"default", "data", "tune", "train", "sample", *STAGE_NAMES}
    for name in config["cluster"]:
        if name not in allowed:
            raise ValueError(
                f"config: cluster.{name} is neither a group nor a stage of this workflow; "
                f"allowed: {', '.join(sorted(allowed))}"
            )


def run(stage, kwargs):
    """A params function: the command that runs `stage` through the launcher (here or on
    SLURM) with the keyword arguments kwargs(wildcards, input, output) -> dict."""

    STAGE_NAMES.add(stage)

    def command(wildcards, input, output, threads):
        name = "-".join([stage, *(str(v) for v in wildcards)])
        return shlex.join(
            [
                "fromscratch",
                "run",
                stage,
                "--launcher",
                config["launcher"],
                "--resources",
                json.dumps(resources(stage)),
                "--args",
                json.dumps(kwargs(wildcards, input, output)),
                "--log-dir",
                f"{RESULTS}/logs/jobs/{stage}",
                "--name",
                name,
                "--threads",
                str(threads),
            ]
        )

    return command


def run_folder(experiment, variant, seed):
    return f"{RESULTS}/runs/{experiment}/{variant}/seed{seed}"


def comparison_runs(experiment):
    return [
        f"{run_folder(experiment, variant, seed)}/summary.json"
        for variant in P["compare"][experiment]
        for seed in SEEDS
    ]


def all_runs():
    return [path for experiment in COMPARISONS for path in comparison_runs(experiment)]


def ablation_enabled(name):
    return config["ablations"][name]["enabled"]


def study(name):
    """The settings of research study `name` at this preset (its `demo`/`small`/`full` block)."""
    settings = config["ablations"][name]
    if PRESET not in settings:
        raise ValueError(
            f"config: ablations.{name} has no settings for preset {PRESET!r}"
        )
    return settings[PRESET]


def study_seeds(name):
    """The seeds study `name` runs over: its own `seeds`, or else the preset's."""
    return study(name).get("seeds", SEEDS)


def study_dir(name):
    """Where study `name` writes its runs and tables; its figures go to figures/<name>/."""
    return f"{RESULTS}/studies/{name}"


ABLATION_TARGETS = []  # each enabled study's rule file appends its final outputs
# Each enabled study appends its poster panels: (figure name under figures/, heading, caption).
STUDY_PANELS = []


def all_targets():
    return [
        f"{RESULTS}/poster.pdf",
        f"{RESULTS}/tables/runs.csv",
        *ABLATION_TARGETS,
    ]
