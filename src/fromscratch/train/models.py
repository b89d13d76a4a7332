"""From a training config's `model:` mapping to a model, with the data's sizes filled in."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from fromscratch import FromScratchError, first_line
from fromscratch.data import PreparedData
from fromscratch.models import (
    GPT,
    Classifier,
    ClassifierConfig,
    GPTConfig,
    LSTMConfig,
    LSTMLanguageModel,
    Perceiver,
    PerceiverConfig,
)

FAMILIES = {
    "gpt": (GPT, GPTConfig),
    "classifier": (Classifier, ClassifierConfig),
    "perceiver": (Perceiver, PerceiverConfig),
    "lstm": (LSTMLanguageModel, LSTMConfig),
}
LANGUAGE_MODELS = ("gpt", "perceiver", "lstm")  # the families that predict next tokens


def model_config(spec: dict, meta: dict | None = None):
    """The model config of `spec` ({"family": …, fields…}); vocab_size (and num_classes for
    a classifier) default to those of the prepared data in `meta`.  Without `meta`, to the
    config's own defaults: enough to check every field before any data is read."""
    family = spec["family"]
    fields = {k: v for k, v in spec.items() if k != "family"}
    if meta is not None:
        fields.setdefault("vocab_size", meta["vocab_size"])
        if family == "classifier":
            fields.setdefault("num_classes", max(len(meta.get("labels") or ()), 2))
    return FAMILIES[family][1].from_dict(fields)


def check_labels(family: str, folder: str, meta: dict) -> None:
    """Fail unless a model of `family` can read the prepared data (`folder`, its `meta`):
    a classifier needs labels."""
    if family == "classifier" and not meta.get("labels"):
        from fromscratch.data import DATASETS

        labelled = [name for name, d in DATASETS.items() if d.task == "classification"]
        raise FromScratchError(
            f"{folder}: {meta.get('dataset', 'this data')} has no labels to classify; "
            f"a classifier trains on a labelled set ({', '.join(labelled)})"
        )


def build_model(config, meta: dict):
    """The model `config` (a TrainConfig) trains, sized for the prepared data's `meta`."""
    check_labels(config.family, config.data, meta)
    model_class, _ = FAMILIES[config.family]
    model = model_config(config.model, meta)
    if model.vocab_size < meta["vocab_size"]:  # larger is fine: padding, as nanoGPT pads GPT-2's
        raise FromScratchError(
            f"model.vocab_size={model.vocab_size}: smaller than the vocabulary of "
            f"{meta['vocab_size']:,} tokens of {config.data} (leave it out to take the data's)"
        )
    return model_class(model)


