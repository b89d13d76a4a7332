"""Pang & Lee polarity v2.0 (NLTK's packaging): 2,000 full movie reviews, an out-of-domain
test set for a sentiment classifier trained on IMDb (another site, another era)."""

import zipfile

from fromscratch.data.base import SENTIMENT_LABELS as LABELS
from fromscratch.data.base import DataSet, Split
from fromscratch.data.download import Source


def read(files, seed):
    """One review per file: movie_reviews/{neg,pos}/*.txt."""
    texts, labels = [], []
    with zipfile.ZipFile(files["archive"]) as archive:
        for name in sorted(archive.namelist()):
            parts = name.split("/")
            if len(parts) == 3 and parts[1] in LABELS and parts[2].endswith(".txt"):
                texts.append(archive.read(name).decode("utf-8"))
                labels.append(LABELS.index(parts[1]))
    return {"test": Split(texts, labels)}


DATASET = DataSet(
    name="pang-lee-reviews",
    task="classification",
    description="Pang & Lee polarity v2.0: 2,000 movie reviews (out-of-domain test set)",
    read=read,
    splits=("test",),
    sources={
        "archive": Source(
            url="https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/movie_reviews.zip",
            checksum="sha256:a41211ae685019137410268134db6a1a14428c89b671eb83056151a878539008",
        )
    },
    default_tokenizer="words",
    labels=LABELS,
)
