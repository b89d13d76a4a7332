"""The LR range test (Smith 2017; the fastai "lr_find"): train for a few hundred steps
while the learning rate grows exponentially from tiny to huge, and watch the loss.

The loss is smoothed with a bias-corrected exponential moving average whose memory is
about 5% of the sweep (β = 1 − 20/steps, at least 0.5: 0.9 for 200 steps), so the curve
lags the learning rate by little on short sweeps too; the sweep stops early once the
smoothed loss exceeds 4× its minimum (divergence).

The rule that picks the LR: **the learning rate at the minimum of the smoothed loss,
divided by 10.** At the minimum the LR is already too large to be stable for a whole run;
one order of magnitude below it is still on the steep, fast-falling part of the curve.
The steepest-descent LR (most negative slope of smoothed loss over log LR) is reported
next to it for comparison.

Writes `lr_range.csv` (step, lr, loss, smoothed) and `lr_range.json` (`lr`: the choice,
and how it was made), which a training config takes as `lr_from`.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import numpy as np

from fromscratch import FromScratchError
from fromscratch.io import write_json, write_text
from fromscratch.train.config import TrainConfig
from fromscratch.train.loop import NonFiniteLoss, Trainer

RULE = "lr at the minimum of the smoothed loss / 10"
MIN_STEPS = 10  # fewer make no curve to read a minimum from


def choose(lrs: np.ndarray, smoothed: np.ndarray) -> dict:
    best = int(np.argmin(smoothed))
    slopes = np.gradient(smoothed, np.log(lrs)) if len(lrs) > 2 else np.zeros_like(lrs)
    steepest = int(np.argmin(slopes[: best + 1]))  # before the minimum: the falling part
    return {
        "lr": float(lrs[best] / 10),
        "rule": RULE,
        "lr_at_min_loss": float(lrs[best]),
        "min_smoothed_loss": float(smoothed[best]),
        "lr_steepest": float(lrs[steepest]),
    }


def check_options(steps: int, min_lr: float, max_lr: float) -> None:
    """A one-line error for a sweep that cannot be made (before any work is done)."""
    if steps < MIN_STEPS:
        raise FromScratchError(f"lr range test: steps={steps}; it needs at least {MIN_STEPS}")
    if not 0 < min_lr < max_lr < math.inf:
        raise FromScratchError(
            f"lr range test: min_lr={min_lr:g}, max_lr={max_lr:g}; it needs 0 < min_lr < max_lr, "
            "both finite"
        )


def why_no_lr_helped(lrs: list, losses: list, smoothed: list, min_lr: float, steps: int) -> str:
    """Why the sweep's first loss is its lowest: a loss that rose at once (min_lr is too
    large already), or one flat within its noise until the LR grew large (the model did
    not learn in so few steps at any LR; lowering min_lr would change nothing)."""
    rose = (
        f"the loss rose from the first step on; min_lr={min_lr:g} is already too large, "
        "start the sweep lower"
    )
    # not finite from the first step, or past 4x its minimum within the sweep's first
    # quarter (its losses then are the rise, not noise around a level)
    if len(lrs) < max(2, steps // 4):
        return rose
    noise = float(np.std(losses[: max(3, len(losses) // 5)]))
    rose_at = next((i for i, s in enumerate(smoothed) if s > smoothed[0] + 2 * noise), None)
    if rose_at is not None and rose_at < len(smoothed) // 4:
        return rose
    until = lrs[rose_at - 1] if rose_at else lrs[-1]
    return (
        f"the loss stayed flat (within its noise) from min_lr={min_lr:g} up to lr "
        f"{until:.2g} and never fell below its first value: {len(lrs)} steps are too few "
        "for this model to learn in; give more steps"
    )


def lr_range_test(
    config: TrainConfig,
    out: str | Path,
    steps: int = 200,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
) -> dict:
    check_options(steps, min_lr, max_lr)
    out = Path(out)
    # the smoothing's memory, about steps / 20 steps long; at least a half for short sweeps
    beta = max(0.5, 1 - 20 / steps)
    trainer = Trainer.scratch(config)
    lrs, losses, smoothed = [], [], []
    average, best, blown_up_at = 0.0, math.inf, None
    # exponentially from min_lr to max_lr, computed in log space: max_lr / min_lr may overflow
    for i, lr in enumerate(np.geomspace(min_lr, max_lr, steps).tolist()):
        try:
            loss = trainer.train_step(lr=lr)["loss"]
        except NonFiniteLoss:
            blown_up_at = lr  # diverged all the way
            break
        average = beta * average + (1 - beta) * loss
        smooth = average / (1 - beta ** (i + 1))
        lrs.append(lr)
        losses.append(loss)
        smoothed.append(smooth)
        best = min(best, smooth)
        if smooth > 4 * best:
            break
    if len(lrs) < 2 or np.argmin(smoothed) == 0:
        # no learning rate in the sweep lowered the loss: the choice would be min_lr / 10,
        # which says nothing about this model
        why = why_no_lr_helped(lrs, losses, smoothed, min_lr, steps)
        raise FromScratchError(f"lr range test: {why}")
    if blown_up_at is not None and np.argmin(smoothed) == len(lrs) - 1:
        # the lowest loss is the last finite one: the minimum may lie anywhere up to the LR
        # that blew up, and a tenth of it may blow up too
        raise FromScratchError(
            f"lr range test: the loss was lowest at lr {lrs[-1]:.2g} and not finite at the next "
            f"step's, {blown_up_at:.2g}: the sweep's steps are too coarse to find where it "
            "turns; give more steps or a lower max_lr"
        )
    result = choose(np.array(lrs), np.array(smoothed)) | {
        "steps": len(lrs),
        "smoothing_beta": beta,
        "min_lr": min_lr,
        "max_lr": max_lr,
        "diverged": len(lrs) < steps,
        "batch_size": trainer.config.batch_size,
    }
    if not result["diverged"] and result["lr_at_min_loss"] == lrs[-1]:
        print(
            f"lr range test: the loss was still falling at max_lr={max_lr:g}: the lr chosen, "
            "a tenth of it, may be far too low; raise max_lr",
            file=sys.stderr,
        )
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["step", "lr", "loss", "smoothed"])
    writer.writerows(zip(range(len(lrs)), lrs, losses, smoothed, strict=True))
    write_text(out / "lr_range.csv", table.getvalue())
    write_json(out / "lr_range.json", result)
    rows = [{"lr": lr, "loss": loss, "smoothed_loss": smooth}
            for lr, loss, smooth in zip(lrs, losses, smoothed, strict=True)]  # fmt: skip
    config.log_results(out / "lr-range", trainer.config_dict(), rows, result, x_axis="lr")
    return result
