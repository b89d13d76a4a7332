"""The augmentation study: each augmentation keeps its review's label and is a pure function
of the seed; the augmented folder trains and evaluates like any prepared folder."""

import json
import random
import re
from collections import Counter

import numpy as np
import pytest

from fromscratch import FromScratchError
from fromscratch.data import PreparedData
from fromscratch.data.augment import (
    AUGMENTATIONS,
    SENTENCE_END,
    MarkedUnknowns,
    augment_split,
    typo,
)
from fromscratch.data.prepare import prepare, read_texts
from fromscratch.data.tokenizers import UNK, ByteTokenizer, WordTokenizer
from fromscratch.figures import augmentation as figures
from fromscratch.stages.augmentation import augment_stage
from fromscratch.stages.evaluate import evaluate_stage
from fromscratch.train import TrainConfig, train

from ..conftest import tiny_classifier, wandb_records

RATES = {"none": 0.0, "delete_swap": 0.2, "unk": 0.2, "crop": 0.5, "mix": 0.5, "typos": 0.3}


@pytest.fixture(scope="module")
def reviews():
    train = read_texts("demo")["train"]
    return train.texts[:200], train.labels[:200]


@pytest.mark.parametrize("strategy", list(AUGMENTATIONS))
def test_labels_kept_and_deterministic_under_the_seed(reviews, strategy):
    texts, labels = reviews
    first = augment_split(texts, labels, strategy, RATES[strategy], copies=2, seed=3)
    again = augment_split(texts, labels, strategy, RATES[strategy], copies=2, seed=3)
    other = augment_split(texts, labels, strategy, RATES[strategy], copies=2, seed=4)
    assert first == again
    out_texts, out_labels = first
    assert out_texts[:200] == list(texts)  # the originals come first, unchanged
    assert out_labels == list(labels) * 3  # every copy keeps its review's label
    if strategy == "none":
        assert out_texts[200:] == list(texts) * 2
    else:
        assert sum(a != b for a, b in zip(out_texts[200:], list(texts) * 2, strict=True)) > 100
        assert other[0][200:] != out_texts[200:]  # another seed, other copies
        assert out_texts[200:400] != out_texts[400:]  # and each copy one of its own


def laid_out(texts):
    """The texts with line breaks and runs of spaces, as IMDb's reviews have them."""
    return ["  " + text.replace(". ", ".\n\n", 1).replace(" ", "  ", 2) + "\n" for text in texts]


@pytest.mark.parametrize("strategy", list(AUGMENTATIONS))
def test_rate_zero_changes_nothing(reviews, strategy):
    texts, labels = reviews
    texts = laid_out(texts)
    out, _ = augment_split(texts, labels, strategy, 0.0, copies=1, seed=0)
    assert out[200:] == texts


@pytest.mark.parametrize("strategy", list(AUGMENTATIONS))
def test_the_whitespace_between_words_stays(reviews, strategy):
    """A byte or character model reads line breaks: an augmented copy keeps them where
    its words stay (word for word: unk, typos; a span: crop), and makes no new kind."""
    texts, labels = reviews
    texts = laid_out(texts)
    out, _ = augment_split(texts, labels, strategy, RATES[strategy], copies=1, seed=0)
    for text, copy in zip(texts, out[200:], strict=True):
        gaps, copied = re.findall(r"\s+", text), re.findall(r"\s+", copy)
        if strategy in ("none", "unk", "typos"):
            assert copied == gaps
        elif strategy == "crop":
            assert copy in text
        elif strategy == "mix":  # borrowed sentences between the text's own sentence ends
            assert SENTENCE_END.findall(copy) == SENTENCE_END.findall(text)
            lead = text[: len(text) - len(text.lstrip())]  # and the text's own indent
            assert copy[: len(copy) - len(copy.lstrip())] == lead
        else:
            assert set(copied) <= set(gaps)
    if strategy == "delete_swap":  # a text's end stays as it was
        assert all(copy.endswith("\n") for copy in out[200:])


def test_every_typo_changes_its_word_at_any_letter():
    rng = random.Random(0)
    seen = {typo("ab", rng, "abc") for _ in range(2000)}
    dropped, doubled, replaced = {"b", "a"}, {"aab", "abb"}, {"bb", "cb", "aa", "ac"}
    assert seen == dropped | doubled | replaced | {"ba"}  # the last letter too
    assert all(typo("book", rng, "o") != "book" for _ in range(200))  # no other letter


