"""From a training config's `model:` mapping to a model, with the data's sizes filled in."""

from __future__ import annotations

from pathlib import Path

from fromscratch import FromScratchError
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


def build_model(config, meta: dict):
    """The model `config` (a TrainConfig) trains, sized for the prepared data's `meta`."""
    if config.family == "classifier" and not meta.get("labels"):
        from fromscratch.data import DATASETS

        labelled = [name for name, d in DATASETS.items() if d.task == "classification"]
        raise FromScratchError(
            f"{config.data}: {meta.get('dataset', 'this data')} has no labels to classify; "
            f"a classifier trains on a labelled set ({', '.join(labelled)})"
        )
    model_class, _ = FAMILIES[config.family]
    model = model_config(config.model, meta)
    if model.vocab_size < meta["vocab_size"]:  # larger is fine: padding, as nanoGPT pads GPT-2's
        raise FromScratchError(
            f"model.vocab_size={model.vocab_size}: smaller than the vocabulary of "
            f"{meta['vocab_size']:,} tokens of {config.data} (leave it out to take the data's)"
        )
    return model_class(model)


def load_model(path: str, map_location: str = "cpu"):
    """A model saved by the training loop (model.pt or a checkpoint) and its config dict."""
    import torch

    if Path(path).is_dir():
        raise FromScratchError(
            f"{path}: a folder, not a model file; did you mean {Path(path) / 'model.pt'}?"
        )
    if not Path(path).is_file():
        raise FromScratchError(f"{path}: no such model file (a model.pt or checkpoint)")
    try:
        saved = torch.load(path, map_location=map_location, weights_only=False)
        spec = saved["config"]["model"]
        model_class, config_class = FAMILIES[spec["family"]]
    except Exception as error:  # a damaged file, or one some other program wrote
        raise FromScratchError(
            f"{path}: not a model saved by `fromscratch train` ({type(error).__name__})"
        ) from error
    model = model_class(config_class.from_dict({k: v for k, v in spec.items() if k != "family"}))
    model.load_state_dict(saved["model"])
    if "data_tokenizer" in saved:  # model.pt, not a checkpoint
        return model, {**saved["config"], "data_tokenizer": saved["data_tokenizer"]}
    return model, saved["config"]


def data_for_model(config: dict, folder: str | None = None):
    """The prepared data a trained model reads: `folder`, or by default its training data.

    config: the training config saved with the model (see load_model).  Another folder must
    use the training data's tokenizer (`fromscratch data prepare --tokenizer-from`), or each
    token id means something else there: a one-line error instead of an index error or
    silently wrong text.
    """
    from fromscratch.data import PreparedData

    trained_on = config["data"]
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
    saved in its model.pt, else (a checkpoint) by the training data's own, where it is
    still there to compare with."""
    from fromscratch.data import PreparedData, tokenizers

    expected = config.get("data_tokenizer")
    if expected is None:
        if not (Path(config["data"]) / "meta.json").is_file():
            return True  # nothing to compare with
        expected = tokenizers.fingerprint(PreparedData(config["data"]).tokenizer)
    return tokenizers.fingerprint(tokenizer) == expected
