"""Stages: a trained model scored on whole splits, and text samples from a language model.

Each stage's `check_..._options` is what it checks before loading the model; `fromscratch
run` calls it too, before a job starts (they need no torch and no data).
"""

from __future__ import annotations

from pathlib import Path

from fromscratch import FromScratchError
from fromscratch.config import check_integer, check_seed, is_of_type
from fromscratch.io import check_file_target, write_json, write_text

SET_KEYS = {"split": str, "data": str | None}  # what each of evaluate's sets says


def check_evaluate_options(sets: dict[str, dict], out: str = "", max_tokens: int = 0) -> None:
    """Each set names its split, and nothing but SET_KEYS; `out`, if given, is a file that
    can be written; max_tokens a count."""
    check_integer("evaluate", "max_tokens", max_tokens, 0, " (0: all)")
    allowed = f"allowed: {', '.join(SET_KEYS)}"
    for name, where in sets.items():
        unknown = [key for key in where if key not in SET_KEYS]
        if unknown:
            raise FromScratchError(f"sets.{name}: unknown key {', '.join(unknown)}; {allowed}")
        if "split" not in where:
            raise FromScratchError(f"sets.{name}: no split given; {allowed} (split required)")
        for key, value in where.items():
            if not is_of_type(value, SET_KEYS[key]):
                hint = getattr(SET_KEYS[key], "__name__", SET_KEYS[key])  # str, str | None
                raise FromScratchError(f"sets.{name}: {key}={value!r} is not of type {hint}")
    if out:
        check_file_target(out, f"out={out}")


