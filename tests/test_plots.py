"""Axis labels name the quantity, its split and its unit; tables read exactly the runs
they are given; tables and figures are written atomically; bars start at 0; a single seed
shows no spread; the KL weight is drawn from its schedule."""

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle
from matplotlib.text import Text

from fromscratch import FromScratchError
from fromscratch.figures import cramming, distillation, perceiver, plots, sentence_vae, tables
from fromscratch.figures.plots import label


@pytest.mark.parametrize(
    "metric, text",
    [
        ("loss", "training loss (nats/token)"),
        ("val/loss", "validation loss (nats/token)"),
        ("test/loss", "test loss (nats/token)"),
        ("test/accuracy", "test accuracy"),
        ("val/bits_per_char", "validation bits per character"),
        ("grad_norm", "grad norm"),
    ],
)
def test_label(metric, text):
    assert label(metric) == text


def test_the_classifier_loss_is_per_review():
    """One label per review: its cross-entropy is nats per review, not per token."""
    assert label("loss", plots.LOSS_UNITS["classifier"]) == "training loss (nats/review)"
    assert label("test/loss", plots.LOSS_UNITS["classifier"]) == "test loss (nats/review)"
    assert label("test/accuracy", plots.LOSS_UNITS["classifier"]) == "test accuracy"


def _titles(fig) -> str:
    texts = [fig._suptitle.get_text()] if fig._suptitle else []
    texts += [ax.get_title() for ax in fig.axes] + [ax.get_xlabel() for ax in fig.axes]
    texts += [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().texts]
    return "\n".join(texts + [ax.get_ylabel() for ax in fig.axes])


def _assert_bars_start_at_zero(fig):
    """Every bar starts at 0, and 0 is on its axis: a bar's length is its value."""
    for ax in fig.axes:
        for bar in (p for p in ax.patches if isinstance(p, Rectangle)):
            vertical = bar.get_y() == 0
            assert vertical or bar.get_x() == 0, "a bar that does not start at 0"
            low, high = sorted(ax.get_ylim() if vertical else ax.get_xlim())
            assert low <= 0 <= high, f"the axis of a bar starts at {low}, not at 0"


def _runs(seeds, metric, values):
    return pd.DataFrame(
        [
            {"experiment": "e", "variant": v, "seed": s, metric: values[v] + 0.01 * s}
            for v in values
            for s in seeds
        ]
    )


def test_the_loss_axes_say_unit_and_smoothing(tmp_path, drawn):
    """The classifier's curves and LR range test are in nats per review; the training loss
    is smoothed by a centred mean (a straight falling line stays where it is) and says so."""
    steps = np.arange(1, 21)
    curves = pd.DataFrame(
        {"experiment": "e", "variant": "a", "seed": 0, "step": steps, "tokens": 100 * steps,
         "metric": "loss", "value": 2.0 - 0.05 * steps}
    )  # fmt: skip
    plots.training_curves(curves, "e", tmp_path / "c", "t", smooth=5, loss_unit="nats/review")
    ax = drawn[-1].axes[0]
    assert ax.get_ylabel() == "smoothed training loss (nats/review)"
    assert "smoothed" in ax.get_title()
    y = ax.get_lines()[0].get_ydata()
    inner = slice(2, -2)  # a trailing mean would lie 0.1 above the line here
    np.testing.assert_allclose(y[inner], 2.0 - 0.05 * steps[inner])
    assert ax.get_xlabel() == "training tokens"
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), 100 * steps)

    pd.DataFrame({"lr": [1e-4, 1e-3, 1e-2], "loss": [0.7, 0.6, 0.9], "smoothed": [0.7, 0.65, 0.8]}
                 ).to_csv(tmp_path / "lr.csv", index=False)  # fmt: skip
    choice = {"smoothing_beta": 0.9, "lr_at_min_loss": 1e-3, "lr": 1e-4}
    (tmp_path / "lr.json").write_text(json.dumps(choice))
    plots.lr_range(tmp_path / "lr.csv", tmp_path / "lr.json", tmp_path / "lr", "t", "nats/review")
    ax = drawn[-1].axes[0]
    assert ax.get_ylabel() == "training loss (nats/review)"
    lines = {line.get_label().split(" (")[0]: line.get_ydata() for line in ax.get_lines()}
    assert list(lines["loss per step"]) == [0.7, 0.6, 0.9]
    assert list(lines["smoothed"]) == [0.7, 0.65, 0.8]