def test_word_edits_use_only_the_reviews_own_words(reviews):
    """The word-level augmentations add no word from another review (which might carry
    the other label's sentiment): they delete, move, blank, cut or misspell."""
    texts, _ = reviews
    rng = random.Random(0)
    for text in texts:
        words = text.split()
        deleted = AUGMENTATIONS["delete_swap"](text, 1, rng, 0.2).split()
        assert not Counter(deleted) - Counter(words)
        blanked = AUGMENTATIONS["unk"](text, 1, rng, 0.2).split()
        assert len(blanked) == len(words)
        assert all(b in (w, UNK) for b, w in zip(blanked, words, strict=True))
        cropped = AUGMENTATIONS["crop"](text, 1, rng, 0.5)
        assert cropped in " ".join(words) and len(cropped.split()) >= len(words) / 2
        misspelt = AUGMENTATIONS["typos"](text, 1, rng, 0.3).split()
        assert len(misspelt) == len(words)
        assert all(abs(len(m) - len(w)) <= 1 for m, w in zip(misspelt, words, strict=True))


def test_a_crop_keeps_at_least_one_minus_the_rate_of_the_words():
    """Never rounded below it: 10 words at rate 0.28 keep 7.2 or more, so 8 or more."""
    ten = " ".join(f"w{i}" for i in range(10))
    rng = random.Random(0)
    kept = {len(AUGMENTATIONS["crop"](ten, 1, rng, 0.28).split()) for _ in range(500)}
    assert kept == {8, 9, 10}


def test_typos_stay_within_the_texts_alphabet(demo_chars, tmp_path):
    """A character tokenizer knows only the letters of its data: a typo brings in none."""
    augment_stage(str(demo_chars), str(tmp_path / "typos"), "typos", rate=0.5, seed=0)
    base, augmented = PreparedData(demo_chars), PreparedData(tmp_path / "typos")
    originals = len(base.tokens("train"))
    assert len(augmented.tokens("train")) > originals  # the copies follow the originals
    misspelt = base.tokenizer.decode(augmented.tokens("train")[originals:][:2000])
    assert misspelt not in base.tokenizer.decode(base.tokens("train"))  # typos were made


def test_typos_in_texts_of_every_letter_draw_from_all_26():
    """IMDb's reviews hold every letter: their typos are those of the full alphabet."""
    texts = ["the quick brown fox jumps over the lazy dog"] * 20
    out, _ = augment_split(texts, [0] * 20, "typos", 0.5, seed=1)
    rng = random.Random(1)
    assert out[20:] == [AUGMENTATIONS["typos"](text, 0, rng, 0.5) for text in texts]


def test_a_study_short_of_data_augments_the_same_drawn_reviews_for_every_strategy(
    demo_words, tmp_path
):
    """reviews=N: N of the training reviews, the same for every strategy (the seed's draw),
    then their copies; `none` copies them unchanged.  More than the split holds is refused."""
    base = PreparedData(demo_words)
    for strategy in ("none", "typos"):
        out = tmp_path / strategy
        augment_stage(str(demo_words), str(out), strategy, RATES[strategy], seed=0, reviews=100)
    none, typos = PreparedData(tmp_path / "none"), PreparedData(tmp_path / "typos")

    def reviews(data, which):
        return [tuple(data.example("train", i).tolist()) for i in which]

    originals = reviews(none, range(100))
    assert originals == reviews(typos, range(100)) == reviews(none, range(100, 200))
    assert reviews(typos, range(100, 200)) != originals  # typos were made
    in_base = reviews(base, range(base.meta["splits"]["train"]["examples"]))
    kept = [in_base.index(review) for review in originals]
    assert kept == sorted(kept) and len(set(kept)) == 100 and kept[-1] > 1000  # a draw
    assert np.array_equal(none.labels("train")[:100], base.labels("train")[kept])
    assert none.meta["augmentation"]["reviews"] == 100
    with pytest.raises(FromScratchError) as refused:
        augment_stage(str(demo_words), str(tmp_path / "all"), "typos", 0.1, reviews=4001)
    assert str(refused.value) == (
        f"augment: reviews=4001, but the train split of {demo_words} has 4000; give at most "
        "that many, or 0 for all"
    )


