"""The poster's figures, drawn with seaborn: one function per figure, each saving PNG + PDF.

Every axis is labelled with its quantity and unit; every figure has a title; seeds are
error bars (± one standard deviation) with the individual seeds drawn as points.  The
helpers shared by every study's figures: `seeds_note`, `mean_sd` (a line over seeds),
`seed_chart` (one value per category over seeds) and `log2_ticks`.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from fromscratch import FromScratchError
from fromscratch.io import atomic_path

# legends at 10 pt: a poster prints its figures at about 0.6 of their saved size, and at
# 8 pt they would read from nowhere
sns.set_theme(
    style="whitegrid", context="notebook", rc={"legend.fontsize": 10, "legend.title_fontsize": 10}
)
DPI = 150  # of the PNGs, which the poster lays out at their size: pixels / DPI inches

METRIC_LABELS = {
    "accuracy": "accuracy",
    "bits_per_char": "bits per character",
    "bits_per_byte": "bits per byte",
    "bits_per_token": "bits per token",
    "tokens_per_s": "throughput (tokens/s)",
}


# What each model's loss (a cross-entropy) is counted per: the GPT predicts every token,
# the classifier one label per review.
LOSS_UNITS = {"gpt": "nats/token", "classifier": "nats/review"}
SPLIT_NAMES = {"train": "training", "val": "validation"}


def label(metric: str, loss_unit: str = LOSS_UNITS["gpt"]) -> str:
    """An axis label for a logged metric: "val/loss" -> "validation loss (nats/token)";
    loss_unit: what the loss is counted per (LOSS_UNITS)."""
    split, _, name = metric.rpartition("/")
    text = METRIC_LABELS.get(name, name.replace("_", " "))
    if name == "loss":
        text = f"loss ({loss_unit})"
        if not split:  # the unsplit loss is the one logged every training step
            split = "train"
    return f"{SPLIT_NAMES.get(split, split)} {text}" if split else text


def save(fig: plt.Figure, path: str | Path) -> list[Path]:
    """Write path.png and path.pdf, each atomically; returns both paths."""
    path = Path(path).with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    written = []
    for suffix in (".png", ".pdf"):
        with atomic_path(path.with_suffix(suffix)) as tmp:  # no half-drawn figure
            # tight: cropped to what is drawn, legends beside or below a panel included
            fig.savefig(tmp, dpi=DPI, format=suffix.removeprefix("."), bbox_inches="tight")
        written.append(path.with_suffix(suffix))
    plt.close(fig)
    return written


def seeds_note(seeds: int | pd.DataFrame, stat: str = "mean ± sd") -> str:
    """What the error bars of `seeds` seeds (a count, or a table with a seed column) are:
    "mean ± sd over 3 seeds"; "1 seed" where a single seed has no spread to show."""
    if isinstance(seeds, pd.DataFrame):
        seeds = seeds["seed"].nunique()
    return f"{stat} over {seeds} seeds" if seeds != 1 else "1 seed"


def mean_sd_text(values: pd.Series, fmt: str = ".3f") -> str:
    """The mean and sd of the seeds' values, "2.063 ± 0.102"; just "2.063" for one seed."""
    if values.count() < 2:
        return format(values.mean(), fmt)
    return f"{format(values.mean(), fmt)} ± {format(values.std(), fmt)}"


def mean_sd(
    ax: plt.Axes,
    rows: pd.DataFrame,
    x: str,
    y: str,
    color: str,
    label: str | None = None,
    bars: bool = False,
    at: str | None = None,
    shift: float = 0.0,
    **style,
) -> pd.DataFrame:
    """The mean over seeds of column y at each value of column x, with ± one standard
    deviation (none for a single seed) as a band, or with bars=True as capped error bars.
    at: a column whose mean at each x is the position drawn instead (the tokens seen by a
    step); shift: added to the positions (models side by side).  Returns the mean and sd."""
    stats = rows.groupby(x).agg(mean=(y, "mean"), sd=(y, "std"))
    where = (rows.groupby(x)[at].mean() if at else stats.index.to_series()) + shift
    sd = stats["sd"].fillna(0)
    if bars:
        style = {"capsize": 3, **style}
        ax.errorbar(where, stats["mean"], yerr=sd, color=color, label=label, **style)
    else:
        ax.plot(where, stats["mean"], color=color, label=label, **style)
        ax.fill_between(where, stats["mean"] - sd, stats["mean"] + sd, color=color, alpha=0.2)
    return stats


