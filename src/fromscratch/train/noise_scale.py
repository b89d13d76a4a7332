"""The gradient noise scale: the batch size beyond which bigger batches stop paying off.

McCandlish et al. (2018, "An empirical model of large-batch training") show that a step
on a batch of B examples makes about as much progress as B / (1 + B_noise / B) steps on
single examples, where

    B_noise = tr(Σ) / |G|²

is the trace of the per-example gradient covariance over the squared norm of the true
gradient. Below B_noise doubling the batch nearly halves the steps needed; far above it,
extra examples are wasted. It is the "critical batch size" to compare with the largest
batch that fits (train/batch_size.py).

Both terms come from the squared norms of gradients at two batch sizes (their appendix
A.1). The expected squared norm of a batch-b gradient is |G|² + tr(Σ) / b, so with a
small batch b and a big batch B:

    |G|²  ≈ (B |G_B|² - b |G_b|²) / (B - b)
    tr(Σ) ≈ (|G_b|² - |G_B|²) / (1/b - 1/B)

Here the big batch is `accumulate` small ones: each draw takes that many micro-batches of
`micro_batch` sequences, whose gradients give |G_b|² (their mean squared norm) and |G_B|²
(the squared norm of their mean). Both estimates are averaged over the draws before the
ratio is taken, as the paper recommends: each one alone is noisy and can be negative.

Writes `noise_scale.json` (`noise_scale` in sequences, `noise_scale_tokens` for language
models, and both terms; null where an averaged term still came out at or below 0: more
draws needed), which the batch-size figure marks on its throughput curve.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import torch

from fromscratch.config import check_integer
from fromscratch.io import write_json
from fromscratch.train.config import TrainConfig


def noise_scale_from(small_sq: float, big_sq: float, small: int, big: int) -> dict:
    """|G|², tr(Σ) and B_noise from the mean squared gradient norms at two batch sizes."""
    if not 0 < small < big:
        raise ValueError(f"batch sizes must satisfy 0 < small < big, got {small} and {big}")
    grad_sq = (big * big_sq - small * small_sq) / (big - small)
    trace = (small_sq - big_sq) / (1 / small - 1 / big)
    # each an unbiased estimate from few draws: either can come out at or below 0, and
    # then there is no noise scale to report (null, not an infinity JSON cannot hold)
    measured = grad_sq > 0 and trace > 0
    return {
        "grad_norm_sq": grad_sq,
        "trace_covariance": trace,
        "noise_scale": trace / grad_sq if measured else None,
    }


def noise_scale_of(draws: Iterable[Iterable[torch.Tensor]], micro_batch: int) -> dict:
    """B_noise from draws of micro-batch gradients (flat vectors, each the mean over
    `micro_batch` examples); the big batch of a draw is all its micro-batches together."""
    small_sq = big_sq = 0.0
    count = accumulate = 0
    for gradients in draws:
        total, squares, accumulate = None, 0.0, 0
        for grad in gradients:
            squares += grad.square().sum().item()
            total = grad.clone() if total is None else total.add_(grad)
            accumulate += 1
        if accumulate < 2:
            raise ValueError("each draw needs at least 2 micro-batches")
        small_sq += squares / accumulate
        big_sq += (total / accumulate).square().sum().item()
        count += 1
    if count == 0:
        raise ValueError("no draws")
    return noise_scale_from(small_sq / count, big_sq / count, micro_batch, micro_batch * accumulate)


def check_options(micro_batch: int, accumulate: int, draws: int, after_steps: int) -> None:
    """A one-line error for a measurement that cannot be made (before any work is done)."""
    for name, value, least in (
        ("micro_batch", micro_batch, 1),
        ("accumulate", accumulate, 2),  # a big batch of one small one has nothing to compare
        ("draws", draws, 1),
        ("after_steps", after_steps, 0),
    ):
        check_integer("noise scale", name, value, least)


def measure_noise_scale(
    config: TrainConfig,
    micro_batch: int = 4,
    accumulate: int = 8,
    draws: int = 8,
    after_steps: int = 0,
) -> dict:
    """B_noise of `config`'s model on its training data, in sequences (and tokens, for
    language models), from `draws` draws of `accumulate` micro-batches of `micro_batch`
    sequences each; measured at the initial weights, or after training `after_steps`
    steps as `config` says, at its LR and batch size (`lr_from`, `batch_size_from`: the
    course run's tuned ones; the noise scale grows as the loss falls, and how fast depends
    on both)."""
    from fromscratch.train.loop import Trainer, loss_fn

    check_options(micro_batch, accumulate, draws, after_steps)
    trainer = Trainer.scratch(config)
    config = trainer.config  # with the tuned values read in
    batches = trainer.batch_stream(micro_batch, name="micro_batch")
    if config.family == "classifier":
        batches.check_fits()  # before the training steps, not after them
    for _ in range(after_steps):
        trainer.train_step()
    trained = trainer.state.step  # the steps the weights have taken, as the JSON says
    model = trainer.model
    model.train()
    # micro-batch i is drawn with the key of training's batch i (for a language model, its
    # first micro_batch windows), so start at the batch training would draw next: no
    # gradient here is taken on a draw the weights were trained on
    first = trained * config.grad_accum

    def gradient(index: int) -> torch.Tensor:
        batch = [t.to(trainer.device) for t in batches(first + index)]
        model.zero_grad(set_to_none=True)
        with trainer.autocast():
            loss = loss_fn(model, batch, config.family)
        loss.backward()
        return torch.cat(
            [p.grad.flatten().float() for p in model.parameters() if p.grad is not None]
        )

    result = noise_scale_of(
        ((gradient(d * accumulate + m) for m in range(accumulate)) for d in range(draws)),
        micro_batch,
    )
    model.zero_grad(set_to_none=True)
    if result["noise_scale"] is None:
        print(
            f"gradient noise scale: not measured, |G|² estimated at {result['grad_norm_sq']:.3g}"
            f" and tr(Σ) at {result['trace_covariance']:.3g} (both must be positive); raise "
            "draws or accumulate",
            file=sys.stderr,
        )
    sequences = result["noise_scale"]
    tokens = (
        None if config.family == "classifier" or sequences is None else sequences * trainer.context
    )
    return {
        **result,
        "noise_scale_tokens": tokens,
        "micro_batch": micro_batch,
        "accumulate": accumulate,
        "draws": draws,
        "after_steps": trained,
        "trained_at": {"lr": config.lr, "batch_size": config.batch_size},
    }


def write_noise_scale(config: TrainConfig, out: str | Path, **options) -> dict:
    """measure_noise_scale(config, **options), written to out/noise_scale.json, and a W&B
    run of its own (out/noise-scale) where W&B is on, the measurement its summary."""
    result = measure_noise_scale(config, **options)
    write_json(Path(out) / "noise_scale.json", result)
    # the run's config as measured: with the tuned LR and batch size read in
    settings = config.resolved().to_dict() | options
    config.log_results(Path(out) / "noise-scale", settings, [], result)
    return result