def check_prompt(prompt: str, name: str = "prompt") -> None:
    """A prompt the tokenizer can read: bytes of a command line that are not UTF-8 arrive
    as lone surrogates, which one tokenizer cannot encode and another reads as <unk>."""
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as error:
        raise FromScratchError(
            f"sample: {name} {prompt!r}: not UTF-8 text (at character {error.start}); "
            "the prompt must be UTF-8 text"
        ) from None


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The prompt's token ids; a character the vocabulary lacks (a character-level one has
    no <unk>) is a one-line error naming it."""
    try:
        return tokenizer.encode(prompt).tolist()
    except FromScratchError as error:
        raise FromScratchError(f"sample: the prompt {prompt!r}: {error}") from error


def check_sample_options(
    out: str,
    prompt: str = "",
    num_samples: int = 1,
    tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
    data: str | None = None,
) -> None:
    """`out` a file that can be written, the prompt UTF-8 text (spelt in the vocabulary of
    `data`, where that folder is prepared already), at least one sample, the sampling
    settings in range and a seed torch takes (before a job waits in a queue to find them
    wrong, or its training runs for hours)."""
    from fromscratch.models.common import check_sampling

    check_file_target(out, f"out={out}")
    check_seed("sample", seed)
    check_prompt(prompt)
    if prompt and data and (Path(data) / "meta.json").is_file():
        from fromscratch.data import PreparedData

        prompt_ids(PreparedData(data).tokenizer, prompt)
    if num_samples < 1:
        raise FromScratchError(f"sample: num_samples={num_samples} must be at least 1")
    check_sampling(tokens, temperature, top_k, top_p, "sample", {"max_new_tokens": "tokens"})


def evaluate_stage(model: str, sets: dict[str, dict], out: str = "", max_tokens: int = 0) -> dict:
    """Score a trained model on whole splits: accuracy for a classifier, bits for an LM
    (over at most `max_tokens` tokens of each split, if > 0), as its training scored them
    (its context, and its eval_stride).

    `sets` maps a name to {"split": …, "data": a prepared folder (default: the model's
    training data)}; an out-of-domain folder must use the training data's tokenizer.
    Returns (and writes to `out` as JSON, if given) the results by name.
    """
    from fromscratch.train.evaluate import evaluate_classifier, evaluate_lm
    from fromscratch.train.loop import pick_device
    from fromscratch.train.models import load_model

    check_evaluate_options(sets, out, max_tokens)
    net, config = load_model(model)
    # every set's data checked before the first is scored
    data_of = {name: _data_to_score(config, where) for name, where in sets.items()}
    device = pick_device("auto")
    net.to(device)
    results = {}
    for name, where in sets.items():
        data = data_of[name]
        if config["model"]["family"] == "classifier":
            results[name] = evaluate_classifier(
                net,
                data,
                where["split"],
                config["max_length"] or config["model"]["context"],
                device=device,
                head_tokens=config["head_tokens"],
            )
        else:
            context = config["context"] or config["model"]["context"]
            results[name] = evaluate_lm(
                net,
                data,
                where["split"],
                context,
                device=device,
                max_tokens=max_tokens,
                stride=config.get("eval_stride", 0),  # absent from a non-training model's
            )
    if out:
        write_json(out, results)
        # beside the training runs in W&B, under their group: the scores on every set
        scores = {
            f"{name}/{metric}": value
            for name, result in results.items()
            for metric, value in result.items()
            if isinstance(value, int | float)
        }
        settings = {"model_file": model, "sets": sets, "max_tokens": max_tokens}
        log_scores(out, config, "evaluate", settings, [], scores)
    return results


def _data_to_score(config: dict, where: dict):
    """The prepared data of one set (see evaluate_stage), checked as training checks it: the
    model's tokenizer, the split, and labels for a classifier; and a warning, as training
    gives it, for a split of its training data that it trained on or that its vocabulary
    was learned from."""
    from fromscratch.train.config import warn_if_scored_on_training_data
    from fromscratch.train.models import check_labels, data_for_model

    data = data_for_model(config, where.get("data"))
    data.check_split(where["split"])
    check_labels(config["model"]["family"], str(data.folder), data.meta)
    if config.get("data") and data.folder.resolve() == Path(config["data"]).resolve():
        split, trained_on = where["split"], config.get("train_split", "train")  # older: train
        warn_if_scored_on_training_data(
            f"split {split}", split, trained_on, data.fit_on, str(data.folder)
        )
    return data


def sample_stage(
    model: str,
    out: str,
    prompt: str = "",
    tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = None,
    top_p: float | None = None,
    num_samples: int = 1,
    seed: int = 0,
    data: str | None = None,
    log_to_wandb: bool = True,
) -> dict:
    """`num_samples` continuations of `prompt`, separated by lines of ---, into `out`;
    decoded with the tokenizer of `data` (default: the model's training data); a W&B run
    of their own beside the training run's (where it had W&B on, and log_to_wandb)."""
    import torch

    from fromscratch.track import TrackingConfig
    from fromscratch.train.config import LANGUAGE_MODELS
    from fromscratch.train.models import data_for_model, load_model

    # the prompt against the vocabulary below, with the tokenizer the samples use
    check_sample_options(out, prompt, num_samples, tokens, temperature, top_k, top_p, seed)
    net, config = load_model(model)
    family = config["model"]["family"]
    if family not in LANGUAGE_MODELS:
        raise FromScratchError(
            f"sample: {model} is a {family}; only language models ({', '.join(LANGUAGE_MODELS)}) "
            "generate text"
        )
    net.eval()
    tokenizer = data_for_model(config, data).tokenizer
    prompted = prompt_ids(tokenizer, prompt)
    # Generation conditions on at least one token: without a prompt, the document separator,
    # so that the sample starts as a document does (or token 0 where there is none: <pad> of
    # a words vocabulary); neither is part of the text shown.
    start = prompted or [0 if tokenizer.eot is None else tokenizer.eot]
    shown_from = len(start) - len(prompted)
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(num_samples):
        idx = torch.as_tensor(start, dtype=torch.long)[None]
        ids = net.generate(
            idx,
            tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generator=generator,
            vocab=tokenizer.vocab_size,
        )
        samples.append(tokenizer.decode(ids[0, shown_from:].tolist()))
    text = "\n\n---\n\n".join(samples) + "\n"
    write_text(out, text)
    # beside the training runs in W&B, under their group: the texts themselves
    settings = {"prompt": prompt, "tokens": tokens, "temperature": temperature, "top_k": top_k,
                "top_p": top_p, "seed": seed}  # fmt: skip
    # a table: W&B's workspace joins the samples of every variant, each beside its run
    texts = [{"sample": i, "prompt": prompt, "text": text} for i, text in enumerate(samples)]
    if log_to_wandb:
        TrackingConfig.after(config, "sample").log_results(
            wandb_folder(out), {"model": model, **settings}, [], {}, tables={"samples": texts}
        )
    return {"samples": num_samples, "characters": len(text)}


def log_scores(
    out: str | Path,
    trained: dict,
    stage: str,
    settings: dict,
    rows: list[dict],
    summary: dict,
    on: str = "",
    x_axis: str = "",
) -> None:
    """A scoring job's results (`rows` its history, drawn against their `x_axis` value;
    `summary`) as a W&B run beside the runs of the model it scored, whose training config
    is `trained`: in their group, named after it with /stage (and /on: what it scored,
    where a model is scored on several), its config the model's training settings (so
    that scores line up by seed, strategy or variant in the runs table), then this job's
    `settings`; its files in wandb_folder(out)."""
    import dataclasses

    from fromscratch.track import TrackingConfig

    # not its vocabulary, nor how its training run was logged (which `after` takes)
    left_out = {"data_tokenizer", *(f.name for f in dataclasses.fields(TrackingConfig))}
    model_settings = {k: v for k, v in trained.items() if k not in left_out}
    tracking = TrackingConfig.after(trained, stage)
    if on:
        tracking = dataclasses.replace(tracking, run_name=f"{tracking.run_name}/{on}")
    tracking.log_results(wandb_folder(out), model_settings | settings, rows, summary, x_axis)


def wandb_folder(out: str | Path) -> Path:
    """Where the W&B run of an evaluation's or samples' file `out` keeps its files (its
    metrics.jsonl, summary.json and wandb/): `out`.wandb/, beside it. Never the file itself
    nor a run folder (RUN/ for --out RUN.json), whose own files it would move aside."""
    return Path(f"{out}.wandb")
