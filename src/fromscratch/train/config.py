"""The training config: one YAML file (or dict) → a validated dataclass.

    data: results/demo/data/demo-words      # a prepared folder (fromscratch data prepare)
    model: {family: classifier, n_layer: 2, n_head: 4, n_embd: 64}
    batch_size: 32
    lr: 1.0e-3                              # or lr_from: tune/lr_range.json
    max_steps: 500

Tuned values flow in as files: `lr_from` names the JSON of an LR range test and
`batch_size_from` that of a batch-size search; their chosen values replace `lr` and
`batch_size`. A wrong key or value fails at once with a message naming it.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any, ClassVar

from fromscratch import FromScratchError
from fromscratch.config import MAX_SEED, ConfigError
from fromscratch.io import parse_yaml, read_json
from fromscratch.track import TrackingConfig
from fromscratch.train.models import FAMILIES, LANGUAGE_MODELS, model_config
from fromscratch.train.schedule import CLOCKS, SHAPES

PRECISIONS = ("fp32", "bf16", "fp16")
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")  # the names training runs on


@dataclasses.dataclass
class OptimizerConfig(TrackingConfig):
    """What every training loop shares: batch_size sequences per step, AdamW (lr, beta1,
    beta2, weight_decay on matrices only), warmup_steps then a schedule (cosine | linear |
    constant) down to min_lr_ratio of lr, grad_clip (0: no clipping; the norm is logged
    either way), max_steps; eval_every / log_every / checkpoint_every in steps (0: never;
    a checkpoint after the last step is saved either way), keep_checkpoints; seed; device
    (auto | cpu | cuda[:k] | mps)."""

    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 0
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    max_steps: int = 1000
    eval_every: int = 0
    log_every: int = 10
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_positive("batch_size", "log_every", "keep_checkpoints")
        self._check_choice("schedule", SHAPES)
        if self.lr <= 0:
            self._fail("lr", f"{self.lr!r} must be positive")
        self._check_not_negative("warmup_steps", "weight_decay", "grad_clip", "max_steps")
        self._check_not_negative("eval_every", "checkpoint_every", "seed")
        if self.seed > MAX_SEED:
            self._fail("seed", f"{self.seed!r} must be at most 2**63 - 1 (torch's generators)")
        self._check_in("[0, 1]", "min_lr_ratio")
        self._check_in("[0, 1)", "beta1", "beta2")  # AdamW's moment decays
        if not DEVICE.fullmatch(self.device):  # whether it is here: pick_device, where it runs
            self._fail("device", f"{self.device!r}: allowed: auto, cpu, cuda, cuda:N, mps")

    def warm_up_outlasts_max_steps(self) -> bool:
        """Whether max_steps ends the run before its last warm-up step, the first at the
        full lr."""
        return bool(self.max_steps) and self.warmup_steps > self.max_steps

    def warn_if_warm_up_outlasts_the_run(self) -> None:
        """A run that ends inside its warm-up never trains at the lr it was given.  A
        warning, not an error: a few steps of a full config are a fair smoke test."""
        if self.warm_up_outlasts_max_steps():
            print(
                f"warning: warmup_steps={self.warmup_steps} > max_steps={self.max_steps}: the "
                f"run ends inside its warm-up, {self.lr_reached(self.max_steps)}",
                file=sys.stderr,
            )

    def lr_reached(self, steps: int) -> str:
        """What a run that stops after `steps` of its warm-up trains at, in words."""
        return f"its lr at most {self.lr * steps / self.warmup_steps:g} of lr={self.lr:g}"


DEFAULT_MODEL = {"family": "gpt"}  # a config without `model:` trains this GPT


@dataclasses.dataclass
class TrainConfig(OptimizerConfig):
    """Everything one training run needs besides its output folder.

    data / train_split / eval_splits: the prepared folder and which splits to use
    (eval_splits: comma-separated; the first is the one the pipeline's comparison figures show;
    a split may join several with "+": train_split train+val, a final run's).
    model: the model family and its config (vocab_size, num_classes default to the data's).
    batch_size × grad_accum sequences per optimizer step; context: LM window length
    (default: the model's context); max_length: classification reviews are cut to this
    (default: the model's context), keeping their first head_tokens tokens and the rest
    from their end (0: the first ones).
    The optimizer and schedule as in OptimizerConfig; lr_from / batch_size_from: JSON
    files of the tuning stages to read lr / batch_size from; clock (steps | time | tokens):
    what the schedule follows.  Budgets: max_steps, time_budget_s, token_budget (0: none;
    the clock's own must be set, the others stop the run early; max_steps left out: 1,000
    on the steps clock, none on the others, whose runs it would cut short).
    eval_max_tokens: score at most this many tokens of each split, whole examples spread
    over it (0: all; evaluate.scored_tokens); eval_stride: score
    language models in windows every eval_stride tokens, so that each token sees at least
    context - eval_stride before it (0: the model's own, see train/evaluate.py).  precision:
    fp32 | bf16 | fp16 (autocast; fp16 adds a GradScaler).  compile: torch.compile it.
    wandb_mode / wandb_project / group / job_type / tags: tracking (TrackingConfig).
    ema_decay: evaluate and save an exponential moving average of the weights with this
    decay (e.g. 0.999, averaging over the last ~1,000 steps; 0: the weights as trained).
    teacher: distil this language model into the one trained (train/distill.py): a
    model.pt, or a Hugging Face GPT-2 folder or cached name ("": plain training);
    distill_temperature softens both distributions, distill_weight is the share of the
    soft-target term in the loss (0: plain cross-entropy, 1: the teacher alone).
    """

    JOINED_BY: ClassVar[dict[str, str]] = TrackingConfig.JOINED_BY | {
        "eval_splits": ",",
        "train_split": "+",
    }

    data: str = ""
    model: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_MODEL))
    train_split: str = "train"
    eval_splits: str = ""
    batch_size_from: str = ""
    grad_accum: int = 1
    context: int = 0
    max_length: int = 0
    head_tokens: int = 0
    lr_from: str = ""
    clock: str = "steps"
    time_budget_s: float = 0.0
    token_budget: int = 0
    eval_max_tokens: int = 0
    eval_stride: int = 0
    precision: str = "fp32"
    compile: bool = False
    ema_decay: float = 0.0
    teacher: str = ""
    distill_temperature: float = 2.0
    distill_weight: float = 0.5
    max_steps: int | None = None

    def __post_init__(self) -> None:
        if self.max_steps is None:
            self.max_steps = 1000 if self.clock == "steps" else 0
        super().__post_init__()
        if not self.data:
            self._fail("data", "is required: the folder made by `fromscratch data prepare`")
        family = self.model.get("family")
        if not isinstance(family, str) or family not in FAMILIES:
            self._fail("model", f"family {family!r} is not one of {', '.join(FAMILIES)}")
        self._check_positive("grad_accum")
        self._check_not_negative(
            "time_budget_s", "token_budget", "eval_max_tokens", "eval_stride", "head_tokens"
        )
        if self.eval_max_tokens == 1:  # scoring predicts the second token from the first
            self._fail("eval_max_tokens", "1 must be 0 (all) or at least 2")
        for key in ("eval_max_tokens", "eval_stride"):  # would be ignored without a word
            if family == "classifier" and getattr(self, key):
                self._fail(key, "is a language model's; a classifier scores whole splits")
        for key in ("context", "max_length"):
            if getattr(self, key) < 0:
                self._fail(
                    key, f"{getattr(self, key)!r} must be 0 or more (0: the model's context)"
                )
        for key in ("max_length", "head_tokens"):
            if family != "classifier" and getattr(self, key):
                self._fail(key, "is a classifier's; a language model's window is context")
        if family == "classifier" and self.context:
            self._fail("context", "is a language model's; a classifier's reviews are max_length")
        self._check_choice("clock", CLOCKS)
        self._check_choice("precision", PRECISIONS)
        # the schedule decays over the clock's budget, so that budget must be set (the
        # others, if set too, stop the run early)
        budget = {"steps": "max_steps", "time": "time_budget_s", "tokens": "token_budget"}
        if getattr(self, budget[self.clock]) <= 0:
            clocks = ", ".join(f"{clock} ({key})" for clock, key in budget.items())
            self._fail("clock", f"'{self.clock}' needs {budget[self.clock]} > 0; clocks: {clocks}")
        if not 0 <= self.ema_decay < 1:
            self._fail("ema_decay", f"{self.ema_decay!r} must be in [0, 1) (0: no averaging)")
        if self.teacher and family not in LANGUAGE_MODELS:
            self._fail("teacher", f"distils language models only ({', '.join(LANGUAGE_MODELS)})")
        if self.distill_temperature <= 0:
            self._fail("distill_temperature", f"{self.distill_temperature!r} must be positive")
        self._check_in("[0, 1]", "distill_weight")

    @property
    def family(self) -> str:
        return self.model["family"]

    @property
    def eval_split_list(self) -> list[str]:
        return [s.strip() for s in self.eval_splits.split(",") if s.strip()]

    def warn_if_scored_on_training_data(self, fit_on: str | None = None) -> None:
        """See warn_if_scored_on_training_data below: for each of eval_splits."""
        for split in self.eval_split_list:
            warn_if_scored_on_training_data(
                f"eval_splits: {split}", split, self.train_split, fit_on, self.data
            )

    def lengths(self, model_context: int) -> tuple[int, int]:
        """(context, max_length): a language model's training window and the tokens a
        classifier's review is cut to, each the model's context unless set; neither longer
        than the model reads (an LSTM's context is only a default training length)."""
        context = self.context or model_context
        max_length = self.max_length or model_context
        key, longest = (
            ("max_length", max_length) if self.family == "classifier" else ("context", context)
        )
        if self.family != "lstm" and longest > model_context:
            raise FromScratchError(
                f"{key}={longest}: longer than the model's context={model_context}"
            )
        if self.family == "classifier" and self.head_tokens > max_length:
            raise FromScratchError(
                f"head_tokens={self.head_tokens}: more than the max_length={max_length} "
                "tokens a review is cut to"
            )
        return context, max_length

    def check_model(self) -> None:
        """What can be checked of the model before its data is read: every field of it (the
        vocabulary left at its default) and the lengths of the batches it is given."""
        self.lengths(model_config(self.model).context)

    def resolved(self) -> TrainConfig:
        """The config with the tuned values of `lr_from` / `batch_size_from` read in."""
        config = self
        for key, path in (("lr", self.lr_from), ("batch_size", self.batch_size_from)):
            if not path:
                continue
            value, expected = _read_choice(path, key)
            try:
                config = dataclasses.replace(config, **{key: value})
            except ConfigError as error:
                raise FromScratchError(f"{path}: {error} ({expected})") from error
        return config


TUNED_BY = {"lr": "lr-range", "batch_size": "batch-size"}  # the command that writes each
TUNED_PARTNER = {k: f"{k}_from" for k in TUNED_BY} | {f"{k}_from": k for k in TUNED_BY}


def warn_if_scored_on_training_data(
    what: str, split: str, train_split: str, fit_on: str | None, data: str
) -> None:
    """A split of the training data that the run also trains on (val, once train_split is
    train+val for a final run) scores what the model has seen: a warning, as a run may mean
    to measure its fit.  So does one that the data's vocabulary was learned from (`fit_on`,
    prepare --fit-on): its words are known, and others' are <unk>.  what: the setting that
    names the split, for the message."""
    parts = split.split("+")
    if seen := [part for part in parts if part in train_split.split("+")]:
        print(
            f"warning: {what} is scored on training data ({', '.join(seen)} in "
            f"train_split={train_split})",
            file=sys.stderr,
        )
    elif seen := [part for part in parts if fit_on and part in fit_on.split("+")]:
        print(
            f"warning: {what} is scored with a vocabulary learned from {', '.join(seen)} "
            f"({data} was prepared with fit_on={fit_on})",
            file=sys.stderr,
        )


def _read_choice(path: str, key: str) -> tuple[Any, str]:
    """The tuned value of `key` in the JSON file `path`, and what that file should hold."""
    expected = f"it should be the JSON that `fromscratch {TUNED_BY[key]}` writes, with {key!r}"
    if not Path(path).is_file():
        what = "a folder, not a file" if Path(path).is_dir() else "no such file"
        raise FromScratchError(f"{path}: {what} ({expected})")
    try:
        data = read_json(path)
    except ValueError as error:  # not JSON, or not even text (a model.pt)
        raise FromScratchError(f"{path}: not a JSON file ({expected})") from error
    if not isinstance(data, dict) or key not in data:
        raise FromScratchError(f"{path} has no key {key!r} ({expected})")
    return data[key], expected


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML training config; `overrides` (e.g. from the command line) win.

    An override's key may name a field inside a mapping with dots: {"model.n_head": 8}
    changes that one field of `model:` and keeps the others.  An override of None (an
    empty `--set eval_splits=`) gives the field its default.  A tuned value and its file
    (lr, lr_from) are one setting: the file's value would replace the other, so a config
    gives one of them, and an override that sets either replaces both.
    """
    path = Path(path)
    if path.is_dir():
        raise FromScratchError(f"{path}: a folder, not a config file (a YAML file)")
    if not path.is_file():
        raise FromScratchError(f"{path}: no such config file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise FromScratchError(
            f"{path}: not UTF-8 text (byte {error.start}); a training config is a YAML file"
        ) from None
    raw = parse_yaml(text, str(path)) or {}
    if not isinstance(raw, dict):
        raise FromScratchError(f"{path}: a training config is a mapping of keys to values")
    overrides = overrides or {}
    for key in TUNED_BY:
        if overrides.get(key) is not None and overrides.get(f"{key}_from") is not None:
            raise FromScratchError(
                f"--set {key} and --set {key}_from: keep one ({key}_from's value would "
                f"replace {key})"
            )
    for key, value in overrides.items():
        *outer, field = key.split(".")
        mapping = raw
        if outer[:1] == ["model"] and "model" not in raw:  # a field of the default model
            raw["model"] = dict(DEFAULT_MODEL)
        for depth, name in enumerate(outer):
            inner = mapping.get(name)
            if not isinstance(inner, dict):
                where = ".".join(outer[: depth + 1])
                raise FromScratchError(f"{path}: cannot set {key}: {where} is not a mapping")
            mapping = inner
        if not outer and value is not None:  # a tuned value, or its file, replaces the other
            mapping.pop(TUNED_PARTNER.get(field), None)
        if value is None:
            mapping.pop(field, None)
        else:
            mapping[field] = value
    for key in TUNED_BY:
        if key in raw and raw.get(f"{key}_from"):
            raise FromScratchError(
                f"{path}: {key} and {key}_from both set, and {key}_from's value would "
                f"replace {key}: keep one"
            )
    return TrainConfig.from_dict(raw)
