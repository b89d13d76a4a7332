"""`prepare`: one data set → a folder of token arrays that training reads at memory speed.

The folder (written atomically: it appears complete or not at all):

    meta.json              vocabulary size, tokenizer, dtype, per-split sizes, sources, config
    tokenizer.json (+ …)   the tokenizer, enough to decode any token of this folder
    SPLIT.bin              all tokens of the split, back to back (np.memmap-able, uint16/uint32)
    SPLIT.offsets.npy      int64, examples + 1 entries: example i is tokens[offsets[i]:offsets[i+1]]
    SPLIT.labels.npy       int64 labels (classification data sets only)

A language model reads a split as one stream, its documents back to back with the
tokenizer's separator between them (`PreparedData.stream`); a classifier reads examples
through the offsets. No Python lists of lists exist at training time.
"""

from __future__ import annotations

import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

import fromscratch
from fromscratch import FromScratchError
from fromscratch.data import tokenizers
from fromscratch.data.base import DataSet, Split
from fromscratch.data.download import default_mirror, fetch, provenance
from fromscratch.data.sets import DATASETS
from fromscratch.io import atomic_dir, check_replaceable, read_json, write_json

ENCODE_CHUNK = (
    2_000  # documents per batch call: big enough for Rust threads, small for a progress bar
)
# What marks a folder as an earlier prepared folder, which a new one may replace: a
# tokenizer.json that this project wrote (a Hugging Face model's folder has one too). Not
# meta.json: Snakemake deletes a rule's declared output (meta.json) before it reruns it.
MARKER = (tokenizers.FILE, tokenizers.is_saved_in)


def get_dataset(name: str) -> DataSet:
    if name not in DATASETS:
        raise FromScratchError(f"unknown data set {name!r}; allowed: {', '.join(DATASETS)}")
    return DATASETS[name]


def check_prepare_options(
    dataset: str,
    out: str | Path,
    tokenizer: str | None,
    tokenizer_from: str | Path | None,
    vocab_size: int | None,
    fit_on: str | None = None,
) -> None:
    """What `prepare` checks of its options before it reads anything: the data set, the
    tokenizer that fits it, a vocabulary size and the splits it is fitted on only for a
    tokenizer fitted here, and `out`: a new folder or an earlier output, never the folder
    the tokenizer comes from."""
    known = get_dataset(dataset)
    kind = tokenizer or known.default_tokenizer
    if tokenizer_from is not None:  # the tokenizer is that folder's, checked once it is there
        for option, value in (("vocab_size", vocab_size), ("fit_on", fit_on)):
            if value is not None:
                raise FromScratchError(f"{option}: the vocabulary comes from {tokenizer_from}")
        if Path(tokenizer_from).resolve() == Path(out).resolve():  # it would be replaced
            raise FromScratchError(
                f"out={out}: the folder the tokenizer comes from (tokenizer_from); give the "
                "new data a path of its own"
            )
    elif kind not in known.tokenizers:
        raise FromScratchError(
            f"tokenizer {kind!r} does not fit data set {dataset!r}; allowed: "
            f"{', '.join(known.tokenizers)}"
        )
    else:
        tokenizers.check_vocab_size(kind, vocab_size)
        if fit_on is not None and kind not in tokenizers.FITTED:
            raise FromScratchError(
                f"fit_on: tokenizer {kind!r} has a fixed vocabulary; only "
                f"{', '.join(tokenizers.FITTED)} learn one"
            )
        fitted_on(known, fit_on)
    check_replaceable(out, *MARKER)


def fitted_on(dataset: DataSet, fit_on: str | None) -> list[str]:
    """The splits whose texts a tokenizer is fitted on: the training split by default, or
    several joined by "+" (train+val: a final run that trains on both has its vocabulary
    from both, as a run that holds val out has it from train alone)."""
    parts = (dataset.splits[0] if fit_on is None else fit_on).split("+")
    for part in parts:
        if part not in dataset.splits:
            raise FromScratchError(
                f"fit_on={fit_on!r}: {dataset.name} has no split {part!r}; it has: "
                f"{', '.join(dataset.splits)}"
            )
    if len(set(parts)) < len(parts):
        raise FromScratchError(f"fit_on={fit_on!r}: a split named twice")
    return [split for split in dataset.splits if split in parts]  # val+train is train+val