def test_augmenting_a_folder_into_itself_is_refused(demo_words):
    with pytest.raises(FromScratchError, match="the base folder itself"):
        augment_stage(str(demo_words), str(demo_words) + "/.", "typos", rate=0.1)


def test_only_a_set_of_reviews_is_augmented(shared_mirror, tmp_path):
    """A book is one text, and enwik8's are bytes: neither has reviews to vary."""
    prepare("shakespeare", tmp_path / "book", str(shared_mirror), "chars", progress=False)
    with pytest.raises(FromScratchError) as refused:
        augment_stage(str(tmp_path / "book"), str(tmp_path / "copy"), "typos", rate=0.1)
    assert str(refused.value) == (
        f"base {tmp_path / 'book'}: data set 'shakespeare' is no set of reviews to augment; "
        "allowed: imdb, pang-lee-reviews, pang-lee-sentences, demo"
    )
    assert not (tmp_path / "copy").exists()


def test_mixing_borrows_sentences_of_the_same_label_only():
    texts = [f"good film {i}. good plot {i}." for i in range(20)]
    texts += [f"bad film {i}. bad plot {i}." for i in range(20)]
    labels = [1] * 20 + [0] * 20
    out, out_labels = augment_split(texts, labels, "mix", rate=1.0, copies=1, seed=0)
    assert out_labels[40:] == labels
    for text, label in zip(out[40:], labels, strict=True):
        assert ("bad" in text) == (label == 0) and ("good" in text) == (label == 1)
    assert sum(a != b for a, b in zip(out[40:], texts, strict=True)) > 30


def test_mixing_at_rate_one_replaces_every_sentence_the_last_too():
    """Each sentence, the last one as well, is drawn from the pool of 80 sentences: at
    rate 1 it stays its own only by the chance of drawing itself."""
    texts = [f"first part {i}. last part {i}." for i in range(40)]
    out, _ = augment_split(texts, [1] * 40, "mix", rate=1.0, copies=1, seed=0)
    pool = {f"{which} part {i}." for which in ("first", "last") for i in range(40)}
    copies = [SENTENCE_END.split(copy)[0::2] for copy in out[40:]]
    assert all(len(sentences) == 2 and set(sentences) <= pool for sentences in copies)
    originals = [SENTENCE_END.split(text)[0::2] for text in texts]
    pairs = zip(copies, originals, strict=True)
    kept = sum(a == b for copy, text in pairs for a, b in zip(copy, text, strict=True))
    assert kept < 8  # about one in 80 of the 80 sentences


def test_typos_draw_from_the_letters_of_all_the_texts():
    """The letters a typo may bring in are those of every text of the split (a character
    tokenizer made from them knows them all), not the first text's alone, and no other."""
    texts = ["aaaa aaaa aaaa"] * 20 + ["bcd dcb"] * 20
    out, _ = augment_split(texts, [0] * 40, "typos", 1.0, seed=2)
    brought = set("".join(out[40:60])) - set("a ")
    assert brought and brought <= set("bcd"), brought
    assert set("".join(out[60:])) <= set("abcd ")


@pytest.mark.parametrize(
    ("strategy", "rate", "copies", "named"),
    [
        ("synonyms", 0.1, 1, "allowed: none, delete_swap"),
        ("unk", 1.5, 1, "between 0 and 1"),
        # every word deleted, every review kept whole: no augmentation at all
        ("delete_swap", 1.0, 1, r"rate 1 would delete every word .*allowed: 0 <= rate < 1"),
        # no copies would be the original split again, however it was to be augmented
        ("unk", 0.1, 0, "copies=0 must be an integer >= 1"),
        ("unk", 0.1, -1, "copies=-1 must be an integer >= 1"),
    ],
)
def test_bad_settings_fail_naming_the_choice(reviews, strategy, rate, copies, named):
    texts, labels = reviews
    with pytest.raises(FromScratchError, match=named):
        augment_split(texts, labels, strategy, rate, copies)


def test_unk_is_read_as_the_unknown_token():
    words = WordTokenizer(["<pad>", UNK, "the", "film", "was", "."])
    marked = MarkedUnknowns(words)
    assert words.encode("the film was <unk> .").tolist() != [2, 3, 4, 1, 5]  # <, unk, >
    assert marked.encode("the film was <unk> .").tolist() == [2, 3, 4, 1, 5]
    assert marked.encode("<unk> film <unk>").tolist() == [1, 3, 1]
    assert marked.encode("the film").tolist() == words.encode("the film").tolist()
    with pytest.raises(FromScratchError, match="needs a tokenizer with an <unk> token"):
        MarkedUnknowns(ByteTokenizer())


