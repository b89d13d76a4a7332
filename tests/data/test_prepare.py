"""`fromscratch data prepare` on every data set, through the command users run."""

import gzip
import hashlib
import json
import os
import random
import re
import shutil
import stat
import sys
import tarfile

import numpy as np
import pytest
import yaml

from fromscratch import FromScratchError
from fromscratch.cli import main
from fromscratch.data import DATASETS, PreparedData, tokenizers
from fromscratch.data.prepare import (
    borrowed_fit_on,
    check_prepare_options,
    read_texts,
    token_dtype,
    vocabulary_fitted_on,
)
from fromscratch.data.sets import demo, imdb, pang_lee_sentences

from ..conftest import FileServer, tiny_classifier
from .fixtures import (
    ENWIK8,
    IMDB,
    REVIEWS,
    SENTENCES,
    SHAKESPEARE,
    _zip,
    make_mirror,
    write_sums,
)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory, request):
    try:
        real = request.getfixturevalue("shared_mirror")
    except pytest.skip.Exception:
        real = None
    return make_mirror(tmp_path_factory.mktemp("mirror"), gpt2_from=real)


def prepare(capsys, name, out, *args):
    code = main(["data", "prepare", name, "--out", str(out), "--quiet", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def texts(data: PreparedData, split: str) -> list[str]:
    n = data.meta["splits"][split]["examples"]
    return [data.tokenizer.decode(data.example(split, i)) for i in range(n)]


def test_registry_has_every_data_set():
    assert set(DATASETS) == {
        "imdb",
        "enwik8",
        "shakespeare",
        "pang-lee-reviews",
        "pang-lee-sentences",
        "demo",
    }


def test_token_ids_are_stored_in_a_type_that_holds_the_largest():
    for vocab_size in (256, 1 << 16, (1 << 16) + 1, 100_000):
        dtype = token_dtype(vocab_size)
        largest = np.array([vocab_size - 1]).astype(dtype)  # wraps if the type is too small
        assert int(largest[0]) == vocab_size - 1, vocab_size
    assert token_dtype(1 << 16) == np.uint16  # the narrow one where it holds them


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_each_data_set_reads_the_splits_it_declares(mirror, tmp_path, name):
    # the workflow checks a config's split names against the declared ones
    splits = read_texts(name, mirror=str(mirror), cache_dir=tmp_path)
    assert tuple(splits) == DATASETS[name].splits


@pytest.mark.parametrize("tokenizer", ["bytes", "chars", "bpe", "gpt2"])
def test_imdb_round_trips_with_every_lossless_tokenizer(mirror, tmp_path, capsys, tokenizer):
    if tokenizer == "gpt2" and not (mirror / "gpt2-bpe").exists():
        pytest.skip("GPT-2's BPE files need the data mirror")
    out = tmp_path / "imdb"
    args = ["--mirror", str(mirror), "--cache", str(tmp_path / "cache"), "--tokenizer", tokenizer]
    if tokenizer == "bpe":
        args += ["--vocab-size", "300"]
    code, stdout, err = prepare(capsys, "imdb", out, *args)
    assert code == 0, err
    data = PreparedData(out)
    meta = data.meta
    assert meta["tokenizer"] == tokenizer and meta["task"] == "classification"
    fixed = tokenizer in ("bytes", "gpt2")  # a vocabulary learned from no split
    assert meta["config"]["fit_on"] == data.fit_on == (None if fixed else "train")
    originals = {  # split → [(label, id, text)] in the order prepared: label, then id
        split: sorted(
            (int(label == "pos"), review_id, text.replace("<br />", "\n"))
            for label, reviews in IMDB[split].items()
            for review_id, _, text in reviews
        )
        for split in IMDB
    }
    seen = set("".join(texts(data, "train")))

    def as_read(text):  # chars: characters unseen in training come back as <unk>
        return "".join(c if c in seen or tokenizer != "chars" else "<unk>" for c in text)

    # validation: one training review of each label (a fifth), drawn; training: the rest
    val = set(zip(data.labels("val").tolist(), texts(data, "val"), strict=True))
    drawn = [(label, as_read(text)) in val for label, _, text in originals["train"]]
    expected = {
        "train": [r for r, in_val in zip(originals["train"], drawn, strict=True) if not in_val],
        "val": [r for r, in_val in zip(originals["train"], drawn, strict=True) if in_val],
        "test": originals["test"],
    }
    assert sorted(label for label, _, _ in expected["val"]) == [0, 1]
    if tokenizer == "chars":
        assert any(set(text) - seen for _, _, text in expected["test"])  # so some are <unk>
    for split, reviews in expected.items():
        assert texts(data, split) == [as_read(text) for _, _, text in reviews]
        assert data.labels(split).tolist() == [label for label, _, _ in reviews]
        info = meta["splits"][split]
        assert info["examples"] == len(reviews)
        assert info["tokens"] == len(data.tokens(split)) == data.offsets(split)[-1]
        assert info["bytes"] == sum(len(text.encode()) for _, _, text in reviews)
    assert data.tokens("train").dtype == np.uint16
    assert f"{meta['vocab_size']:,}" in stdout
    assert meta["lossless"] is (tokenizer != "chars")  # chars: <unk> gives back no text


def test_imdb_validation_is_a_seeded_draw_of_each_labels_training_reviews():
    reviews = [(label, i, f"review {i} of label {label}") for label in (0, 1) for i in range(50)]
    reviews += [(1, 50 + i, "a review posted twice") for i in range(2)]  # IMDb has such
    reviews += [(0, 50 + i, "a review posted thrice") for i in range(3)]
    reviews.sort()
    draws = {}
    for seed in (0, 0, *range(1, 8)):
        train, val = imdb.split_off_validation(reviews, random.Random(seed))
        assert sorted(train + val) == reviews and train == sorted(train) and val == sorted(val)
        labels = [label for label, _, _ in val]
        assert (labels.count(0), labels.count(1)) == (11, 10)  # a fifth of 53 and of 52
        assert not {text for _, _, text in train} & {text for _, _, text in val}  # copies
        draws.setdefault(seed, []).append(val)
    assert draws[0][0] == draws[0][1] != draws[1][0]
    # some draws take a group of copies into val (all of it, as checked above)
    drawn = [text for vals in draws.values() for val in vals for _, _, text in val]
    assert "a review posted twice" in drawn and "a review posted thrice" in drawn


def test_the_prepare_seed_draws_imdbs_validation_split(mirror):
    def val(seed):
        return imdb.read({"archive": mirror / "aclImdb_v1.tar.gz"}, seed)["val"].texts

    assert val(0) == val(0) != val(1)


def test_imdb_words_pads_and_unknowns(mirror, tmp_path, capsys):
    out = tmp_path / "imdb"
    code, _, err = prepare(
        capsys,
        "imdb",
        out,
        "--mirror",
        str(mirror),
        "--cache",
        str(tmp_path / "c"),
        "--tokenizer",
        "words",
    )
    assert code == 0, err
    data = PreparedData(out)
    tok = data.tokenizer
    assert tok.words[:2] == ["<pad>", "<unk>"]
    assert tok.decode(tok.encode("A GREAT film .")) == "a great film ."
    assert tok.encode("zyzzyva").tolist() == [1]  # unseen in training


def test_a_final_runs_vocabulary_is_fitted_on_the_splits_it_trains_on(mirror, tmp_path, capsys):
    splits = read_texts("imdb", str(mirror), tmp_path / "c")
    args = ["--mirror", str(mirror), "--cache", str(tmp_path / "c"), "--tokenizer", "words"]
    fitted = {}
    for fit_on in ("train", "train+val"):
        out = tmp_path / fit_on
        code, _, err = prepare(capsys, "imdb", out, *args, "--fit-on", fit_on)
        assert code == 0, err
        data = PreparedData(out)
        assert data.meta["config"]["fit_on"] == fit_on
        texts = [t for part in fit_on.split("+") for t in splits[part].texts]
        assert data.tokenizer.words == tokenizers.fit("words", texts).words
        fitted[fit_on] = set(data.tokenizer.words)
    assert fitted["train"] < fitted["train+val"]  # val's own words are no longer <unk>
    # the same splits with the final folder's vocabulary keep its fit; a val drawn with
    # another seed, or another data set, do not
    from_final = ["--mirror", str(mirror), "--cache", str(tmp_path / "c"),
                  "--tokenizer-from", str(tmp_path / "train+val")]  # fmt: skip
    for name, seed, kept in (("imdb", 0, "train+val"), ("imdb", 1, None),
                             ("pang-lee-reviews", 0, None)):  # fmt: skip
        out = tmp_path / f"{name}-{seed}"
        code, _, err = prepare(capsys, name, out, *from_final, "--seed", str(seed))
        assert code == 0, err
        assert PreparedData(out).fit_on == kept
    code, _, err = prepare(capsys, "imdb", tmp_path / "default", *args)
    assert code == 0, err
    assert PreparedData(tmp_path / "default").meta["config"]["fit_on"] == "train"


@pytest.mark.parametrize("tokenizer", ["chars", "bytes", "bpe", "gpt2"])
def test_a_text_cut_into_splits_fitted_on_two_of_them_is_still_one_text(
    mirror, tmp_path, capsys, tokenizer
):
    """Tiny Shakespeare's train and val are one text: fitted on both, its tokenizer gets
    no separator, and train+val reads as the text itself, with no separator at the cut."""
    if tokenizer == "gpt2" and not (mirror / "gpt2-bpe").exists():
        pytest.skip("GPT-2's BPE files need the data mirror")
    out = tmp_path / "shakespeare"
    args = ["--mirror", str(mirror), "--cache", str(tmp_path / "c"), "--tokenizer", tokenizer]
    fitted = tokenizer in ("chars", "bpe")  # bytes and gpt2: a vocabulary of no split's
    args += ["--fit-on", "val+train"] * fitted + ["--vocab-size", "300"] * (tokenizer == "bpe")
    code, _, err = prepare(capsys, "shakespeare", out, *args)
    assert code == 0, err
    data = PreparedData(out)
    if fitted:
        assert data.fit_on == "train+val"  # in the data set's order, whatever the order given
    assert data.tokenizer.eot is None
    if tokenizer == "chars":
        assert data.meta["vocab_size"] == len(set(SHAKESPEARE))
    stream = data.stream("train+val")
    assert len(stream) == data.stream_length("train+val") == len(data.tokens("train+val"))
    assert data.tokenizer.decode(stream) == SHAKESPEARE


def test_a_folder_from_before_fit_on_was_recorded_was_fitted_on_its_training_split(
    demo_words, demo_chars
):
    for folder in (demo_words, demo_chars):
        meta = PreparedData(folder).meta
        assert meta["config"].pop("fit_on") == "train"
        assert vocabulary_fitted_on(meta) == "train"
    assert vocabulary_fitted_on(meta | {"tokenizer": "bytes"}) is None  # nothing to fit
    borrowed = meta | {"config": {**meta["config"], "tokenizer_from": "elsewhere"}}
    assert vocabulary_fitted_on(borrowed) is None


def emptied(path):
    path.write_bytes(b"")


def cut_short(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("name", "damage", "what"),
    [
        ("meta.json", emptied, "not JSON"),
        ("meta.json", lambda path: path.write_text("[]"), r"not the meta.json of a prepared"),
        ("train.bin", emptied, "0 bytes, where meta.json's"),
        ("train.bin", cut_short, r"\d+ bytes, where meta.json's \d+ tokens take \d+"),
        ("test.bin", os.remove, "missing, where meta.json's"),
        ("train.offsets.npy", os.remove, "missing"),
        ("train.offsets.npy", emptied, "unreadable"),
        ("train.labels.npy", lambda path: np.save(path, np.zeros(3, np.int64)), "3 entries"),
    ],
)
def test_a_damaged_prepared_folder_is_a_one_line_error_naming_the_file(
    demo_words, tmp_path, capsys, name, damage, what
):
    """A file of the folder cut short, emptied, removed or replaced is named, with what is
    wrong with it, before a training or an evaluation reads nonsense from it."""
    folder = tmp_path / "words"
    shutil.copytree(demo_words, folder)
    damage(folder / name)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_classifier(folder, eval_splits="test", max_steps=1)))
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(f"{folder / name}: {what}", err), err
    assert "the folder is damaged, prepare it again" in err