def test_the_training_loss_is_smoothed_within_each_seed(tmp_path, drawn):
    """Two seeds whose losses alternate out of step: each smoothed alone, their mean is 5
    at every step; smoothed as one series, the windows would mix the seeds' rows."""
    steps = np.arange(1, 6)
    curves = pd.DataFrame(
        [
            {"experiment": "e", "variant": "a", "seed": seed, "step": step, "tokens": 100 * step,
             "metric": "loss", "value": 10.0 * ((step + seed) % 2)}
            for seed in (0, 1) for step in steps
        ]
    )  # fmt: skip
    plots.training_curves(curves, "e", tmp_path / "c", "t", smooth=3)
    np.testing.assert_allclose(drawn[-1].axes[0].get_lines()[0].get_ydata(), 5.0)


@pytest.mark.parametrize("seeds", [[0, 1, 2], [0]])
def test_bars_start_at_zero(tmp_path, drawn, seeds):
    """An accuracy zoomed in to its differences is drawn as points, not as bars cut off
    above 0 (the sentence VAE's probe accuracy too); bits, the sentence VAE's counts and
    shares, and cramming changes are bars from 0."""
    accuracy = _runs(seeds, "test/accuracy", {"a": 0.70, "b": 0.78})
    plots.comparison(accuracy, "e", "test/accuracy", tmp_path / "a", "t")
    assert not [p for p in drawn[-1].axes[0].patches if isinstance(p, Rectangle)]
    bits = _runs(seeds, "test/bits_per_char", {"a": 1.5, "b": 1.4})
    plots.comparison(bits, "e", "test/bits_per_char", tmp_path / "b", "t")
    vae = _runs(seeds, "probe_accuracy", {"a": 0.55, "b": 0.56}).assign(
        **{"test/active_units": 8, "swap_flip_rate": 0.4, "majority_accuracy": 0.51}
    )
    sentence_vae.summary(vae, ["a", "b"], tmp_path / "v", "t")
    crammed = pd.DataFrame(
        [
            {"recipe": r, "seed": s, "budget_s": 6.0, "steps": 100, "m": 2.0 + d + 0.1 * s}
            for r, d in {"baseline": 0.0, "cosine": -0.3, "dropout": 0.2}.items()
            for s in seeds
        ]
    )
    cramming.ablation_figure(crammed, "m", 6.0, tmp_path / "c", "t")
    assert len(drawn) == 4
    for fig in drawn:
        _assert_bars_start_at_zero(fig)

    def bars(ax):
        return [p for p in ax.patches if isinstance(p, Rectangle)]

    for fig in drawn[1:]:  # a bar for each variant (a, b) or change (cosine, dropout)
        for ax in fig.axes:
            assert len(bars(ax)) == (0 if ax.get_ylabel().startswith("sentiment probe") else 2)


def test_one_seed_has_no_spread(tmp_path, drawn):
    """A single seed has no standard deviation: "1 seed", never "1 seeds" nor "± nan"."""
    assert plots.seeds_note(1) == "1 seed"
    assert plots.seeds_note(3) == "mean ± sd over 3 seeds"
    assert plots.seeds_note(pd.DataFrame({"seed": [4, 4, 5]}), "bars") == "bars over 2 seeds"
    assert plots.mean_sd_text(pd.Series([2.0])) == "2.000"
    runs = _runs([0], "test/accuracy", {"a": 0.7, "b": 0.8})
    plots.comparison(runs, "e", "test/accuracy", tmp_path / "a", "t")
    one = {"seed": 0, "budget_s": 6.0, "steps": 100, "m": 2.0}
    crammed = pd.DataFrame([{"recipe": r, **one} for r in ("baseline", "x")])
    cramming.ablation_figure(crammed, "m", 6.0, tmp_path / "c", "t")
    course = pd.DataFrame([{"train_time_s": 5.0, "m": 2.1}])
    cramming.budget_figure(crammed, course, "m", tmp_path / "b", "t")
    for fig in drawn:
        text = _titles(fig)
        assert "1 seed" in text and "seeds" not in text
        assert "nan" not in text and "±" not in text, text


def test_the_cramming_budget_figure_draws_without_a_reference(tmp_path, drawn):
    """Where the course GPT is no reference (it trained on other splits): the recipe
    alone, its time axis from its own budgets."""
    one = {"seed": 0, "steps": 100, "m": 2.0}
    crammed = pd.DataFrame([{"recipe": "baseline", "budget_s": b, **one} for b in (3.0, 6.0)])
    cramming.budget_figure(crammed, cramming.reference_table([], "m"), "m", tmp_path / "b", "t")
    (ax,) = drawn[0].axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["baseline recipe", "one seed"]
    assert ax.get_xlabel() == "training-time budget (s, log scale)"


