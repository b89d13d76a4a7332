"""The Perceiver study's table and figure: quality and cost against context length.

`table` joins each run's summary.json with its model's plan (parameters, FLOPs) and its
measured cost (peak memory); `context_figure` draws, for every data set, bits per
character (or byte), training throughput and peak memory against the context length.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from fromscratch.figures import plots

MODEL_NAMES = {"gpt": "GPT", "perceiver": "Perceiver AR"}


def bits_unit(data: str) -> str:
    """Characters for a character-level data set, bytes for every other (exact either way)."""
    return "bits_per_char" if data.endswith("-chars") else "bits_per_byte"


def table(plans: list, costs: list, summaries: list, splits: dict[str, str]) -> pd.DataFrame:
    """One row per run: data set, model, context, seed, its plan (parameters, training
    FLOPs, steps, tokens), the bits of its evaluation split, its training throughput, and
    the peak memory measured for its model.  plans: any number per data set (the workflow
    writes one per context); costs: one per data set.  splits: data set -> evaluation split."""
    planned, measured = {}, {}
    for path in plans:
        plan = json.loads(Path(path).read_text())
        for name, variant in plan["variants"].items():
            planned[Path(plan["data"]).name, name] = variant
    for path in costs:
        cost = json.loads(Path(path).read_text())
        for row in cost["rows"]:
            measured[Path(cost["data"]).name, row["variant"]] = {**row, "device": cost["device"]}
    rows = []
    for path in summaries:
        summary = json.loads(Path(path).read_text())
        config = summary["config"]
        data = Path(config["data"]).name
        variant = f"{config['model']['family']}-{config['model']['context']}"
        plan, cost = planned[data, variant], measured[data, variant]
        unit = bits_unit(data)
        rows.append(
            {
                "data": data,
                "model": MODEL_NAMES[plan["family"]],
                "context": plan["context"],
                "seed": config["seed"],
                "parameters": plan["parameters"],
                "n_embd": config["model"]["n_embd"],
                "flops_per_token": plan["flops_per_token"],
                "training_flops": plan["flops"],
                "steps": summary["steps"],
                "tokens": summary["tokens"],
                "split": splits[data],
                "unit": unit,
                "bits": summary[f"{splits[data]}/{unit}"],
                "train_time_s": summary["train_time_s"],
                "tokens_per_s": summary["tokens_per_s"],
                "peak_memory_mb": cost["peak_memory_mb"],
                "memory_device": cost["device"],
            }
        )
    return pd.DataFrame(rows).sort_values(["data", "model", "context", "seed"])


def context_figure(results: pd.DataFrame, out: str | Path, title: str) -> list:
    """A row per data set: bits, training throughput and peak memory against context."""
    for column in ("bits", "tokens_per_s"):
        plots.require_values(results, column, "data", "model", "context")
    datasets = sorted(results["data"].unique())
    panels = [
        ("bits", None),
        ("tokens_per_s", "training throughput (input tokens/s)"),
        ("peak_memory_mb", None),
    ]
    fig, axes = plt.subplots(
        len(datasets), len(panels), figsize=(16, 3.9 * len(datasets)), squeeze=False
    )
    for row, data in zip(axes, datasets, strict=True):
        rows = results[results["data"] == data]
        contexts = sorted(rows["context"].unique())
        for ax, (column, ylabel) in zip(row, panels, strict=True):
            for i, model in enumerate(MODEL_NAMES.values()):
                runs = rows[rows["model"] == model]
                name = (
                    f"{model} ({runs['parameters'].min() / 1e3:,.0f}k–"
                    f"{runs['parameters'].max() / 1e3:,.0f}k parameters)"
                )
                plots.mean_sd(ax, runs, "context", column, f"C{i}", name, bars=True, marker="o")
                if column != "peak_memory_mb":  # one measurement per model: no seeds
                    jitter = 1 + 0.03 * (i - 0.5)  # the two models' seeds side by side
                    ax.scatter(
                        runs["context"] * jitter, runs[column], color=f"C{i}", s=10, alpha=0.6
                    )
            if column == "bits":
                ylabel = plots.label(f"{rows['split'].iloc[0]}/{rows['unit'].iloc[0]}")
            elif column == "peak_memory_mb":  # what the cost stage could measure there
                on_cpu = rows["memory_device"].iloc[0] == "cpu"
                # on a CPU, over what the process held before the model was built
                ylabel = "peak memory added (MB)" if on_cpu else "peak memory (MB, GPU)"
            plots.log2_ticks(ax, contexts)
            ax.set(xlabel="context length (tokens)", ylabel=ylabel)
            if column != "bits":  # costs from zero: their ratios are what matters
                ax.set_ylim(0, 1.15 * rows[column].max())
        row[0].set_title(f"{data}: quality (lower is better)", loc="left", fontsize=10)
        row[1].set_title("cost: speed", loc="left", fontsize=10)
        row[2].set_title("cost: memory", loc="left", fontsize=10)
        plots.legend_beside(row[-1], *row[0].get_legend_handles_labels())
    seeds = results["seed"].nunique()
    note = plots.seeds_note(seeds, "lines: mean ± sd") + "; points: seeds" * (seeds > 1)
    fig.suptitle(f"{title}\n({note})")
    return plots.save(fig, out)
