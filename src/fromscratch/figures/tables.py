"""Tidy tables of everything the runs wrote.

A run folder is results/<preset>/runs/<experiment>/<variant>/seed<k>/ with summary.json and
metrics.jsonl. `runs()` has one row per run (experiment, variant, seed, and every scalar
of its summary); `curves()` has one row per (run, step, metric): the long format seaborn
wants.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def run_folders(root: str | Path) -> list[Path]:
    return sorted(p.parent for p in Path(root).glob("runs/*/*/seed*/summary.json"))


def _identity(folder: Path) -> dict:
    return {
        "experiment": folder.parent.parent.name,
        "variant": folder.parent.name,
        "seed": int(folder.name.removeprefix("seed")),
    }


def runs(root: str | Path) -> pd.DataFrame:
    rows = []
    for folder in run_folders(root):
        summary = json.loads((folder / "summary.json").read_text())
        scalars = {k: v for k, v in summary.items() if isinstance(v, int | float | str)}
        rows.append({**_identity(folder), **scalars})
    return pd.DataFrame(rows)


def curves(root: str | Path) -> pd.DataFrame:
    frames = []
    for folder in run_folders(root):
        records = [
            json.loads(line)
            for line in (folder / "metrics.jsonl").read_text().splitlines()
            if line.strip()
        ]
        if not records:
            continue
        wide = pd.DataFrame(records)
        # Evaluation lines carry no token count: they belong to the step they follow.
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
