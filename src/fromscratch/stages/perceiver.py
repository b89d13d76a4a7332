"""Stages of the Perceiver study: Perceiver AR against a GPT of the same size and compute.

    perceiver-plan  one data set: for each context length a GPT and a Perceiver AR with the
                    same number of parameters (the Perceiver's width is chosen to match)
                    and a training config for each that spends the same training FLOPs
                    (the workflow plans each context on its own: a new one leaves the
                    others' plans, and so their runs, as they are)
    perceiver-cost  the measured training throughput and peak memory of every model of the
                    plans of one data set

The runs themselves go through the `train` stage with the planned configs; their
summary.json holds the exact bits per character/byte of the evaluation split.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

from fromscratch import FromScratchError
from fromscratch.io import check_file_target, read_json, write_json

FAMILIES = ("gpt", "perceiver")


def meta_model(family: str, fields: dict):
    """The model of `family` with config `fields`, built on PyTorch's meta device: it has
    every parameter's shape but no memory, so counting costs nothing at any size."""
    import torch

    from fromscratch.train.models import FAMILIES as MODEL_FAMILIES

    model_class, config_class = MODEL_FAMILIES[family]
    with torch.device("meta"):
        return model_class(config_class.from_dict(fields))


def parameters(family: str, fields: dict) -> int:
    return meta_model(family, fields).num_parameters()