def test_a_folder_prepared_from_an_earlier_version_of_its_data_set_is_refused(
    mirror, tmp_path, capsys
):
    out = tmp_path / "imdb"
    main(["data", "prepare", "imdb", "--out", str(out), "--mirror", str(mirror), "--quiet",
          "--cache", str(tmp_path / "c")])  # fmt: skip
    assert PreparedData(out).meta["dataset_version"] == imdb.DATASET.version == 2
    meta = json.loads((out / "meta.json").read_text())
    del meta["dataset_version"]  # as prepared before IMDb had a validation split
    del meta["splits"]["val"]
    (out / "meta.json").write_text(json.dumps(meta))
    message = (
        f"{out} was prepared from version 1 of imdb, whose splits have changed since "
        f"(version 2): prepare it again (in the pipeline, snakemake --forcerun "
        f"{out}/meta.json)"
    )
    with pytest.raises(FromScratchError) as caught:
        PreparedData(out)
    assert str(caught.value) == message
    # lending its vocabulary to an out-of-domain set too, before any download
    ood = tmp_path / "ood"
    args = ["--mirror", str(mirror), "--cache", str(tmp_path / "c"), "--tokenizer-from", str(out)]
    code, _, err = prepare(capsys, "pang-lee-sentences", ood, *args)
    assert (code, err) == (1, f"fromscratch: error: {message}\n")
    assert not ood.exists()


