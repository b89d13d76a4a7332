"""Small data sets in the real archive formats of the originals, made by the tests."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import zipfile
from pathlib import Path

IMDB = {  # split → label → [(id, rating, text)]
    "train": {
        # five of each label: one of each is drawn into the validation split
        "pos": [
            (0, 9, "A <br />great film."),
            (1, 10, "Loved it: ünïcödé and émojis 🎬!"),
            (4, 8, "A fine cast."),
            (6, 7, "Good fun."),
            (8, 9, "I would see it again."),
        ],
        "neg": [
            (0, 2, "Dull.<br /><br />Avoid."),
            (3, 1, "Worst movie ever."),
            (5, 2, "Too slow."),
            (9, 3, "A waste of a good cast."),
            (10, 1, "No."),
        ],
    },
    "test": {
        "pos": [(5, 8, "Charming and clever.")],
        "neg": [(2, 3, "Too long, too loud."), (7, 4, "Meh (new char: ß).")],
    },
}
SHAKESPEARE = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 20
)
REVIEWS = {"pos": ["a fine film .\n", "moving and funny .\n"], "neg": ["plot holes everywhere .\n"]}
# as NLTK packs them: UTF-8, the original's cp1252 dashes as C1 characters ("\x96": "–")
SENTENCES = {"pos": ["simply the best \xe9lan of the year . ", "warm ."], "neg": ["a mess \x96 ."]}
ENWIK8 = b"<mediawiki>\n" + "Zürich – ∑ bytes\n".encode() * 500


def _tar_gz(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def write_sums(mirror: Path) -> None:
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(mirror).as_posix()}"
        for p in sorted(mirror.rglob("*"))
        if p.is_file() and p.name != "SHA256SUMS"
    ]
    (mirror / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def make_mirror(mirror: Path, gpt2_from: Path | None = None) -> Path:
    """A mirror laid out like ../shared/data, with small versions of every data set."""
    mirror.mkdir(parents=True, exist_ok=True)
    imdb = {"aclImdb/README": b"fixture"}
    for split, labels in IMDB.items():
        for label, reviews in labels.items():
            for review_id, rating, text in reviews:
                imdb[f"aclImdb/{split}/{label}/{review_id}_{rating}.txt"] = text.encode()
    _tar_gz(mirror / "aclImdb_v1.tar.gz", imdb)
    (mirror / "tinyshakespeare.txt").write_text(SHAKESPEARE)
    _zip(
        mirror / "movie_reviews.zip",
        {
            f"movie_reviews/{label}/cv{i:03d}_{label}.txt": text.encode()
            for label, texts in REVIEWS.items()
            for i, text in enumerate(texts)
        }
        | {"movie_reviews/README": b"fixture"},
    )
    _zip(
        mirror / "sentence_polarity.zip",
        {
            f"sentence_polarity/rt-polarity.{label}": "\n".join(texts).encode() + b"\n"
            for label, texts in SENTENCES.items()
        }
        | {"sentence_polarity/README": b"fixture"},
    )
    _zip(mirror / "enwik8.zip", {"enwik8": ENWIK8})
    if gpt2_from is not None:
        (mirror / "gpt2-bpe").mkdir(exist_ok=True)
        for name in ("encoder.json", "vocab.bpe"):
            shutil.copyfile(gpt2_from / "gpt2-bpe" / name, mirror / "gpt2-bpe" / name)
    write_sums(mirror)
    return mirror
