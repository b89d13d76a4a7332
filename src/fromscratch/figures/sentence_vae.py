"""Figures of the sentence-VAE study: training curves, final measures, the latent space,
and decoded interpolations.  Inputs are the tidy tables (figures/tables.py) of the study's
runs, each variant's KL schedule (`kl_schedules`, from the runs' summary.json), each run's
latents.npz, and one run's examples.json."""

from __future__ import annotations

import itertools
import json
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from fromscratch.figures.plots import legend_beside, mean_sd, save, seed_chart, seeds_note
from fromscratch.io import read_json
from fromscratch.train.vae import VAETrainConfig, kl_weight

LABEL_NAMES = {0: "negative", 1: "positive"}
SCHEDULE_FIELDS = ("kl_schedule", "cycles", "ramp")


def kl_schedules(summaries: list[str | Path]) -> dict[str, dict]:
    """Each variant's KL-weight schedule, from the training config in its runs'
    summary.json (.../<variant>/seed<k>/summary.json): {variant: {steps, kl_schedule,
    cycles, ramp}}, the trainer's defaults for what a config leaves out."""
    schedules = {}
    for path in map(Path, summaries):
        summary = read_json(path)
        train = summary.get("config", {}).get("train", {})
        schedule = {
            "steps": train.get("max_steps", summary["steps"]),
            **{k: train.get(k, getattr(VAETrainConfig, k)) for k in SCHEDULE_FIELDS},
        }
        variant = path.parent.parent.name
        if schedules.setdefault(variant, schedule) != schedule:
            raise ValueError(f"{path}: KL schedule {schedule} differs from another seed's")
    return schedules


def _beta_line(ax, schedule: dict, color: str, label: str, **style) -> None:
    """β of every training step: the one after step s (as the logs count) used kl_weight(s)."""
    steps = np.arange(schedule["steps"])
    beta = [
        kl_weight(
            s, schedule["steps"], schedule["kl_schedule"], schedule["cycles"], schedule["ramp"]
        )
        for s in steps
    ]
    ax.plot(steps + 1, beta, color=color, label=label, **style)


def training(
    curves: pd.DataFrame,
    variants: list[str],
    out: str | Path,
    title: str,
    schedules: dict[str, dict] | None = None,
) -> list:
    """Reconstruction NLL, KL and beta against the step, one colour per variant: training
    batches as lines (mean ± sd over seeds), the test sentences as dots.  β comes from the
    schedule itself at every step (schedules: `kl_schedules`); a variant without one shows
    the logged β."""
    panels = [
        ("recon", "reconstruction NLL (nats/sentence)"),
        ("kl", "KL(q(z|x) ‖ p(z)) (nats/sentence)"),
        ("beta", "KL weight β"),
    ]
    schedules = schedules or {}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (metric, ylabel) in zip(axes, panels, strict=True):
        for i, variant in enumerate(variants):
            if metric == "beta" and variant in schedules:
                # schedules may coincide (free bits changes no β): thinner lines on top
                width = 1.5 + 2 * (len(variants) - 1 - i)
                _beta_line(ax, schedules[variant], f"C{i}", variant, lw=width)
                continue
            rows = curves[(curves["variant"] == variant) & (curves["metric"] == metric)]
            mean_sd(ax, rows, "step", "value", f"C{i}", variant)
            test = curves[(curves["variant"] == variant) & (curves["metric"] == f"test/{metric}")]
            if len(test):
                mean_sd(ax, test, "step", "value", f"C{i}", marker="o", ls="none", ms=4)
        ax.set(xlabel="training step", ylabel=ylabel)
    if schedules:
        axes[2].set_title(
            "β at every step, from each variant's schedule\n"
            "(where schedules agree, thinner lines lie on top)",
            fontsize=9,
        )
    axes[0].legend(title="variant (lines: training, dots: test)")
    fig.suptitle(title)
    return save(fig, out)