def test_a_metric_no_run_has_is_said_so(tmp_path, drawn):
    """Bits per character are null where a tokenizer maps characters to <unk>: the
    comparison stops saying so, and the curves say it where the panel would be empty."""
    runs = _runs([0, 1], "test/bits_per_token", {"a": 2.0, "b": 1.9})
    with pytest.raises(FromScratchError, match=r"no run has test/bits_per_char .*lossless"):
        plots.comparison(runs, "e", "test/bits_per_char", tmp_path / "a", "t")
    curves = pd.DataFrame(
        {"experiment": "e", "variant": "a", "seed": 0, "step": [1, 2], "tokens": [10, 20],
         "metric": "loss", "value": [2.0, 1.5]}
    )  # fmt: skip
    plots.training_curves(curves, "e", tmp_path / "c", "t", eval_metric="test/bits_per_char")
    (said,) = drawn[-1].axes[1].texts
    assert said.get_text().startswith("no run has test/bits_per_char")


def test_a_seed_without_its_number_stops_the_figure_naming_it(tmp_path, drawn):
    """A NaN in a summary (a broken run): seaborn would drop that seed without a word, under
    a title that counts it; a NaN baseline would drop the seed from every ablation."""
    runs = _runs([0, 1, 2], "test/bits_per_char", {"a": 1.5, "b": 1.4})
    runs.loc[(runs["variant"] == "b") & (runs["seed"] == 2), "test/bits_per_char"] = np.nan
    with pytest.raises(FromScratchError, match=r"test/bits_per_char is NaN for b seed 2; a fig"):
        plots.comparison(runs, "e", "test/bits_per_char", tmp_path / "a", "t")
    crammed = pd.DataFrame(
        [
            {"recipe": r, "seed": s, "budget_s": 6.0, "steps": 100, "m": 2.0}
            for r in ("baseline", "dropout")
            for s in (0, 1)
        ]
    )
    crammed.loc[(crammed["recipe"] == "baseline") & (crammed["seed"] == 1), "m"] = np.nan
    with pytest.raises(FromScratchError, match=r"m is NaN for baseline seed 1"):
        cramming.ablation_table(crammed, "m", 6.0)
    assert not drawn


def test_the_latent_figure_keeps_its_legend_off_the_points(tmp_path, drawn):
    rng = np.random.default_rng(0)
    latents = {}
    for variant in ("constant", "cyclical"):
        latents[variant] = tmp_path / f"{variant}.npz"
        np.savez(latents[variant], mu=rng.normal(size=(80, 8)), labels=rng.integers(0, 2, 80))
    results = pd.DataFrame(
        [{"variant": v, "seed": 0, "probe_accuracy": 0.6, "test/active_units": 4} for v in latents]
    )
    sentence_vae.latent(latents, results, 0, tmp_path / "latent", "t")
    left, right = drawn[-1].axes
    assert left.get_legend() is None  # one legend for both panels...
    legend = right.get_legend().get_window_extent()
    assert legend.x0 >= right.get_window_extent().x1 - 1  # ...beside them, over no point


@pytest.mark.parametrize("sentences, dimensions", [(80, 1), (1, 8)])
def test_the_latent_figure_draws_a_latent_with_one_component(
    tmp_path, drawn, sentences, dimensions
):
    path = tmp_path / "one.npz"
    rng = np.random.default_rng(0)
    np.savez(path, mu=rng.normal(size=(sentences, dimensions)), labels=np.arange(sentences) % 2)
    results = pd.DataFrame([{"variant": "one", "seed": 0, "probe_accuracy": 0.5,
                             "test/active_units": 1}])  # fmt: skip
    sentence_vae.latent({"one": path}, results, 0, tmp_path / "latent", "t")
    points = drawn[-1].axes[0].collections[0].get_offsets()
    assert len(points) == sentences and (points[:, 1] == 0).all()  # no second component


