"""Tokenisers: text ↔ token ids, all with one interface.

| kind    | vocabulary                                   | lossless | encoder              |
| ------- | -------------------------------------------- | -------- | -------------------- |
| `bytes` | the 256 byte values of UTF-8                 | yes      | numpy                |
| `chars` | the characters of the training split         | yes*     | numpy lookup         |
| `words` | `<pad>`, `<unk>` + top lower-cased words     | no       | C regex + dict       |
| `bpe`   | byte-level BPE trained on the training split | yes      | Rust (`tokenizers`)  |
| `gpt2`  | GPT-2's byte-level BPE (50,257 tokens)       | yes      | Rust (`tiktoken`)    |

(*) a character never seen in training maps to `<unk>`, which is added only when needed:
a chars tokenizer with `<unk>` is not lossless.

A document separator, `<|endoftext|>`, ends every document but the last in what a
language model reads of a split (`PreparedData.stream`): without it, the model would read
the end of one review and the start of the next as one text. Every kind has one when the
training split has more than one document, and none for a book alone (Tiny Shakespeare:
its train and val are one text, read across the cut as such). GPT-2's and the trained
BPE's vocabularies hold the token either way; `bytes`, `chars` and `words` add it to
theirs only then (257 bytes; `<pad>`, `<unk>`, the separator and k-3 words; Tiny
Shakespeare keeps its 65 characters). The separator stands for no text: it counts no bytes
and no characters in bits per byte.

Every tokeniser encodes whole batches at once (`encode_batch`) and saves itself into a
prepared data folder (`save`/`load`), so the folder alone is enough to decode a model's
samples.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from fromscratch import FromScratchError
from fromscratch.data.download import Source

KINDS = ("bytes", "chars", "words", "bpe", "gpt2")
FITTED = ("chars", "words", "bpe")  # learn their vocabulary from the training texts
FILE = "tokenizer.json"
PAD, UNK, EOT = "<pad>", "<unk>", "<|endoftext|>"
Text = str | bytes


class Tokenizer:
    kind: str
    lossless: bool = True
    vocab_size: int
    eot: int | None = None  # the document separator's id; None: this tokenizer has none

    def encode_batch(self, texts: Sequence[Text]) -> list[np.ndarray]:
        raise NotImplementedError

    def encode(self, text: Text) -> np.ndarray:
        return self.encode_batch([text])[0]

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        raise NotImplementedError

    def save(self, folder: Path) -> None:
        raise NotImplementedError

    def _write_spec(self, into: Path, **fields) -> None:
        """into/tokenizer.json: the kind, what load() needs to build it again (`fields`),
        and whether it separates documents."""
        spec = {"kind": self.kind, **fields, "eot": self.eot is not None}
        path = Path(into) / FILE
        path.write_text(json.dumps(spec, ensure_ascii=False) + "\n", encoding="utf-8")

    def token_bytes(self) -> list[bytes]:
        """The UTF-8 bytes each token id stands for (a lossless tokenizer's)."""
        raise NotImplementedError

    @cached_property
    def byte_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Per token id, the bytes it stands for and the characters that start in them
        (its bytes that are no UTF-8 continuation byte): summed over a run of tokens, that
        run's bytes and characters, exactly."""
        pieces = self.token_bytes()
        if self.eot is not None:
            pieces[self.eot] = b""  # the separator stands for no text
        lengths = np.array([len(p) for p in pieces], dtype=np.int64)
        starts = np.array([sum(b & 0xC0 != 0x80 for b in p) for p in pieces], dtype=np.int64)
        return lengths, starts


def separates(train: Sequence[Text]) -> bool:
    """Whether a vocabulary fitted on `train` needs a document separator: more than one
    document to tell apart."""
    return len(train) > 1


# ------------------------------------------------------------------------------- bytes


class ByteTokenizer(Tokenizer):
    kind = "bytes"

    def __init__(self, separator: bool = False):
        self.vocab_size = 256 + separator
        self.eot = 256 if separator else None

    def encode_batch(self, texts):
        return [np.frombuffer(_as_bytes(t), dtype=np.uint8) for t in texts]

    def decode(self, ids):
        ids = np.asarray(ids)
        if self.eot is None:
            return _utf8(ids)
        first, *others = np.split(ids, np.flatnonzero(ids == self.eot))
        return EOT.join([_utf8(first)] + [_utf8(d[1:]) for d in others])  # d[0]: a separator

    def token_bytes(self):
        return [bytes([b]) for b in range(256)] + [EOT.encode()] * (self.eot is not None)

    def save(self, folder):
        self._write_spec(folder)


def _as_bytes(text: Text) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8")


def _utf8(ids: np.ndarray) -> str:
    return bytes(ids.astype(np.uint8)).decode("utf-8", errors="replace")


# ------------------------------------------------------------------------------- chars


class CharTokenizer(Tokenizer):
    kind = "chars"

    def __init__(self, chars: str, unk: bool = False, separator: bool = False):
        self.chars = chars
        self.unk = unk
        self._table = list(chars) + [UNK] * unk + [EOT] * separator
        self.vocab_size = len(self._table)
        self.eot = len(chars) + unk if separator else None
        self._codes = np.array([ord(c) for c in chars], dtype=np.uint32)  # sorted

    @classmethod
    def fit(cls, train: Sequence[str], others: Sequence[str], separator: bool) -> CharTokenizer:
        seen = set().union(*map(set, train))
        unseen = any(set(t) - seen for t in others)
        return cls("".join(sorted(seen)), unk=unseen, separator=separator)

    @property
    def lossless(self) -> bool:
        """Whether decode(encode(text)) gives back every text: not with `<unk>`, which every
        character outside the vocabulary becomes."""
        return not self.unk

    def encode_batch(self, texts):
        out, unknown = [], {}
        for text in texts:
            codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
            ids = np.searchsorted(self._codes, codes).clip(0, max(len(self.chars) - 1, 0))
            missing = self._codes[ids] != codes if len(self.chars) else np.ones_like(codes, bool)
            if missing.any():
                unknown.update(dict.fromkeys(codes[missing].tolist()))
                ids[missing] = len(self.chars)
            out.append(ids)
        if unknown and not self.unk:  # every text's, not the first one's alone
            bad = ", ".join(repr(chr(c)) for c in unknown)
            raise FromScratchError(
                f"not in the vocabulary: {bad}; it has {len(self.chars)} characters: {self.chars!r}"
            )
        return out

    def decode(self, ids):
        return "".join(self._table[i] for i in np.asarray(ids).tolist())

    def token_bytes(self):
        return [c.encode("utf-8") for c in self._table]

    def save(self, folder):
        self._write_spec(folder, chars=self.chars, unk=self.unk)


# ------------------------------------------------------------------------------- words


class WordTokenizer(Tokenizer):
    """Lower-cased words and punctuation runs; the k most frequent in training are kept
    (ids 0 and 1 are `<pad>` and `<unk>`, 2 the separator where there is one), every other
    word is `<unk>`. No text gives the separator: its `<|` and `|>` are words of their own.

    Plain Python on purpose: the regex runs in C and the lookup is one dict access per
    word, which measured 2-3x faster than `tokenizers`' WordLevel model here.
    """

    kind = "words"
    lossless = False
    PATTERN = re.compile(r"\w+|[^\w\s]+")

    def __init__(self, words: Sequence[str]):
        self.words = list(words)
        self.ids = {w: i for i, w in enumerate(self.words)}
        self.vocab_size = len(self.words)
        self.eot = self.ids.get(EOT)

    @classmethod
    def fit(cls, train: Sequence[str], vocab_size: int, separator: bool) -> WordTokenizer:
        counts = Counter(w for text in train for w in cls.PATTERN.findall(text.lower()))
        special = [PAD, UNK] + [EOT] * separator
        return cls(special + [w for w, _ in counts.most_common(vocab_size - len(special))])

    def encode_batch(self, texts):
        get, unk, split = self.ids.get, self.ids[UNK], self.PATTERN.findall
        return [np.array([get(w, unk) for w in split(t.lower())], dtype=np.int64) for t in texts]

    def decode(self, ids):
        return " ".join(self.words[i] for i in np.asarray(ids).tolist())

    def save(self, folder):
        self._write_spec(folder, words=self.words)  # its separator is one of its words


# --------------------------------------------------------------- trained BPE (tokenizers)


class BPETokenizer(Tokenizer):
    """A byte-level BPE trained on the corpus with Hugging Face `tokenizers` (Rust)."""

    kind = "bpe"

    def __init__(self, tokenizer, separator: bool = True):
        self.tokenizer = tokenizer
        # a text's own "<|endoftext|>" is text, as GPT-2's encoder reads it: only the
        # stream puts the separator in
        self.tokenizer.encode_special_tokens = True
        self.vocab_size = tokenizer.get_vocab_size()
        self.eot = tokenizer.token_to_id(EOT) if separator else None

    @classmethod
    def fit(cls, train: Sequence[str], vocab_size: int, separator: bool) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        tok = HFTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[EOT],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(train, trainer=trainer, length=len(train))
        return cls(tok, separator)

    def encode_batch(self, texts):
        encodings = self.tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        return [np.array(e.ids, dtype=np.int64) for e in encodings]

    def decode(self, ids):
        return self.tokenizer.decode(np.asarray(ids).tolist(), skip_special_tokens=False)

    def token_bytes(self):
        alphabet = _gpt2_byte_alphabet()  # the same byte-level alphabet as GPT-2's
        tokens = [self.tokenizer.id_to_token(i) for i in range(self.vocab_size)]
        return [t.encode("utf-8") if t == EOT else bytes(alphabet[c] for c in t) for t in tokens]

    def save(self, folder):
        self.tokenizer.save(str(folder / "tokenizer.bpe.json"))
        self._write_spec(folder, file="tokenizer.bpe.json")


# -------------------------------------------------------------------------------- gpt2


def _gpt2_byte_alphabet() -> dict[str, int]:
    """GPT-2 writes each byte as a printable unicode character in its vocabulary files:
    printable Latin-1 bytes stand for themselves, the others are shifted to 256+."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    shifted = [b for b in range(256) if b not in printable]
    alphabet = {chr(b): b for b in printable}
    alphabet.update({chr(256 + i): b for i, b in enumerate(shifted)})
    return alphabet


GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
GPT2_FILES = ("encoder.json", "vocab.bpe")
GPT2_SOURCES = {
    "encoder.json": Source(
        url="https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
        checksum="sha256:196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
        mirror_path="gpt2-bpe/encoder.json",
    ),
    "vocab.bpe": Source(
        url="https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
        checksum="sha256:1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
        mirror_path="gpt2-bpe/vocab.bpe",
    ),
}


class GPT2Tokenizer(Tokenizer):
    """GPT-2's tokenizer, built by `tiktoken` from the two files OpenAI released."""

    kind = "gpt2"

    def __init__(self, folder: Path, separator: bool = True):
        import tiktoken

        self.folder = Path(folder)
        encoder = json.loads((self.folder / "encoder.json").read_text(encoding="utf-8"))
        merges = (self.folder / "vocab.bpe").read_text(encoding="utf-8").split("\n")[1:]
        alphabet = _gpt2_byte_alphabet()
        ranks = {
            bytes(alphabet[c] for c in token): rank
            for token, rank in encoder.items()
            if token != EOT
        }
        # The merge ranks are the encoder's ids; the merges file must agree in size.
        if len(ranks) != 256 + len([m for m in merges if m]):
            raise FromScratchError(f"{self.folder}: encoder.json and vocab.bpe do not match")
        self.encoding = tiktoken.Encoding(
            name="gpt2",
            pat_str=GPT2_PATTERN,
            mergeable_ranks=ranks,
            special_tokens={EOT: encoder[EOT]},
        )
        self.vocab_size = self.encoding.n_vocab
        self.eot = encoder[EOT] if separator else None

    def encode_batch(self, texts):
        texts = [t.decode("utf-8") if isinstance(t, bytes) else t for t in texts]
        ids = self.encoding.encode_ordinary_batch(texts, num_threads=_threads())
        return [np.array(x, dtype=np.int64) for x in ids]

    def decode(self, ids):
        return self.encoding.decode(np.asarray(ids).tolist())

    def token_bytes(self):
        return [self.encoding.decode_single_token_bytes(i) for i in range(self.vocab_size)]

    def save(self, folder):
        target = folder / "gpt2-bpe"
        if target.resolve() != self.folder.resolve():
            target.mkdir(exist_ok=True)
            for name in GPT2_FILES:
                shutil.copyfile(self.folder / name, target / name)
        self._write_spec(folder, folder="gpt2-bpe")


def _threads() -> int:
    import os

    return max(1, len(os.sched_getaffinity(0)))


# ---------------------------------------------------------------------- fit, save, load


def check_vocab_size(kind: str, vocab_size: int | None) -> None:
    """A vocabulary size is for the tokenizers that learn their vocabulary, and not too small."""
    if vocab_size is None:
        return
    if kind not in MIN_VOCAB:
        raise FromScratchError(
            f"vocab_size: tokenizer {kind!r} has a fixed vocabulary; only "
            f"{' and '.join(MIN_VOCAB)} take one"
        )
    if vocab_size < MIN_VOCAB[kind]:
        raise FromScratchError(
            f"vocab_size={vocab_size} is too small for {kind!r}: at least {MIN_VOCAB[kind]}"
        )


def fit(
    kind: str,
    train: Sequence[Text],
    others: Sequence[Text] = (),
    vocab_size: int | None = None,
    gpt2_folder: Path | None = None,
    separator: bool | None = None,
) -> Tokenizer:
    """Build a tokeniser of `kind` from the training texts (the others only decide `<unk>`);
    vocab_size: for words and bpe (see check_vocab_size), None for their default.
    separator: whether the tokenizer separates documents (default: `separates(train)`).
    Fitting on several splits, say whether one of them has several documents: a separator
    tells documents apart, not splits (Tiny Shakespeare's train and val are one text)."""
    separator = separates(train) if separator is None else separator
    if kind == "bytes":
        return ByteTokenizer(separator=separator)
    if kind == "chars":
        return CharTokenizer.fit(train, others, separator)
    if kind == "words":
        return WordTokenizer.fit(train, vocab_size or DEFAULT_VOCAB[kind], separator)
    if kind == "bpe":
        return BPETokenizer.fit(train, vocab_size or DEFAULT_VOCAB[kind], separator)
    if kind == "gpt2":
        if gpt2_folder is None:
            raise FromScratchError("tokenizer gpt2 needs the folder of encoder.json and vocab.bpe")
        return GPT2Tokenizer(gpt2_folder, separator)
    raise FromScratchError(f"unknown tokenizer {kind!r}; allowed: {', '.join(KINDS)}")


DEFAULT_VOCAB = {"words": 20_000, "bpe": 8_192}
# words: <pad>, <unk>, the separator and one word; bpe: the 256 bytes it starts from and
# <|endoftext|>
MIN_VOCAB = {"words": 4, "bpe": 257}


def fingerprint(tokenizer: Tokenizer, as_text: bool = False) -> str:
    """What every token id means, as a short hash: its kind, vocabulary size, the bytes
    each id stands for (a word's text for `words`) and which one separates documents. Two
    tokenizers with the same fingerprint read and write the same ids; a model keeps its
    training data's, to check the data it is later given.

    as_text: each id's decoded text instead, the fingerprint models kept before. In it a
    byte-level token that is no whole UTF-8 character reads as U+FFFD, so vocabularies
    that differ only in such tokens shared it; where every token is whole characters
    (`chars`, `words`) the two are the same."""
    digest = hashlib.sha256(f"{tokenizer.kind}\0{tokenizer.vocab_size}".encode())
    if tokenizer.eot is not None:  # (none: the fingerprint of the folders made before it)
        digest.update(f"\0separator {tokenizer.eot}".encode())
    if as_text or tokenizer.kind == "words":
        ids = range(tokenizer.vocab_size)
        pieces = (tokenizer.decode([i]).encode("utf-8", "surrogatepass") for i in ids)
    else:
        pieces = tokenizer.token_bytes()
    for piece in pieces:
        digest.update(b"\0" + piece)
    return digest.hexdigest()[:16]


def read_spec(folder: str | Path) -> dict:
    """The tokenizer.json of a prepared data folder; a file of that name written by anything
    else (a Hugging Face tokenizer's) fails in one line."""
    path = Path(folder) / FILE
    if not path.is_file():
        raise FromScratchError(f"{folder}: no {FILE} (not made by `fromscratch data prepare`)")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:  # not JSON, not UTF-8, unreadable
        raise FromScratchError(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise FromScratchError(
            f"{path}: not a tokenizer `fromscratch data prepare` wrote (no 'kind' of "
            f"{', '.join(KINDS)})"
        )
    return spec


def is_saved_in(folder: Path) -> bool:
    """Whether `folder` holds a tokenizer this project saved (a prepared data folder)."""
    try:
        read_spec(folder)
    except FromScratchError:
        return False
    return True


def load(folder: str | Path) -> Tokenizer:
    """The tokeniser saved in a prepared data folder."""
    folder = Path(folder)
    spec = read_spec(folder)
    try:
        return _from_spec(folder, spec)
    except (KeyError, OSError, ValueError, TypeError) as error:  # a file gone, a field wrong
        what = error.filename if isinstance(error, OSError) else error
        raise FromScratchError(
            f"{folder / FILE}: its {spec['kind']} tokenizer cannot be read ({what})"
        ) from None


def _from_spec(folder: Path, spec: dict) -> Tokenizer:
    kind = spec["kind"]
    # "eot" is missing from the folders prepared before there was a separator: their
    # models never read one (GPT-2's and BPE's vocabularies have the token all the same)
    separator = spec.get("eot", False)
    if kind == "bytes":
        return ByteTokenizer(separator)
    if kind == "chars":
        return CharTokenizer(spec["chars"], unk=spec["unk"], separator=separator)
    if kind == "words":
        return WordTokenizer(spec["words"])
    if kind == "bpe":
        from tokenizers import Tokenizer as HFTokenizer

        text = (folder / spec["file"]).read_text("utf-8")  # missing: an OSError
        try:
            return BPETokenizer(HFTokenizer.from_str(text), separator)
        except Exception as error:  # the library's bare Exception: a damaged file
            raise ValueError(str(error)) from None
    return GPT2Tokenizer(folder / spec["folder"], separator)  # gpt2: no other kind is left