def summary(results: pd.DataFrame, variants: list[str], out: str | Path, title: str) -> list:
    """Final active units, probe accuracy and swap flip rate per variant; seeds as dots."""
    panels = [  # a count and a share from 0, as bars; the accuracy zoomed in about chance
        ("test/active_units", "active units (Var of μ > 0.01)", True),
        ("probe_accuracy", "sentiment probe accuracy on μ (test)", False),
        ("swap_flip_rate", "share of swaps read as flipped", True),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (metric, ylabel, bars) in zip(axes, panels, strict=True):
        seed_chart(ax, results, "variant", metric, order=variants, bars=bars)
        ax.set(xlabel="KL schedule", ylabel=ylabel)
        ax.tick_params(axis="x", rotation=15)
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[2].set_ylim(bottom=0)  # a share: its sd bar below 0 says nothing
    majority = results["majority_accuracy"].mean()
    axes[1].axhline(majority, color="C3", ls="--", label=f"majority class ({majority:.2f})")
    axes[1].legend(loc="best")
    seeds = results["seed"].nunique()
    dots = ", dots: seeds" if seeds > 1 else ""
    fig.suptitle(f"{title} ({seeds_note(seeds, 'bars and diamonds: mean ± sd')}{dots})")
    return save(fig, out)


def principal_components(x: np.ndarray, k: int = 2) -> np.ndarray:
    """x (N, D) projected on its first k principal components (N, k); zeros for the
    components it does not have (a latent of one dimension, a single sentence)."""
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    points = centred @ vt[:k].T
    return np.pad(points, ((0, 0), (0, k - points.shape[1])))


def latent(
    latents: dict[str, str | Path], results: pd.DataFrame, seed: int, out: str | Path, title: str
) -> list:
    """One panel per variant: the test sentences' μ on two principal components, by label."""
    fig, axes = plt.subplots(1, len(latents), figsize=(5 * len(latents), 4.4), squeeze=False)
    for ax, (variant, path) in zip(axes[0], latents.items(), strict=True):
        saved = np.load(path)
        points = principal_components(saved["mu"])
        frame = pd.DataFrame(
            {
                "PC 1": points[:, 0],
                "PC 2": points[:, 1],
                "label": [LABEL_NAMES.get(int(y), str(y)) for y in saved["labels"]],
            }
        )
        sns.scatterplot(frame, x="PC 1", y="PC 2", hue="label", hue_order=["negative", "positive"],
                        s=10, alpha=0.6, linewidth=0, ax=ax)  # fmt: skip
        row = results[(results["variant"] == variant) & (results["seed"] == seed)].iloc[0]
        ax.set_title(
            f"{variant}: probe {row['probe_accuracy']:.2f}, "
            f"{int(row['test/active_units'])} active units",
            fontsize=10,
        )
        ax.set(xlabel="principal component 1 of μ", ylabel="principal component 2 of μ")
    for ax in axes[0]:  # one legend, beside the panels: inside one it hid points
        ax.get_legend().remove()
    legend_beside(axes[0][-1], title="review")
    fig.suptitle(f"{title} (seed {seed})")
    return save(fig, out)


def balanced(rows: list[dict], count: int) -> list[dict]:
    """Up to `count` of `rows`, taken from each label in turn: the first rows may all be
    of one label, and a move shows its direction only beside the other."""
    by_label = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    taken = [
        row for turn in itertools.zip_longest(*by_label.values()) for row in turn if row is not None
    ]
    return taken[:count]


def interpolations(
    examples_path: str | Path, out: str | Path, title: str, pairs: int = 3, swaps: int = 6
) -> list:
    """Decoded interpolations between sentences, and sentences moved along the label
    direction, as text."""
    examples = json.loads(Path(examples_path).read_text())
    lines = []
    for pair in examples["interpolations"][:pairs]:
        lines.append(("head", f"“{pair['from']}”  →  “{pair['to']}”"))
        for t, text in zip(np.linspace(0, 1, len(pair["steps"])), pair["steps"], strict=True):
            lines.append(("body", f"  t = {t:.2f}   {text}"))
        lines.append(("gap", ""))
    lines.append(("head", "Moved along the sentiment direction in z: the sentence, decoded from"))
    lines.append(
        ("head", "its μ, and decoded after the move (flipped: the probe reads the other label)")
    )
    for row in balanced(examples["reconstructions"], swaps):
        # shorten the text, then indent it: shorten() would collapse the indent too
        label = f"  [{LABEL_NAMES.get(row['label'], row['label'])[:3]}] "
        moved = "      moved:   " + ("(flipped) " if row["flipped"] else "")
        for before, text in ((label, row["text"]), ("      decoded: ", row["reconstruction"]),
                             (moved, row["swapped"])):  # fmt: skip
            lines.append(("body", before + textwrap.shorten(text, 100 - len(before))))
    fig, ax = plt.subplots(figsize=(9, 0.22 * len(lines) + 0.8))
    ax.axis("off")
    for i, (kind, text) in enumerate(lines):  # decoded text as written, "$5 ... $6" too
        ax.text(0, 1 - i / len(lines), text, va="top", transform=ax.transAxes,
                family="monospace" if kind == "body" else None,
                fontweight="bold" if kind == "head" else None, fontsize=8.5,
                parse_math=False)  # fmt: skip
    ax.set_title(title, loc="left", parse_math=False)
    return save(fig, out)
