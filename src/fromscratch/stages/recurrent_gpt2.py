"""Stage: bits per token along long documents for the four variants of a "recurrent" GPT.

The documents are slices of a prepared split's token stream (its examples back to back, as
the models were trained), each overlapping the next by one token so that every token of
the stream after the first is predicted exactly once, as in `evaluate_lm`; `documents` of
them, fewer than fit, are taken evenly across the split. In a split of many examples
(reviews) a document runs across several, the separator between them, as GPT-2 read its
training text (few reviews would fill a document of several contexts alone); the bits of
predicting a separator are left out of every mean, as they are no character's or byte's.
"""

from __future__ import annotations

import time

from fromscratch import FromScratchError


def recurrent_gpt2_stage(
    model: str,
    data: str,
    split: str,
    out: str,
    chunks: int = 8,
    documents: int = 0,
    memory_tokens: int = 1,
    stride: int = 1,
    batch_size: int = 16,
    backend: str = "own",
    device: str = "auto",
) -> dict:
    """Evaluate `model` on documents of `chunks` runs from `split` of the prepared folder
    `data` (`documents` of them; 0: all that fit) with every variant; write
    out/positions.csv (mean bits at each position of a document) and out/summary.json."""
    import numpy as np
    import pandas as pd
    import torch

    from fromscratch.config import check_integer
    from fromscratch.data import PreparedData
    from fromscratch.io import atomic_dir, write_json
    from fromscratch.models.recurrent import (
        VARIANTS,
        backbone,
        check_memory_tokens,
        check_stride,
        chunk_positions,
        document_bits,
        document_length,
    )
    from fromscratch.stages.evaluate import log_scores
    from fromscratch.train.evaluate import spread
    from fromscratch.train.loop import pick_device
    from fromscratch.train.models import check_data, load_language_model

    started = time.perf_counter()
    # before the model loads (or downloads); memory_tokens' upper bound only after it
    for name, value, least, note in (
        ("chunks", chunks, 2, " (the memory carries from one run to the next)"),
        ("documents", documents, 0, " (0: all that fit)"),
        ("memory_tokens", memory_tokens, 0, ", at most context/2"),
        ("stride", stride, 1, ""),
        ("batch_size", batch_size, 1, ""),
    ):
        check_integer("recurrent_gpt2", name, value, least, note)
    prepared = PreparedData(data)
    prepared.check_split(split)
    # a model.pt of the pipeline (the project's GPT), or a Hugging Face GPT-2 (a hub name
    # such as `gpt2`, or a save_pretrained folder) run by Hugging Face's code (backend hf)
    # or as the project's GPT (own)
    who = "recurrent_gpt2: model"
    net, config = load_language_model(
        model, who=who, families=("gpt",), download=True, backend=backend
    )
    check_data(model, config, prepared, who)
    vocab_size = config["model"]["vocab_size"]
    if vocab_size != prepared.meta["vocab_size"]:  # every logit a token of the data
        reads = "gpt2" if config["data"] is None else "its training data"
        raise FromScratchError(
            f"recurrent_gpt2: {data} is tokenised with {prepared.meta['tokenizer']} "
            f"({prepared.meta['vocab_size']} tokens), but {model} reads {reads}'s "
            f"({vocab_size} tokens)"
        )
    target = pick_device(device)
    net.to(target).eval()
    context = backbone(net).context
    # before any variant runs, not after
    check_memory_tokens(memory_tokens, context, "recurrent_gpt2")
    check_stride(stride, context, "recurrent_gpt2")
    length = document_length(context, chunks, memory_tokens)
    tokens = prepared.stream(split)  # reviews apart, as GPT-2 read its documents
    fit = (len(tokens) - 1) // (length - 1)
    if fit < 1:
        raise FromScratchError(
            f"recurrent_gpt2: {split} of {data} has {len(tokens)} tokens, fewer than one "
            f"document of {length}; lower chunks"
        )
    count = min(documents, fit) if documents else fit
    # spread over the split, not its first documents (IMDb stores its negative reviews first)
    starts = spread(fit, count) * (length - 1)
    docs = torch.from_numpy(tokens[starts[:, None] + np.arange(length)].astype(np.int64))

    eot = prepared.tokenizer.eot
    separators = (
        (docs[:, 1:] == eot).numpy() if eot is not None else np.zeros((count, length - 1), bool)
    )
    position = np.arange(1, length)  # the index of the predicted token in its document
    chunk, offset = chunk_positions(position, context, memory_tokens)
    rows, summary = [], {}
    for variant in VARIANTS:
        bits = torch.cat(
            [
                document_bits(
                    net, group.to(target), variant, memory_tokens, stride, batch_size
                ).cpu()
                for group in docs.split(batch_size)
            ]
        ).numpy()
        bits[separators] = np.nan
        rows.append(
            pd.DataFrame(
                {
                    "variant": variant,
                    "position": position,
                    "chunk": chunk,
                    "offset": offset,
                    "bits": np.nanmean(bits, axis=0),
                    "bits_sd": np.nanstd(bits, axis=0),
                }
            )
        )
        summary[variant] = {
            "bits_per_token": float(np.nanmean(bits)),
            "first_chunk": float(np.nanmean(bits[:, chunk == 0])),
            "later_chunks": float(np.nanmean(bits[:, chunk > 0])),
        }
    with atomic_dir(out, "summary.json") as tmp:
        pd.concat(rows).to_csv(tmp / "positions.csv", index=False)
        write_json(
            tmp / "summary.json",
            {
                "model": model,
                "backend": backend,
                "data": data,
                "split": split,
                "tokenizer": prepared.meta["tokenizer"],
                "context": context,
                "chunks": chunks,
                "memory_tokens": memory_tokens,
                "stride": stride,
                "documents": count,
                "document_tokens": length,
                "variants": summary,
                "device": str(target),
                "wall_time_s": time.perf_counter() - started,
            },
        )
    if config["trained"]:  # a model of this pipeline: beside its training run in W&B
        # a history row a position, each variant's mean bits there: one curve a variant
        by_position = pd.concat(rows).pivot(index="position", columns="variant", values="bits")
        history = [
            {"position": int(at)} | {f"{variant}/bits": bits for variant, bits in row.items()}
            for at, row in by_position.iterrows()
        ]
        scores = {
            f"{v}/{key}": value for v, means in summary.items() for key, value in means.items()
        }
        settings = {
            "model_file": model,
            "split": split,
            "chunks": chunks,
            "documents": count,
            "memory_tokens": memory_tokens,
            "stride": stride,
        }
        on = f"{prepared.meta['dataset']}-{split}"  # the study scores a model on several
        log_scores(out, config["trained"], "recurrent", settings, history, scores, on, "position")
    return {variant: round(s["later_chunks"], 4) for variant, s in summary.items()}
