"""Tidy tables of what the given runs wrote.

A run folder is .../<experiment>/<variant>/seed<k>/ with summary.json and metrics.jsonl.
`runs()` has one row per run (experiment, variant, seed, and every scalar of its
summary); `curves()` has one row per (run, step, metric): the long format seaborn wants.
Both read exactly the runs they are given (a rule's declared inputs), never whatever else
lies on disk beside them: a run of an old config or of another seed stays out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from fromscratch.io import atomic_path


def run_folders(summaries: Iterable[str | Path]) -> list[Path]:
    """The folders of the runs whose summary.json files are `summaries`, in order."""
    return sorted({Path(summary).parent for summary in summaries})


def write_csv(table: pd.DataFrame, path: str | Path) -> None:
    """Write `table` to the CSV file `path` atomically: a reader never sees half of it."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def _identity(folder: Path) -> dict:
    return {
        "experiment": folder.parent.parent.name,
        "variant": folder.parent.name,
        "seed": int(folder.name.removeprefix("seed")),
    }


def runs(summaries: Iterable[str | Path]) -> pd.DataFrame:
    rows = []
    for folder in run_folders(summaries):
        summary = json.loads((folder / "summary.json").read_text())
        scalars = {k: v for k, v in summary.items() if isinstance(v, int | float | str)}
        rows.append({**_identity(folder), **scalars})
    return pd.DataFrame(rows)


def curves(summaries: Iterable[str | Path]) -> pd.DataFrame:
    frames = []
    for folder in run_folders(summaries):
        records = [
            json.loads(line)
            for line in (folder / "metrics.jsonl").read_text().splitlines()
            if line.strip()
        ]
        if not records:
            continue
        wide = pd.DataFrame(records)
        # Evaluation lines of runs from before they carried their token count: the count of
        # the training line before them (that of their own step where log_every divides
        # eval_every).
        if "tokens" in wide:
            wide["tokens"] = wide["tokens"].ffill()
        long = wide.melt(
            id_vars=[c for c in ("step", "tokens") if c in wide],
            var_name="metric",
            value_name="value",
        ).dropna(subset=["value"])
        for key, value in _identity(folder).items():
            long[key] = value
        frames.append(long)
    if not frames:
        return pd.DataFrame(
            columns=["experiment", "variant", "seed", "step", "tokens", "metric", "value"]
        )
    return pd.concat(frames, ignore_index=True)
