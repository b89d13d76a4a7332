# Helpers shared by all the rules (the preset, paths, training specs, launcher commands).
import json
import math
import os
import re
import shlex
import shutil
import sys

import jsonschema
import yaml
from snakemake.cli import get_profile_dir
from snakemake.common.configfile import load_configfile
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config


def yaml_scalars(value):
    """Snakemake reads the values nested in `--config key={...}` as strings (`{enabled:
    false}` gives "false"): read those that are YAML numbers, booleans or null as such,
    as the same text in config.yaml would be."""
    if isinstance(value, dict):
        return {key: yaml_scalars(item) for key, item in value.items()}
    if isinstance(value, list):
        return [yaml_scalars(item) for item in value]
    if isinstance(value, str) and value:
        # text that is no YAML (`{a: [1}`) stays text: the schema says what is wrong
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if parsed is None or isinstance(parsed, bool | int | float):
            return parsed
    return value


def command_line_config(settings):
    """The `--config key=value` settings as YAML reads them.  Snakemake reads a nested
    value with YAML's base loader, every scalar as text and its quotes gone; its text is
    still on the command line, read here again, quotes respected ("1984" stays text), and
    two mappings of one key merged, as Snakemake merges them.  A value from elsewhere (a
    profile) has its scalars read as YAML's (yaml_scalars)."""
    given = {}
    for arg in sys.argv:
        key, sep, text = arg.partition("=")
        if sep and isinstance(settings.get(key), dict | list):
            value = yaml.safe_load(text)
            if isinstance(value, dict) and isinstance(given.get(key), dict):
                update_config(given[key], value)
            else:
                given[key] = value
    return {key: given.get(key, yaml_scalars(value)) for key, value in settings.items()}


def without_nulls(value):
    """`value` without the entries set to null: an override merges into config.yaml's
    mappings, and null is how it removes an entry (a strategy, a corpus, a comparison).
    """
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    return value


EXPONENT_FORM = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def numbers_where_wanted(value, schema):
    """`value` with each text that is a number in exponent form without a dot (1e-3) read
    as the number (a whole one, 1e3, as the integer) where `schema` asks for a number
    there: YAML 1.1, which config.yaml is read as, wants 1.0e-3, and a training config
    takes either.  Text elsewhere stays text (a sample's prompt "2e3")."""
    validator = jsonschema.validators.validator_for(schema)(schema)

    def errors(found):  # with those inside anyOf and oneOf
        for error in found:
            yield error
            yield from errors(error.context)

    def a_number_as_text(error):
        types = error.validator_value if error.validator == "type" else ()
        return (
            bool(
                {"number", "integer"}
                & set([types] if isinstance(types, str) else types)
            )
            and isinstance(error.instance, str)
            and EXPONENT_FORM.fullmatch(error.instance) is not None
        )

    while True:
        wanted = [
            e for e in errors(validator.iter_errors(value)) if a_number_as_text(e)
        ]
        if not wanted:
            return value
        for error in wanted:
            number = float(error.instance)
            number = int(number) if number.is_integer() else number
            *path, last = error.absolute_path or [None]
            if last is None:  # the value itself
                value = number
                continue
            place = value
            for key in path:
                place = place[key]
            place[last] = number


def stop(message):
    """End the run before any job starts, with `message` as its one line (an exception
    would come with Snakemake's traceback frames around it)."""
    raise SystemExit(message)


def validate_config(config, schema):
    """The config against the schema, its error in one line: where in the config, what is
    wrong and what is allowed (Snakemake's `validate` prints the whole schema after it, and
    reads the schema file again)."""
    validator = jsonschema.validators.validator_for(schema)(schema)
    relevance = jsonschema.exceptions.by_relevance()
    # a list that lacks what it must hold (`contains`) last: where one of its items is
    # misspelt, that item's own error names it and what is allowed
    error = jsonschema.exceptions.best_match(
        validator.iter_errors(config),
        key=lambda e: (e.validator != "contains", relevance(e)),
    )
    if error is not None:
        where = ".".join(str(key) for key in error.absolute_path)
        place = f"{where}: " if where else ""
        stop(f"config: {place}{schema_error(error, schema)}")


