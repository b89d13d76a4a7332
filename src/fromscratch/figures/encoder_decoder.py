"""The encoder/decoder study's table and figure: answer accuracy against sequence length.

Every run folder holds accuracy.csv (one row per length) and summary.json (the run's
architecture, seed and parameter count); `accuracy_table` joins them into one tidy table,
`accuracy_by_length` draws it.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from fromscratch.figures import plots

NAMES = {"encoder_decoder": "encoder/decoder", "decoder_only": "decoder-only GPT"}
METRICS = {
    "exact_match": "exact match (fraction of answers)",
    "token_accuracy": "token accuracy (fraction of tokens)",
}


def accuracy_table(run_folders: list[str | Path]) -> pd.DataFrame:
    """One row per (run, length): architecture, seed, parameters, length, trained,
    exact_match, token_accuracy, examples."""
    tables = []
    for folder in map(Path, run_folders):
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        table = pd.read_csv(folder / "accuracy.csv")
        tables.append(
            table.assign(
                architecture=summary["architecture"],
                seed=summary["seed"],
                parameters=summary["parameters"],
                task=summary["task"],
            )
        )
    columns = ["task", "architecture", "seed", "parameters", "length", "trained"]
    table = pd.concat(tables, ignore_index=True)
    return table[columns + [c for c in table.columns if c not in columns]]


def run_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per run: mean accuracies over the trained lengths and over the longer ones."""
    longest = table.loc[table["trained"], "length"].max()
    table = table.assign(
        lengths=table["length"].map(lambda n: "longer" if n > longest else "trained")
    )
    table = table[table["trained"] | (table["lengths"] == "longer")]
    wide = table.pivot_table(
        index=["task", "architecture", "seed", "parameters"],
        columns="lengths",
        values=["exact_match", "token_accuracy"],
    )
    wide.columns = [f"{metric}_{lengths}" for metric, lengths in wide.columns]
    return wide.reset_index()


def accuracy_by_length(table: pd.DataFrame, out: str | Path, title: str) -> list:
    """Exact match and token accuracy against length, one line per architecture (mean
    over seeds, bars: ± one standard deviation; points: the seeds); the lengths right
    of the dashed line are longer than any in training."""
    data = table.assign(model=table["architecture"].map(NAMES))
    params = data.groupby("model")["parameters"].first()
    data["model"] = data["model"].map(lambda m: f"{m} ({params[m] / 1e3:,.0f}k parameters)")
    order = sorted(data["model"].unique(), key=lambda m: not m.startswith("enc"))
    longest = data.loc[data["trained"], "length"].max()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for ax, (metric, name) in zip(axes, METRICS.items(), strict=True):
        sns.lineplot(
            data,
            x="length",
            y=metric,
            hue="model",
            hue_order=order,
            errorbar="sd",
            err_style="bars",
            marker="o",
            ax=ax,
        )
        sns.stripplot(
            data,
            x="length",
            y=metric,
            hue="model",
            hue_order=order,
            native_scale=True,
            dodge=False,
            size=3,
            alpha=0.5,
            legend=False,
            palette="dark",
            ax=ax,
        )
        if data["length"].max() > longest:  # tested past the training lengths
            ax.axvline(longest + 0.5, color="0.4", ls="--", lw=1)
            ax.axvspan(longest + 0.5, data["length"].max() + 0.5, color="0.9", zorder=0)
            ax.text(longest + 0.7, 1.0, "longer than\nin training", fontsize=8, va="top")
        ax.set(
            xlabel="sequence length (tokens)",
            ylabel=name,
            ylim=(-0.03, 1.05),
            xlim=(0.5, data["length"].max() + 0.5),
        )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # lengths are whole tokens
    axes[0].get_legend().remove()  # one legend, in the corner the curves leave empty
    axes[1].legend(loc="lower left")
    task = data["task"].iloc[0]
    fig.suptitle(f"{title}: {task}, greedy answers ({plots.seeds_note(data)})")
    return plots.save(fig, out)