def test_joined_splits_are_their_examples_one_after_the_other(demo_words, demo_chars):
    for data in PreparedData(demo_words), PreparedData(demo_chars):
        each = [[data.example(split, i).tolist() for i in range(data.examples(split))]
                for split in ("train", "ood")]  # fmt: skip
        joined = "train+ood"
        assert [data.example(joined, i).tolist() for i in range(data.examples(joined))] == (
            each[0] + each[1]
        )
        assert data.labels(joined).tolist() == [*data.labels("train"), *data.labels("ood")]
        assert data.stream_length(joined) == len(data.stream(joined))
        assert data.tokens(joined).tolist() == [*data.tokens("train"), *data.tokens("ood")]
        with pytest.raises(FromScratchError, match="has no split 'val'; it has: train, test"):
            data.check_split("train+val")


def test_shakespeare_is_split_90_10_in_characters(mirror, tmp_path, capsys):
    out = tmp_path / "shakespeare"
    code, _, err = prepare(
        capsys, "shakespeare", out, "--mirror", str(mirror), "--cache", str(tmp_path / "c")
    )
    assert code == 0, err
    data = PreparedData(out)
    cut = int(len(SHAKESPEARE) * 0.9)
    assert data.meta["tokenizer"] == "chars"
    assert data.meta["vocab_size"] == len(set(SHAKESPEARE[:cut]))
    assert data.tokenizer.decode(data.tokens("train")) == SHAKESPEARE[:cut]
    assert data.tokenizer.decode(data.tokens("val")) == SHAKESPEARE[cut:]
    # one document, a book: no separator in its vocabulary, and its stream is its file
    assert data.tokenizer.eot is None and isinstance(data.stream("val"), np.memmap)
    assert data.stream_length("val") == len(data.stream("val"))


