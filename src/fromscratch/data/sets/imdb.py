"""IMDb Large Movie Review Dataset (Maas et al. 2011): 25,000 train and 25,000 test reviews,
balanced positive/negative. The review texts are also the corpus for IMDb language models.

Choices (a learning rate, a recipe, when to stop) are made on a validation split: 5,000 of
the training reviews, 2,500 of each label, drawn with the prepare seed, as the course's own
loader does; a review that is there more than once stays on one side with its copies. Its
reviews' movies can have other reviews in training (the official split keeps movies apart,
and the archive does not say which review is of which movie), so validation accuracy runs
a little above test accuracy; the test split is for the result."""

import random
import re
import tarfile

from fromscratch.data.base import SENTIMENT_LABELS as LABELS
from fromscratch.data.base import DataSet, Split
from fromscratch.data.download import Source

SOURCE = Source(
    url="https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
    checksum="md5:7c2ac02c03563afcf9b574c7e56c153a",
)
VALIDATION_SHARE = 0.2  # of each label's training reviews: 2,500 of 12,500
MEMBER = re.compile(r"aclImdb/(train|test)/(neg|pos)/(\d+)_(\d+)\.txt$")


def clean(text: str) -> str:
    # The reviews keep the HTML line breaks of the original web pages.
    return text.replace("<br />", "\n")


def check_read_to_the_end(archive: tarfile.TarFile) -> None:
    """tarfile takes a damaged member header for the archive's end, and stops without a word:
    all that may follow is the end's zero padding.  (Reading on also checks gzip's CRC.)"""
    while block := archive.fileobj.read(1 << 20):
        if block.strip(b"\0"):
            raise tarfile.ReadError("a damaged header ends its list of files before their end")


def read(files, seed):
    found: dict[str, list[tuple[int, int, str]]] = {"train": [], "test": []}
    with tarfile.open(files["archive"], "r:gz") as archive:
        for member in archive:  # streams through the archive once, in its order
            match = MEMBER.search(member.name)
            if not (match and member.isfile()):
                continue
            split, label, review_id = match[1], LABELS.index(match[2]), int(match[3])
            # closed here, not by the garbage collector: a Ctrl-C raised inside a collector's
            # close is printed and dropped, and the run would go on
            with archive.extractfile(member) as review:
                text = review.read().decode("utf-8")
            found[split].append((label, review_id, clean(text)))
        check_read_to_the_end(archive)
    for reviews in found.values():
        reviews.sort()  # deterministic order, whatever the archive's
    train, val = split_off_validation(found["train"], random.Random(seed))
    return {"train": as_split(train), "val": as_split(val), "test": as_split(found["test"])}


def split_off_validation(reviews: list, rng: random.Random) -> tuple[list, list]:
    """(train, val): VALIDATION_SHARE of each label's reviews drawn into val, both in the
    order given.  A text that is there more than once (IMDb repeats some reviews word for
    word) goes to one side with all its copies, so that val holds no review train has."""
    drawn = set()
    for label in range(len(LABELS)):
        copies: dict[str, list[int]] = {}  # text -> the indices of its copies, first seen first
        for i, (of, _, text) in enumerate(reviews):
            if of == label:
                copies.setdefault(text, []).append(i)
        wanted = round(sum(map(len, copies.values())) * VALIDATION_SHARE)
        taken = 0
        for group in rng.sample(list(copies.values()), len(copies)):  # the texts, shuffled
            if taken + len(group) <= wanted:  # skipping a group too large for what is left
                drawn.update(group)
                taken += len(group)
    return (
        [r for i, r in enumerate(reviews) if i not in drawn],
        [r for i, r in enumerate(reviews) if i in drawn],
    )


def as_split(reviews: list[tuple[int, int, str]]) -> Split:
    return Split([text for _, _, text in reviews], [label for label, _, _ in reviews])


DATASET = DataSet(
    name="imdb",
    task="classification",
    description="IMDb movie reviews, sentiment (neg/pos), 20,000/5,000/25,000",
    read=read,
    splits=("train", "val", "test"),
    sources={"archive": SOURCE},
    default_tokenizer="words",
    labels=LABELS,
    version=2,  # 2: the validation split, drawn from the training reviews
)
