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


@pytest.fixture
def assert_dropout_on():
    """assert_dropout_on(model, readers, *inputs, p): in training, a share p of what each
    module of `readers` (name -> module) reads is zero, dropped; in eval mode none is."""

    def check(model, readers: dict, *inputs, p: float) -> None:
        seen = {}
        hooks = [
            module.register_forward_pre_hook(
                lambda module, args, name=name: seen.update({name: args[0]})
            )
            for name, module in readers.items()
        ]
        for training, share in ((True, p), (False, 0.0)):
            model.train(training)
            model(*inputs)
            assert seen.keys() == readers.keys(), "a module read nothing"
            for name, x in seen.items():
                dropped = (x == 0).float().mean().item()
                assert dropped == pytest.approx(share, abs=0.05), (training, name)
        for hook in hooks:
            hook.remove()

    return check
