"""Tiny Shakespeare (karpathy/char-rnn): 1,115,394 characters, split 90/10 as in nanoGPT's
`shakespeare_char` benchmark."""

from fromscratch.data.base import DataSet, Split
from fromscratch.data.download import Source

SOURCE = Source(
    url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    checksum="sha256:86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    mirror_path="tinyshakespeare.txt",
)


def read(files, seed):
    text = files["text"].read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    return {"train": Split([text[:cut]]), "val": Split([text[cut:]])}


DATASET = DataSet(
    name="shakespeare",
    task="lm",
    description="Tiny Shakespeare, characters, 90/10 split",
    read=read,
    splits=("train", "val"),
    sources={"text": SOURCE},
    default_tokenizer="chars",
)
