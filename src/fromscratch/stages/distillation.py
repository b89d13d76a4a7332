"""Stage: bits per token of a language model at several evaluation lengths.

The distillation study asks whether LSTM students, trained on windows of `context`
tokens, stay good on longer windows (2×, 4×, 8×), where a GPT cannot go at all: the
teacher is evaluated at its own maximum context, as the reference.
"""

from __future__ import annotations


def distillation_stage(
    model: str,
    data: str,
    out: str,
    split: str = "test",
    lengths: list[int] | None = None,
    max_tokens: int = 0,
) -> dict:
    """Evaluate `model` (a model.pt, or a GPT-2 folder or cached name) on `split` of `data`
    in consecutive windows of each of `lengths` tokens (default: the model's context);
    at most `max_tokens` tokens (0: all; evaluate.scored_tokens), the same at every length."""
    from fromscratch import FromScratchError
    from fromscratch.config import check_integer
    from fromscratch.data import PreparedData
    from fromscratch.io import write_json
    from fromscratch.stages.evaluate import log_scores
    from fromscratch.train.evaluate import evaluate_lm
    from fromscratch.train.loop import pick_device
    from fromscratch.train.models import LANGUAGE_MODELS, check_data, load_language_model

    # checked before the model loads; a transformer's upper bound, its context, only after
    per_window = " (tokens per window; a GPT's or a Perceiver's at most its context)"
    for i, length in enumerate(lengths or []):
        check_integer("distillation", f"lengths[{i}]", length, 1, per_window)
    check_integer("distillation", "max_tokens", max_tokens, 0, " (0: all)")
    prepared = PreparedData(data)
    prepared.check_split(split)
    who = "distillation: model"
    net, config = load_language_model(model, who=who, families=LANGUAGE_MODELS)
    check_data(model, config, prepared, who)  # the ids of `data` mean the model's tokens
    family, context = config["model"]["family"], config["model"]["context"]
    lengths = lengths or [context]
    if family != "lstm" and max(lengths) > context:  # an LSTM reads any length
        name = {"gpt": "GPT", "perceiver": "Perceiver"}[family]
        raise FromScratchError(
            f"{model}: a {name} cannot read {max(lengths)} tokens at once; its context is {context}"
        )
    device = pick_device("auto")
    net.to(device)
    rows = []
    for length in lengths:
        result = evaluate_lm(net, prepared, split, length, device=device, max_tokens=max_tokens)
        rows.append(
            {"length": length}
            | {k: result[k] for k in ("bits_per_token", "bits_per_char", "bits_per_byte")}
            | {"tokens": result["tokens"]}
        )
    write_json(
        out,
        {
            "model": model,
            "family": family,
            "context": context,  # the training length (a GPT's maximum)
            "n_layer": config["model"]["n_layer"],
            "parameters": net.num_parameters(),
            "split": split,
            "results": rows,
        },
    )
    if config["trained"]:  # a model of this pipeline: beside its training run in W&B
        by_length = {
            f"bits_per_token/length_{row['length']}": row["bits_per_token"] for row in rows
        }
        settings = {
            "model_file": model,
            "split": split,
            "lengths": lengths,
            "max_tokens": max_tokens,
        }
        log_scores(out, config["trained"], "lengths", settings, rows, by_length, x_axis="length")
    return {"lengths": len(rows), "bits_per_token": rows[0]["bits_per_token"]}