def not_logged(metric: str) -> str:
    """Why no run has `metric`, where a reason is known."""
    why = ""
    if metric.endswith(("bits_per_byte", "bits_per_char")):
        why = (
            " (a tokenizer that is not lossless, with <unk>, leaves out bits per byte and "
            "per character: compare bits_per_token)"
        )
    return f"no run has {metric}{why}"


def require_values(data: pd.DataFrame, column: str, *categories: str) -> None:
    """Stop, naming the runs (by their `categories` and seed), where `column` is NaN (a
    summary without the number): a chart would leave those seeds out without a word, under
    a title that counts them."""
    if column not in data:  # in no summary: tables.runs leaves out what is null
        raise FromScratchError(not_logged(column))
    missing = data[data[column].isna()]
    if len(missing):
        runs = ", ".join(
            " ".join(str(row[c]) for c in categories) + f" seed {row['seed']:g}"
            for _, row in missing.iterrows()
        )
        raise FromScratchError(f"{column} is NaN for {runs}; a figure would leave it out")


def seed_chart(
    ax: plt.Axes,
    data: pd.DataFrame,
    x: str,
    y: str,
    order: list[str] | None = None,
    bars: bool = True,
    dot_size: float = 4,
) -> None:
    """One value per category over seeds: the mean with ± one standard deviation (capped
    error bars) and a black dot per seed; the mean as a bar from 0 (bars=True), or as a
    point where the axis is zoomed in to the differences (a bar must start at 0).  The
    categories go along whichever of x and y is not numeric."""
    if y not in data:
        require_values(data, y, x)
    value, category = (y, x) if pd.api.types.is_numeric_dtype(data[y]) else (x, y)
    require_values(data, value, category)
    if bars:
        sns.barplot(data, x=x, y=y, order=order, errorbar="sd", color="C0", alpha=0.6,
                    capsize=0.2, ax=ax)  # fmt: skip
    else:
        sns.pointplot(data, x=x, y=y, order=order, errorbar="sd", capsize=0.2,
                      linestyle="none", marker="D", color="C0", ax=ax)  # fmt: skip
    sns.stripplot(data, x=x, y=y, order=order, color="k", size=dot_size, ax=ax)


