"""The real data sets from the offline mirror, through the command users run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fromscratch.cli import main
from fromscratch.data import PreparedData
from fromscratch.data.sets import pang_lee_sentences

from ..conftest import as_from_a_terminal


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def run(name, out, mirror, cache, *args):
    assert (
        main(
            [
                "data",
                "prepare",
                name,
                "--out",
                str(out),
                "--mirror",
                str(mirror),
                "--cache",
                str(cache),
                "--quiet",
                *args,
            ]
        )
        == 0
    )
    return PreparedData(out)


def test_shakespeare(shared_mirror, cache, tmp_path):
    data = run("shakespeare", tmp_path / "s", shared_mirror, cache)
    splits = data.meta["splits"]
    assert splits["train"]["tokens"] + splits["val"]["tokens"] == 1_115_394
    assert (splits["train"]["tokens"], data.meta["vocab_size"]) == (1_003_854, 65)  # nanoGPT's


def test_pang_lee(shared_mirror, cache, tmp_path):
    reviews = run("pang-lee-reviews", tmp_path / "r", shared_mirror, cache)
    sentences = run("pang-lee-sentences", tmp_path / "s", shared_mirror, cache)
    assert reviews.meta["splits"]["test"]["label_counts"] == [1000, 1000]
    assert sentences.meta["splits"]["test"]["label_counts"] == [5331, 5331]
    snippets = pang_lee_sentences.read({"archive": shared_mirror / "sentence_polarity.zip"}, 0)
    text = "\n".join(snippets["test"].texts)
    assert "the action clichés just pile up" in text and "Ã" not in text
    assert not any("\x80" <= c <= "\x9f" for c in text)  # cp1252's dashes, quotes mapped


@pytest.mark.slow
def test_imdb(shared_mirror, cache, tmp_path):
    data = run("imdb", tmp_path / "imdb", shared_mirror, cache)
    counts = {split: info["label_counts"] for split, info in data.meta["splits"].items()}
    assert counts == {"train": [10000, 10000], "val": [2500, 2500], "test": [12500, 12500]}
    assert data.meta["sources"]["archive"]["location"].endswith("aclImdb_v1.tar.gz")


def start_prepare(shared_mirror, cache, tmp_path):
    """`fromscratch run prepare` of IMDb into tmp_path/imdb, once it is tokenising."""
    args = {"dataset": "imdb", "out": str(tmp_path / "imdb"), "tokenizer": "gpt2",
            "mirror": str(shared_mirror)}  # fmt: skip
    command = [sys.executable, "-m", "fromscratch.cli", "run", "prepare",
               "--log-dir", str(tmp_path / "logs"), "--args", json.dumps(args)]  # fmt: skip
    environment = {**os.environ, "FROMSCRATCH_CACHE": str(cache)}
    before = set(tmp_path.glob(".imdb.*.tmp"))
    stage = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment,
        preexec_fn=as_from_a_terminal,
    )  # fmt: skip
    deadline = time.time() + 120
    # tokenising the first split, in a temporary folder of its own
    while not [p for p in tmp_path.glob(".imdb.*.tmp") if p not in before and any(p.glob("*.bin"))]:
        assert stage.poll() is None, stage.stderr.read()
        assert time.time() < deadline, "no temporary output in 120 s"
        time.sleep(0.01)
    return stage


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stage_stopped_while_writing_leaves_no_temporary_folder(
    shared_mirror, cache, tmp_path, signum
):
    """Snakemake stops a rule's process with SIGTERM, a closed terminal sends SIGHUP: the
    stage exits as a stopped process does (128 + the signal), with its half-written output
    removed, not left beside the output for ever."""
    stage = start_prepare(shared_mirror, cache, tmp_path)
    stage.send_signal(signum)
    assert stage.wait(timeout=60) == 128 + signum
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]


def test_a_stage_killed_outright_leaves_nothing_once_run_again(shared_mirror, cache, tmp_path):
    """SIGKILL (the kernel out of memory, `scancel --signal=KILL`) skips the clean-up: the
    half-written folder stays until the stage runs again, which deletes it as it starts."""
    stage = start_prepare(shared_mirror, cache, tmp_path)
    stage.kill()
    stage.wait(timeout=60)
    [left] = tmp_path.glob(".imdb.*.tmp")
    stage = start_prepare(shared_mirror, cache, tmp_path)
    assert not left.exists()
    stage.send_signal(signal.SIGTERM)
    assert stage.wait(timeout=60) == 128 + signal.SIGTERM
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]
