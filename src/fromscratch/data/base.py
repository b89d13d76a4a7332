"""What a data set is: where its files come from, and how to read them into text splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fromscratch.data.download import Source

SENTIMENT_LABELS = ("neg", "pos")


@dataclass
class Split:
    """One split as text: documents, and a label per document for classification."""

    texts: list[str] | list[bytes]
    labels: list[int] | None = None


@dataclass(frozen=True)
class DataSet:
    name: str
    task: str  # "classification" or "lm"
    description: str
    # read(files, seed) -> {split name: Split}; `files` maps each source's key to its
    # verified local copy. The first split is the training split.
    read: Callable[[dict[str, Path], int], dict[str, Split]]
    # the names of the splits `read` returns, so a workflow can check a config's split
    # names before anything is downloaded (workflow/schemas/config.schema.yaml keeps a copy)
    splits: tuple[str, ...]
    sources: dict[str, Source] = field(default_factory=dict)
    tokenizers: tuple[str, ...] = ("bytes", "chars", "words", "bpe", "gpt2")
    default_tokenizer: str = "bytes"
    labels: tuple[str, ...] = ()
    # one more each time `read` returns other texts for the same files (a split added, a
    # draw changed): a folder prepared by an earlier version is refused, not mixed with new
    version: int = 1