def test_a_language_model_reads_a_separator_between_two_documents(tmp_path, capsys):
    """Two reviews back to back would read as one text that changes its mind halfway."""
    code, _, err = prepare(capsys, "demo", tmp_path / "demo", "--tokenizer", "chars")
    assert code == 0, err
    data = PreparedData(tmp_path / "demo")
    tokens, offsets, eot = data.tokens("test"), data.offsets("test"), data.tokenizer.eot
    stream = data.stream("test")
    separators = offsets[1:-1] + np.arange(len(offsets) - 2)  # each after its document
    assert np.flatnonzero(stream == eot).tolist() == separators.tolist()
    np.testing.assert_array_equal(np.delete(stream, separators), tokens)
    assert stream.dtype == tokens.dtype and not stream.flags.writeable
    assert data.stream("test") is stream  # made once
    assert data.stream_length("test") == len(stream)  # known without it
    picked = data.stream("test", np.array([3, 1]))
    assert picked.tolist() == [*data.example("test", 3), eot, *data.example("test", 1)]


def test_enwik8_is_bytes_split_90_5_5(mirror, tmp_path, capsys):
    out = tmp_path / "enwik8"
    code, _, err = prepare(
        capsys, "enwik8", out, "--mirror", str(mirror), "--cache", str(tmp_path / "c")
    )
    assert code == 0, err
    data = PreparedData(out)
    a, b = int(len(ENWIK8) * 0.9), int(len(ENWIK8) * 0.95)
    for split, part in (("train", ENWIK8[:a]), ("val", ENWIK8[a:b]), ("test", ENWIK8[b:])):
        assert bytes(data.tokens(split).astype(np.uint8)) == part
    code, _, err = prepare(
        capsys,
        "enwik8",
        tmp_path / "x",
        "--mirror",
        str(mirror),
        "--cache",
        str(tmp_path / "c"),
        "--tokenizer",
        "words",
    )
    assert code == 1 and "allowed: bytes" in err


def test_pang_lee_sets_with_the_imdb_vocabulary(mirror, tmp_path, capsys):
    common = ["--mirror", str(mirror), "--cache", str(tmp_path / "c")]
    assert prepare(capsys, "imdb", tmp_path / "imdb", *common)[0] == 0
    for name, source in (("pang-lee-reviews", REVIEWS), ("pang-lee-sentences", SENTENCES)):
        out = tmp_path / name
        code, _, err = prepare(
            capsys, name, out, *common, "--tokenizer-from", str(tmp_path / "imdb")
        )
        assert code == 0, err
        data = PreparedData(out)
        n = sum(len(v) for v in source.values())
        assert data.meta["splits"]["test"]["examples"] == n
        assert data.labels("test").tolist().count(1) == len(source["pos"])
        assert data.meta["vocab_size"] == PreparedData(tmp_path / "imdb").meta["vocab_size"]
    sentences = PreparedData(tmp_path / "pang-lee-sentences")
    assert sentences.meta["splits"]["test"]["characters"] == sum(
        len(s.strip()) for v in SENTENCES.values() for s in v
    )  # UTF-8 decoded: "é" is one character
    texts = pang_lee_sentences.read({"archive": mirror / "sentence_polarity.zip"}, 0)["test"]
    assert texts.texts == ["a mess – .", "simply the best élan of the year .", "warm ."]


