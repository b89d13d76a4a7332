"""DistributedDataParallel when the job has several processes, nothing when it has one.

The environment comes from torchrun or from submitit's `TorchDistributedEnvironment`
(`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`); the backend is NCCL on
GPUs and gloo on CPUs. Each process keeps its share of the same global batch
(`train/batches.py`), and DDP averages the gradients, so W processes take the same steps
as one process with the whole batch.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        self = cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend, rank=self.rank, world_size=world)
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
        return self

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        return (
            torch.device("cuda", self.local_rank)
            if torch.cuda.is_available()
            else torch.device("cpu")
        )

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1:
            return model
        ids = [self.local_rank] if torch.cuda.is_available() else None
        return DistributedDataParallel(model, device_ids=ids)

    def maybe_no_sync(self, model: torch.nn.Module, sync: bool):
        """Skip the gradient all-reduce on all but the last micro-batch of a step."""
        if self.world == 1 or sync:
            return contextlib.nullcontext()
        return model.no_sync()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
