"""Stages: the batch-size search, the gradient noise scale and the LR range test of one
model configuration."""

from __future__ import annotations

# The options are named here (with the defaults of the functions they go to) so that
# `fromscratch run` checks them before a job starts (check_options of each module).


def batch_size_stage(
    config: dict, out: str, max_batch_size: int = 1024, memory_cap_mb: float = 8192
) -> dict:
    """The largest batch that fits, and the throughput of each size (train/batch_size.py)."""
    from fromscratch.train import TrainConfig
    from fromscratch.train.batch_size import search

    result = search(TrainConfig.from_dict(config), out, max_batch_size, memory_cap_mb)
    return {"batch_size": result["batch_size"]}


def noise_scale_stage(
    config: dict,
    out: str,
    micro_batch: int = 4,
    accumulate: int = 8,
    draws: int = 8,
    after_steps: int = 0,
) -> dict:
    """The gradient noise scale of the model (train/noise_scale.py)."""
    from fromscratch.train import TrainConfig
    from fromscratch.train.noise_scale import write_noise_scale

    result = write_noise_scale(
        TrainConfig.from_dict(config),
        out,
        micro_batch=micro_batch,
        accumulate=accumulate,
        draws=draws,
        after_steps=after_steps,
    )
    return {"noise_scale": result["noise_scale"]}


def lr_range_stage(
    config: dict, out: str, steps: int = 200, min_lr: float = 1e-6, max_lr: float = 1.0
) -> dict:
    from fromscratch.train import TrainConfig
    from fromscratch.train.lr_range import lr_range_test

    result = lr_range_test(TrainConfig.from_dict(config), out, steps, min_lr, max_lr)
    return {"lr": result["lr"]}