def schema_error(error, schema):
    """What is wrong, with the keys allowed where a key is unknown; a value the schema
    forbids (`not`), a list that lacks what it must hold (`contains`) or text of another
    form (`pattern`) is explained by that schema's description."""
    if (
        error.validator in ("not", "contains", "pattern")
        and "description" in error.schema
    ):
        given = f"{error.instance!r}: " if error.validator == "pattern" else ""
        return given + error.schema["description"]
    if error.validator not in ("additionalProperties", "unevaluatedProperties"):
        return error.message
    names, patterns = [], []
    part = error.schema
    while part is not None:  # its own keys, then those of the definition it refers to
        names += part.get("properties", {})
        patterns += part.get("patternProperties", {})
        ref = part.get("$ref", "")
        part = schema["$defs"][ref.removeprefix("#/$defs/")] if ref else None
    unknown = [
        repr(key)
        for key in error.instance
        if key not in names and not any(re.search(p, str(key)) for p in patterns)
    ]
    # a pattern of the form ^(demo|small|full)$ allows those names
    for pattern in patterns:
        alternatives = re.fullmatch(r"\^\(([\w|-]+)\)\$", pattern)
        names += alternatives.group(1).split("|") if alternatives else [f"/{pattern}/"]
    return f"unknown key {', '.join(unknown)}; allowed: {', '.join(names)}"


def settings_given(settings):
    """The `--configfile` files' settings as YAML typed them (a quoted "1984" stays text),
    then the `--config` settings (command_line_config) over them, as Snakemake merges them.
    """
    given = {}
    for path in settings.configfiles:
        update_config(given, load_configfile(path))
    update_config(given, command_line_config(dict(settings.config)))
    return given


update_config(config, settings_given(workflow.config_settings))
settings_kept = without_nulls(config)
config.clear()  # Snakemake's own dict, changed in place
config.update(settings_kept)
SCHEMA_FILE = os.path.join(
    workflow.basedir, "workflow", "schemas", "config.schema.yaml"
)
with open(SCHEMA_FILE, encoding="utf-8") as f:
    # libyaml's parser where PyYAML has it: the schema is read at every start
    SCHEMA = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
SCHEMA_DEFS = SCHEMA["$defs"]


def check_study_presets():
    """A study's settings come per preset, under the names config.presets defines (your
    own too): another name is a typo the schema cannot see."""
    presets, studies = config.get("presets"), config.get("ablations")
    if not (isinstance(presets, dict) and isinstance(studies, dict)):
        return  # the schema says what is wrong
    for name, settings in studies.items():
        if not isinstance(settings, dict):
            continue
        unknown = [repr(k) for k in settings if k != "enabled" and k not in presets]
        if unknown:
            stop(
                f"config: ablations.{name}: unknown key {', '.join(unknown)}; allowed: "
                f"enabled, {', '.join(presets)}"
            )


