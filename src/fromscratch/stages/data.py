"""Stage: download and tokenise one data set (`fromscratch data prepare`)."""

from __future__ import annotations


def prepare_stage(
    dataset: str,
    out: str,
    tokenizer: str | None = None,
    mirror: str = "",
    tokenizer_from: str | None = None,
    vocab_size: int | None = None,
    fit_on: str | None = None,
    seed: int = 0,
) -> dict:
    from fromscratch.data import prepare

    meta = prepare(
        dataset,
        out,
        mirror=mirror or None,
        tokenizer=tokenizer,
        tokenizer_from=tokenizer_from,
        vocab_size=vocab_size,
        fit_on=fit_on,
        seed=seed,
        progress=False,
    )
    return {name: split["examples"] for name, split in meta["splits"].items()}
