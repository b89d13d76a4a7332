"""Stage: one sentence VAE (a frozen GPT + adapters) trained on labelled sentences.

The GPT comes from a run of this pipeline (`model.pt`: the course's GPT at the demo
scale, a GPT trained on the study's data at the small scale) or from Hugging Face GPT-2
(a `save_pretrained` folder, or a hub name such as `gpt2` at the full scale); either way
it becomes the project's own GPT class, so one code path serves all three.
"""

from __future__ import annotations

from fromscratch import FromScratchError


def load_base(model: str = "", gpt2: str = ""):
    """The frozen GPT, from a pipeline run's model.pt or from GPT-2 (folder or hub name),
    and its config (see train.models.load_language_model)."""
    from fromscratch.train.models import load_language_model

    if bool(model) == bool(gpt2):
        raise FromScratchError("sentence-vae: base needs exactly one of model, gpt2")
    return load_language_model(
        model or gpt2, who="sentence-vae: base", families=("gpt",), download=True
    )


def sentence_vae_stage(
    base: dict,
    data: str,
    out: str,
    sentences: dict,
    vae: dict | None = None,
    train: dict | None = None,
    resume: bool = False,
) -> dict:
    """Train one VAE and write its run folder `out` (summary.json last).

    base: {"model": PATH} or {"gpt2": FOLDER_OR_NAME}.  data: the prepared folder made
    with the GPT's tokenizer (labels per review).  sentences: {train, test, max_tokens}
    (how many sentences of each split, and their longest length in tokens).  vae:
    VAEConfig fields; train: VAETrainConfig fields.  resume: continue from the newest
    checkpoint in `out` (SLURM's requeue; the pipeline always asks).
    """
    import torch

    from fromscratch.config import check_integer
    from fromscratch.data import PreparedData
    from fromscratch.models.vae import SentenceVAE, VAEConfig
    from fromscratch.train.checkpoint import sole_run
    from fromscratch.train.models import data_for_model, weights_fingerprint
    from fromscratch.train.vae import VAETrainConfig, sentences_of, train_vae

    config = VAETrainConfig.from_dict(train or {})
    vae_config = VAEConfig.from_dict(vae or {})
    unknown = set(sentences) - {"train", "test", "max_tokens"}
    if unknown:
        raise FromScratchError(
            f"sentence-vae: unknown sentences keys {', '.join(sorted(unknown))}; "
            "allowed: train, test, max_tokens"
        )
    # max_tokens' upper bound, the GPT's context, is checked once the GPT is loaded
    least = {"train": 1, "test": 1, "max_tokens": 2}  # a sentence is 2 tokens or more
    for key, value in sentences.items():
        check_integer("sentence-vae", f"sentences.{key}", value, least[key])
    if not isinstance(base, dict) or set(base) - {"model", "gpt2"}:
        raise FromScratchError(
            f'sentence-vae: base={base!r}; it takes {{"model": PATH}} or {{"gpt2": NAME}}'
        )
    gpt, gpt_config = load_base(**base)
    max_tokens = sentences.get("max_tokens", gpt.config.context)
    if max_tokens > gpt.config.context:
        raise FromScratchError(
            f"sentence-vae: sentences.max_tokens={max_tokens} exceeds the GPT's "
            f"context={gpt.config.context}"
        )
    prepared = PreparedData(data)
    if gpt_config["data"] is not None:  # a model.pt: its training data's tokenizer
        data_for_model(gpt_config, data)
    if prepared.meta["vocab_size"] != gpt.config.vocab_size:
        raise FromScratchError(
            f"sentence-vae: {data} has {prepared.meta['vocab_size']} tokens, the GPT "
            f"{gpt.config.vocab_size}: prepare the data with the GPT's tokenizer"
        )
    train_set = sentences_of(prepared, "train", sentences.get("train", 10000), max_tokens)
    seen = frozenset(train_set.texts)  # no test sentence that training saw word for word
    test_set = sentences_of(
        prepared, "test", sentences.get("test", 1000), max_tokens, seed=1, leave_out=seen
    )
    for split, picked in (("train", train_set), ("test", test_set)):
        if not picked.ids:  # training would fail drawing its first batch from none
            raise FromScratchError(
                f"sentence-vae: the {split} split of {data} has no sentence of 2 to "
                f"{max_tokens} tokens; raise sentences.max_tokens"
            )
    torch.manual_seed(config.seed)  # the adapters' initial weights are the seed's
    model = SentenceVAE(gpt, vae_config)
    run_config = {
        # the base by its weights too: an interrupted run must not resume on a GPT trained
        # again since (its path or hub name stays the same)
        "base": {**base, "weights_sha256": weights_fingerprint(gpt)},
        "data": data,
        "sentences": {**sentences, "max_tokens": max_tokens},
        "vae": vae_config.to_dict(),
        "train": config.to_dict(),
    }
    with sole_run(out):
        summary = train_vae(
            model, train_set, test_set, config, out, prepared.tokenizer, run_config, resume=resume
        )
    keys = ("test/recon", "test/kl", "test/active_units", "probe_accuracy", "swap_flip_rate")
    return {k: summary[k] for k in keys}
