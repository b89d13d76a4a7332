"""enwik8 (Hutter Prize): the first 100M bytes of an English Wikipedia dump, modelled as
bytes and split 90M/5M/5M as in the literature (Al-Rfou et al. 2019, Transformer-XL)."""

import zipfile

from fromscratch.data.base import DataSet, Split
from fromscratch.data.download import Source

SOURCE = Source(
    url="http://mattmahoney.net/dc/enwik8.zip",
    # The published checksum is of the unzipped file (the zip's own is not published).
    checksum="md5:a1fa5ffddb56f4953e226637dabbb36a",
    checksum_of="enwik8",
)


def read(files, seed):
    with zipfile.ZipFile(files["archive"]) as archive:
        data = archive.read("enwik8")
    # 90/5/5 of 100M bytes is exactly 90M/5M/5M; fractions keep small test files usable.
    a, b = int(len(data) * 0.90), int(len(data) * 0.95)
    return {"train": Split([data[:a]]), "val": Split([data[a:b]]), "test": Split([data[b:]])}


DATASET = DataSet(
    name="enwik8",
    task="lm",
    description="enwik8, bytes, 90M/5M/5M split",
    read=read,
    splits=("train", "val", "test"),
    sources={"archive": SOURCE},
    tokenizers=("bytes",),
    default_tokenizer="bytes",
)
