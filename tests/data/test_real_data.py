"""The real data sets from the offline mirror, through the command users run."""

import pytest

from fromscratch.cli import main
from fromscratch.data import PreparedData


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


@pytest.mark.slow
def test_imdb(shared_mirror, cache, tmp_path):
    data = run("imdb", tmp_path / "imdb", shared_mirror, cache)
    for split in ("train", "test"):
        assert data.meta["splits"][split]["label_counts"] == [12500, 12500]
    assert data.meta["sources"]["archive"]["location"].endswith("aclImdb_v1.tar.gz")
