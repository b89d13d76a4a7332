"""The distillation study's table and figures: LSTM students of each depth, distilled from
the teacher or trained alone, and their bits per token at 1×–8× their training length."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from fromscratch.figures.plots import (
    label,
    legend_below,
    log2_ticks,
    mean_sd,
    require_values,
    save,
    seeds_note,
)
from fromscratch.io import read_json

MODES = ("distilled", "control")
COLORS = {"distilled": "C0", "control": "C1"}
METRIC = "bits_per_token"


def results_table(
    students: list[dict], lengths_files: list[str], teacher_file: str
) -> pd.DataFrame:
    """One row per model and evaluation length: mode (distilled | control | teacher),
    layers, seed, length (tokens), multiple (of the training length), bits per token /
    character / byte, parameters. `students[i]` ({mode, layers, seed}) made `lengths_files[i]`."""
    rows = []
    for student, path in zip(students, lengths_files, strict=True):
        rows += _rows(read_json(path), **student)
    teacher = read_json(teacher_file)
    rows += _rows(teacher, mode="teacher", layers=teacher["n_layer"], seed=None)
    return pd.DataFrame(rows)


def _rows(result: dict, mode: str, layers: int, seed: int | None) -> list[dict]:
    return [
        {
            "mode": mode,
            "layers": layers,
            "seed": seed,
            "length": r["length"],
            "multiple": r["length"] / result["context"],
            "bits_per_token": r["bits_per_token"],
            "bits_per_char": r["bits_per_char"],
            "bits_per_byte": r["bits_per_byte"],
            "parameters": result["parameters"],
            "split": result["split"],
        }
        for r in result["results"]
    ]


def _teacher(table: pd.DataFrame) -> pd.Series:
    return table[table["mode"] == "teacher"].iloc[0]


def _students(table: pd.DataFrame) -> pd.DataFrame:
    students = table[table["mode"] != "teacher"]
    require_values(students, METRIC, "mode", "layers", "length")
    return students


def by_layers(table: pd.DataFrame, out: str | Path, teacher_name: str) -> list:
    """Bits per token at the training length against LSTM depth, distilled and alone,
    with the teacher as a line: how many layers keep the teacher's quality?"""
    students = _students(table)
    students = students[students["multiple"] == 1]
    teacher = _teacher(table)
    seeds = students["seed"].nunique()
    fig, ax = plt.subplots(figsize=(6.4, 6.0))  # the legend below
    for offset, mode in zip((-0.08, 0.08), MODES, strict=True):
        rows = students[students["mode"] == mode]
        mean_sd(
            ax, rows, "layers", METRIC, COLORS[mode], mode + " (mean ± sd)" * (seeds > 1),
            bars=True, shift=offset, marker="o", capsize=4,
        )  # fmt: skip
        ax.scatter(rows["layers"] + offset, rows[METRIC], s=12, color="k", zorder=3)
    ax.axhline(
        teacher[METRIC], color="0.3", ls="--",
        label=f"teacher: {teacher_name}, {teacher['parameters'] / 1e3:,.0f}k parameters",
    )  # fmt: skip
    params = students.groupby("layers")["parameters"].first()
    ax.set_xticks(params.index, [f"{n}\n{p / 1e3:,.0f}k par." for n, p in params.items()])
    ax.scatter([], [], s=12, color="k", label="one seed")
    ax.set(
        xlabel="LSTM layers (and parameters)",
        ylabel=label(f"{teacher['split']}/{METRIC}"),
        title=f"LSTM students at their training length ({int(students['length'].iloc[0])} "
        f"tokens)\n{seeds} seed{'s' * (seeds != 1)} each; lower is better",
    )
    legend_below(ax, 0.3)  # inside, it covered the teacher's line
    return save(fig, out)


def by_length(table: pd.DataFrame, out: str | Path, teacher_name: str) -> list:
    """Bits per token against the evaluation length, one line per depth, distilled and
    alone side by side; the teacher is a point at its maximum context."""
    students = _students(table)
    teacher = _teacher(table)
    depths = sorted(int(n) for n in students["layers"].unique())
    palette = dict(zip(depths, sns.color_palette("viridis", len(depths)), strict=True))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), sharey=True)
    for ax, mode in zip(axes, MODES, strict=True):
        rows = students[students["mode"] == mode]
        for layers in depths:
            mean_sd(
                ax, rows[rows["layers"] == layers], "length", METRIC, palette[layers],
                f"{layers} layer{'s' * (layers != 1)}", marker="o", ms=4,
            )  # fmt: skip
        ax.axvline(rows["length"].min(), color="0.6", ls=":", label="training length")
        ax.axhline(teacher[METRIC], color="0.3", ls="--", lw=1)
        ax.plot([teacher["length"]], [teacher[METRIC]], marker="*", ms=12, color="0.3", ls="",
                label=f"teacher ({teacher_name}) at its context")  # fmt: skip
        log2_ticks(ax, rows["length"])
        ax.set(
            xlabel="evaluation length (tokens per window)",
            ylabel=label(f"{teacher['split']}/{METRIC}"),
            title=f"{mode} LSTMs",
        )
        ax.legend()
    fig.suptitle(
        "Beyond the training length: bits per token on longer windows\n"
        f"({seeds_note(students, 'lines: mean, bands: ± sd')})"
    )
    return save(fig, out)