def vocabulary_fitted_on(meta: dict) -> str | None:
    """The splits a prepared folder's vocabulary was learned from ("train+val"), from its
    meta.json; None where it learned none from them (a fixed vocabulary, or one borrowed
    from a folder of other splits)."""
    config = meta["config"]
    if "fit_on" in config:
        return config["fit_on"]
    # prepared before fit_on was recorded: a vocabulary fitted here learned from train
    if config.get("tokenizer_from") or meta["tokenizer"] not in tokenizers.FITTED:
        return None
    return next(iter(meta["splits"]))


def borrowed_fit_on(folder: str | Path, dataset: DataSet, seed: int) -> str | None:
    """The splits the vocabulary borrowed from `folder` was learned from, where they are
    this data's splits (the same data set, version and seed: an augmented copy); None for
    any other folder."""
    source = Path(folder) / "meta.json"
    if not source.is_file():  # a tokenizer.json alone
        return None
    meta = read_json(source)
    same = (meta["dataset"], meta.get("dataset_version", 1), meta["config"]["seed"])
    return vocabulary_fitted_on(meta) if same == (dataset.name, dataset.version, seed) else None


def prepare(
    name: str,
    out: str | Path,
    mirror: str | None = None,
    tokenizer: str | None = None,
    tokenizer_from: str | Path | None = None,
    vocab_size: int | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    fit_on: str | None = None,
) -> dict:
    """Download (or find in the cache), verify, read, tokenise and write data set `name`.

    `tokenizer_from` reuses the tokenizer of another prepared folder: an out-of-domain test
    set must be encoded with the vocabulary of the model's training data. `fit_on` names
    the splits a tokenizer fitted here learns its vocabulary from (default: the training
    split; see `fitted_on`).
    """
    # bad settings and a bad output path fail before any download
    check_prepare_options(name, out, tokenizer, tokenizer_from, vocab_size, fit_on)
    dataset = get_dataset(name)
    mirror = mirror or default_mirror()
    kind = tokenizer or dataset.default_tokenizer
    if tokenizer_from is not None:
        lender = Path(tokenizer_from) / "meta.json"  # absent: a tokenizer.json alone
        if lender.is_file():
            check_current_version(Path(tokenizer_from), read_json(lender))
        tok = tokenizers.load(tokenizer_from)
        if tokenizer not in (None, tok.kind):
            raise FromScratchError(
                f"tokenizer={tokenizer!r}: the tokenizer comes from {tokenizer_from}, "
                f"which uses {tok.kind!r}"
            )
        if tok.kind not in dataset.tokenizers:
            raise FromScratchError(
                f"tokenizer_from {tokenizer_from}: its tokenizer {tok.kind!r} does not fit "
                f"data set {name!r}; allowed: {', '.join(dataset.tokenizers)}"
            )
        learned_from = borrowed_fit_on(tokenizer_from, dataset, seed)

    splits = read_texts(name, mirror, cache_dir, seed, progress)
    empty = [part for part, split in splits.items() if not any(split.texts)]
    if empty:  # a source that holds nothing (its checksum vouches only for what is there)
        which = f"splits {', '.join(empty)} have" if len(empty) > 1 else f"split {empty[0]} has"
        raise FromScratchError(f"{name}: {which} no text; its source is empty: download it again")

    if tokenizer_from is None:
        gpt2_folder = None
        if kind == "gpt2":
            bpe = [fetch(s, cache_dir, mirror, progress) for s in tokenizers.GPT2_SOURCES.values()]
            gpt2_folder = bpe[0].parent
        fitted = fitted_on(dataset, fit_on)
        texts = [t for part in fitted for t in splits[part].texts]
        others = [t for part, s in splits.items() if part not in fitted for t in s.texts]
        separator = any(tokenizers.separates(splits[part].texts) for part in fitted)
        tok = tokenizers.fit(kind, texts, others, vocab_size, gpt2_folder, separator)
        learned_from = "+".join(fitted) if kind in tokenizers.FITTED else None
    dtype = token_dtype(tok.vocab_size)
    sources = dict(dataset.sources)
    if kind == "gpt2" and tokenizer_from is None:  # its vocabulary is data too
        sources |= {f"gpt2 {key}": source for key, source in tokenizers.GPT2_SOURCES.items()}

    meta = {
        "dataset": dataset.name,
        "dataset_version": dataset.version,
        "task": dataset.task,
        "description": dataset.description,
        "labels": list(dataset.labels),
        "tokenizer": tok.kind,
        "lossless": tok.lossless,
        "vocab_size": tok.vocab_size,
        "dtype": np.dtype(dtype).name,
        "splits": {},
        "sources": {
            key: provenance(source, cache_dir) | {"url": source.url}
            for key, source in sources.items()
        },
        "config": {
            "tokenizer": kind if tokenizer_from is None else tok.kind,
            "tokenizer_from": str(tokenizer_from) if tokenizer_from else None,
            "vocab_size": vocab_size,
            "fit_on": learned_from,
            "seed": seed,
        },
        "fromscratch_version": fromscratch.__version__,
    }
    with atomic_dir(out, *MARKER) as folder:
        tok.save(folder)
        for split_name, split in splits.items():
            try:
                meta["splits"][split_name] = write_split(
                    folder, split_name, split, tok, dtype, progress
                )
            except FromScratchError as error:  # a text the tokenizer cannot encode: whose
                whose = f"the tokenizer of {tokenizer_from}" if tokenizer_from else tok.kind
                raise FromScratchError(f"{name} {split_name} with {whose}: {error}") from None
        write_json(folder / "meta.json", meta)
    return meta


