"""Learning-rate schedules: linear warm-up, then cosine, linear or constant.

The schedule is a pure function of where training is — the step, the elapsed wall-clock
time over a time budget (cramming: the budget is hours, not steps), or the tokens seen
over a token budget, each counted from the end of warm-up — so a resumed run needs nothing
but the step, the elapsed time and the tokens (and where warm-up ended) from its
checkpoint.
"""

from __future__ import annotations

import math

SHAPES = ("cosine", "linear", "constant")
CLOCKS = ("steps", "time", "tokens")


def step_progress(step: int, max_steps: int, warmup_steps: int) -> float:
    """How far the decay has got after warm-up, on a clock of steps: 0 at the end of warm-up,
    1 at max_steps."""
    return (step - warmup_steps) / max(max_steps - warmup_steps, 1)


def decay_progress(used: float, warmed_up: float, budget: float) -> float:
    """How far the decay has got after warm-up, on a clock of time or tokens: 0 where
    warm-up ended (at `warmed_up` of the clock), 1 at the budget."""
    return (used - warmed_up) / max(budget - warmed_up, 1e-9)


def learning_rate(
    lr: float,
    step: int,
    progress: float,
    warmup_steps: int = 0,
    shape: str = "cosine",
    min_lr_ratio: float = 0.1,
) -> float:
    """The learning rate at `step`, where `progress` ∈ [0, 1] is the fraction of the budget
    (steps, time or tokens) already used. Warm-up is linear over the first `warmup_steps` steps;
    then the rate decays from `lr` to `min_lr_ratio * lr` at progress 1."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(max(progress, 0.0), 1.0)
    floor = lr * min_lr_ratio
    if shape == "constant":
        return lr
    if shape == "linear":
        return lr - (lr - floor) * progress
    if shape == "cosine":
        return floor + 0.5 * (lr - floor) * (1 + math.cos(math.pi * progress))
    raise ValueError(f"schedule shape {shape!r} is not one of {', '.join(SHAPES)}")