def check_finite(value, where="config"):
    """No NaN nor infinity anywhere (`.nan`, `.inf` in YAML): the schema's bounds let
    them through, and a job would refuse them only once it runs, after the jobs before it.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(
                item, f"{where}.{key}" if where != "config" else f"config: {key}"
            )
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_finite(item, f"{where}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        stop(f"{where}: {value!r} must be a finite number")


check_study_presets()
numbers_where_wanted(config, SCHEMA)
check_finite(config)
validate_config(config, SCHEMA)


def check_split(where, dataset, split):
    """Fail before any job starts if data set `dataset` has no split `split` (or one of the
    splits a "+" joins: train+val), rather than when a job that needs it runs, perhaps
    after hours of training."""
    splits = SCHEMA_DEFS["dataset_splits"]["properties"][dataset]["enum"]
    for part in split.split("+"):
        if part not in splits:
            stop(
                f"config: {where}: {dataset} has no split {part!r}; "
                f"it has: {', '.join(splits)}"
            )


def profiles_given():
    """The profiles this run was started with (--profile, --workflow-profile,
    $SNAKEMAKE_PROFILE), as given: a name or a path."""
    names = [os.environ.get("SNAKEMAKE_PROFILE", "")]
    for flag, value in zip(sys.argv, sys.argv[1:]):
        if flag in ("--profile", "--workflow-profile"):
            names.append(value)
    names += [
        a.split("=", 1)[1]
        for a in sys.argv
        if a.startswith(("--profile=", "--workflow-profile="))
    ]
    return [name for name in names if name]


def profile_launcher(profile):
    """The launcher a profile names in its default resources, or None.  It is found where
    Snakemake finds it (a path, or a name in this folder or Snakemake's config folders), so
    a copy of profiles/slurm under another name is known by what it says."""
    found = get_profile_dir(profile)
    if found is None:  # a relative path, given before `--directory` moved here
        named_slurm = os.path.basename(os.path.normpath(profile)) == "slurm"
        return "slurm" if named_slurm else None
    with open(found[1]) as f:
        resources = (yaml.safe_load(f) or {}).get("default-resources") or []
    if isinstance(resources, dict):
        resources = [f"{key}={value}" for key, value in resources.items()]
    for resource in resources:
        key, _, value = str(resource).partition("=")
        if key.strip() == "launcher":
            return value.strip().strip("'\"")
    return None


def check_launcher():
    """A profile may name its launcher as a default resource (profiles/slurm does: see its
    config.yaml), which `--default-resources` on the command line replaces as a whole:
    every job would then run here, on the login node, without a word."""
    given = workflow.resource_settings.default_resources
    if config["launcher"] or "launcher" in (given.keys() if given is not None else ()):
        return
    for profile in profiles_given():
        launcher = profile_launcher(profile)
        if launcher not in (None, "local"):
            name = os.path.basename(os.path.normpath(profile))
            stop(
                f"config: --default-resources replaces the {name} profile's "
                f"launcher={launcher!r}, and every job would run here; add "
                f"launcher={launcher!r} to them, or --config launcher={launcher}"
            )


check_launcher()
PRESET = config["preset"]
if PRESET not in config["presets"]:
    stop(
        f"config: preset {PRESET!r} is not defined; defined: {', '.join(config['presets'])}"
    )
P = config["presets"][PRESET]
RESULTS = f"results/{PRESET}"
SEEDS = P["seeds"]
# The course's comparisons: which model each trains; the model field it varies is its name.
COURSE_COMPARISONS = {"attention": "classifier", "position": "gpt"}
# The variant of each comparison that is also "the" model of the course (samples, curves).
MAIN_VARIANT = {"attention": "multihead", "position": "learned"}
# The package source, found from the Snakefile (runs may use another --directory).
SOURCE = os.path.join(workflow.basedir, "src", "fromscratch")
# The environment of every rule under --sdm conda; it installs this checkout, which it
# finds by FROMSCRATCH_ROOT (conda and pip run with this process's environment).
CONDA_ENV = os.path.join(workflow.basedir, "envs", "fromscratch.yaml")
os.environ.update(FROMSCRATCH_ROOT=workflow.basedir)
MIRROR = config["mirror"] or os.environ.get("FROMSCRATCH_MIRROR", "")


def comparison(name, spec):
    """(model, field, variants) of `compare.<name>`: a course comparison's list of variants,
    or a comparison of the user's own, {model, field (default: its name), variants}."""
    if name in COURSE_COMPARISONS:
        return COURSE_COMPARISONS[name], name, spec
    model, field = spec["model"], spec.get("field", name)
    fields = compared_fields(model)
    if field in fields:  # numbers as that field wants them (1e-3)
        schema = {"$defs": SCHEMA_DEFS, **fields[field]}
        spec["variants"] = [numbers_where_wanted(v, schema) for v in spec["variants"]]
    return model, field, spec["variants"]


def compared_fields(model):
    """What a comparison of `model` may vary, each with its schema: a field of the model,
    or train.<a training field>."""
    defs = SCHEMA_DEFS
    training = {
        f"train.{name}": schema for name, schema in defs["train"]["properties"].items()
    }
    return (
        defs["transformer"]["properties"]
        | defs[f"{model}_model"]["properties"]
        | training
    )


COMPARISONS = {name: comparison(name, spec) for name, spec in P["compare"].items()}


# TransformerConfig's defaults of the fields checked here (models/common.py; a test keeps
# the two equal): a model's where its config leaves them out
MODEL_DEFAULTS = {"context": 256, "n_head": 4, "n_embd": 128}


def width_error(fields):
    """What a model's config would refuse of how its width splits (ModelConfig, in its
    words): heads that do not divide it, RoPE on an odd head size, sinusoidal positions on
    an odd width."""
    n_embd, n_head = fields["n_embd"], fields["n_head"]
    position = fields.get("position")
    if n_embd % n_head:
        return f"n_embd={n_embd} is not divisible by n_head={n_head}"
    if position == "rope" and (n_embd // n_head) % 2:
        return "rope needs an even head size (n_embd / n_head)"
    if position == "sinusoidal" and n_embd % 2:
        return "sinusoidal needs an even n_embd"
    return None


def length_error(model, spec):
    """What a run's job would refuse as it starts, said here instead (TrainConfig.lengths,
    then check_stride, in their words): a classifier's reviews cut to more tokens than the
    model reads (max_length, default: the model's context) or keeping a head longer than
    that; a GPT's training window longer than its context, or evaluation windows further
    apart than a window is long. None where none of these."""
    context = (MODEL_DEFAULTS | spec["model"])["context"]
    key = "max_length" if model == "classifier" else "context"
    longest = spec.get(key) or context
    if longest > context:
        return f"{key}={longest}: longer than the model's context={context}"
    head, stride = spec.get("head_tokens", 0), spec.get("eval_stride", 0)
    if model == "classifier" and head > longest:
        return (
            f"head_tokens={head}: more than the max_length={longest} tokens a review "
            "is cut to"
        )
    if model == "gpt" and stride > longest:
        return (
            f"eval_stride={stride}: more than the {longest} positions the model "
            "predicts from a window"
        )
    return None


def check_study_run(where, model, dataset, spec):
    """A study's training config `spec` of `model` on `dataset`: its training split one of
    the data set's, its lengths those a job accepts (length_error); `where` names it."""
    check_split(f"{where}: train_split", dataset, spec.get("train_split", "train"))
    if error := length_error(model, spec):
        stop(f"config: {where}: {error}")


def check_comparisons():
    """Fail before any job starts if a preset's model splits its width unevenly among its
    heads or reads fewer tokens than it trains on (length_error), or a comparison of the
    user's own names a field that is neither a field of its model nor train.<a training
    field>, or a variant that is no value of that field (the schema's model and train
    sections) or breaks one of those two constraints."""
    for model in ("gpt", "classifier"):
        if error := width_error(MODEL_DEFAULTS | P[model]["model"]):
            stop(f"config: presets.{PRESET}.{model}.model: {error}")
        if error := length_error(model, train_spec(model)):
            stop(f"config: presets.{PRESET}.{model}: {error}")
    for name, (model, field, variants) in COMPARISONS.items():
        fields = compared_fields(model)
        if field not in fields:
            stop(
                f"config: compare.{name}: {field!r} is neither a field of the {model} "
                f"nor a training one; allowed: {', '.join(fields)}"
            )
        validator = jsonschema.Draft202012Validator(
            {"$defs": SCHEMA_DEFS, **fields[field]}
        )
        for variant in variants:
            for error in validator.iter_errors(variant):
                stop(
                    f"config: compare.{name}: variant {variant!r} of {model}.{field}: "
                    f"{error.message}"
                )
            if field == "train.train_split":  # the data set's splits, joined by "+"
                dataset = P[model]["data"]["dataset"]
                check_split(f"compare.{name}: variant {variant!r}", dataset, variant)
            folder = str(variant)  # its runs' folder's name
            if os.path.basename(folder) != folder or folder in (".", ".."):
                stop(
                    f"config: compare.{name}: variant {variant!r} of {model}.{field}: a "
                    "variant names its runs' folder, so it cannot be a path"
                )
            if field in ("n_head", "n_embd", "position") and (
                error := width_error(
                    MODEL_DEFAULTS | P[model]["model"] | {field: variant}
                )
            ):
                stop(
                    f"config: compare.{name}: variant {variant!r} of {model}.{field}: {error}"
                )
            if error := length_error(model, comparison_config(name, str(variant), 0)):
                stop(
                    f"config: compare.{name}: variant {variant!r} of {model}.{field}: {error}"
                )


def comparison_model(experiment):
    return COMPARISONS[experiment][0]


def variants(experiment):
    """The variants of a comparison as its run folders and figures name them."""
    return [str(variant) for variant in COMPARISONS[experiment][2]]


def compared_field(experiment):
    """The field a comparison varies, as its figures name it."""
    return COMPARISONS[experiment][1].removeprefix("train.")


def with_tuned(spec, **tuned):
    """A training config `spec` that takes each tuned value (`lr=input.lr`: the tuning
    stage's JSON, as `lr_from`) it does not set itself: a value that the preset, a
    comparison or a study sets wins over the tuned one."""
    return spec | {
        f"{key}_from": path for key, path in tuned.items() if key not in spec
    }


TUNING_FILES = {"lr": "lr_range.json", "batch_size": "batch_size.json"}


def tuning_inputs(spec, model):
    """The tuning stage's choices for the course `model` that the training config `spec`
    takes (with_tuned), as a rule's named inputs: only those it does not set itself, so
    that a run with an LR of its own neither waits for the LR range test nor trains again
    when that test is run again."""
    return {
        key: f"{RESULTS}/tune/{model}/{file}"
        for key, file in TUNING_FILES.items()
        if key not in spec
    }


def tuned_choices(input):
    """The tuning inputs a rule has (tuning_inputs), as with_tuned takes them."""
    return {key: getattr(input, key) for key in TUNING_FILES if hasattr(input, key)}


def comparison_config(experiment, variant, seed, **tuned):
    """The training config of one run of a comparison: the preset's, with the compared
    field (a model field, or train.<field>) set to the variant, and the tuned values
    (with_tuned) it does not set."""
    model, field, values = COMPARISONS[experiment]
    # A study may ask for a course variant that is not compared (recurrent GPT-2's rope).
    value = next((value for value in values if str(value) == variant), variant)
    spec = train_spec(model, seed=seed)
    if field.startswith("train."):
        spec[field.removeprefix("train.")] = value
        if field == "train.train_split":  # its own fitted vocabulary (data_folder)
            spec["data"] = data_dir(model, value)
    else:
        spec["model"][field] = value
    return with_tuned(spec, **tuned)


def eval_splits(model):
    """The splits a course model is evaluated on, as training reads `eval_splits`."""
    splits = [s.strip() for s in P[model]["eval_splits"].split(",") if s.strip()]
    if not splits:  # the comparisons plot the first split's metric
        stop(
            f"config: presets.{PRESET}.{model}.eval_splits is empty; "
            "name the splits the comparisons score, e.g. test"
        )
    return splits


def check_course_splits():
    """The splits the course models train and are scored on, each one of its data set's."""
    for model in ("classifier", "gpt"):
        dataset = P[model]["data"]["dataset"]
        for split in eval_splits(model):
            check_split(f"presets.{PRESET}.{model}.eval_splits", dataset, split)
        train_split = P[model]["train"].get("train_split", "train")
        check_split(f"presets.{PRESET}.{model}.train.train_split", dataset, train_split)


check_course_splits()


def lm_metric():
    """Bits per character/byte/token of the GPT, whichever its tokenizer makes exact."""
    unit = {"chars": "bits_per_char", "bytes": "bits_per_byte"}
    return f"{eval_splits('gpt')[0]}/{unit.get(P['gpt']['data']['tokenizer'], 'bits_per_token')}"


def lm_unit():
    """What the GPT's bits are counted per, in words: character, byte or token."""
    unit = lm_metric().split("_per_")[1]
    return "character" if unit == "char" else unit


# What each model's comparisons plot: the classifier's accuracy, the GPT's bits.
MODEL_METRIC = {
    "classifier": f"{eval_splits('classifier')[0]}/accuracy",
    "gpt": lm_metric(),
}
TITLES = {
    "classifier": "Classifier",
    "gpt": "GPT",
    "attention": "Classifier: the four steps of self-attention",
    "position": "GPT: position information",
}


def comparison_title(experiment):
    model = comparison_model(experiment)
    return TITLES.get(experiment, f"{TITLES[model]}: {compared_field(experiment)}")


def comparison_metric(experiment):
    return MODEL_METRIC[comparison_model(experiment)]


def own_comparison_panels():
    """The user's own comparisons join the poster after the course's."""
    panels = []
    for name, (model, _, _) in COMPARISONS.items():
        if name not in COURSE_COMPARISONS:
            panels += [
                (
                    f"compare-{name}",
                    comparison_title(name),
                    f"The final evaluation of the {TITLES[model]} with each value of "
                    f"{compared_field(name)}; mean ± sd over seeds (bars for bits, points "
                    "for accuracy), dots: seeds.",
                ),
                (
                    f"curves-{name}",
                    f"{comparison_title(name)}, training",
                    "Training loss and evaluation against training tokens.",
                ),
            ]
    return panels


# The tokenizers that learn their vocabulary from the texts (tokenizers.FITTED; a test
# keeps the two equal).
FITTED_TOKENIZERS = ("chars", "words", "bpe")


def data_folder(where, dataset, tokenizer, train_split=None):
    """Where `dataset` tokenised with `tokenizer` is prepared for runs that train on
    `train_split` (None: the training split): `<dataset>-<tokenizer>`, or, for a fitted
    vocabulary of runs that train on more (train+val, a final run), a folder of its own,
    `<dataset>-<tokenizer>-fit-train+val`, whose vocabulary is learned from those splits
    (so that val's words are no `<unk>` to the run that trains on them). A tokenizer the
    data set does not take stops the run here (`where`: the setting that asks for it), not
    in its prepare job after the others' downloads."""
    allowed = SCHEMA_DEFS["dataset_tokenizers"]["properties"][dataset]["enum"]
    if tokenizer not in allowed:
        stop(
            f"config: {where}: tokenizer {tokenizer!r} does not fit data set {dataset!r}; "
            f"allowed: {', '.join(allowed)}"
        )
    folder = f"{RESULTS}/data/{dataset}-{tokenizer}"
    splits = SCHEMA_DEFS["dataset_splits"]["properties"][dataset]["enum"]
    trained = set((train_split or splits[0]).split("+"))
    if tokenizer in FITTED_TOKENIZERS and trained != {splits[0]}:
        # in the data set's order, as `prepare` records it: val+train is train+val
        folder += "-fit-" + "+".join(s for s in splits if s in trained)
    return folder


def prepare_arguments(folder):
    """What `prepare` makes the folder `folder` from: its data set, its tokenizer and,
    where the name says so, the splits its vocabulary is fitted on. A name data_folder
    would not give (a target typed by hand: demo-words-fit-test+train, a fixed vocabulary
    fitted) is an error, not a second folder of the same data."""
    path = f"{RESULTS}/data/{folder}"
    for dataset, tokenizers in SCHEMA_DEFS["dataset_tokenizers"]["properties"].items():
        tokenizer, _, fit_on = folder.removeprefix(f"{dataset}-").partition("-fit-")
        if not (folder.startswith(f"{dataset}-") and tokenizer in tokenizers["enum"]):
            continue
        splits = SCHEMA_DEFS["dataset_splits"]["properties"][dataset]["enum"]
        if fit_on and not set(fit_on.split("+")) <= set(splits):
            raise WorkflowError(
                f"{path}: fit on {fit_on}, but {dataset}'s splits are {', '.join(splits)}"
            )
        named = data_folder(path, dataset, tokenizer, fit_on or None)
        if named != path:
            raise WorkflowError(f"{path}: this workflow names that folder {named}")
        # none for the training split: its settings as they were, nothing reruns
        return {"dataset": dataset, "tokenizer": tokenizer} | (
            {"fit_on": fit_on} if fit_on else {}
        )
    raise WorkflowError(f"{path}: no data set and tokenizer of this workflow")


def data_dir(model, train_split=None):
    """The data folder of a course model for runs that train on `train_split` (None: the
    preset's)."""
    data = P[model]["data"]
    return data_folder(
        f"presets.{PRESET}.{model}.data",
        data["dataset"],
        data["tokenizer"],
        train_split or P[model]["train"].get("train_split"),
    )


def train_spec(model, seed=0, **model_fields):
    """The training config (a TrainConfig dict) of `model` in this preset, without W&B
    tracking (a training job adds its own: tracking)."""
    spec = P[model]
    return {
        "data": data_dir(model),
        "model": {"family": model, **spec["model"], **model_fields},  # its model family
        "eval_splits": spec.get("eval_splits", ""),
        "seed": seed,
        **spec.get("train", {}),
    }


def tracking(study, *tags, job_type="train"):
    """How a job's run is logged to W&B, as its config takes it: config.yaml's mode and
    project, the job type, the run's name `study/tag/...` (position/learned/seed0: W&B
    lists runs by name), its tags (the preset's name, then the name's parts) and its W&B
    group, the preset and the name without the seed (demo-position/learned): W&B groups
    runs by it, drawing the seeds of one setting as one curve with their spread. None of
    it is a setting: changing it reruns nothing."""
    parts = [str(study), *(str(tag) for tag in tags)]
    setting = [part for part in parts if not re.fullmatch(r"seed\d+", part)]
    return {
        "wandb_mode": config["wandb"]["mode"],
        "wandb_project": config["wandb"]["project"],
        "wandb_entity": config["wandb"].get("entity", ""),
        "group": f"{PRESET}-{'/'.join(setting)}",
        "job_type": job_type,
        "tags": ",".join(dict.fromkeys([PRESET, *parts])),  # once each
        "run_name": "/".join(parts),
    }


# The `cluster:` entry whose resources a stage gets after `default`: data preparation and
# tuning have their own; everything else trains or runs a model ("train": a GPU at scale).
# An entry named after a stage (e.g. `perceiver-cost`) refines that stage alone.
RESOURCE_GROUPS = {
    "prepare": "data",
    "augment": "data",
    "batch-size": "tune",
    "noise-scale": "tune",
    "lr-range": "tune",
    "sample": "sample",
}
# Every stage `fromscratch run` knows (fromscratch.stages.STAGES; a test keeps the two
# equal): what `cluster:` entries may name, whether its study is switched on or not.
STAGE_NAMES = {
    "prepare",
    "batch-size",
    "noise-scale",
    "lr-range",
    "train",
    "evaluate",
    "sample",
    "augment",
    "recurrent-gpt2",
    "distillation",
    "perceiver-plan",
    "perceiver-cost",
    "sentence-vae",
    "encoder-decoder",
}


def cluster_resources(stage):
    """The stage's SLURM resources: the defaults, then its group's, then its own (the
    extra sbatch flags of each added to the ones before, a mail address in the defaults
    kept).  Only `train` runs on several processes (`tasks`, DistributedDataParallel): the
    other stages of its group (the studies' evaluations and their own training loops) take
    one."""
    cluster = config["cluster"]
    group = RESOURCE_GROUPS.get(stage, "train")
    levels = [cluster["default"], cluster.get(group, {}), cluster.get(stage, {})]
    resources = {key: value for level in levels for key, value in level.items()}
    resources["extra"] = {
        flag: value
        for level in levels
        for flag, value in level.get("extra", {}).items()
    }
    return resources if stage == "train" else {**resources, "tasks": 1}


def check_fromscratch_on_path():
    """The rules all call `fromscratch`; without it on PATH, say so once, before any job
    starts (a conda environment or a container of each rule brings its own)."""
    deployment = workflow.deployment_settings
    if deployment is not None and deployment.deployment_method:
        return
    if shutil.which("fromscratch") is None:
        stop(
            "`fromscratch` is not on PATH, and the rules call it; "
            "`source .venv/bin/activate` first (`make install` makes .venv)"
        )


def check_cluster_entries():
    """Fail before any job starts if a `cluster:` entry names no group and no stage, or if
    the resources a stage is given are some that `fromscratch run` refuses (a warning
    before the time limit longer than the limit)."""
    allowed = {"default", "data", "tune", "train", "sample", *STAGE_NAMES}
    for name in config["cluster"]:
        if name not in allowed:
            stop(
                f"config: cluster.{name} is neither a group nor a stage of this workflow; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        tasks = config["cluster"][name].get("tasks", 1)
        if tasks > 1 and name not in ("default", "train"):
            stop(
                f"config: cluster.{name}.tasks={tasks}: only training runs on several "
                "processes; set tasks in cluster.train (or cluster.default)"
            )
    try:
        from fromscratch import FromScratchError
        from fromscratch.launch import Resources
    except ImportError:  # --sdm conda: each job's `fromscratch run` checks its own
        return
    for stage in sorted(STAGE_NAMES):
        try:
            Resources.from_dict(cluster_resources(stage))
        except FromScratchError as error:
            setting = str(error).removeprefix("Resources.")
            levels = ["default", RESOURCE_GROUPS.get(stage, "train"), stage]
            entry = next(name for name in reversed(levels) if name in config["cluster"])
            stop(f"config: cluster.{entry}, as the {stage} jobs take it: {setting}")


# Arguments that say where a job's results are logged or fetched from, or how often a run
# saves a checkpoint, not what the results are: changing them reruns nothing (a finished
# run is not trained again for a new checkpoint_every).
NOT_SETTINGS = {
    "wandb_mode",
    "wandb_project",
    "wandb_entity",
    "group",
    "job_type",
    "tags",
    "run_name",
    "mirror",
    "checkpoint_every",
    "keep_checkpoints",
}

# Settings of a training run that the batch-size search and the LR range tests are given
# but never read: how long the run lasts and its LR schedule (a range test sets its own
# learning rates), how often and on what it evaluates and logs. Changing them reruns
# training, not tuning. The noise scale, measured after some steps of that schedule,
# reads all but the bookkeeping.
RUN_BOOKKEEPING = {
    "eval_splits",
    "eval_every",
    "eval_max_tokens",
    "eval_stride",
    "log_every",
}
RUN_SCHEDULE = {
    "lr",
    "warmup_steps",
    "schedule",
    "min_lr_ratio",
    "max_steps",
    "clock",
    "time_budget_s",
    "token_budget",
}


class FileNames:
    """Stands in for a job's input or output files where only its settings are wanted:
    `input.lr` is "<input.lr>", `output[0]` is "<output[0]>"."""

    def __init__(self, kind):
        self.kind = kind

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return f"<{self.kind}.{name}>"

    def __getitem__(self, index):
        return f"<{self.kind}[{index}]>"


def without_keys(value, keys):
    """value, with every dict entry named in keys left out, at any depth."""
    if isinstance(value, dict):
        return {
            key: without_keys(item, keys)
            for key, item in value.items()
            if key not in keys
        }
    return value


def run(stage, kwargs, unread=frozenset()):
    """A rule's params (`params: **run(stage, kwargs)`): `cmd`, the command that runs
    `stage` through the launcher (here or on SLURM) with the keyword arguments
    kwargs(wildcards, input, output) -> dict; and `settings`, those arguments without the
    file names, which Snakemake records with each output so that a job reruns when its
    settings change. (It does not compare `cmd`: a params function of the input or output
    files counts as derived from them, and changes to derived params trigger nothing.)
    unread: arguments (at any depth) that the stage is given but whose value cannot change
    its results, so that changing them reruns nothing; NOT_SETTINGS are always left out.
    """

    def command(wildcards, input, output, threads, resources):
        name = "-".join([stage, *(str(v) for v in wildcards)])
        # profiles/slurm says "slurm" through a default resource, not through `config:`: a
        # `--config` on the command line replaces a profile's `config:` as a whole
        launcher = config["launcher"] or resources.get("launcher", "local")
        return shlex.join(
            [
                "fromscratch",
                "run",
                stage,
                "--launcher",
                launcher,
                "--resources",
                json.dumps(cluster_resources(stage)),
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

    def settings(wildcards):
        try:
            arguments = kwargs(wildcards, FileNames("input"), FileNames("output"))
        except OSError:  # read from an input file, whose changes rerun the job anyway
            return stage
        return json.dumps(
            without_keys(arguments, NOT_SETTINGS | set(unread)), sort_keys=True
        )

    command.stage, command.arguments = stage, kwargs  # for check_jobs_to_run
    return {"cmd": command, "settings": settings}


def check_jobs_to_run():
    """Every job about to run checked as its `fromscratch run` checks it at its start,
    before the first starts: a setting that only a late job reads (a study's, a training
    run's two settings that contradict each other) would otherwise fail the run after
    hours. Not in a dry run, which stays quick (torch is imported here), nor where
    Snakemake cannot import the package (--sdm conda: each job checks its own)."""
    try:
        from fromscratch import FromScratchError
        from fromscratch.cli import check_run_arguments
    except ImportError:
        return

    def in_order(job):  # the same job named each time
        return job.rule.name, sorted(job.wildcards.items())

    for job in sorted(workflow.dag.needrun_jobs(), key=in_order):
        command = job.rule.params.get("cmd")
        if not hasattr(command, "stage"):
            continue
        try:
            arguments = command.arguments(job.wildcards, job.input, job.output)
        except OSError:  # read from a file an earlier job writes: checked at its start
            continue
        try:
            check_run_arguments(command.stage, arguments)
        except FromScratchError as error:
            where = ", ".join(f"{key}={value}" for key, value in job.wildcards.items())
            job_name = f"{job.rule.name} ({where})" if where else job.rule.name
            stop(f"config: the job {job_name} would fail: {error}")


def run_folder(experiment, variant, seed):
    return f"{RESULTS}/runs/{experiment}/{variant}/seed{seed}"


def course_gpt(seed=SEEDS[0]):
    """The run folder of the course's GPT (the position comparison's main variant) at
    `seed`: by default the preset's first seed, the one the studies build on."""
    return run_folder("position", MAIN_VARIANT["position"], seed)


def course_gpt_label():
    """The course GPT in a figure's legend, with what it trains for: each budget its preset
    sets (max_steps, token_budget, time_budget_s: any of them may be the one)."""
    train = P["gpt"]["train"]
    units = {"max_steps": "steps", "token_budget": "tokens", "time_budget_s": "s"}
    budgets = [
        f"{train[key]:,.15g} {unit}" for key, unit in units.items() if train.get(key)
    ]
    return f"course GPT ({', '.join(budgets)})" if budgets else "course GPT"


def comparison_runs(experiment):
    return [
        f"{run_folder(experiment, variant, seed)}/summary.json"
        for variant in variants(experiment)
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
        stop(
            f"config: ablations.{name} has no settings for preset {PRESET!r}; give it "
            f"some, or set ablations.{name}.enabled: false"
        )
    return settings[PRESET]


def study_seeds(name):
    """The seeds study `name` runs over: its own `seeds`, or else the preset's."""
    return study(name).get("seeds", SEEDS)


def planned_config(plan, variant):
    """The training config of `variant` in a plan of the Perceiver study, read once the
    plan exists (a job that makes it has its runs' configs read again once done)."""
    with open(plan, encoding="utf-8") as f:
        return json.load(f)["variants"][variant]["config"]


def study_dir(name):
    """Where study `name` writes its runs and tables; its figures go to figures/<name>/."""
    return f"{RESULTS}/studies/{name}"


# Each enabled study's final outputs, by its name, set by the study's own file. The
# default target asks for all of them; the Snakefile names a target after each study.
STUDY_TARGETS = {}
# Each enabled study appends its poster panels: (figure name under figures/<study>/,
# heading, caption), and gives its question, the subtitle of its own poster.
STUDY_PANELS = []
STUDY_QUESTIONS = {}


def all_targets():
    return [
        f"{RESULTS}/poster.pdf",
        f"{RESULTS}/tables/runs.csv",
        *(target for targets in STUDY_TARGETS.values() for target in targets),
        *(f"{RESULTS}/posters/{study}.pdf" for study in STUDY_TARGETS),
    ]


def poster_panels(study=None):
    """The poster's panels, (figure name, heading, caption): the course's (POSTER_PANELS,
    figures.smk), then every study's, or only `study`'s."""
    return POSTER_PANELS + [
        panel for panel in STUDY_PANELS if study in (None, panel[0].split("/")[0])
    ]


def poster_inputs(study=None):
    return {
        "panels": [f"{FIGURES}/{name}.png" for name, _, _ in poster_panels(study)],
        "code": f"{SOURCE}/figures/poster.py",
    }


def poster_params(study=None):
    panels = poster_panels(study)
    return {
        "headings": [heading for _, heading, _ in panels],
        "captions": [caption for _, _, caption in panels],
        "title": "Transformers from scratch",
        "subtitle": (
            f"{STUDY_QUESTIONS[study]} (preset {PRESET})"
            if study
            else f"preset {PRESET}: {P['classifier']['data']['dataset']} classifier, "
            f"{P['gpt']['data']['dataset']} GPT, seeds {', '.join(map(str, SEEDS))}"
        ),
    }


def figure_code(*modules):
    """The figure code that a figure's job runs, as its inputs (touching it reruns the
    job): plots.py and tables.py, which write every figure and table, and each of
    `modules` (e.g. "cramming", figures/cramming.py)."""
    return [f"{SOURCE}/figures/{module}.py" for module in ("plots", "tables", *modules)]


def noise_scale_file(model):
    """Where `model`'s gradient noise scale goes; [] where the preset does not measure it.
    Each tuned model's batch-size figure marks its own.
    """
    return (
        f"{RESULTS}/tune/{model}/noise_scale.json" if "noise_scale" in P["tune"] else []
    )


# The preset's own settings, before the studies' files check theirs (which build on them).
check_comparisons()