def matched_perceiver(gpt: dict, perceiver: dict, tolerance: float) -> dict:
    """The Perceiver's fields, with the n_embd that brings its parameter count closest to
    the GPT's; a FromScratchError if even that one is more than `tolerance` off.

    gpt: the GPT's model fields; perceiver: the Perceiver's, without n_embd.  The widths
    tried are those its config takes; the count grows with the width, so a bisection finds
    the closest.
    """
    from fromscratch.models import PerceiverConfig
    from fromscratch.models.common import width_multiple

    target = parameters("gpt", gpt)
    step = width_multiple(
        perceiver.get("n_head", PerceiverConfig.n_head),
        perceiver.get("position", PerceiverConfig.position),
    )

    @functools.cache
    def count(multiple: int) -> int:
        return parameters("perceiver", {**perceiver, "n_embd": multiple * step})

    # the smallest multiple whose count reaches the target is in (low, high]; start the
    # search at the GPT's own width, usually close
    low, high = 0, max(1, gpt["n_embd"] // step)
    while count(high) < target:
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if count(middle) < target else (low, middle)
    best = min((m for m in (low, high) if m > 0), key=lambda m: abs(count(m) - target))
    off = abs(count(best) - target) / target
    if off > tolerance:
        raise FromScratchError(
            f"perceiver: at context {gpt['context']} no width brings the Perceiver within "
            f"{tolerance:.0%} of the GPT's {target:,} parameters (closest: n_embd="
            f"{best * step}, {count(best):,}); change perceiver.n_layer or n_head"
        )
    return {**perceiver, "n_embd": best * step}


def check_plan_options(
    contexts: list[int],
    model: dict,
    gpt: dict,
    perceiver: dict,
    budget_flops: float,
    batch_tokens: int,
    tolerance: float = 0.05,
) -> None:
    """What `plan` checks before it reads the data: the contexts, the budget, the batch, the
    tolerance, and both models' fields at every context (the Perceiver's at the smallest
    width its config takes; the one matched to the GPT is found with the data's
    vocabulary)."""
    from fromscratch.models import GPTConfig, PerceiverConfig
    from fromscratch.models.common import width_multiple

    if not 0 <= tolerance < 1:  # NaN too: it would let any width through
        raise FromScratchError(
            f"perceiver: tolerance={tolerance!r} must be a share of the GPT's parameters, "
            "from 0 to below 1"
        )
    if not contexts or min(contexts) < 1:
        raise FromScratchError(f"perceiver: contexts={contexts}; give one or more, each >= 1")
    if not (math.isfinite(budget_flops) and budget_flops > 0):
        # a negative one would still buy each run its one step: a plan of nothing
        raise FromScratchError(f"perceiver: budget_flops={budget_flops:g} must be a number > 0")
    if batch_tokens < max(contexts):
        raise FromScratchError(
            f"perceiver: batch_tokens={batch_tokens} is less than one window of the longest "
            f"context ({max(contexts)})"
        )
    perceiver = {**model, **perceiver}
    width = width_multiple(
        perceiver.get("n_head", PerceiverConfig.n_head),
        perceiver.get("position", PerceiverConfig.position),
    )
    for context in contexts:
        GPTConfig.from_dict({**model, **gpt, "context": context})
        PerceiverConfig.from_dict({**perceiver, "context": context, "n_embd": width})


def plan(
    data: str,
    vocab_size: int,
    contexts: list[int],
    model: dict,
    gpt: dict,
    perceiver: dict,
    budget_flops: float,
    batch_tokens: int,
    train: dict,
    eval_split: str,
    tolerance: float = 0.05,
) -> dict:
    """The study's variants on one data set: {"gpt-64": {...}, "perceiver-64": {...}, …}.

    model: the fields both models share (n_head, position, …); gpt and perceiver: their
    own (the Perceiver's width is matched).  Every batch holds batch_tokens tokens
    (batch size = batch_tokens / context), and every run takes as many steps as
    budget_flops buys at its model's estimated training FLOPs per token.  Both are
    evaluated in windows every L tokens, L the Perceiver's latents (all it predicts from a
    window), so that in both every token is predicted from context - L tokens or more.
    """
    from fromscratch.train.config import TrainConfig

    check_plan_options(contexts, model, gpt, perceiver, budget_flops, batch_tokens, tolerance)
    variants = {}
    for context in sorted(contexts):
        shared = {**model, "vocab_size": vocab_size, "context": context}
        gpt_fields = {**shared, **gpt}
        fields = {
            "gpt": gpt_fields,
            "perceiver": matched_perceiver(gpt_fields, {**shared, **perceiver}, tolerance),
        }
        eval_stride = min(meta_model("perceiver", fields["perceiver"]).config.latents, context)
        for family in FAMILIES:
            built = meta_model(family, fields[family])
            flops_per_token = built.estimate_flops_per_token()
            batch_size = batch_tokens // context
            steps = max(1, round(budget_flops / (flops_per_token * batch_size * context)))
            config = {
                **train,
                "data": data,
                "model": {"family": family, **fields[family]},
                "batch_size": batch_size,
                "max_steps": steps,
                "eval_splits": eval_split,
                "eval_stride": eval_stride,
            }
            TrainConfig.from_dict(config)  # a wrong key or value fails now, before any run
            if steps <= config.get("warmup_steps", 0):
                raise FromScratchError(
                    f"perceiver: budget_flops={budget_flops:g} buys the {family} at context "
                    f"{context} only {steps} steps, not more than warmup_steps; raise it"
                )
            variants[f"{family}-{context}"] = {
                "family": family,
                "context": context,
                "parameters": built.num_parameters(),
                "flops_per_token": flops_per_token,
                "batch_size": batch_size,
                "steps": steps,
                "tokens": steps * batch_size * context,
                "flops": flops_per_token * steps * batch_size * context,
                "config": config,
            }
    return variants


def perceiver_plan_stage(
    data: str,
    out: str,
    contexts: list[int],
    model: dict,
    gpt: dict,
    perceiver: dict,
    budget_flops: float,
    batch_tokens: int,
    train: dict,
    eval_split: str,
    tolerance: float = 0.05,
) -> dict:
    """Plan the study on the prepared data set `data` (the settings: see `plan`, whose
    parameters these are, named so that `fromscratch run` checks them before a job starts);
    writes `out`."""
    from fromscratch.data import PreparedData

    check_file_target(out, f"perceiver-plan: out={out}")
    prepared = PreparedData(data)  # a one-line error where none is
    try:  # the runs would fail on it only at their first evaluation
        prepared.check_split(eval_split)
    except FromScratchError as error:
        raise FromScratchError(f"perceiver-plan: eval_split: {error}") from error
    vocab_size = prepared.meta["vocab_size"]
    variants = plan(
        data, vocab_size, contexts, model, gpt, perceiver, budget_flops, batch_tokens, train,
        eval_split, tolerance,
    )  # fmt: skip
    write_json(out, {"data": data, "vocab_size": vocab_size, "variants": variants})
    return {name: v["parameters"] for name, v in variants.items()}


PLAN_KEYS = ("family", "context", "batch_size", "config")  # of each variant, used below


def read_plan(path: str) -> dict:
    """The plan `path` (its data and variants); a one-line error for any file that is not
    a plan."""
    what = f"perceiver-cost: plans: {path}"
    expected = "a plan is the JSON file that the perceiver-plan stage writes"
    if not Path(path).is_file():
        raise FromScratchError(f"{what}: no such file; {expected}")
    try:
        planned = read_json(path)
    except ValueError as error:  # not JSON, or not even text
        raise FromScratchError(f"{what}: not a JSON file; {expected}") from error
    variants = planned.get("variants") if isinstance(planned, dict) else None
    if not (
        isinstance(variants, dict)
        and isinstance(planned.get("data"), str)
        and variants
        and all(isinstance(v, dict) and set(PLAN_KEYS) <= set(v) for v in variants.values())
    ):
        raise FromScratchError(
            f'{what}: not a plan (it needs "data" and "variants", each variant with '
            f"{', '.join(PLAN_KEYS)}); {expected}"
        )
    return planned


def check_cost_options(plans: list[str], out: str, steps: int, tracking: dict | None):
    """The cost stage's settings, checked before it measures (and before its job starts):
    returns its TrackingConfig."""
    from fromscratch.config import check_integer
    from fromscratch.track import TrackingConfig

    if not plans:
        raise FromScratchError("perceiver-cost: plans=[]; give one or more plan files")
    # a time per step needs a step: 0 would fail inside the measurement, as if the batch did
    check_integer("perceiver-cost", "steps", steps, 1)
    check_file_target(out, f"perceiver-cost: out={out}")
    try:
        return TrackingConfig.from_dict(tracking or {"wandb_mode": "disabled"})
    except FromScratchError as error:
        raise FromScratchError(f"perceiver-cost: tracking: {error}") from error


def read_plans(paths: list[str]) -> tuple[str, dict]:
    """The data set and the variants of all the plans `paths`, which must be of one data set
    (a cost table compares models trained on the same tokens)."""
    plans = [read_plan(path) for path in paths]
    datasets = {planned["data"] for planned in plans}
    if len(datasets) > 1:
        raise FromScratchError(
            f"perceiver-cost: plans of {len(datasets)} data sets "
            f"({', '.join(sorted(map(str, datasets)))}); give the plans of one"
        )
    variants = {}
    for planned in plans:
        for name, variant in planned["variants"].items():
            if name in variants:  # two plans of one context
                raise FromScratchError(
                    f"perceiver-cost: plans: {name} is in two plans; give it once"
                )
            variants[name] = variant
    return datasets.pop(), variants


def perceiver_cost_stage(
    plans: list[str], out: str, steps: int = 3, tracking: dict | None = None
) -> dict:
    """Training throughput and peak memory of every model of the `plans` (of one data
    set), each at its training batch.

    Each is a few real training steps on full-length batches (the batch-size search's
    measurement): on a GPU the peak PyTorch allocated, on a CPU the peak resident memory
    of a fresh process. `tracking`: a TrackingConfig's settings, under which the results
    are a W&B run of their own (a table, a row a model; its files in `out`.wandb/).
    """
    import torch

    from fromscratch.stages.evaluate import wandb_folder
    from fromscratch.train.batch_size import measure
    from fromscratch.train.config import TrainConfig

    logged = check_cost_options(plans, out, steps, tracking)  # not after the measurements
    data, variants = read_plans(plans)
    # every config is checked before the first measurement starts
    configs = {
        name: TrainConfig.from_dict(
            variant["config"] | {"eval_splits": "", "wandb_mode": "disabled"}
        )
        for name, variant in variants.items()
    }
    rows = []
    for name, variant in variants.items():
        result, peak_mb = measure(configs[name], variant["batch_size"], steps)
        if result is None:
            raise FromScratchError(f"perceiver-cost: {name} failed to train a step")
        # on a CPU, what training adds to the process: Python and torch alone hold hundreds
        # of MB, as much beside one model as beside the other
        peak_mb -= result.get("resident_before_mb", 0.0)
        rows.append(
            {
                "variant": name,
                "family": variant["family"],
                "context": variant["context"],
                "batch_size": variant["batch_size"],
                "step_s": result["step_s"],
                "tokens_per_s": result["tokens_per_s"],
                "peak_memory_mb": peak_mb if math.isfinite(peak_mb) else None,
            }
        )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    write_json(out, {"data": data, "device": device, "steps": steps, "rows": rows})
    measured = ("tokens_per_s", "peak_memory_mb")
    summary = {f"{row['variant']}/{key}": row[key] for row in rows for key in measured}
    settings = {"data": data, "plans": plans, "steps": steps, "device": device}
    logged.log_results(wandb_folder(out), settings, [], summary, tables={"cost": rows})
    return {row["variant"]: round(row["tokens_per_s"]) for row in rows}