def test_the_perceiver_legend_sits_beside_the_panels(drawn):
    rows = [
        {"data": "shakespeare-chars", "model": model, "context": context, "seed": seed,
         "parameters": 800_000, "split": "val", "unit": "bits_per_char", "bits": bits + context,
         "tokens_per_s": 5000.0, "peak_memory_mb": 100.0 + context, "memory_device": "cpu"}
        for model, bits in (("GPT", 3.2), ("Perceiver AR", 3.1))
        for context in (64, 256, 1024)
        for seed in (0, 1)
    ]  # fmt: skip
    perceiver.context_figure(pd.DataFrame(rows), "unused", "t")
    bits, speed, memory = drawn[-1].axes
    assert bits.get_legend() is None and speed.get_legend() is None
    legend = memory.get_legend()
    assert legend.get_texts()[0].get_text().startswith("GPT (800k")
    assert legend.get_window_extent().x0 >= memory.get_window_extent().x1 - 1

    rows[-3]["bits"] = float("nan")  # a summary without the number: no point left out
    named = "bits is NaN for shakespeare-chars Perceiver AR 256 seed 1"
    with pytest.raises(FromScratchError, match=named):
        perceiver.context_figure(pd.DataFrame(rows), "unused", "t")


def test_a_distillation_figure_stops_at_a_nan_student(drawn):
    rows = [
        {"mode": mode, "layers": layers, "seed": seed, "length": 64, "multiple": 1.0,
         "bits_per_token": 2.5, "parameters": 1000 * layers, "split": "val"}
        for mode in ("distilled", "control") for layers in (1, 2) for seed in (0, 1)
    ] + [{"mode": "teacher", "layers": 4, "seed": None, "length": 64, "multiple": 1.0,
          "bits_per_token": 2.9, "parameters": 8000, "split": "val"}]  # fmt: skip
    distillation.by_layers(pd.DataFrame(rows), "unused", "GPT")
    rows[5]["bits_per_token"] = float("nan")
    for figure in (distillation.by_layers, distillation.by_length):
        with pytest.raises(FromScratchError, match="bits_per_token is NaN for control 1 64 seed 1"):
            figure(pd.DataFrame(rows), "unused", "GPT")


def test_the_kl_weight_is_drawn_from_its_schedule(tmp_path, drawn):
    """β of every step, from the runs' own settings: a cyclical schedule's every cycle
    shows, though β was logged only every 10 steps."""
    summaries = []
    for variant, train in {
        "constant": {"kl_schedule": "constant"},
        "cyclical": {"kl_schedule": "cyclical", "cycles": 3, "ramp": 0.5},
    }.items():
        for seed in (0, 1):
            folder = tmp_path / variant / f"seed{seed}"
            folder.mkdir(parents=True)
            summary = {"steps": 60, "config": {"train": {"max_steps": 60, **train}}}
            (folder / "summary.json").write_text(json.dumps(summary))
            summaries.append(folder / "summary.json")
    schedules = sentence_vae.kl_schedules(summaries)
    assert schedules["cyclical"] == {
        "steps": 60,
        "kl_schedule": "cyclical",
        "cycles": 3,
        "ramp": 0.5,
    }
    assert schedules["constant"]["kl_schedule"] == "constant"

    logged = pd.DataFrame(
        [
            {"variant": v, "seed": 0, "step": step, "metric": m, "value": 1.0}
            for v in schedules
            for step in range(10, 61, 10)
            for m in ("recon", "kl", "beta")
        ]
    )
    sentence_vae.training(logged, ["constant", "cyclical"], tmp_path / "t", "t", schedules)
    constant, cyclical = drawn[-1].axes[2].get_lines()
    x, beta = cyclical.get_data()
    np.testing.assert_array_equal(x, np.arange(1, 61))
    assert list(beta[:11]) == pytest.approx([s / 10 for s in range(10)] + [1.0])
    assert list(beta[19:22]) == [1.0, 0.0, 0.1]  # a new cycle starts after 20 steps
    assert set(constant.get_ydata()) == {1.0}