def token_dtype(vocab_size: int) -> type:
    """The narrowest unsigned type that holds every token id, 0 .. vocab_size - 1 (half the
    disk and memory of uint32 for every vocabulary but the largest word lists)."""
    return np.uint16 if vocab_size <= 1 << 16 else np.uint32


def read_texts(
    name: str,
    mirror: str | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Split]:
    """The splits of data set `name` as text (downloaded or found in the cache, verified)."""
    dataset = get_dataset(name)
    mirror = mirror or default_mirror()
    files = {key: fetch(s, cache_dir, mirror, progress) for key, s in dataset.sources.items()}
    return _read(dataset, files, seed)


def _read(dataset: DataSet, files: dict[str, Path], seed: int) -> dict[str, Split]:
    where = ", ".join(str(p) for p in files.values())
    try:
        splits = dataset.read(files, seed)
    except (
        tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, KeyError,
        UnicodeDecodeError, OSError,  # text that is no UTF-8, a gzip stream that is no gzip
    ) as e:  # fmt: skip
        raise FromScratchError(f"corrupt or truncated download {where}: {e}") from e
    if empty := [name for name, split in splits.items() if not split.texts]:
        raise FromScratchError(f"no texts in split(s) {', '.join(empty)} of {where}")
    return splits


def write_split(folder: Path, name: str, split: Split, tok, dtype, progress: bool = False) -> dict:
    """Tokenise `split` into folder/NAME.bin, .offsets.npy (and .labels.npy); its sizes."""
    pieces = []
    with tqdm(
        total=len(split.texts),
        desc=f"tokenise {name}",
        unit="doc",
        disable=not progress,
        leave=False,
    ) as bar:
        for start in range(0, len(split.texts), ENCODE_CHUNK):
            chunk = split.texts[start : start + ENCODE_CHUNK]
            pieces += tok.encode_batch(chunk)
            bar.update(len(chunk))
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.concatenate(pieces).astype(dtype, copy=False) if pieces else np.zeros(0, dtype)
    tokens.tofile(folder / f"{name}.bin")
    np.save(folder / f"{name}.offsets.npy", offsets)
    info = {
        "examples": len(pieces),
        "tokens": int(offsets[-1]),
        "bytes": sum(
            len(t) if isinstance(t, bytes) else len(t.encode("utf-8")) for t in split.texts
        ),
        "characters": sum(len(t) for t in split.texts),
    }
    if split.labels is not None:
        labels = np.asarray(split.labels, dtype=np.int64)
        np.save(folder / f"{name}.labels.npy", labels)
        info["label_counts"] = np.bincount(labels).tolist()
    return info


