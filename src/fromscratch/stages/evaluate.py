"""Stages: a trained model scored on whole splits, and text samples from a language model."""

from __future__ import annotations


def evaluate_stage(model: str, sets: dict[str, dict], out: str = "", max_tokens: int = 0) -> dict:
    """Score a trained model on whole splits: accuracy for a classifier, bits for an LM
    (over the first `max_tokens` tokens of each split, if > 0).

    `sets` maps a name to {"split": …, "data": a prepared folder (default: the model's
    training data)}; an out-of-domain folder must use the training data's tokenizer.
    Returns (and writes to `out` as JSON, if given) the results by name.
    """
    from fromscratch.io import write_json
    from fromscratch.train.evaluate import evaluate_classifier, evaluate_lm
    from fromscratch.train.loop import pick_device
    from fromscratch.train.models import data_for_model, load_model

    net, config = load_model(model)
    device = pick_device("auto")
    net.to(device)
    results = {}
    for name, where in sets.items():
        data = data_for_model(config, where.get("data"))
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
                net, data, where["split"], context, device=device, max_tokens=max_tokens
            )
    if out:
        write_json(out, results)
    return results


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
) -> dict:
    """`num_samples` continuations of `prompt`, separated by lines of ---, into `out`;
    decoded with the tokenizer of `data` (default: the model's training data)."""
    import torch

    from fromscratch import FromScratchError
    from fromscratch.io import write_text
    from fromscratch.train.config import LANGUAGE_MODELS
    from fromscratch.train.models import data_for_model, load_model

    if num_samples < 1:
        raise FromScratchError(f"sample: num_samples={num_samples} must be at least 1")
    net, config = load_model(model)
    family = config["model"]["family"]
    if family not in LANGUAGE_MODELS:
        raise FromScratchError(
            f"sample: {model} is a {family}; only language models ({', '.join(LANGUAGE_MODELS)}) "
            "generate text"
        )
    net.eval()
    tokenizer = data_for_model(config, data).tokenizer
    try:
        prompt_ids = tokenizer.encode(prompt).tolist() if prompt else [0]
    except FromScratchError as error:
        raise FromScratchError(f"sample: the prompt {prompt!r}: {error}") from error
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(num_samples):
        idx = torch.as_tensor(prompt_ids, dtype=torch.long)[None]
        ids = net.generate(
            idx,
            tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generator=generator,
            vocab=tokenizer.vocab_size,
        )
        samples.append(tokenizer.decode(ids[0].tolist()))
    text = "\n\n---\n\n".join(samples) + "\n"
    write_text(out, text)
    return {"samples": num_samples, "characters": len(text)}