def test_tables_read_only_the_runs_they_are_given(tmp_path):
    """A run folder on disk that is not among the inputs (an old config, another seed)
    stays out of runs.csv and curves.csv."""

    def run(experiment, variant, seed, loss):
        folder = tmp_path / "runs" / experiment / variant / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({"test/loss": loss, "config": {}}))
        (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": loss}) + "\n")
        return folder / "summary.json"

    given = [run("position", "learned", 1, 2.0), run("position", "rope", 1, 1.5)]
    run("position", "learned", 0, 9.0)  # a seed the preset no longer has
    run("old", "learned", 1, 9.0)  # a comparison since removed
    runs, curves = tables.runs(given), tables.curves(given)
    assert sorted(zip(runs["variant"], runs["seed"], strict=True)) == [("learned", 1), ("rope", 1)]
    assert list(runs["test/loss"]) == [2.0, 1.5]
    assert set(curves["experiment"]) == {"position"} and set(curves["seed"]) == {1}
    assert 9.0 not in set(curves["value"])


def test_tables_keep_text_scalars_and_give_every_eval_line_its_tokens(tmp_path):
    folder = tmp_path / "runs" / "position" / "learned" / "seed0"
    folder.mkdir(parents=True)
    summary = {"test/loss": 1.5, "device": "cpu", "steps": 20, "config": {"lr": 1e-3}}
    (folder / "summary.json").write_text(json.dumps(summary))
    lines = [  # an evaluation line of an older run, without its token count
        {"step": 10, "tokens": 640, "loss": 2.0},
        {"step": 10, "val/loss": 2.1},
        {"step": 20, "tokens": 1280, "loss": 1.8},
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (row,) = tables.runs([folder / "summary.json"]).to_dict("records")
    assert (row["device"], row["steps"], row["test/loss"]) == ("cpu", 20, 1.5)
    assert "config" not in row  # a mapping is no column
    curves = tables.curves([folder / "summary.json"])
    assert curves.loc[curves["metric"] == "val/loss", "tokens"].tolist() == [640]
    # runs that logged nothing yet: an empty table with the columns the figures read
    empty = tmp_path / "runs" / "position" / "rope" / "seed0"
    empty.mkdir(parents=True)
    (empty / "summary.json").write_text("{}")
    (empty / "metrics.jsonl").write_text("")
    assert {"step", "tokens", "metric", "value"} <= set(tables.curves([empty / "summary.json"]))


MONEY = "the film made $2{ million and the sequel $3 million"  # as mathtext: no TeX


def test_generated_text_is_drawn_as_written(tmp_path, drawn):
    """A model's text with two dollar signs is text, not mathematics: drawn as written,
    not in italics without its spaces, nor a stop of the figure at the brace."""
    plots.samples({"model": MONEY}, tmp_path / "s", f'samples of "{MONEY}"')
    examples = {
        "interpolations": [{"from": MONEY, "to": "fine", "steps": [MONEY, "fine"]}],
        "reconstructions": [
            {"label": 0, "text": MONEY, "reconstruction": MONEY, "swapped": MONEY, "flipped": False}
        ],
    }
    (tmp_path / "examples.json").write_text(json.dumps(examples))
    sentence_vae.interpolations(tmp_path / "examples.json", tmp_path / "i", MONEY)
    for fig in drawn:  # the text drawn and the title that quotes it
        texts = [t for t in fig.findobj(Text) if "$" in t.get_text()]
        assert len(texts) >= 2 and not any(t.get_parse_math() for t in texts)


def test_tables_and_figures_are_written_atomically(tmp_path, monkeypatch):
    """A failed write leaves no half-written target behind, nor an older one replaced."""
    out = tmp_path / "table.csv"
    out.write_text("old\n")
    table = pd.DataFrame({"a": [1, 2]})
    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda self, path, **kw: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        tables.write_csv(table, out)
    monkeypatch.undo()
    assert out.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]
    tables.write_csv(table, out)
    assert out.read_text() == "a\n1\n2\n"

    def half_drawn(fig, target, **kwargs):
        Path(target).write_bytes(b"half")
        raise ZeroDivisionError

    (tmp_path / "figure.png").write_bytes(b"old")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    monkeypatch.setattr(plt.Figure, "savefig", half_drawn)
    with pytest.raises(ZeroDivisionError):
        plots.save(fig, tmp_path / "figure")
    monkeypatch.undo()
    assert (tmp_path / "figure.png").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png", "table.csv"]
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    written = plots.save(fig, tmp_path / "figure")
    assert [p.name for p in written] == ["figure.png", "figure.pdf"]
    assert written[0].read_bytes().startswith(b"\x89PNG") and written[1].read_bytes()[:4] == b"%PDF"
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_noise_scale_not_measured_is_said_so_on_the_batch_size_figure(tmp_path, drawn):
    search = {"device": "cpu", "memory_cap_mb": 100.0, "batch_size": 4, "tried": [
        {"batch_size": b, "fits": True, "peak_memory_mb": 10.0 * b, "tokens_per_s": 100.0 * b}
        for b in (1, 2, 4)
    ]}  # fmt: skip
    (tmp_path / "search.json").write_text(json.dumps(search))
    for value, lines in ((None, 0), (3.0, 1)):
        noise = {"noise_scale": value, "after_steps": 0}
        (tmp_path / "noise.json").write_text(json.dumps(noise))
        plots.batch_size(tmp_path / "search.json", tmp_path / "b", "t", tmp_path / "noise.json")
        ax = drawn[-1].axes[0]
        marked = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert len(marked) == lines
        said = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any("not measured" in text for text in said) == (value is None)
    # measured after training steps: the label says at which LR and batch size
    noise = {
        "noise_scale": 35.0,
        "after_steps": 200,
        "trained_at": {"lr": 8.3e-4, "batch_size": 32},
    }
    (tmp_path / "noise.json").write_text(json.dumps(noise))
    plots.batch_size(tmp_path / "search.json", tmp_path / "b", "t", tmp_path / "noise.json")
    (label,) = [
        t.get_text() for t in drawn[-1].axes[0].get_legend().get_texts() if "noise" in t.get_text()
    ]
    assert label == "gradient noise scale:\n35 sequences, after 200 steps\n(LR 0.00083, batch 32)"
    # the title: the memory's limit, or the search's own ceiling where every size fitted
    assert drawn[-1]._suptitle.get_text() == "t (chosen: 4, the most tried: every size fits)"
    search["tried"].append({"batch_size": 8, "fits": False, "peak_memory_mb": 120.0})
    (tmp_path / "search.json").write_text(json.dumps(search))
    plots.batch_size(tmp_path / "search.json", tmp_path / "b", "t", tmp_path / "noise.json")
    assert drawn[-1]._suptitle.get_text() == "t (chosen: 4, the largest that fits)"


@pytest.mark.parametrize("metric", ["test/bits_per_char", "test/accuracy"])  # bars, points
def test_the_error_bars_of_a_comparison_are_the_seeds_sample_sd(tmp_path, drawn, metric):
    values = {"a": [0.80, 0.82, 0.90], "b": [0.70, 0.71, 0.75]}
    runs = pd.DataFrame(
        [{"experiment": "e", "variant": v, "seed": s, metric: x}
         for v, xs in values.items() for s, x in enumerate(xs)]
    )  # fmt: skip
    plots.comparison(runs, "e", metric, tmp_path / "k", "t")
    ax = drawn[-1].axes[0]
    assert "mean ± sd" in ax.get_title()
    # an error bar and its caps: one line, its three strokes apart at NaNs
    bars = [line.get_ydata() for line in ax.get_lines() if np.isnan(line.get_ydata()).any()]
    spans = sorted(round(float(np.nanmax(y) - np.nanmin(y)), 6) for y in bars)
    assert spans == sorted(round(2 * float(np.std(xs, ddof=1)), 6) for xs in values.values())


def test_the_spread_drawn_and_written_is_the_seeds_sample_sd():
    """ "mean ± sd over 3 seeds": the sample standard deviation (n - 1), not the standard
    error or the population's."""
    import matplotlib.pyplot as plt

    values = pd.Series([1.0, 2.0, 3.0])
    assert plots.mean_sd_text(values) == "2.000 ± 1.000"
    rows = pd.DataFrame({"step": [10, 10, 10, 20, 20, 20], "loss": [1.0, 2.0, 3.0, 2.0, 2.0, 5.0]})
    fig, ax = plt.subplots()
    stats = plots.mean_sd(ax, rows, "step", "loss", "C0")
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert stats["sd"].tolist() == pytest.approx([1.0, 3**0.5])
    assert band.min() == pytest.approx(2.0 - 1.0) and band.max() == pytest.approx(3.0 + 3**0.5)
    plt.close(fig)


FIGURE_SCRIPT = """
import atexit, gc, sys, types
from fromscratch.figures import logged

# registered before logged's handler, so run after it
atexit.register(lambda: sys.__stdout__.write(f"frozen at exit: {gc.get_freeze_count() > 0}"))
s = logged(types.SimpleNamespace(log=[sys.argv[1]]))
print("a line for the log")
"""


def test_a_figure_script_writes_to_its_log_and_ends_without_the_collector(tmp_path):
    log = tmp_path / "figure.log"
    done = subprocess.run([sys.executable, "-c", FIGURE_SCRIPT, str(log)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert log.read_text() == "a line for the log\n"
    assert done.stdout == "frozen at exit: True"