def test_a_borrowed_tokenizer_missing_a_character_names_the_data_and_its_folder(
    mirror, tmp_path, capsys
):
    common = ["--mirror", str(mirror), "--cache", str(tmp_path / "c")]
    shakespeare = tmp_path / "shakespeare"
    assert prepare(capsys, "shakespeare", shakespeare, *common, "--tokenizer", "chars")[0] == 0
    code, _, err = prepare(
        capsys, "pang-lee-sentences", tmp_path / "pl", *common, "--tokenizer-from", str(shakespeare)
    )
    assert code == 1 and err.count("\n") == 1, err
    assert f"pang-lee-sentences test with the tokenizer of {shakespeare}: not in the voc" in err


@pytest.mark.parametrize("kind", ["words", "chars"])
def test_a_borrowed_tokenizer_must_suit_the_data_set(mirror, tmp_path, capsys, kind):
    """enwik8 is bytes only: a words or chars tokenizer from another folder is refused by
    name, before any download, as --tokenizer words is."""
    assert prepare(capsys, "demo", tmp_path / "demo", "--tokenizer", kind)[0] == 0
    out = tmp_path / "enwik8"
    common = ["--mirror", str(mirror), "--cache", str(tmp_path / "c")]
    code, _, err = prepare(
        capsys, "enwik8", out, *common, "--tokenizer-from", str(tmp_path / "demo")
    )
    assert code == 1 and err.count("\n") == 1, err
    assert f"tokenizer {kind!r} does not fit data set 'enwik8'; allowed: bytes" in err
    assert not out.exists() and not (tmp_path / "c").exists()


def test_data_written_over_the_folder_its_tokenizer_comes_from_is_refused(tmp_path, capsys):
    """The out-of-domain set would replace the training data it borrows the tokenizer of."""
    assert prepare(capsys, "demo", tmp_path / "demo", "--tokenizer", "chars")[0] == 0
    before = (tmp_path / "demo" / "meta.json").read_bytes()
    code, _, err = prepare(
        capsys,
        "demo",
        tmp_path / "demo" / ".." / "demo",
        "--tokenizer-from",
        str(tmp_path / "demo"),
    )
    assert code == 1 and err.count("\n") == 1
    assert "the folder the tokenizer comes from (tokenizer_from)" in err
    assert (tmp_path / "demo" / "meta.json").read_bytes() == before


def test_prepare_records_what_it_read_and_needs_no_mirror_it_does_not_use(mirror, tmp_path, capsys):
    """A second folder of data whose files the cache holds, verified: no request to the
    mirror (down now, or listing another version since), and meta.json names the file that
    was read, where it came from and its checksum."""
    import socket

    cache = tmp_path / "cache"
    with FileServer(mirror) as server:
        args = ["--mirror", server.url, "--cache", str(cache)]
        assert prepare(capsys, "shakespeare", tmp_path / "a", *args)[0] == 0
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}"
    code, _, err = prepare(capsys, "shakespeare", tmp_path / "b", "--mirror", down,
                           "--cache", str(cache))  # fmt: skip
    assert code == 0, err
    digest = hashlib.sha256((cache / "tinyshakespeare.txt").read_bytes()).hexdigest()
    for folder in ("a", "b"):
        (source,) = PreparedData(tmp_path / folder).meta["sources"].values()
        assert source["location"] == f"{server.url}/tinyshakespeare.txt"
        assert source["checksum"] == f"sha256:{digest}"


def test_demo_is_deterministic_under_its_seed(tmp_path, capsys):
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        assert prepare(capsys, "demo", tmp_path / name, "--seed", seed)[0] == 0
    a, c = PreparedData(tmp_path / "a"), PreparedData(tmp_path / "c")
    assert (tmp_path / "a" / "train.bin").read_bytes() == (
        tmp_path / "b" / "train.bin"
    ).read_bytes()
    assert texts(a, "train")[:50] != texts(c, "train")[:50]
    assert a.meta["splits"]["train"]["examples"] == 4000
    counts = a.meta["splits"]["train"]["label_counts"]
    assert min(counts) / sum(counts) > 0.4  # roughly balanced
    assert set(a.splits) == {"train", "test", "ood"}