def test_augmented_folder_trains_and_evaluates(demo_words, tmp_path):
    out = tmp_path / "augmented-unk"
    augment_stage(str(demo_words), str(out), "unk", rate=0.2, copies=1, seed=0)
    base, augmented = PreparedData(demo_words), PreparedData(out)
    n = base.meta["splits"]["train"]["examples"]
    assert augmented.meta["splits"]["train"]["examples"] == 2 * n
    assert np.array_equal(augmented.labels("train"), np.tile(base.labels("train"), 2))
    originals = augmented.offsets("train")[n]
    assert np.array_equal(augmented.tokens("train")[:originals], base.tokens("train"))
    unk = base.tokenizer.ids[UNK]
    copies = np.asarray(augmented.tokens("train")[originals:])
    assert (copies == unk).mean() > 0.1  # about a fifth of the words (fewer of the tokens)
    # each <unk> one token, where a word was one or more (as `don't`), not three
    assert len(copies) <= originals
    assert np.array_equal(augmented.tokens("test"), base.tokens("test"))
    assert augmented.meta["augmentation"]["strategy"] == "unk"
    reseeded = tmp_path / "augmented-unk-1"
    augment_stage(str(demo_words), str(reseeded), "unk", rate=0.2, copies=1, seed=1)
    other = np.asarray(PreparedData(reseeded).tokens("train")[originals:])
    assert not np.array_equal(other, copies)

    run = tmp_path / "run"
    train(TrainConfig.from_dict(tiny_classifier(out, max_steps=5, wandb_mode="offline")), run)
    sets = {"in-domain": {"split": "test"}, "demo": {"data": str(demo_words), "split": "ood"}}
    results = evaluate_stage(str(run / "model.pt"), sets, str(tmp_path / "eval.json"))
    assert json.loads((tmp_path / "eval.json").read_text()) == results
    assert results["in-domain"]["examples"] == 1000 and 0 <= results["demo"]["accuracy"] <= 1
    # in W&B, the runs line up by what the data is: the strategy, in the training run's
    # config; the training run's settings, in its scores' run's
    logged = {
        item.key: json.loads(item.value_json)
        for record in wandb_records(run)
        if record.WhichOneof("record_type") == "run"
        for item in record.run.config.update
    }
    augmentation = {"strategy": "unk", "rate": 0.2, "copies": 1, "seed": 0, "reviews": 4000}
    assert logged["prepared_data"]["augmentation"] == {"base": str(demo_words)} | augmentation
    scored = json.loads((tmp_path / "eval.json.wandb" / "summary.json").read_text())["config"]
    assert (scored["data"], scored["seed"], scored["model_file"]) == (
        str(out),
        logged["seed"],
        str(run / "model.pt"),
    )
    assert "data_tokenizer" not in scored and "run_name" not in scored


def test_any_seed_keeps_the_base_reviews_and_the_folder_records_its_settings(demo_words, tmp_path):
    """Of all the reviews (no `reviews`), the seed draws the augmentations only: the
    original reviews are those the base folder was prepared from (its own seed's), whatever
    seed the copies get."""
    out = tmp_path / "augmented-typos"
    result = augment_stage(str(demo_words), str(out), "typos", rate=0.1, copies=2, seed=3)
    base, augmented = PreparedData(demo_words), PreparedData(out)
    n = base.meta["splits"]["train"]["examples"]
    originals = augmented.offsets("train")[n]
    assert np.array_equal(augmented.tokens("train")[:originals], base.tokens("train"))
    assert np.array_equal(augmented.labels("train"), np.tile(base.labels("train"), 3))
    assert result == {"examples": 3 * n, "tokens": len(augmented.tokens("train"))}
    assert augmented.meta["augmentation"] == {
        "base": str(demo_words), "strategy": "typos", "rate": 0.1, "copies": 2, "seed": 3,
        "reviews": n,
    }  # fmt: skip


