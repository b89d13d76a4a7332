"""The augmentation study's tables and figures: in-domain vs out-of-domain scores per strategy.

An evaluation file is evaluations/{model}-{strategy}-seed{k}.json, as the `evaluate` stage
writes it: {set name: {metric: value}}, the set `in-domain` first.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from fromscratch.figures.plots import label, save, seed_chart, seeds_note

IN_DOMAIN = "in-domain"
# The metric each study model is judged by (higher accuracy, lower bits per byte is better).
AUGMENTATION_AXIS = "augmentation of the training reviews"
HEADLINE = {"classifier": "accuracy", "lm": "bits_per_byte"}
METRICS = ("accuracy", "loss", "bits_per_byte", "bits_per_char", "bits_per_token")


def results_table(paths: list[str | Path], rates: dict[str, dict[str, float]]) -> pd.DataFrame:
    """One row per (model, strategy, seed, evaluation set, metric)."""
    rows = []
    for path in map(Path, paths):
        model, rest = path.stem.split("-", 1)
        strategy, seed = rest.rsplit("-seed", 1)
        for name, scores in json.loads(path.read_text()).items():
            for metric in METRICS:
                if metric in scores:
                    rows.append(
                        {
                            "model": model,
                            "strategy": strategy,
                            "rate": rates[model][strategy],
                            "seed": int(seed),
                            "set": name,
                            "domain": "in" if name == IN_DOMAIN else "out",
                            "metric": metric,
                            "value": scores[metric],
                        }
                    )
    return pd.DataFrame(rows)


def summary_table(results: pd.DataFrame) -> pd.DataFrame:
    """The headline metric per (model, strategy, set): mean, sd, seeds, and the change of
    the mean from no augmentation."""
    headline = results[results["metric"] == results["model"].map(HEADLINE)]
    summary = (
        headline.groupby(["model", "set", "strategy", "rate", "metric"], sort=False)["value"]
        .agg(mean="mean", sd="std", seeds="count")
        .reset_index()
    )
    baseline = summary[summary["strategy"] == "none"].set_index(["model", "set"])["mean"]
    summary["change_from_none"] = summary["mean"] - [
        baseline.get((m, s), float("nan"))
        for m, s in zip(summary["model"], summary["set"], strict=True)
    ]
    return summary


def classifier_figure(results: pd.DataFrame, order: list[str], out: str | Path, title: str):
    """Left: accuracy per strategy on every set. Right: out-of-domain against in-domain
    accuracy, one point per (strategy, out-of-domain set), error bars in both directions."""
    data = results[(results["model"] == "classifier") & (results["metric"] == "accuracy")]
    sets = list(dict.fromkeys(data["set"]))  # in-domain first, as evaluated
    # a set is a marker in both panels (in-domain: a diamond); colour is a strategy's, on
    # the right alone (the left's x axis names them), so the sets are grey
    markers = ["o", "s", "^", "v", "P"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    sns.pointplot(
        data,
        x="strategy",
        y="value",
        hue="set",
        order=order,
        hue_order=sets,
        errorbar="sd",
        dodge=0.8 * (len(sets) - 1) / len(sets),  # where stripplot's dodge puts the seeds
        linestyle="none",
        capsize=0.1,
        markers=["D", *markers][: len(sets)],
        palette=[str(shade) for shade in np.linspace(0.3, 0.7, len(sets))],
        ax=left,
    )
    sns.stripplot(
        data,
        x="strategy",
        y="value",
        hue="set",
        order=order,
        hue_order=sets,
        dodge=True,
        size=3,
        alpha=0.5,
        legend=False,
        ax=left,
        palette="dark:k",
    )
    left.set(xlabel=AUGMENTATION_AXIS, ylabel="accuracy", title="per set")
    left.tick_params(axis="x", rotation=20)
    sns.move_legend(left, "upper center", bbox_to_anchor=(0.5, -0.36), ncols=len(sets), title=None)

    by_seed = data.pivot_table(index=["strategy", "seed"], columns="set", values="value")
    stats = by_seed.groupby("strategy").agg(["mean", "std"])
    for i, strategy in enumerate(order):
        for j, name in enumerate(s for s in sets if s != IN_DOMAIN):
            x, y = stats.loc[strategy, IN_DOMAIN], stats.loc[strategy, name]
            right.errorbar(
                x["mean"],
                y["mean"],
                xerr=x["std"],
                yerr=y["std"],
                fmt=markers[j % len(markers)],
                color=f"C{i}",
                capsize=3,
                label=strategy if j == 0 else None,
            )
    for j, name in enumerate(s for s in sets if s != IN_DOMAIN):
        right.scatter([], [], marker=markers[j % len(markers)], color="0.4", label=name)
    right.set(
        xlabel="in-domain accuracy",
        ylabel="out-of-domain accuracy",
        title="out of domain vs in domain",
    )
    right.xaxis.set_major_locator(MaxNLocator(nbins=5))  # accuracies close together: 0.7725…
    right.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(
        f"Classifier: augmentation vs out-of-domain accuracy\n({title}; {seeds_note(data)})"
    )
    return save(fig, out)


def lm_figure(results: pd.DataFrame, order: list[str], out: str | Path, title: str):
    """Bits per byte per strategy, one panel per evaluation set (their scales differ)."""
    data = results[(results["model"] == "lm") & (results["metric"] == "bits_per_byte")]
    sets = list(dict.fromkeys(data["set"]))
    fig, axes = plt.subplots(1, len(sets), figsize=(3.6 * len(sets) + 1, 4.2), squeeze=False)
    for ax, name in zip(axes[0], sets, strict=True):
        rows = data[data["set"] == name]
        # points, not bars: the axis is zoomed in to the differences
        seed_chart(ax, rows, "strategy", "value", order=order, bars=False, dot_size=3)
        low, high = rows["value"].min(), rows["value"].max()
        margin = 0.5 * (high - low) + 0.01
        ax.set_ylim(low - margin, high + margin)
        ax.set(xlabel=AUGMENTATION_AXIS, ylabel=label("bits_per_byte"), title=name)
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(
        f"Byte-level GPT: augmentation vs out-of-domain text\n({title}; {seeds_note(data)})"
    )
    return save(fig, out)