def test_the_pipelines_prepare_stage_prepares_as_the_command_does(tmp_path, capsys):
    from fromscratch.stages.data import prepare_stage

    settings = {"tokenizer": "words", "fit_on": "train+ood", "seed": 1}
    options = [f"--{key.replace('_', '-')}={value}" for key, value in settings.items()]
    assert prepare(capsys, "demo", tmp_path / "command", *options)[0] == 0
    prepare_stage("demo", str(tmp_path / "stage"), **settings)
    command, stage = PreparedData(tmp_path / "command"), PreparedData(tmp_path / "stage")
    assert stage.meta["config"] == command.meta["config"]
    assert (stage.fit_on, stage.meta["config"]["seed"]) == ("train+ood", 1)
    for split in stage.splits:
        assert (tmp_path / "stage" / f"{split}.bin").read_bytes() == (
            tmp_path / "command" / f"{split}.bin"
        ).read_bytes()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--tokenizer", "words", "--vocab-size", "2"], "vocab_size=2 is too small for 'words'"),
        (["--tokenizer", "bpe", "--vocab-size", "100"], "at least 257"),
        (["--tokenizer", "chars", "--vocab-size", "100"], "'chars' has a fixed vocabulary"),
        (["--tokenizer-from", "{tmp}/nowhere"], "nowhere: no tokenizer.json"),
        (["--tokenizer-from", "{tmp}", "--vocab-size", "100"], "the vocabulary comes from"),
        (["--tokenizer-from", "{tmp}", "--fit-on", "train"], "fit_on: the vocabulary comes from"),
        (["--fit-on", "train+val"], "fit_on='train+val': demo has no split 'val'; it has: train,"),
        (["--fit-on", "train+train"], "fit_on='train+train': a split named twice"),
        (["--fit-on", ""], "fit_on='': demo has no split ''"),
        (["--tokenizer", "bytes", "--fit-on", "train"], "fit_on: tokenizer 'bytes' has a fixed"),
    ],
)
def test_a_vocabulary_that_cannot_be_is_a_one_line_error(tmp_path, capsys, args, named):
    args = [a.format(tmp=tmp_path) for a in args]
    code, _, err = prepare(capsys, "demo", tmp_path / "out", *args)
    assert code == 1 and err.count("\n") == 1 and named in err
    assert not (tmp_path / "out").exists()


def test_an_empty_source_is_refused_not_prepared_with_no_vocabulary(tmp_path, capsys):
    """Its checksum (here the mirror's own list) vouches for a file that holds nothing."""
    empty = make_mirror(tmp_path / "empty")
    (empty / "tinyshakespeare.txt").write_text("")
    write_sums(empty)
    out = tmp_path / "out"
    code, _, err = prepare(
        capsys, "shakespeare", out, "--mirror", str(empty), "--cache", str(tmp_path / "c")
    )
    assert (code, err) == (
        1,
        "fromscratch: error: shakespeare: splits train, val have no text; its source is empty: "
        "download it again\n",
    )
    assert not out.exists()


def test_corrupted_mirror_file_fails_with_the_checksum_and_leaves_nothing(mirror, tmp_path, capsys):
    broken = make_mirror(tmp_path / "broken")
    data = bytearray((broken / "tinyshakespeare.txt").read_bytes())
    data[10] ^= 1
    (broken / "tinyshakespeare.txt").write_bytes(bytes(data))
    out = tmp_path / "out"
    code, _, err = prepare(
        capsys, "shakespeare", out, "--mirror", str(broken), "--cache", str(tmp_path / "c")
    )
    assert code == 1
    assert (
        err.startswith("fromscratch: error: checksum mismatch for ")
        and "tinyshakespeare.txt" in err
    )
    assert err.count("\n") == 1
    assert not out.exists() and list(tmp_path.glob(".out*")) == []


def test_truncated_archive_is_reported_and_leaves_nothing(tmp_path, capsys):
    broken = make_mirror(tmp_path / "broken")
    archive = broken / "aclImdb_v1.tar.gz"
    archive.write_bytes(archive.read_bytes()[:-200])
    write_sums(broken)  # the mirror vouches for the truncated file: the archive itself is bad
    out = tmp_path / "out"
    code, _, err = prepare(
        capsys, "imdb", out, "--mirror", str(broken), "--cache", str(tmp_path / "c")
    )
    assert code == 1 and "corrupt or truncated download" in err and "aclImdb_v1.tar.gz" in err
    assert not out.exists()


def test_an_archive_that_ends_early_without_an_error_is_refused(tmp_path, capsys):
    """A damaged gzip stream can end tarfile's walk through the archive quietly: half the
    reviews (here none of the training ones) would be prepared as if that were all."""
    broken = make_mirror(tmp_path / "broken")
    archive = broken / "aclImdb_v1.tar.gz"
    tar = bytearray(gzip.decompress(archive.read_bytes()))
    tar[1024 + 148] ^= 0x55  # the second member's header checksum: the first is the README
    archive.write_bytes(gzip.compress(bytes(tar)))
    with tarfile.open(archive) as damaged:  # how tarfile reads it: one member, no error
        assert len(damaged.getnames()) == 1
    write_sums(broken)  # the mirror vouches for it: the archive itself is bad
    code, _, err = prepare(
        capsys, "imdb", tmp_path / "out", "--mirror", str(broken), "--cache", str(tmp_path / "c")
    )
    assert code == 1 and err.count("\n") == 1
    assert "corrupt or truncated download" in err and "a damaged header ends its list" in err
    assert not (tmp_path / "out").exists()


