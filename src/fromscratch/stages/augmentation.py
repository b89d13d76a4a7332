"""Stage of the augmentation study: a prepared data folder whose training split is augmented.

The folder is the base folder (the data the model would train on without augmentation)
with its training split replaced by the original reviews plus `copies` augmented copies
of each, encoded with the base folder's tokenizer.  The originals are all the training
reviews, or `reviews` of them, drawn at random but alike for every strategy: a study
short of data, where a model sees each review several times and augmentation can vary
what it sees (with more reviews than a run reaches, every augmented copy stands in for a
real review the run would have read instead). Its other splits and tokenizer are the
base folder's own files (hard links where the file system allows), so the `train` stage
trains on it unchanged and evaluates on the same test split.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fromscratch import FromScratchError


def check_augment_options(
    base: str, out: str, strategy: str, rate: float, copies: int, reviews: int
) -> None:
    """What `augment` checks of its settings before it reads anything: the strategy, rate,
    copies and number of reviews (0: all), and `out`: a new folder or an earlier output,
    never the base itself."""
    from fromscratch.config import check_integer
    from fromscratch.data.augment import check_settings
    from fromscratch.data.prepare import MARKER
    from fromscratch.io import check_replaceable

    check_settings(strategy, rate, copies)
    check_integer("augment", "reviews", reviews, 0)
    if Path(out).resolve() == Path(base).resolve():
        raise FromScratchError(
            f"out={out}: the base folder itself; give the copy a path of its own"
        )
    check_replaceable(out, *MARKER)


def check_augment_base(base: str) -> None:
    """The base folder `augment` copies holds a prepared set of labelled reviews."""
    from fromscratch.data import PreparedData
    from fromscratch.data.sets import DATASETS

    dataset = PreparedData(base).meta["dataset"]
    if DATASETS[dataset].task != "classification":  # a book, or bytes: no reviews to vary
        reviews = [name for name, known in DATASETS.items() if known.task == "classification"]
        raise FromScratchError(
            f"base {base}: data set {dataset!r} is no set of reviews to augment; "
            f"allowed: {', '.join(reviews)}"
        )


def augment_stage(
    base: str,
    out: str,
    strategy: str,
    rate: float,
    copies: int = 1,
    seed: int = 0,
    reviews: int = 0,
    mirror: str = "",
) -> dict:
    import numpy as np

    from fromscratch.data import PreparedData, Split
    from fromscratch.data.augment import MarkedUnknowns, augment_split
    from fromscratch.data.prepare import MARKER, read_texts, write_split
    from fromscratch.io import atomic_dir, write_json

    check_augment_options(base, out, strategy, rate, copies, reviews)  # before texts are read
    check_augment_base(base)
    data = PreparedData(base)
    meta = data.meta
    # The prepared folder holds token ids only (lower-cased, <unk>s): augment the raw texts.
    texts = read_texts(meta["dataset"], mirror or None, seed=meta["config"]["seed"])
    train_split = data.splits[0]  # the first split is the training split
    train = texts[train_split]
    originals = train.texts
    labels = train.labels if train.labels is not None else [0] * len(originals)
    if reviews:
        if reviews > len(originals):
            raise FromScratchError(
                f"augment: reviews={reviews}, but the {train_split} split of {base} has "
                f"{len(originals)}; give at most that many, or 0 for all"
            )
        # the seed's draw, in the split's order: every strategy augments the same reviews
        kept = np.sort(np.random.default_rng(seed).permutation(len(originals))[:reviews])
        originals, labels = [originals[i] for i in kept], [labels[i] for i in kept]
    augmented, augmented_labels = augment_split(originals, labels, strategy, rate, copies, seed)
    tokenizer = MarkedUnknowns(data.tokenizer) if strategy == "unk" else data.tokenizer
    with atomic_dir(out, *MARKER) as folder:
        for path in Path(base).iterdir():
            if path.name == "meta.json" or path.name.startswith(f"{train_split}."):
                continue
            _link_or_copy(path, folder / path.name)
        meta["splits"][train_split] = write_split(
            folder,
            train_split,
            Split(augmented, augmented_labels if train.labels is not None else None),
            tokenizer,
            np.dtype(meta["dtype"]),
        )
        meta["augmentation"] = {
            "base": str(base),
            "strategy": strategy,
            "rate": rate,
            "copies": copies,
            "seed": seed,
            "reviews": len(originals),
        }
        write_json(folder / "meta.json", meta)
    return {"examples": len(augmented), "tokens": meta["splits"][train_split]["tokens"]}


def _link_or_copy(source: Path, target: Path) -> None:
    """A prepared file is never changed in place (it is replaced whole), so a hard link is
    as good as a copy and costs no disk."""
    if source.is_dir():
        shutil.copytree(source, target)
        return
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
