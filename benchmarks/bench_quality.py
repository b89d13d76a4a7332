"""Quality bars, each reproducible by one command, with the wall-clock it took:

    python benchmarks/bench_quality.py shakespeare   # val loss ≤ 1.80 nats/char in 120 s
    python benchmarks/bench_quality.py imdb          # test accuracy ≥ 89% in ≤ 15 min

The data comes from the mirror ($FROMSCRATCH_MIRROR or --mirror); the run's folder is
benchmarks/out/quality-NAME/ (metrics.jsonl, summary.json), the result JSON
benchmarks/results/quality-NAME.json with the curves (each metric vs training seconds), drawn in
benchmarks/results/quality-NAME.png where it has more than one point (the IMDb bar's;
Tiny Shakespeare's is scored at its end alone).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from common import OUT, ROOT, quality_config, write_result

from fromscratch.cli import parse_overrides
from fromscratch.train import train

BARS = {
    "shakespeare": {
        "config": "shakespeare-char",
        "metric": "val/loss",
        "goal": "≤ 1.80 nats/char",
        "threshold": 1.80,
        "passes": lambda v: v <= 1.80,
    },
    "imdb": {
        "config": "imdb-classifier",
        "metric": "test/accuracy",
        # what a change to the recipe is judged by, where the run holds val out (see config)
        "also": ("val/accuracy",),
        "goal": "≥ 0.89",
        "threshold": 0.89,
        "passes": lambda v: v >= 0.89,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=sorted(BARS))
    parser.add_argument("--mirror")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--run", type=Path, help="the run's folder (default: out/quality-NAME)")
    parser.add_argument("--out", type=Path, help="the result JSON (default: results/); PNG beside")
    args = parser.parse_args()
    bar = BARS[args.name]

    config = quality_config(bar["config"], args.mirror, parse_overrides(args.set))
    run = args.run or OUT / f"quality-{args.name}"
    summary = train(config, run)
    metric = bar["metric"]
    # val/accuracy is not in a final run, which trains on val too
    also = [m for m in bar.get("also", ()) if m in summary]
    records = _records(run)
    curves = {m: [(r["elapsed_s"], r[m]) for r in records if m in r] for m in (metric, *also)}
    value = summary[metric]
    path = write_result(
        f"quality-{args.name}",
        {
            "metric": metric,
            "value": value,
            "goal": bar["goal"],
            "passes": bar["passes"](value),
            "also": {m: summary[m] for m in also},
            "train_time_s": summary["train_time_s"],
            "steps": summary["steps"],
            "tokens_per_s": summary["tokens_per_s"],
            "parameters": summary["parameters"],
            # the data folder as the config names it, not where this checkout happens to be
            "config": {**summary["config"], "data": os.path.relpath(config.data, ROOT)},
            "curves": curves,  # each metric against training seconds
        },
        args.out,
    )
    if len(curves[metric]) > 1:  # a run that evaluates only at its end has no curve to draw
        plot_curves(curves, bar, path.with_suffix(".png"), args.name)
    print(
        f"{args.name}: {metric} = {value:.4f} (goal {bar['goal']}) after "
        f"{summary['train_time_s']:.0f} s of training, {summary['steps']} steps → {path}"
    )


def plot_curves(curves: dict, bar: dict, path: Path, name: str) -> None:
    """Each evaluation metric against training time, the goal as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fromscratch.figures.plots import label

    fig, ax = plt.subplots(figsize=(6, 4))
    for metric, curve in curves.items():
        ax.plot([c[0] for c in curve], [c[1] for c in curve], marker="o", label=label(metric))
    ax.axhline(bar["threshold"], color="C3", ls="--", label=f"goal {bar['goal']}")
    quantity = label(bar["metric"]).split(" ", 1)[-1]  # "test accuracy" -> "accuracy"
    ax.set(xlabel="training time (s)", ylabel=quantity, title=f"{name}: {quantity}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _records(run: Path) -> list[dict]:
    """Metric lines; evaluation lines get the elapsed time of the step they follow."""
    records, elapsed = [], 0.0
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        elapsed = r.get("elapsed_s", elapsed)
        records.append({**r, "elapsed_s": elapsed})
    return records


if __name__ == "__main__":
    main()