def test_a_split_without_texts_is_refused(tmp_path, capsys):
    """Files that read without an error but hold nothing (emptied snippet lists) would make
    a prepared folder with an empty split."""
    broken = make_mirror(tmp_path / "broken")
    _zip(
        broken / "sentence_polarity.zip",
        {f"sentence_polarity/rt-polarity.{label}": b"\n" for label in ("neg", "pos")},
    )
    write_sums(broken)
    code, _, err = prepare(
        capsys, "pang-lee-sentences", tmp_path / "o", "--mirror", str(broken),
        "--cache", str(tmp_path / "c"),
    )  # fmt: skip
    assert code == 1 and err.count("\n") == 1
    assert "no texts in split(s) test of " in err and "sentence_polarity.zip" in err
    assert not (tmp_path / "o").exists()


def test_a_text_file_that_is_no_utf8_is_named(tmp_path, capsys):
    broken = make_mirror(tmp_path / "broken")
    (broken / "tinyshakespeare.txt").write_bytes(b"First Citizen:\n\xff\xfe speak.\n" * 50)
    write_sums(broken)
    code, _, err = prepare(
        capsys,
        "shakespeare",
        tmp_path / "o",
        "--mirror",
        str(broken),
        "--cache",
        str(tmp_path / "c"),
    )
    assert code == 1 and err.count("\n") == 1 and "corrupt or truncated download" in err
    assert "tinyshakespeare.txt" in err and "can't decode byte 0xff" in err


def test_a_folder_with_someone_elses_tokenizer_json_is_not_replaced(tmp_path, capsys):
    """A Hugging Face model's folder holds a tokenizer.json too: not an earlier output."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "BPE"}}')
    (model / "model.safetensors").write_bytes(b"weights")
    code, _, err = prepare(capsys, "demo", model)
    assert code == 1 and err.count("\n") == 1
    assert (
        "model: exists and is not an earlier output (its tokenizer.json is another program" in err
    )
    assert sorted(p.name for p in model.iterdir()) == ["model.safetensors", "tokenizer.json"]


def test_bad_names_fail_with_the_allowed_values(tmp_path, capsys):
    code, _, err = prepare(capsys, "imdbb", tmp_path / "x")
    assert code == 1 and "unknown data set 'imdbb'; allowed: imdb, enwik8" in err
    code, _, err = prepare(capsys, "demo", tmp_path / "x", "--tokenizer", "sentencepiece")
    assert code == 1 and "allowed: bytes, chars, words, bpe, gpt2" in err


def test_rerun_replaces_an_older_output_atomically(tmp_path, capsys):
    out = tmp_path / "demo"
    assert prepare(capsys, "demo", out, "--seed", "1")[0] == 0
    assert prepare(capsys, "demo", out, "--seed", "2")[0] == 0
    assert json.loads((out / "meta.json").read_text())["config"]["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


@pytest.mark.parametrize(
    ("out", "named"),
    [
        ("victim", "victim: exists and is not an earlier output (no tokenizer.json)"),
        ("victim/notes.txt", "victim/notes.txt: exists and is a file"),
        (".", ".: names no new folder"),
        ("victim/notes.txt/sub", "victim/notes.txt is a file, not a folder"),
        pytest.param(  # /proc takes no new entries, not even from root
            "/proc/foo",
            "/proc/foo: cannot be written",
            marks=pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's"),
        ),
    ],
)
def test_an_out_that_is_not_an_earlier_output_is_refused_and_kept(
    tmp_path, capsys, monkeypatch, out, named
):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "notes.txt").write_text("mine")
    monkeypatch.chdir(victim if out == "." else tmp_path)
    code, _, err = prepare(capsys, "demo", out)
    assert code == 1 and err.count("\n") == 1 and named in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["notes.txt", "victim"]
    assert (victim / "notes.txt").read_text() == "mine"


def test_an_output_emptied_by_snakemake_is_replaced(tmp_path, capsys):
    # before it reruns a job, Snakemake deletes the job's declared output, meta.json,
    # and keeps the rest of the folder
    out = tmp_path / "demo"
    assert prepare(capsys, "demo", out, "--seed", "1")[0] == 0
    (out / "meta.json").unlink()
    assert prepare(capsys, "demo", out, "--seed", "2")[0] == 0
    assert PreparedData(out).meta["config"]["seed"] == 2


def test_prepared_files_get_the_permissions_of_the_umask(tmp_path, capsys):
    old = os.umask(0o027)
    try:
        assert prepare(capsys, "demo", tmp_path / "demo")[0] == 0
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "demo").iterdir()}
    assert stat.S_IMODE((tmp_path / "demo").stat().st_mode) == 0o750
    assert modes["meta.json"] == modes["train.bin"] == 0o640
    assert set(modes.values()) == {0o640}


def test_a_tokenizer_beside_tokenizer_from_must_be_the_folders(tmp_path, capsys):
    words = tmp_path / "words"
    assert prepare(capsys, "demo", words)[0] == 0
    code, _, err = prepare(
        capsys, "demo", tmp_path / "bpe", "--tokenizer-from", str(words), "--tokenizer", "bpe"
    )
    assert code == 1 and err.count("\n") == 1
    assert f"tokenizer='bpe': the tokenizer comes from {words}, which uses 'words'" in err
    assert not (tmp_path / "bpe").exists()
    code, _, err = prepare(
        capsys, "demo", tmp_path / "same", "--tokenizer-from", str(words), "--tokenizer", "words"
    )
    assert code == 0, err


def test_the_option_check_refuses_splits_to_fit_on_that_the_data_set_lacks(tmp_path):
    """`fromscratch run prepare` checks the options before the stage runs: a wrong
    fit_on fails there, before any download, not after."""
    with pytest.raises(FromScratchError, match="fit_on='train\\+dev': imdb has no split 'dev'"):
        check_prepare_options("imdb", tmp_path / "out", "words", None, None, "train+dev")
    check_prepare_options("imdb", tmp_path / "out", "words", None, None, "train+val")


def test_a_borrowed_vocabulary_keeps_its_fit_only_from_the_same_version_of_the_data(tmp_path):
    """The splits of another version (or seed) of IMDb are other reviews: a vocabulary
    learned from those is not one learned from this folder's train+val."""
    config = {"tokenizer": "words", "tokenizer_from": None, "fit_on": "train+val", "seed": 0}
    splits = {"train": {}, "val": {}, "test": {}}
    meta = {"dataset": "imdb", "dataset_version": 2, "tokenizer": "words", "config": config}
    meta["splits"] = splits
    for changes, kept in (
        ({}, "train+val"),
        ({"dataset_version": 1}, None),
        ({"config": {**config, "seed": 1}}, None),
        ({"dataset": "demo"}, None),
    ):
        (tmp_path / "meta.json").write_text(json.dumps(meta | changes))
        assert borrowed_fit_on(tmp_path, imdb.DATASET, seed=0) == kept, changes
    del meta["dataset_version"]  # a folder from before versions: version 1
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    assert borrowed_fit_on(tmp_path, imdb.DATASET, seed=0) is None


