"""Pang & Lee sentence polarity v1.0 (NLTK's packaging): 10,662 Rotten Tomatoes snippets, a
short-text out-of-domain test set for a sentiment classifier trained on IMDb."""

import zipfile

from fromscratch.data.base import SENTIMENT_LABELS as LABELS
from fromscratch.data.base import DataSet, Split
from fromscratch.data.download import Source

# The original files are Windows-1252; NLTK re-encoded them to UTF-8 as if they were
# latin-1, so their dashes and curly quotes (cp1252's bytes 0x80-0x9F) became the C1
# control characters of the same numbers: map those back.
WINDOWS_PUNCTUATION = {
    code: bytes([code]).decode("cp1252")
    for code in range(0x80, 0xA0)
    if code not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)  # no character in cp1252
}


def read(files, seed):
    """One snippet per line in rt-polarity.{neg,pos}, UTF-8 encoded."""
    texts, labels = [], []
    with zipfile.ZipFile(files["archive"]) as archive:
        for label, name in enumerate(LABELS):
            raw = archive.read(f"sentence_polarity/rt-polarity.{name}").decode("utf-8")
            raw = raw.translate(WINDOWS_PUNCTUATION)
            lines = [line.strip() for line in raw.splitlines() if line.strip()]
            texts += lines
            labels += [label] * len(lines)
    return {"test": Split(texts, labels)}


DATASET = DataSet(
    name="pang-lee-sentences",
    task="classification",
    description="Pang & Lee sentence polarity v1.0: 10,662 snippets (out-of-domain test set)",
    read=read,
    splits=("test",),
    sources={
        "archive": Source(
            url="https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/sentence_polarity.zip",
            checksum="sha256:6e1ed4405b65c7eabf1d199a7f7c437091ac21da0ea7467b410a74062574566b",
        )
    },
    default_tokenizer="words",
    labels=LABELS,
)
