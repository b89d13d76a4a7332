"""An exponential moving average of the weights (Polyak averaging), for evaluation.

Late in training, each step moves the weights a little in the direction of its own
mini-batch, so the weights at any one step are noisy around where the run is heading.
Their moving average sits closer to the middle: on a small data set (IMDb's 25k reviews)
its test accuracy is higher and wobbles less from one evaluation to the next.

    ema = EMA(model, decay=0.999)
    ... optimizer.step(); ema.update(model)
    evaluate(ema.model)

The average starts from the initial weights; early in training their share would linger
for ~1/(1 - decay) steps, so the decay ramps up as (1 + n) / (10 + n) after n updates, as
TensorFlow's ExponentialMovingAverage does, until it reaches `decay`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"EMA: decay {decay!r} must be in (0, 1)")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards the model's current weights: avg += (1 - decay)(w - avg)."""
        self.updates += 1
        weight = 1 - self.current_decay()
        torch._foreach_lerp_(list(self.model.parameters()), list(model.parameters()), weight)
        for mine, theirs in zip(self.model.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)  # buffers (positions, masks) are not learned: no average

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = state["updates"]
