"""The recurrent-GPT study's table and figure: bits per token along a long document."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from fromscratch.figures.plots import legend_beside, save, seeds_note
from fromscratch.io import read_json

VARIANT_NAMES = {
    "sliding": "sliding window (full context)",
    "truncated": "truncated (chunk only)",
    "input": "memory at the input",
    "layers": "memory at every layer",
}
UNITS = {"chars": "character", "bytes": "byte"}


def read_results(summaries: list[str], models: list[str], seeds: list[int]):
    """The per-position bits (positions.csv beside each summary.json) and the per-run
    summary of every evaluation, as two tidy tables with columns model and seed."""
    positions, table = [], []
    for path, model, seed in zip(summaries, models, seeds, strict=True):
        summary = read_json(path)
        rows = pd.read_csv(Path(path).with_name("positions.csv"))
        positions.append(rows.assign(model=model, seed=seed))
        for variant, result in summary["variants"].items():
            table.append({"model": model, "seed": seed, "variant": variant, **result})
    return pd.concat(positions, ignore_index=True), pd.DataFrame(table), summary


def along_document(
    positions: pd.DataFrame, summary: dict, out: str | Path, title: str, bin_tokens: int
) -> list:
    """Per model (columns): bits per token against the position in the document (means over
    bins of bin_tokens tokens), and against the position within a later chunk; one line
    per variant, bands: ± one standard deviation over seeds."""
    unit = UNITS.get(summary["tokenizer"], "token")
    c, m = summary["context"], summary["memory_tokens"]
    data = positions.assign(
        variant=positions["variant"].map(VARIANT_NAMES),
        bin=(positions["position"] - 1) // bin_tokens * bin_tokens + bin_tokens / 2,
    )
    models = list(dict.fromkeys(data["model"]))
    width = max(5.2 * len(models), 7.5)  # one model alone still has room for the title
    fig, axes = plt.subplots(2, len(models), figsize=(width, 7.2), squeeze=False)
    order = list(VARIANT_NAMES.values())
    for column, model in enumerate(models):
        rows = data[data["model"] == model]
        # mean over the positions of a bin, per seed: the seeds then make the band
        per_bin = rows.groupby(["variant", "seed", "bin"], as_index=False)["bits"].mean()
        top = axes[0, column]
        sns.lineplot(
            per_bin, x="bin", y="bits", hue="variant", hue_order=order, errorbar="sd", ax=top
        )
        for k in range(1, summary["chunks"]):  # where each later run starts
            top.axvline(c + (k - 1) * (c - m), color="0.6", lw=0.6, ls=":",
                        label="a new run starts" if k == 1 else None)  # fmt: skip
        top.set(
            title=model, xlabel=f"position in the document ({unit}s)", ylabel=f"bits per {unit}"
        )
        later = rows[rows["chunk"] > 0]
        per_offset = later.groupby(["variant", "seed", "offset"], as_index=False)["bits"].mean()
        bottom = axes[1, column]
        sns.lineplot(
            per_offset, x="offset", y="bits", hue="variant", hue_order=order, errorbar="sd",
            ax=bottom,
        )  # fmt: skip
        bottom.set(
            xlabel=f"position in a later run's chunk ({unit}s)",
            ylabel=f"bits per {unit}",
            xscale="log",
        )
        for ax in (top, bottom):
            ax.get_legend().remove()
    legend_beside(axes[0, -1], *axes[0, 0].get_legend_handles_labels())
    details = (
        f"context {c}, memory of {m} position{'s' * (m != 1)}, {summary['documents']} "
        f"documents of {summary['document_tokens']} {unit}s; "
        f"{seeds_note(data, 'lines: mean, bands: ± sd')}"
    )
    chars = int(width * 8)  # about what a line of the suptitle holds
    fig.suptitle("\n".join(textwrap.wrap(title, chars) + textwrap.wrap(details, chars)))
    return save(fig, out)