def test_tables_and_figures(tmp_path):
    rates = {"classifier": {"none": 0.0, "typos": 0.1}, "lm": {"none": 0.0, "typos": 0.1}}
    paths = []
    for model, metric, sets in (
        ("classifier", "accuracy", ("in-domain", "ood")),
        ("lm", "bits_per_byte", ("in-domain", "ood")),
    ):
        for strategy in ("none", "typos"):
            for seed in (0, 1):
                path = tmp_path / f"{model}-{strategy}-seed{seed}.json"
                scores = {
                    name: {metric: 0.5 + 0.1 * (strategy == "typos") + 0.01 * seed + 0.2 * i}
                    for i, name in enumerate(sets)
                }
                path.write_text(json.dumps(scores))
                paths.append(path)
    results = figures.results_table(paths, rates)
    assert len(results) == 16 and set(results["domain"]) == {"in", "out"}
    summary = figures.summary_table(results).set_index(["model", "set", "strategy"])
    assert summary.loc[("classifier", "ood", "typos"), "change_from_none"] == pytest.approx(0.1)
    assert summary.loc[("lm", "in-domain", "none"), "mean"] == pytest.approx(0.505)
    figures.classifier_figure(results, ["none", "typos"], tmp_path / "classifier", "test")
    figures.lm_figure(results, ["none", "typos"], tmp_path / "lm", "test")
    assert (tmp_path / "classifier.png").is_file() and (tmp_path / "lm.pdf").is_file()


def test_each_strategy_changes_the_share_of_words_its_rate_says():
    """delete_swap deletes each word with probability p and swaps p·n pairs; typos
    misspells each word with probability p (the module's table)."""
    rng = random.Random(0)
    texts = [" ".join("".join(rng.choices("abcdefgh", k=6)) for _ in range(50)) for _ in range(200)]
    words = sum(len(t.split()) for t in texts)
    rate = 0.2
    deleted = [
        AUGMENTATIONS["delete_swap"](t, 0, random.Random(i), rate) for i, t in enumerate(texts)
    ]
    kept = sum(len(t.split()) for t in deleted)
    assert 1 - kept / words == pytest.approx(rate, abs=0.02)

    def in_order(short, long):  # short's words a subsequence of long's, in their order
        rest = iter(long.split())
        return all(word in rest for word in short.split())

    assert sum(in_order(d, t) for d, t in zip(deleted, texts, strict=True)) < len(texts) / 10
    misspelt = [AUGMENTATIONS["typos"](t, 0, random.Random(i), rate) for i, t in enumerate(texts)]
    changed = sum(
        a != b
        for m, t in zip(misspelt, texts, strict=True)
        for a, b in zip(m.split(), t.split(), strict=True)
    )
    assert changed / words == pytest.approx(rate, abs=0.01)  # every typo changes its word


# The headline score of each model, strategy and evaluation set, for seeds 0, 1 and 2: steps
# of unequal size between the seeds, so that mean and median, sample sd and standard error
# differ; every set and strategy with its own mean and spread
HEADLINES = {
    "classifier": {
        "none": {"in-domain": (0.80, 0.82, 0.90), "sst": (0.70, 0.71, 0.75),
                 "yelp": (0.76, 0.79, 0.77)},
        "typos": {"in-domain": (0.83, 0.84, 0.88), "sst": (0.72, 0.76, 0.73),
                  "yelp": (0.78, 0.78, 0.84)},
        "unk": {"in-domain": (0.79, 0.80, 0.86), "sst": (0.74, 0.75, 0.80),
                "yelp": (0.75, 0.81, 0.80)},
    },
    "lm": {
        "none": {"in-domain": (2.10, 2.14, 2.30), "wiki": (2.60, 2.55, 2.71)},
        "typos": {"in-domain": (2.16, 2.17, 2.25), "wiki": (2.52, 2.58, 2.60)},
        "unk": {"in-domain": (2.05, 2.12, 2.13), "wiki": (2.66, 2.62, 2.80)},
    },
}  # fmt: skip
ORDER = ["none", "typos", "unk"]


def evaluated(folder):
    """The results table of the evaluation files of HEADLINES' runs, each set also with a
    loss, which no summary or figure of the study shows."""
    rates = {model: {"none": 0.0, "typos": 0.3, "unk": 0.2} for model in HEADLINES}
    paths = []
    for model, strategies in HEADLINES.items():
        for strategy, sets in strategies.items():
            for seed in range(3):
                path = folder / f"{model}-{strategy}-seed{seed}.json"
                scores = {
                    name: {figures.HEADLINE[model]: values[seed], "loss": 5.0 + seed}
                    for name, values in sets.items()
                }
                path.write_text(json.dumps(scores))
                paths.append(path)
    return figures.results_table(paths, rates)