def legend_beside(ax: plt.Axes, handles=None, labels=None, **kwargs) -> None:
    """The legend to the right of `ax`, outside it: where the lines fill a panel's width,
    "best" inside it still covers some of them.  handles, labels: another panel's."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    ax.legend(
        handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
        **kwargs,
    )  # fmt: skip


def legend_below(ax: plt.Axes, below: float = 0.28, **kwargs) -> None:
    """The legend under `ax`, beneath its x-axis label (`below`: how far, in axes heights):
    a legend of long entries would cover the curves inside the panel, and beside it would
    squeeze the panel. The figure must be tall enough for it."""
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -below), borderaxespad=0, **kwargs)


def log2_ticks(ax: plt.Axes, ticks) -> None:
    """A log-2 x axis with a tick (and only a tick) at each of `ticks`."""
    ticks = sorted(set(ticks))
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(int(t)) if float(t).is_integer() else f"{t:g}" for t in ticks])
    ax.minorticks_off()


def lr_range(
    csv_path: str | Path,
    json_path: str | Path,
    out: str | Path,
    title: str,
    loss_unit: str = LOSS_UNITS["gpt"],
) -> list:
    """The LR range test's loss against the learning rate; loss_unit: what the model's
    loss is counted per (LOSS_UNITS)."""
    curve = pd.read_csv(csv_path)
    choice = json.loads(Path(json_path).read_text())
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(curve["lr"], curve["loss"], color="0.75", lw=1, label="loss per step")
    beta = choice["smoothing_beta"]
    ax.plot(curve["lr"], curve["smoothed"], lw=2, label=f"smoothed (EMA, β = {beta:.2f})")
    ax.axvline(choice["lr_at_min_loss"], color="0.4", ls=":", label="minimum of smoothed loss")
    ax.axvline(choice["lr"], color="C3", ls="--", label=f"chosen: {choice['lr']:.2g} (min / 10)")
    ax.set_xscale("log")
    start = curve.iloc[: max(len(curve) // 10, 1)]  # the y-range: from the start to the best
    low = min(curve["smoothed"].min(), curve["loss"].min())
    high = max(start["smoothed"].max(), start["loss"].max())
    ax.set_ylim(low - 0.1 * (high - low + 1e-9), high + 0.5 * (high - low + 1e-9))
    ax.set(xlabel="learning rate", ylabel=label("loss", loss_unit), title=title)
    ax.legend()
    return save(fig, out)


def batch_size(
    json_path: str | Path, out: str | Path, title: str, noise_path: str | Path | None = None
) -> list:
    """The batch-size search's result; noise_path: a noise_scale.json to mark on it."""
    result = json.loads(Path(json_path).read_text())
    tried = pd.DataFrame(result["tried"])
    fits = tried[tried["fits"]]
    # one x-axis: a noise scale beyond the sizes tried stretches both panels alike
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 5.0), sharex=True)  # a legend below
    left.plot(fits["batch_size"], fits["tokens_per_s"], marker="o")
    left.set(xlabel="batch size (sequences)", ylabel="throughput (tokens/s)")
    noise = json.loads(Path(noise_path).read_text()) if noise_path is not None else {}
    if noise.get("noise_scale") is not None:  # None: not measured (noise_scale.py)
        where = f"after {noise['after_steps']} steps" if noise["after_steps"] else "at init"
        if noise["after_steps"] and "trained_at" in noise:  # results before it lack it
            lr, batch = noise["trained_at"]["lr"], noise["trained_at"]["batch_size"]
            where += f"\n(LR {lr:.2g}, batch {batch})"
        label = f"gradient noise scale:\n{noise['noise_scale']:.3g} sequences, {where}"
        left.axvline(noise["noise_scale"], color="C2", ls="--", label=label)
        legend_below(left)
    elif noise:  # the caption speaks of it: say why it is not there
        reason = "gradient noise scale: not measured\n(an estimate of |G|² or tr(Σ) ≤ 0)"
        left.plot([], [], " ", label=reason)
        legend_below(left, handlelength=0)
    right.plot(tried["batch_size"], tried["peak_memory_mb"], marker="o", color="C1")
    if result["device"] == "cpu":
        right.axhline(result["memory_cap_mb"], color="C3", ls="--", label="memory cap")
        right.legend()
    right.set(xlabel="batch size (sequences)", ylabel="peak memory (MB)")
    for ax in (left, right):
        log2_ticks(ax, tried["batch_size"])
    # every size tried fitting: the choice is the search's ceiling, not the memory's
    capped = result["tried"][-1]["fits"]
    limit = "the most tried: every size fits" if capped else "the largest that fits"
    fig.suptitle(f"{title} (chosen: {result['batch_size']}, {limit})")
    return save(fig, out)


