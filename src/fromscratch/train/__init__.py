"""Training: one loop for every model, exact resume, LR range test, batch-size search."""

from fromscratch.train.config import TrainConfig, load_config
from fromscratch.train.loop import Interrupted, NonFiniteLoss, Trainer, train

__all__ = ["Interrupted", "NonFiniteLoss", "TrainConfig", "Trainer", "load_config", "train"]
