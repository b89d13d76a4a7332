"""Does the LR range test pick a good learning rate? Its choice against a small grid, each
run trained for the same number of steps on Tiny Shakespeare (the quality-bar GPT): as many
as the range test's LR takes in the time budget here. Steps, not seconds, for each run:
on a shared machine, a run that happens to meet a slow minute would get fewer.

    python benchmarks/bench_lr_grid.py [--budget 30] [--grid 3e-4 1e-3 3e-3 1e-2]
"""

from __future__ import annotations

import argparse
import dataclasses

from common import OUT, quality_config, write_result

from fromscratch.train import train
from fromscratch.train.lr_range import lr_range_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=30.0, help="training seconds per run")
    parser.add_argument("--grid", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3, 1e-2])
    parser.add_argument("--mirror")
    args = parser.parse_args()

    base = quality_config("shakespeare-char", args.mirror, {"time_budget_s": args.budget})
    chosen = lr_range_test(base, OUT / "lr-grid" / "range", steps=200)["lr"]
    timed = train(dataclasses.replace(base, lr=chosen), OUT / "lr-grid" / "timed")
    steps = dataclasses.replace(base, clock="steps", max_steps=timed["steps"], time_budget_s=0)
    results = {}
    for lr in sorted({*args.grid, chosen}):
        run = train(dataclasses.replace(steps, lr=lr), OUT / "lr-grid" / f"lr-{lr:.2e}")
        results[f"{lr:.3g}"] = {
            "lr": lr,
            "val_loss": run["val/loss"],
            "steps": run["steps"],
            "chosen_by_range_test": lr == chosen,
        }
        print(
            f"lr {lr:9.2e}{' (range test)' if lr == chosen else '':14s} "
            f"val loss {run['val/loss']:.4f} after {run['steps']} steps"
        )
    grid = [results[f"{lr:.3g}"] for lr in args.grid]  # the peer: the grid alone
    best = min(grid, key=lambda r: r["val_loss"])
    path = write_result(
        "lr-grid",
        {
            "budget_s": args.budget,
            "steps": timed["steps"],  # each run's: what the budget fit of the timed run
            "range_test_lr": chosen,
            "grid": args.grid,
            "best_grid_lr": best["lr"],
            "best_val_loss": best["val_loss"],
            "range_test_val_loss": results[f"{chosen:.3g}"]["val_loss"],
            "runs": results,
        },
    )
    print(f"range test {chosen:.2e} vs best {best['lr']:.2e} → {path}")


if __name__ == "__main__":
    main()
