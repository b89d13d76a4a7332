"""Stage: text samples from a trained language model, saved as a text file."""

from __future__ import annotations


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

    from fromscratch.data import PreparedData
    from fromscratch.io import write_text
    from fromscratch.train.models import load_model

    net, config = load_model(model)
    net.eval()
    tokenizer = PreparedData(data or config["data"]).tokenizer
    prompt_ids = tokenizer.encode(prompt).tolist() if prompt else [0]
    generator = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(num_samples):
        idx = torch.as_tensor(prompt_ids, dtype=torch.long)[None]
        ids = net.generate(
            idx, tokens, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )
        samples.append(tokenizer.decode(ids[0].tolist()))
    text = "\n\n---\n\n".join(samples) + "\n"
    write_text(out, text)
    return {"samples": num_samples, "characters": len(text)}
