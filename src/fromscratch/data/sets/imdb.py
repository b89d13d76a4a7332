"""IMDb Large Movie Review Dataset (Maas et al. 2011): 25,000 train and 25,000 test reviews,
balanced positive/negative. The review texts are also the corpus for IMDb language models."""

import re
import tarfile

from fromscratch.data.base import SENTIMENT_LABELS as LABELS
from fromscratch.data.base import DataSet, Split
from fromscratch.data.download import Source

SOURCE = Source(
    url="https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
    checksum="md5:7c2ac02c03563afcf9b574c7e56c153a",
)
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
    splits = {}
    for name, reviews in found.items():
        reviews.sort()  # deterministic order, whatever the archive's
        splits[name] = Split([r[2] for r in reviews], [r[0] for r in reviews])
    return splits


DATASET = DataSet(
    name="imdb",
    task="classification",
    description="IMDb movie reviews, sentiment (neg/pos), 25,000/25,000",
    read=read,
    splits=("train", "test"),
    sources={"archive": SOURCE},
    default_tokenizer="words",
    labels=LABELS,
)