def test_sentence_polarity_gets_back_every_cp1252_punctuation_mark():
    """NLTK's files hold cp1252's bytes 0x80-0x9F as C1 control characters: the euro sign,
    quotes, dashes, up to "Ÿ" (0x9F), are mapped back; the five bytes cp1252 leaves
    undefined stay as they are."""
    c1 = "\x80\x85\x91\x92\x93\x94\x96\x97\x99\x9c\x9f"
    assert c1.translate(pang_lee_sentences.WINDOWS_PUNCTUATION) == "€…‘’“”–—™œŸ"
    undefined = "\x81\x8d\x8f\x90\x9d"
    assert undefined.translate(pang_lee_sentences.WINDOWS_PUNCTUATION) == undefined


def demo_polarity(sentence: str) -> int:
    """+1 or -1 by the sentence's last adjective, flipped by "was not"; 0 with none."""
    words = re.findall(r"[a-z']+", sentence)
    adjectives = [w for w in words if w in demo.POSITIVE or w in demo.NEGATIVE]
    if not adjectives:
        return 0
    polarity = 1 if adjectives[-1] in demo.POSITIVE else -1
    return -polarity if " was not " in sentence else polarity


def test_each_demo_review_leans_to_its_label_or_ends_with_a_verdict_for_it():
    """Read sentence by sentence: where a review's sentences do not sum to its label's
    side (a tie included), a verdict of that side ends it, and only there; the ood
    reviews are one or two sentences about other subjects."""
    splits = read_texts("demo")
    sizes = {name: len(split.texts) for name, split in splits.items()}
    assert sizes == {"train": 4000, "test": 1000, "ood": 1000}
    for name, split in splits.items():
        subjects = demo.OOD_SUBJECTS if name == "ood" else demo.SUBJECTS
        others = demo.SUBJECTS if name == "ood" else demo.OOD_SUBJECTS
        hard = 0
        for text, label in zip(split.texts, split.labels, strict=True):
            sign = 1 if label == 1 else -1
            sentences = re.split(r"(?<=\.) ", text)
            verdict = sentences[-1] if sentences[-1].startswith("overall, ") else None
            if verdict:
                sentences.pop()
            score = sum(demo_polarity(s) for s in sentences)
            assert (verdict is not None) == (score * sign <= 0), text
            if verdict:
                assert demo_polarity(verdict) == sign, text
                hard += score * sign < 0
            lengths = range(1, 3) if name == "ood" else range(3, 9)
            assert len(sentences) in lengths, text
            assert not any(s in text for s in others), text
            assert any(s in text for s in subjects) or score == 0, text
        assert hard > 0  # some reviews lean the other way all the same