def pointplot_marks(ax):
    """The points of each of seaborn's point series on ax, as (x, y, length of the point's
    error bar): an error bar and its caps are one line, its three strokes apart at NaNs,
    with the bar's own stroke at x of its point."""
    lines = [line for line in ax.get_lines() if len(line.get_xdata())]
    bars = {
        round(float(line.get_xdata()[3]), 6): float(np.nanmax(ys) - np.nanmin(ys))
        for line in lines
        if np.isnan(ys := line.get_ydata()).any()
    }
    return [
        [(x, y, bars[round(float(x), 6)]) for x, y in line.get_xydata()]
        for line in lines
        if not np.isnan(line.get_ydata()).any()
    ]


def test_the_summary_is_each_sets_mean_and_sample_sd_over_seeds_and_one_set_is_in_domain(
    tmp_path,
):
    results = evaluated(tmp_path)
    domains = results.groupby("set")["domain"].unique().map(list).to_dict()
    assert domains == {"in-domain": ["in"], "sst": ["out"], "yelp": ["out"], "wiki": ["out"]}
    summary = figures.summary_table(results).set_index(["model", "set", "strategy"])
    assert len(summary) == 3 * 3 + 3 * 2  # the headline metric alone
    for model, strategies in HEADLINES.items():
        for strategy, sets in strategies.items():
            for name, values in sets.items():
                row = summary.loc[(model, name, strategy)]
                none = np.mean(strategies["none"][name])
                assert row["mean"] == pytest.approx(np.mean(values))
                assert row["sd"] == pytest.approx(np.std(values, ddof=1))
                assert row["seeds"] == 3
                assert row["change_from_none"] == pytest.approx(np.mean(values) - none)


def test_the_classifier_figure_shows_each_strategys_mean_and_sample_sd_on_each_set(tmp_path, drawn):
    """Left: a point per strategy and set. Right: a point per strategy and out-of-domain
    set at (in-domain mean, that set's mean), its bars the sd of each across the seeds."""
    figures.classifier_figure(evaluated(tmp_path), ORDER, tmp_path / "classifier", "t")
    left, right = drawn[-1].axes
    accuracy = HEADLINES["classifier"]
    series = pointplot_marks(left)
    assert len(series) == 3  # one per set, in the order evaluated
    for name, marks in zip(["in-domain", "sst", "yelp"], series, strict=True):
        assert [round(x) for x, _, _ in marks] == [0, 1, 2]  # dodged about each strategy
        for strategy, (_, mean, bar) in zip(ORDER, marks, strict=True):
            assert mean == pytest.approx(np.mean(accuracy[strategy][name]))
            assert bar == pytest.approx(2 * np.std(accuracy[strategy][name], ddof=1))

    def point(container):
        ((x, y),) = container.lines[0].get_xydata()
        across, along = container.lines[2]  # the bars along x, then those along y
        (start, _), (end, _) = across.get_segments()[0]
        (_, low), (_, high) = along.get_segments()[0]
        return x, y, end - start, high - low

    drawn_points = sorted(point(container) for container in right.containers)
    expected = sorted(
        (
            np.mean(sets["in-domain"]),
            np.mean(sets[name]),
            2 * np.std(sets["in-domain"], ddof=1),
            2 * np.std(sets[name], ddof=1),
        )
        for sets in accuracy.values()
        for name in ("sst", "yelp")
    )
    np.testing.assert_allclose(drawn_points, expected)
    assert right.get_xlabel() == "in-domain accuracy"


def test_each_lm_panel_shows_the_mean_and_sample_sd_of_its_own_set(tmp_path, drawn):
    figures.lm_figure(evaluated(tmp_path), ORDER, tmp_path / "lm", "t")
    panels = drawn[-1].axes
    assert [ax.get_title() for ax in panels] == ["in-domain", "wiki"]
    for ax in panels:
        (marks,) = pointplot_marks(ax)
        for strategy, (_, mean, bar) in zip(ORDER, marks, strict=True):
            values = HEADLINES["lm"][strategy][ax.get_title()]
            assert mean == pytest.approx(np.mean(values))
            assert bar == pytest.approx(2 * np.std(values, ddof=1))