def training_curves(
    curves: pd.DataFrame,
    experiment: str,
    out: str | Path,
    title: str,
    eval_metric: str | None = None,
    smooth: int = 5,
    order: list[str] | None = None,
    variable: str | None = None,
    loss_unit: str = LOSS_UNITS["gpt"],
) -> list:
    """Training loss (smoothed: a centred mean over `smooth` logged steps, which neither
    lags nor lifts a falling curve as a trailing mean would) and the evaluation metric
    against training tokens; one line per variant: the mean over seeds at each step, with
    a band of ± one standard deviation. `variable`: what the variants are values of;
    loss_unit: what the model's loss is counted per (LOSS_UNITS)."""
    data = curves[curves["experiment"] == experiment]
    order = order or sorted(data["variant"].unique())
    panels = [("loss", "training")] + ([(eval_metric, "evaluation")] if eval_metric else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.2), squeeze=False)
    for ax, (metric, kind) in zip(axes[0], panels, strict=True):
        rows = data[data["metric"] == metric].sort_values("step")
        ylabel, panel_title = label(metric, loss_unit), kind
        if kind == "training":
            rows = rows.assign(
                value=rows.groupby(["variant", "seed"])["value"].transform(
                    lambda v: v.rolling(smooth, center=True, min_periods=1).mean()
                )
            )
            ylabel = f"smoothed {ylabel}"
            panel_title = f"training (smoothed: centred mean of {smooth} logged steps)"
        if rows.empty:  # an empty panel under a legend would pass for a plot
            ax.text(0.5, 0.5, textwrap.fill(not_logged(metric), 40), ha="center",
                    va="center", transform=ax.transAxes, fontsize=9)  # fmt: skip
        for i, variant in enumerate(order):  # the same colour for a variant in every panel
            mean_sd(
                ax, rows[rows["variant"] == variant], "step", "value", f"C{i}", variant,
                at="tokens", marker="o" if kind == "evaluation" else None, ms=3,
            )  # fmt: skip
        ax.set(xlabel="training tokens", ylabel=ylabel)
        ax.set_title(panel_title, fontsize=11 if kind == "training" else None)
    # one legend, beside the last panel: inside, six variants' entries covered their curves
    legend_beside(axes[0][-1], title=variable)
    fig.suptitle(title)
    return save(fig, out)


def comparison(
    runs: pd.DataFrame,
    experiment: str,
    metric: str,
    out: str | Path,
    title: str,
    order: list[str] | None = None,
    variable: str | None = None,
) -> list:
    """The final metric of each variant (values of `variable`): the mean over seeds with
    ± one standard deviation, a dot for each seed.  Bits are bars from 0; accuracies,
    whose differences are small beside their distance from 0, are points on an axis
    zoomed in to them (a bar would have to start at 0)."""
    data = runs[runs["experiment"] == experiment]
    zoom = metric.endswith("accuracy")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    seed_chart(ax, data, "variant", metric, order=order, bars=not zoom)
    seeds = data["seed"].nunique()
    what, dots = "points" if zoom else "bars", ", dots: seeds" if seeds > 1 else ""
    note = seeds_note(seeds, f"{what}: mean ± sd") + dots
    ax.set(xlabel=variable, ylabel=label(metric), title=f"{title}\n({note})")
    ax.tick_params(axis="x", rotation=20)
    return save(fig, out)


def samples(texts: dict[str, str], out: str | Path, title: str, width: int = 90) -> list:
    """A figure of text samples, one block per model."""
    blocks = []
    for name, text in texts.items():
        body = textwrap.fill(" ".join(text.split())[:600], width=width)
        blocks.append((name, body))
    lines = sum(body.count("\n") + 3 for _, body in blocks)
    fig, ax = plt.subplots(figsize=(8, 0.17 * lines + 0.8))
    ax.axis("off")
    y = 0.97
    as_written = dict(va="top", transform=ax.transAxes, parse_math=False)  # "$5 ... $6" too
    for name, body in blocks:
        ax.text(0, y, name, fontweight="bold", fontsize=10, **as_written)
        y -= 1.5 / lines
        ax.text(0, y, body, family="monospace", fontsize=8, **as_written)
        y -= (body.count("\n") + 1.5) / lines
    ax.set_title(title, loc="left", parse_math=False)
    return save(fig, out)
