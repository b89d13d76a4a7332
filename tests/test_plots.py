"""Axis labels name the quantity, its split and its unit; tables read exactly the runs
they are given; tables and figures are written atomically."""

import json

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from fromscratch.figures import plots, tables
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

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    written = plots.save(fig, tmp_path / "figure")
    assert [p.name for p in written] == ["figure.png", "figure.pdf"]
    assert written[0].read_bytes().startswith(b"\x89PNG") and written[1].read_bytes()[:4] == b"%PDF"
    assert not list(tmp_path.glob(".*.tmp"))
