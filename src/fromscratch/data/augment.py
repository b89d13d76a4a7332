"""Data augmentation: new training texts made from old ones, each keeping its review's label.

    texts, labels = augment_split(train.texts, train.labels, "typos", rate=0.1, copies=1, seed=0)

Every augmentation is a pure function of (text, label, rng) → text, with one `rate`: how
much of the text it changes. Words are the whitespace-separated pieces of the text; the
whitespace between them stays as it was (a review's line breaks, for a model that reads
them), whatever the words around it become.

| strategy      | what it does (rate = p)                                                  |
| ------------- | ------------------------------------------------------------------------ |
| `none`        | nothing: the original text                                               |
| `delete_swap` | deletes each word with probability p, then swaps p·n random pairs        |
| `unk`         | replaces each word with `<unk>` with probability p (word dropout)        |
| `crop`        | keeps one contiguous span of the words, cutting away up to a fraction p  |
| `mix`         | replaces each sentence, with probability p, by a sentence of another     |
|               | review of the same label                                                 |
| `typos`       | gives each word a typo with probability p: a letter dropped, doubled,    |
|               | replaced, or swapped with its neighbour                                  |

All randomness comes from the `random.Random` passed in, so the same seed gives the same
texts. `<unk>` is the words tokenizer's unknown token; `MarkedUnknowns` makes any tokenizer
that has one read it as that token.
"""

from __future__ import annotations

import math
import random
import re
import string
from collections.abc import Sequence

import numpy as np

from fromscratch import FromScratchError
from fromscratch.config import check_integer
from fromscratch.data.tokenizers import UNK, Tokenizer

SENTENCE_END = re.compile(r"(?<=[.!?])(\s+)")  # the whitespace after a sentence's end
WORD = re.compile(r"(\S+)")


def each_word(text: str, change) -> str:
    """text with each word replaced by change(word), in order; the whitespace kept."""
    return WORD.sub(lambda match: change(match[0]), text)


def no_augmentation(text: str, label: int, rng: random.Random, rate: float) -> str:
    return text


def delete_and_swap(text: str, label: int, rng: random.Random, rate: float) -> str:
    """Random deletion, then random swaps (two of the four operations of Wei & Zou's EDA).
    A word goes with the whitespace after it (the text's end stays as it was); a swap moves
    the words, not the line breaks."""
    # the whitespace before the first word, then each word and the whitespace after it
    lead, *pieces = WORD.split(text)
    words, gaps = pieces[0::2], pieces[1::2]
    kept = [i for i in range(len(words)) if rng.random() >= rate]
    if not kept:  # never delete a whole review
        return text
    words, gaps = [words[i] for i in kept], [gaps[i] for i in kept[:-1]] + gaps[-1:]
    for _ in range(round(rate * len(words))):
        i, j = rng.randrange(len(words)), rng.randrange(len(words))
        words[i], words[j] = words[j], words[i]
    return lead + "".join(word + gap for word, gap in zip(words, gaps, strict=True))


def unk_dropout(text: str, label: int, rng: random.Random, rate: float) -> str:
    """Word dropout without synonyms: a dropped word becomes the unknown word `<unk>`."""
    return each_word(text, lambda word: UNK if rng.random() < rate else word)


def crop(text: str, label: int, rng: random.Random, rate: float) -> str:
    """A random contiguous span of the review, at least (1 - rate) of its words long."""
    words = list(WORD.finditer(text))
    keep = max(1, math.ceil(len(words) * (1 - rng.uniform(0, rate))))
    if not words:
        return text
    start = rng.randrange(len(words) - keep + 1)
    end = start + keep
    # from the text's own beginning, or to its end, where the span reaches them
    first = words[start].start() if start > 0 else 0
    last = words[end - 1].end() if end < len(words) else len(text)
    return text[first:last]


def split_sentences(text: str) -> list[str]:
    return [s for s in SENTENCE_END.split(text.strip())[0::2] if s]


def mix_sentences(
    text: str, label: int, rng: random.Random, rate: float, pool: dict[int, list[str]]
) -> str:
    """Each sentence, with probability `rate`, swapped for a random sentence from `pool`:
    the sentences of every training review, by label, so a review borrows only from
    reviews of its own label."""
    borrowed = pool[label]
    pieces = SENTENCE_END.split(text)  # sentence, gap, sentence, ...
    for i in range(0, len(pieces), 2):
        if pieces[i].strip() and rng.random() < rate:
            lead = pieces[i][: len(pieces[i]) - len(pieces[i].lstrip())]
            pieces[i] = lead + rng.choice(borrowed)
    return "".join(pieces)


