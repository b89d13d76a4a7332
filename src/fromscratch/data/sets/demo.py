"""A small review-like corpus that the project generates itself, so that `make demo` and the
tests run with no network.

Each review is a few sentences about a film, most of them agreeing with the review's
label. Sentences carry sentiment through an adjective; some negate it ("was not dull"),
some contrast two ("could have been dull, but it was clever") — so a bag of words gets far
but not all the way, and a model that relates tokens to each other (attention) does
better (a bag of words reaches about 77% test accuracy). Where the sentences' polarities
do not sum to the label's side, a verdict ("overall, clever.") is added; it settles a tie,
so in 8-9% of the training and test reviews and 16% of the out-of-domain ones the
sentences still lean the other way: some reviews stay hard. Everything is drawn from
`random.Random(seed)`: the same seed, the same corpus.

Splits: `train` (4,000 reviews), `test` (1,000), and `ood` (1,000 one-line snippets about
other subjects in another style: an out-of-domain test set, like Pang & Lee's sentences
for IMDb).
"""

import random

from fromscratch.data.base import SENTIMENT_LABELS as LABELS
from fromscratch.data.base import DataSet, Split

POSITIVE = [
    "wonderful",
    "brilliant",
    "moving",
    "superb",
    "charming",
    "gripping",
    "clever",
    "delightful",
    "beautiful",
    "funny",
]
NEGATIVE = [
    "dull",
    "awful",
    "boring",
    "clumsy",
    "tedious",
    "bland",
    "terrible",
    "forgettable",
    "predictable",
    "messy",
]
SUBJECTS = [
    "the film",
    "this movie",
    "the plot",
    "the acting",
    "the soundtrack",
    "the director's work",
    "the ending",
    "the cast",
    "the script",
    "the camera work",
]
OOD_SUBJECTS = [
    "the novel",
    "this album",
    "the new season",
    "the stage play",
    "the sequel",
    "the documentary",
]
INTENSIFIERS = ["", "", "really ", "truly ", "quite ", "rather ", "very ", "simply "]
FILLERS = [
    "i watched it on a {day}.",
    "my friend recommended it to me.",
    "it runs about {n} minutes.",
    "i saw it in the cinema.",
    "the trailer gave little away.",
    "we went to see it with the whole family.",
]
DAYS = ["monday", "rainy sunday", "friday night", "long flight", "quiet evening"]


def sentence(rng: random.Random, subject: str, polarity: int) -> tuple[str, int]:
    """One sentence of the given polarity (+1 or -1), or a filler sentence (polarity 0)."""
    good, bad = rng.choice(POSITIVE), rng.choice(NEGATIVE)
    adjective, other = (good, bad) if polarity > 0 else (bad, good)
    very = rng.choice(INTENSIFIERS)
    kind = rng.random()
    if kind < 0.15:
        return rng.choice(FILLERS).format(day=rng.choice(DAYS), n=rng.randrange(80, 190)), 0
    if kind < 0.65:
        return f"{subject} was {very}{adjective}.", polarity
    if kind < 0.8:  # negation flips the adjective's polarity
        return f"{subject} was not {very}{other}.", polarity
    if kind < 0.9:  # contrast: the clause after "but" counts
        return f"{subject} could have been {other}, but it was {very}{adjective}.", polarity
    return f"i found {subject} {very}{adjective}.", polarity


def review(rng: random.Random, subjects: list[str], sentences: range) -> tuple[str, int]:
    """A review of a random label: most sentences agree with it, some (a quarter) do not,
    and the summed polarity always has the label's sign."""
    label = rng.choice((0, 1))
    sign = 1 if label else -1
    parts, score = [], 0
    for _ in range(rng.choice(sentences)):
        polarity = sign if rng.random() < 0.75 else -sign
        text, counted = sentence(rng, rng.choice(subjects), polarity)
        parts.append(text)
        score += counted
    if score * sign <= 0:  # a verdict settles it
        parts.append(f"overall, {rng.choice(POSITIVE if label else NEGATIVE)}.")
    return " ".join(parts), label


def generate(rng: random.Random, n: int, subjects: list[str], sentences: range) -> Split:
    texts, labels = zip(*(review(rng, subjects, sentences) for _ in range(n)), strict=True)
    return Split(list(texts), list(labels))


def read(files, seed):
    rng = random.Random(seed)
    return {
        "train": generate(rng, 4000, SUBJECTS, range(3, 9)),
        "test": generate(rng, 1000, SUBJECTS, range(3, 9)),
        "ood": generate(rng, 1000, OOD_SUBJECTS, range(1, 3)),
    }


DATASET = DataSet(
    name="demo",
    task="classification",
    description="generated review-like corpus (offline demo and tests), 4,000/1,000 + 1,000 OOD",
    read=read,
    splits=("train", "test", "ood"),
    default_tokenizer="words",
    labels=LABELS,
)
