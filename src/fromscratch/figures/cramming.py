"""The cramming study: GPTs trained for a fixed budget of training time.

A run folder is <study>/runs/<recipe>/budget<seconds>s/seed<k>/ with its summary.json.
`runs_table` has one row per run; `ablation_table` one row per recipe at the whole budget,
with its change from the baseline taken seed by seed (the same seed sees the same batches,
so the pairs differ by the recipe, not by the data order).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from fromscratch.figures.plots import (
    label,
    log2_ticks,
    mean_sd_text,
    require_values,
    save,
    seed_chart,
    seeds_note,
)


def _summary_row(path: Path, metric: str) -> dict:
    summary = json.loads(Path(path).read_text())
    config = summary["config"]
    return {
        "budget_s": config["time_budget_s"],
        "seed": config["seed"],
        "train_time_s": summary["train_time_s"],
        "steps": summary["steps"],
        "tokens": summary["tokens"],
        "tokens_per_s": summary["tokens_per_s"],
        "lr": config["lr"],
        metric: summary[metric],
    }


def runs_table(summaries: list[str | Path], metric: str) -> pd.DataFrame:
    """One row per run: its recipe (from the folder), budget, seed, steps and `metric`."""
    rows = [{"recipe": Path(p).parents[2].name, **_summary_row(p, metric)} for p in summaries]
    return pd.DataFrame(rows)


def reference_table(summaries: list[str | Path], metric: str) -> pd.DataFrame:
    """The reference runs (trained for a number of steps): time spent and `metric`."""
    return pd.DataFrame([_summary_row(p, metric) for p in summaries])


def whole_budget(runs: pd.DataFrame, metric: str, budget_s: float) -> pd.DataFrame:
    """The runs at the whole budget, with `change`: the metric minus the baseline's metric
    of the same seed."""
    whole = runs[np.isclose(runs["budget_s"], budget_s)]
    require_values(whole, metric, "recipe")  # a NaN baseline would void a seed everywhere
    baseline = whole[whole["recipe"] == "baseline"].set_index("seed")[metric]
    return whole.assign(change=whole[metric] - whole["seed"].map(baseline))


def ablation_table(runs: pd.DataFrame, metric: str, budget_s: float) -> pd.DataFrame:
    """Per recipe at the whole budget: the metric's mean and sd over seeds, and its change
    from the baseline of the same seed (mean and sd of the differences)."""
    return (
        whole_budget(runs, metric, budget_s)
        .groupby("recipe", sort=False)
        .agg(
            mean=(metric, "mean"),
            sd=(metric, "std"),
            change=("change", "mean"),
            change_sd=("change", "std"),
            seeds=("seed", "nunique"),
            steps=("steps", "mean"),
        )
        .reset_index()
    )


def _time_unit(seconds: float) -> tuple[float, str]:
    """A unit that keeps budgets readable: (seconds per unit, its name)."""
    if seconds >= 3 * 3600:
        return 3600.0, "h"
    if seconds >= 180:
        return 60.0, "min"
    return 1.0, "s"


def step_count(mean: float) -> str:
    """A mean over seeds of steps, as ablations.csv has it: 696.5, not 696 (.0f rounds
    half to even, so 696.5 and 697.5 would print 696 and 698)."""
    return f"{mean:,.1f}".removesuffix(".0")


def budget_figure(
    runs: pd.DataFrame,
    reference: pd.DataFrame,
    metric: str,
    out: str | Path,
    title: str,
    reference_label: str = "course GPT",
    published: dict | None = None,
) -> list:
    """The baseline's metric against its time budget (mean ± sd over seeds, seeds as
    points); the reference runs at the training time they took (none: an empty table); a
    published result."""
    baseline = runs[runs["recipe"] == "baseline"]
    times = reference["train_time_s"] if len(reference) else pd.Series([], dtype=float)
    per, unit = _time_unit(max([baseline["budget_s"].max(), *times]))
    baseline = baseline.assign(budget=baseline["budget_s"] / per)
    seeds = baseline["seed"].nunique()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    sns.lineplot(
        baseline, x="budget", y=metric, errorbar="sd", err_style="bars", marker="o",
        color="C0", label="baseline recipe" + (" (mean ± sd)" if seeds > 1 else ""), ax=ax,
    )  # fmt: skip
    sns.scatterplot(baseline, x="budget", y=metric, color="k", s=14, label="one seed", ax=ax)
    # Ticks at the budgets, and at the reference's mean training time (rounded).
    ticks = {*baseline["budget"]}
    if len(reference):
        ax.scatter(
            times / per,
            reference[metric],
            marker="*",
            s=90,
            color="C3",
            label=f"{reference_label}, its training time "
            f"({len(reference)} run{'s' * (len(reference) != 1)})",
            zorder=3,
        )
        ticks.add(float(f"{times.mean() / per:.2g}"))
    if published:
        ax.axhline(published["value"], color="0.3", ls="--", lw=1)
        ax.annotate(
            f"{published['label']}: {published['value']:g}",
            (0.02, published["value"]),
            xycoords=("axes fraction", "data"),
            xytext=(0, 3),
            textcoords="offset points",
            fontsize=8,
            color="0.3",
        )
    log2_ticks(ax, sorted(ticks))
    ax.set(
        xlabel=f"training-time budget ({unit}, log scale)",
        ylabel=label(metric),
        title=f"{title}\nquality vs budget (the recipe: {seeds} seed{'s' * (seeds != 1)})",
    )
    ax.legend()
    return save(fig, out)


def ablation_figure(
    runs: pd.DataFrame, metric: str, budget_s: float, out: str | Path, title: str
) -> list:
    """Each ablation's change of the metric from the baseline of the same seed, at the
    whole budget: bars are the mean ± sd over seeds, points the seeds (plots.seed_chart)."""
    whole = whole_budget(runs, metric, budget_s)
    baseline = whole[whole["recipe"] == "baseline"][metric]
    ablations = whole[whole["recipe"] != "baseline"]
    order = list(dict.fromkeys(ablations["recipe"]))
    # A time budget buys a recipe as many steps as its speed allows: say how many.
    steps = ablations.groupby("recipe")["steps"].mean()
    names = [f"{recipe}\n({step_count(steps[recipe])} steps)" for recipe in order]
    fig, ax = plt.subplots(figsize=(7.2, 0.55 * len(order) + 2.0))
    seed_chart(ax, ablations, "change", "recipe", order=order)  # bars from no change
    ax.set_yticks(range(len(order)), names)
    ax.axvline(0, color="0.3", lw=1)
    per, unit = _time_unit(budget_s)
    base_steps = whole[whole["recipe"] == "baseline"]["steps"].mean()
    ax.set(
        xlabel=f"change in {label(metric)}\nablation − baseline of the same seed (> 0: worse)",
        ylabel=None,
        title=f"{title}\none change at a time, {budget_s / per:g} {unit} each; "
        f"{seeds_note(ablations)}\n"
        f"baseline: {mean_sd_text(baseline)} ({step_count(base_steps)} steps)",
    )
    return save(fig, out)