def typo(word: str, rng: random.Random, letters: str) -> str:
    """One keyboard slip in `word`: a letter dropped, doubled, replaced by another of
    `letters` (or of the word's own letters, where that is empty), or two different
    neighbours swapped; where a replacement or a swap finds no other letter, the letter is
    doubled. A word of one letter stays as it is."""
    if len(word) < 2:
        return word
    kind = rng.randrange(4)
    if kind == 3:
        swappable = [i for i in range(len(word) - 1) if word[i] != word[i + 1]]
        if swappable:
            i = rng.choice(swappable)
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        kind = 1
    i = rng.randrange(len(word))
    others = [c for c in letters or word if c != word[i]]
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1 or not others:
        return word[: i + 1] + word[i:]
    return word[:i] + rng.choice(others) + word[i + 1 :]


def typos(
    text: str, label: int, rng: random.Random, rate: float, letters: str = string.ascii_lowercase
) -> str:
    """Character-level noise: each word gets one typo with probability `rate`."""
    return each_word(text, lambda word: typo(word, rng, letters) if rng.random() < rate else word)


AUGMENTATIONS = {
    "none": no_augmentation,
    "delete_swap": delete_and_swap,
    "unk": unk_dropout,
    "crop": crop,
    "mix": mix_sentences,
    "typos": typos,
}


def check_settings(strategy: str, rate: float, copies: int) -> None:
    """A one-line error for settings `augment_split` cannot use, before any text is read."""
    if strategy not in AUGMENTATIONS:
        raise FromScratchError(
            f"unknown augmentation {strategy!r}; allowed: {', '.join(AUGMENTATIONS)}"
        )
    if not 0 <= rate <= 1:
        raise FromScratchError(f"augmentation rate {rate!r} must be between 0 and 1")
    if strategy == "delete_swap" and rate == 1:  # every word deleted: the review kept whole
        raise FromScratchError(
            "augmentation delete_swap: rate 1 would delete every word (an emptied review is "
            "kept unchanged); allowed: 0 <= rate < 1"
        )
    # 0 would write the original split unchanged, whatever the strategy
    check_integer("augmentation", "copies", copies, 1)


def augment_split(
    texts: Sequence[str],
    labels: Sequence[int],
    strategy: str,
    rate: float,
    copies: int = 1,
    seed: int = 0,
) -> tuple[list[str], list[int]]:
    """The original texts followed by `copies` augmented copies of each, labels kept."""
    check_settings(strategy, rate, copies)
    if len(texts) != len(labels):
        raise FromScratchError(f"{len(texts)} texts but {len(labels)} labels")
    augment = AUGMENTATIONS[strategy]
    extra = {}
    if strategy == "mix":
        pool: dict[int, list[str]] = {}
        for text, label in zip(texts, labels, strict=True):
            pool.setdefault(label, []).extend(split_sentences(text))
        extra["pool"] = pool
    if strategy == "typos":  # only letters the texts have: a character tokenizer made from
        # them knows no other
        extra["letters"] = "".join(c for c in string.ascii_lowercase if any(c in t for t in texts))
    rng = random.Random(seed)
    out_texts, out_labels = list(texts), list(labels)
    for _ in range(copies):
        for text, label in zip(texts, labels, strict=True):
            out_texts.append(augment(text, label, rng, rate, **extra))
            out_labels.append(label)
    return out_texts, out_labels


class MarkedUnknowns(Tokenizer):
    """`tokenizer`, reading each `<unk>` in a text as its unknown token.

    Word dropout writes `<unk>`, but a words tokenizer would read those five characters as
    three words (`<`, `unk`, `>`). So each text is cut at its `<unk>`s, the pieces are
    encoded, and the unknown token's id is put between them.
    """

    def __init__(self, tokenizer: Tokenizer):
        words = getattr(tokenizer, "ids", {})  # a words tokenizer's vocabulary
        if UNK not in words:
            raise FromScratchError(
                f"word dropout needs a tokenizer with an {UNK} token (words); "
                f"this one is {tokenizer.kind!r}"
            )
        self.tokenizer, self.unk_id = tokenizer, words[UNK]
        self.kind, self.vocab_size = tokenizer.kind, tokenizer.vocab_size

    def encode_batch(self, texts):
        cut = [text.split(UNK) for text in texts]
        encoded = iter(self.tokenizer.encode_batch([piece for pieces in cut for piece in pieces]))
        out = []
        for pieces in cut:
            ids = [next(encoded)]
            for _ in pieces[1:]:
                ids += [np.array([self.unk_id], dtype=np.int64), next(encoded)]
            out.append(np.concatenate(ids).astype(np.int64))
        return out

    def decode(self, ids):
        return self.tokenizer.decode(ids)