def weights_fingerprint(model: nn.Module) -> str:
    """A sha256 of the weights: a model trained again is another model, under the same path
    (a distillation's teacher, a sentence VAE's base)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def load_model(path: str, map_location: str = "cpu"):
    """A model saved by the training loop (model.pt or a checkpoint) and its config dict.
    A checkpoint of a run with ema_decay gives the moving average, as model.pt does: the
    weights the run evaluates and saves."""
    if Path(path).is_dir():
        raise FromScratchError(
            f"{path}: a folder, not a model file; did you mean {Path(path) / 'model.pt'}?"
        )
    if not Path(path).is_file():
        raise FromScratchError(f"{path}: no such model file (a model.pt or checkpoint)")
    saved = None
    try:
        saved = torch.load(path, map_location=map_location, weights_only=False)
        spec = saved["config"]["model"]
        model_class, config_class = FAMILIES[spec["family"]]
    except Exception as error:  # a damaged file, or one some other program wrote
        what = seq2seq_model(saved) or type(error).__name__
        raise FromScratchError(
            f"{path}: not a model saved by `fromscratch train` ({what})"
        ) from error
    model = model_class(config_class.from_dict({k: v for k, v in spec.items() if k != "family"}))
    try:
        model.load_state_dict(saved["ema"]["model"] if saved.get("ema") else saved["model"])
    except (KeyError, RuntimeError) as error:  # weights of another model than its config's
        raise FromScratchError(
            f"{path}: its weights are not those of the model its config describes "
            f"({first_line(error)})"
        ) from error
    if "data_tokenizer" in saved:  # model.pt, not a checkpoint
        return model, {**saved["config"], "data_tokenizer": saved["data_tokenizer"]}
    return model, saved["config"]


def seq2seq_model(saved) -> str | None:
    """What a file torch loaded as `saved` is, if it is a model of the encoder/decoder
    study (scored in its own run, not by evaluate or sample); else None."""
    config = saved.get("config") if isinstance(saved, dict) else None
    if not isinstance(config, dict) or not {"architecture", "task"} <= config.keys():
        return None
    return (
        f"a {config['architecture']} model of `run encoder-decoder` on task {config['task']}, "
        "scored in its run's accuracy.csv"
    )


def data_for_model(config: dict, folder: str | None = None):
    """The prepared data a trained model reads: `folder`, or by default its training data.

    config: the training config saved with the model (see load_model).  Another folder must
    use the training data's tokenizer (`fromscratch data prepare --tokenizer-from`), or each
    token id means something else there: a one-line error instead of an index error or
    silently wrong text.
    """
    from fromscratch.data import PreparedData

    trained_on = config["data"]
    if not folder and not (Path(trained_on) / "meta.json").is_file():  # run elsewhere
        raise FromScratchError(
            f"the model's training data {trained_on} (relative to where it trained) is not "
            "here: run from there, or give --data DIR (a folder prepared with its tokenizer)"
        )
    data = PreparedData(folder or trained_on)
    vocab_size = config["model"]["vocab_size"]  # may be padded beyond the data's
    if data.meta["vocab_size"] > vocab_size:
        raise FromScratchError(
            f"{data.folder}: a vocabulary of {data.meta['vocab_size']:,} tokens, more than the "
            f"model's {vocab_size:,} ({trained_on}): prepare it with --tokenizer-from "
            f"{trained_on}"
        )
    if folder and not tokenizers_agree(data.tokenizer, config):
        raise FromScratchError(
            f"{data.folder}: its tokenizer is not the one the model was trained with "
            f"({trained_on}): prepare it with --tokenizer-from {trained_on}"
        )
    return data


def tokenizers_agree(tokenizer, config: dict) -> bool:
    """Whether `tokenizer` is the one of the model's training data: by the fingerprint
    saved in its model.pt (that of its tokens' bytes, or of their text in a model.pt
    saved before), else (a checkpoint) by the training data's own, where it is still
    there to compare with."""
    from fromscratch.data import PreparedData, tokenizers

    expected = config.get("data_tokenizer")
    if expected is None:
        if not (Path(config["data"]) / "meta.json").is_file():
            return True  # nothing to compare with
        expected = tokenizers.fingerprint(PreparedData(config["data"]).tokenizer)
    return expected == tokenizers.fingerprint(tokenizer) or (
        expected == tokenizers.fingerprint(tokenizer, as_text=True)
    )


# GPT-2 run as the project's GPT (GPT.from_gpt2) or by Hugging Face's own code
GPT2_BACKENDS = ("own", "hf")


def load_language_model(
    source: str,
    *,
    who: str = "model",
    families: tuple[str, ...] = LANGUAGE_MODELS,
    download: bool = False,
    backend: str = "own",
) -> tuple[nn.Module, dict]:
    """The language model at `source`: a model.pt (or checkpoint) of this pipeline, or a
    Hugging Face GPT-2 (a folder written by `save_pretrained`, or a hub name: one in the
    local cache, or with download=True one fetched from the hub), and its config dict:
    {"model": its fields and family, "data": the folder it was trained on (None for
    GPT-2), "data_tokenizer": its fingerprint, where the model.pt has it, "trained": its
    whole training config (None for GPT-2)}.

    who: how errors name the model ("teacher", "distillation: model", …); families: the
    ones the caller can use; backend: GPT-2 as the project's GPT ("own") or as Hugging
    Face's own GPT2LMHeadModel ("hf").  Every failure is a one-line FromScratchError.
    """
    if backend not in GPT2_BACKENDS:
        raise FromScratchError(
            f"{who} {source}: backend {backend!r}; allowed: {', '.join(GPT2_BACKENDS)}"
        )
    if Path(source).is_file() or str(source).endswith(".pt"):
        model, saved = load_model(source)
        config = {"model": saved["model"], "data": saved.get("data"), "trained": saved}
        if "data_tokenizer" in saved:
            config["data_tokenizer"] = saved["data_tokenizer"]
    else:
        model, fields = _load_gpt2(source, who, download, backend)
        config = {"model": {**fields, "family": "gpt"}, "data": None, "trained": None}
    family = config["model"]["family"]
    if family not in families:
        raise FromScratchError(
            f"{who} {source}: a {family} model; allowed families: {', '.join(families)}"
        )
    return model, config


def _load_gpt2(source: str, who: str, download: bool, backend: str):
    """A Hugging Face GPT-2 (folder or hub name) for `backend`, and its fields as a GPT's."""
    from transformers import GPT2LMHeadModel

    from fromscratch.models import GPT

    try:
        hf = GPT2LMHeadModel.from_pretrained(
            source, local_files_only=not download or Path(source).is_dir()
        )
    except OSError as error:  # not a folder of save_pretrained, not in the cache (or hub)
        where = "hub" if download else "cached"
        raise FromScratchError(
            f"{who} {source!r}: neither a model.pt nor a GPT-2 folder or {where} name ({error})"
        ) from error
    if backend == "hf":
        h = hf.config
        fields = {"vocab_size": h.vocab_size, "context": h.n_positions, "n_layer": h.n_layer,
                  "n_head": h.n_head, "n_embd": h.n_embd}  # fmt: skip
        return hf, fields
    try:
        own = GPT.from_gpt2(hf)
    except ValueError as error:  # a setting the project's GPT does not have
        raise FromScratchError(f"{who} {source!r}: {error}") from error
    return own, own.config.to_dict()


def check_data(source: str, config: dict, data: PreparedData, who: str) -> None:
    """Fail unless `data` is tokenised as the model at `source` (see load_language_model)
    reads it: a model.pt's data with its training data's tokenizer (as `fromscratch
    evaluate` checks), GPT-2's with GPT-2's BPE; and no more tokens than the model knows."""
    if config["data"] is not None:
        try:
            data_for_model(config, str(data.folder))
        except FromScratchError as error:  # say whose tokens they are not
            raise FromScratchError(f"{who} {source}: {error}") from None
        return
    _check_gpt2_tokens(source, data, who)
    vocab_size = config["model"]["vocab_size"]
    if data.meta["vocab_size"] > vocab_size:
        raise FromScratchError(
            f"{who} {source}: {vocab_size:,} tokens, fewer than the {data.meta['vocab_size']:,} "
            f"of {data.folder}"
        )


def _check_gpt2_tokens(source: str, data: PreparedData, who: str) -> None:
    if data.meta["tokenizer"] != "gpt2":
        raise FromScratchError(
            f"{who} {source} is GPT-2, but {data.folder} is tokenised with "
            f"{data.meta['tokenizer']!r}; it reads gpt2 tokens: prepare it with --tokenizer gpt2"
        )