def check_current_version(folder: Path, meta: dict) -> None:
    """Refuse a folder prepared from an earlier version of its data set (its splits are
    other examples now), wherever it is read: as data, or lending its tokenizer."""
    dataset = DATASETS.get(meta["dataset"])
    version = meta.get("dataset_version", 1)  # folders from before versions: 1
    if dataset and version != dataset.version:
        raise FromScratchError(
            f"{folder} was prepared from version {version} of {dataset.name}, whose "
            f"splits have changed since (version {dataset.version}): prepare it again "
            f"(in the pipeline, snakemake --forcerun {folder / 'meta.json'})"
        )


@dataclass
class PreparedData:
    """Read access to a prepared folder: token streams, examples, labels, the tokenizer."""

    folder: Path

    def __post_init__(self):
        self.folder = Path(self.folder)
        if not (self.folder / "meta.json").is_file():
            raise FromScratchError(
                f"{self.folder} is not a prepared data folder (no meta.json); make one with "
                f"`fromscratch data prepare DATASET --out {self.folder}` (a relative path is "
                "from the current folder)"
            )
        try:
            self.meta = read_json(self.folder / "meta.json")
        except (OSError, ValueError) as error:  # cut short, or written by something else
            raise self._damaged("meta.json", f"not JSON ({error})") from None
        if not isinstance(self.meta, dict) or not {"splits", "dtype"} <= set(self.meta):
            raise self._damaged("meta.json", "not the meta.json of a prepared folder")
        self._streams: dict[str, np.ndarray] = {}
        check_current_version(self.folder, self.meta)

    def _damaged(self, name: str, what: str) -> FromScratchError:
        """A one-line error for a file of the folder that is not as `prepare` wrote it."""
        return FromScratchError(
            f"{self.folder / name}: {what}; the folder is damaged, prepare it again (in the "
            f"pipeline, snakemake --forcerun {self.folder / 'meta.json'})"
        )

    def _array(self, split: str, kind: str, length: int, mmap_mode: str | None) -> np.ndarray:
        """The split's `kind` (offsets, labels) array, checked to hold `length` entries."""
        name = f"{split}.{kind}.npy"
        try:
            array = np.load(self.folder / name, mmap_mode=mmap_mode)
        except (OSError, ValueError, EOFError) as error:
            what = "missing" if not (self.folder / name).is_file() else f"unreadable ({error})"
            raise self._damaged(name, what) from None
        if array.ndim != 1 or len(array) != length:
            raise self._damaged(name, f"{array.size} entries where meta.json says {length}")
        return array

    @property
    def splits(self) -> list[str]:
        return list(self.meta["splits"])

    @property
    def fit_on(self) -> str | None:
        """The splits the vocabulary was learned from (see `vocabulary_fitted_on`)."""
        return vocabulary_fitted_on(self.meta)

    def check_split(self, split: str) -> None:
        """A one-line error unless the folder has `split`: one split, or several joined by
        "+" (train+val, a final run's training data once the choices made on val are made:
        their examples one after the other)."""
        for part in split.split("+"):
            if part not in self.meta["splits"]:
                raise FromScratchError(
                    f"{self.folder} has no split {part!r}; it has: {', '.join(self.splits)}"
                )

    def _joined(self, split: str) -> list[str] | None:
        """The splits a "+"-joined `split` names (None for one split), checked."""
        if "+" not in split:
            return None
        self.check_split(split)
        return split.split("+")

    def tokens(self, split: str) -> np.ndarray:
        """All tokens of `split` as one read-only memmap (a copy for joined splits)."""
        if parts := self._joined(split):
            return np.concatenate([self.tokens(part) for part in parts])
        self.check_split(split)
        path = self.folder / f"{split}.bin"
        expected, dtype = self.meta["splits"][split]["tokens"], np.dtype(self.meta["dtype"])
        size = path.stat().st_size if path.is_file() else None
        if size != expected * dtype.itemsize:
            what = "missing" if size is None else f"{size} bytes"
            raise self._damaged(
                path.name,
                f"{what}, where meta.json's {expected} tokens take {expected * dtype.itemsize}",
            )
        if expected == 0:
            return np.zeros(0, dtype=dtype)
        return np.memmap(path, dtype=dtype, mode="r")

    def stream(self, split: str, examples: np.ndarray | None = None) -> np.ndarray:
        """What a language model reads of `split`: its documents (all, or those numbered in
        `examples`) back to back, the tokenizer's separator between two of them where it
        has one (see tokenizers). One document, a book, is the memmap of `tokens`."""
        tokens, offsets = self.tokens(split), self.offsets(split)
        eot = self.tokenizer.eot
        if examples is None:
            if eot is None or len(offsets) <= 2:
                return tokens
            if split not in self._streams:  # a copy, made once: evaluations come back to it
                self._streams[split] = np.insert(tokens, offsets[1:-1], eot)
                self._streams[split].flags.writeable = False  # read-only, as the memmap
            return self._streams[split]
        pieces = [tokens[offsets[i] : offsets[i + 1]] for i in examples]
        if eot is not None:
            separator = np.array([eot], dtype=tokens.dtype)
            pieces[1:] = [p for piece in pieces[1:] for p in (separator, piece)]
        return np.concatenate(pieces)

    def examples(self, split: str) -> int:
        """How many examples (documents) `split` has."""
        self.check_split(split)
        return sum(self.meta["splits"][part]["examples"] for part in split.split("+"))

    def stream_length(self, split: str) -> int:
        """len(stream(split)), from meta.json, without making the stream."""
        self.check_split(split)
        tokens = sum(self.meta["splits"][part]["tokens"] for part in split.split("+"))
        separators = 0 if self.tokenizer.eot is None else max(0, self.examples(split) - 1)
        return tokens + separators

    def offsets(self, split: str) -> np.ndarray:
        """Where each example starts in `tokens(split)`, and where the last one ends."""
        if parts := self._joined(split):
            pieces = [self.offsets(part) for part in parts]
            starts = np.cumsum([0] + [piece[-1] for piece in pieces[:-1]])
            return np.concatenate([[0]] + [p[1:] + s for p, s in zip(pieces, starts, strict=True)])
        self.check_split(split)
        offsets = self._array(split, "offsets", self.examples(split) + 1, mmap_mode="r")
        if offsets[-1] != self.meta["splits"][split]["tokens"]:
            raise self._damaged(f"{split}.offsets.npy", "its last offset is not the token count")
        return offsets

    def labels(self, split: str) -> np.ndarray:
        if parts := self._joined(split):
            return np.concatenate([self.labels(part) for part in parts])
        self.check_split(split)
        return self._array(split, "labels", self.examples(split), mmap_mode=None)

    def example(self, split: str, i: int) -> np.ndarray:
        offsets = self.offsets(split)
        return self.tokens(split)[offsets[i] : offsets[i + 1]]

    @cached_property
    def tokenizer(self) -> tokenizers.Tokenizer:
        return tokenizers.load(self.folder)
