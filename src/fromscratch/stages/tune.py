"""Stages: the batch-size search, the gradient noise scale and the LR range test of one
model configuration."""

from __future__ import annotations


def batch_size_stage(config: dict, out: str, **search_options) -> dict:
    """search_options: max_batch_size, memory_cap_mb."""
    from fromscratch.train import TrainConfig
    from fromscratch.train.batch_size import search

    result = search(TrainConfig.from_dict(config), out, **search_options)
    return {"batch_size": result["batch_size"]}


def noise_scale_stage(config: dict, out: str, **options) -> dict:
    """options: draws, micro_batch, accumulate, after_steps (train/noise_scale.py)."""
    from fromscratch.train import TrainConfig
    from fromscratch.train.noise_scale import write_noise_scale

    result = write_noise_scale(TrainConfig.from_dict(config), out, **options)
    return {"noise_scale": result["noise_scale"]}


def lr_range_stage(
    config: dict, out: str, steps: int = 200, min_lr: float = 1e-6, max_lr: float = 1.0
) -> dict:
    from fromscratch.train import TrainConfig
    from fromscratch.train.lr_range import lr_range_test

    result = lr_range_test(TrainConfig.from_dict(config), out, steps, min_lr, max_lr)
    return {"lr": result["lr"]}
