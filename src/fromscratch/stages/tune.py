"""Stages: the batch-size search and the LR range test of one model configuration."""

from __future__ import annotations


def batch_size_stage(
    config: dict, out: str, max_batch_size: int = 1024, memory_cap_mb: float = 8192
) -> dict:
    from fromscratch.train import TrainConfig
    from fromscratch.train.batch_size import search

    result = search(TrainConfig.from_dict(config), out, max_batch_size, memory_cap_mb)
    return {"batch_size": result["batch_size"]}


def lr_range_stage(
    config: dict, out: str, steps: int = 200, min_lr: float = 1e-6, max_lr: float = 1.0
) -> dict:
    from fromscratch.train import TrainConfig
    from fromscratch.train.lr_range import lr_range_test

    result = lr_range_test(TrainConfig.from_dict(config), out, steps, min_lr, max_lr)
    return {"lr": result["lr"]}
