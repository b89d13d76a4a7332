"""The poster's figures, drawn with seaborn: one function per figure, each saving PNG + PDF.

Every axis is labelled with its quantity and unit; every figure has a title; seeds are
error bars (± one standard deviation) with the individual seeds drawn as points.
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

from fromscratch.io import atomic_path

sns.set_theme(style="whitegrid", context="notebook")

METRIC_LABELS = {
    "loss": "loss (nats/token)",
    "accuracy": "accuracy",
    "bits_per_char": "bits per character",
    "bits_per_byte": "bits per byte",
    "bits_per_token": "bits per token",
    "tokens_per_s": "throughput (tokens/s)",
}


SPLIT_NAMES = {"train": "training", "val": "validation"}


def label(metric: str) -> str:
    """An axis label for a logged metric: "val/loss" -> "validation loss (nats/token)"."""
    split, _, name = metric.rpartition("/")
    text = METRIC_LABELS.get(name, name.replace("_", " "))
    if not split and name == "loss":  # the unsplit loss is the one logged every training step
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
            fig.savefig(tmp, dpi=150, format=suffix.removeprefix("."))
        written.append(path.with_suffix(suffix))
    plt.close(fig)
    return written


def lr_range(csv_path: str | Path, json_path: str | Path, out: str | Path, title: str) -> list:
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
    ax.set(xlabel="learning rate", ylabel="training loss (nats/token)", title=title)
    ax.legend(fontsize=8)
    return save(fig, out)


def batch_size(
    json_path: str | Path, out: str | Path, title: str, noise_path: str | Path | None = None
) -> list:
    """The batch-size search's result; noise_path: a noise_scale.json to mark on it."""
    result = json.loads(Path(json_path).read_text())
    tried = pd.DataFrame(result["tried"])
    fits = tried[tried["fits"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    left.plot(fits["batch_size"], fits["tokens_per_s"], marker="o")
    left.set(xscale="log", xlabel="batch size (sequences)", ylabel="throughput (tokens/s)")
    if noise_path is not None:
        noise = json.loads(Path(noise_path).read_text())
        where = f"after {noise['after_steps']} steps" if noise["after_steps"] else "at init"
        label = f"gradient noise scale:\n{noise['noise_scale']:.3g} sequences, {where}"
        left.axvline(noise["noise_scale"], color="C2", ls="--", label=label)
        left.legend(fontsize=8)
    right.plot(tried["batch_size"], tried["peak_memory_mb"], marker="o", color="C1")
    if result["device"] == "cpu":
        right.axhline(result["memory_cap_mb"], color="C3", ls="--", label="memory cap")
        right.legend(fontsize=8)
    right.set(xscale="log", xlabel="batch size (sequences)", ylabel="peak memory (MB)")
    for ax in (left, right):
        ax.set_xticks(tried["batch_size"], [str(b) for b in tried["batch_size"]])
        ax.minorticks_off()
    fig.suptitle(f"{title} (chosen: {result['batch_size']})")
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
) -> list:
    """Training loss (a rolling mean over `smooth` logged steps) and the evaluation metric
    against training tokens; one line per variant: the mean over seeds at each step, with
    a band of ± one standard deviation. `variable`: what the variants are values of."""
    data = curves[curves["experiment"] == experiment]
    order = order or sorted(data["variant"].unique())
    panels = [("loss", "training")] + ([(eval_metric, "evaluation")] if eval_metric else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.2), squeeze=False)
    for ax, (metric, kind) in zip(axes[0], panels, strict=True):
        rows = data[data["metric"] == metric].sort_values("step")
        if kind == "training":
            rows = rows.assign(
                value=rows.groupby(["variant", "seed"])["value"].transform(
                    lambda v: v.rolling(smooth, min_periods=1).mean()
                )
            )
        for i, variant in enumerate(order):  # the same colour for a variant in every panel
            group = rows[rows["variant"] == variant]
            by_step = group.groupby("step").agg(
                tokens=("tokens", "mean"), mean=("value", "mean"), sd=("value", "std")
            )
            color = f"C{i}"
            ax.plot(
                by_step["tokens"],
                by_step["mean"],
                color=color,
                label=variant,
                marker="o" if kind == "evaluation" else None,
                ms=3,
            )
            ax.fill_between(
                by_step["tokens"],
                by_step["mean"] - by_step["sd"].fillna(0),
                by_step["mean"] + by_step["sd"].fillna(0),
                color=color,
                alpha=0.2,
            )
        ax.set(xlabel="training tokens", ylabel=label(metric), title=kind)
        ax.legend(fontsize=8, title=variable, title_fontsize=8)
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
    """The final metric of each variant (values of `variable`): bars for the mean over
    seeds with ± one standard deviation, a dot for each seed."""
    data = runs[runs["experiment"] == experiment]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sns.barplot(
        data,
        x="variant",
        y=metric,
        order=order,
        errorbar="sd",
        ax=ax,
        color="C0",
        alpha=0.6,
        capsize=0.2,
    )
    sns.stripplot(data, x="variant", y=metric, order=order, ax=ax, color="k", size=4)
    low = data[metric].min()
    if metric.endswith("accuracy"):
        ax.set_ylim(max(0.0, low - 0.1), min(1.0, data[metric].max() + 0.05))
    seeds = data["seed"].nunique()
    ax.set(
        xlabel=variable,
        ylabel=label(metric),
        title=f"{title}\n(bars: mean ± sd over {seeds} seed{'s' * (seeds != 1)})",
    )
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
    for name, body in blocks:
        ax.text(0, y, name, fontweight="bold", va="top", fontsize=10, transform=ax.transAxes)
        y -= 1.5 / lines
        ax.text(0, y, body, family="monospace", va="top", fontsize=8, transform=ax.transAxes)
        y -= (body.count("\n") + 1.5) / lines
    ax.set_title(title, loc="left")
    return save(fig, out)
