"""Shared helpers for the model tests: tiny models, fixed seeds, CPU only."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """A fixed seed, and one intra-op thread: these models are so small that the time goes
    into per-op overhead, which a second thread only adds to (and when the other core is
    busy, every parallel op waits milliseconds for it).  Restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def train_steps():
    """train_steps(model, loss_fn, steps, lr) -> list of losses; AdamW, full batch."""

    def run(model, loss_fn, steps: int, lr: float = 1e-2) -> list[float]:
        optimizer = model.configure_optimizer(weight_decay=0.0, lr=lr, betas=(0.9, 0.99))
        losses = []
        for _ in range(steps):
            loss = loss_fn()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses

    return run
