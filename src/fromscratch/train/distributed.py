"""DistributedDataParallel when the job has several processes, nothing when it has one.

The environment comes from torchrun or from submitit's `TorchDistributedEnvironment`
(`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`); the backend is NCCL on
GPUs and gloo on CPUs. Each process keeps its share of the same global batch
(`train/batches.py`), and DDP averages the gradients, so W processes take the same steps
as one process with the whole batch.

Everything else a step decides on, the processes agree on (`agree`): how long it took,
how many tokens it held, and whether to stop. Each draws its own dropout masks, and a
checkpoint keeps every process's random state (`gather_objects`), so that a resumed run
draws what the uninterrupted one would have. Evaluation they share, each scoring its part
of the batches (`summed`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def is_first_process() -> bool:
    """Whether this process is the first of its run (or its only one), by its environment:
    the one that writes, logs and speaks for all."""
    return int(os.environ.get("RANK", "0")) == 0


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

    def agree(
        self, seconds: float, tokens: int, loss: float, signum: int
    ) -> tuple[float, int, float, int]:
        """One training step as all processes saw it: the slowest one's seconds, the tokens
        of the whole global batch, the mean of their losses, and a stop signal any of them
        got (0: none).

        Each process times its own step and counts its own rows' tokens (a classifier's
        rows hold different numbers of them). Left to those, the processes would follow
        different learning rates on a time or token clock, stop at different steps (or one
        on a signal the others did not get), and the one still stepping would wait forever
        for the others' gradients.
        """
        if self.world == 1:
            return seconds, tokens, loss, signum
        mine = torch.tensor(
            [seconds, tokens, loss, signum], dtype=torch.float64, device=self.device
        )
        rows = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(rows, mine)
        seen = torch.stack(rows).cpu()
        return (
            seen[:, 0].max().item(),
            int(seen[:, 1].sum()),
            seen[:, 2].mean().item(),
            int(seen[:, 3].max()),
        )

    def summed(self, *numbers: float) -> list[float]:
        """Each of `numbers` added up over all processes (all of them call this)."""
        if self.world == 1:
            return list(numbers)
        totals = torch.tensor(numbers, dtype=torch.float64, device=self.device)
        dist.all_reduce(totals)
        return totals.tolist()

    def gather_objects(self, mine) -> list:
        """Every process's `mine`, in rank order (all processes must call it together)."""
        if self.world == 1:
            return [mine]
        everyone = [None] * self.world
        dist.all_gather_object(everyone, mine)
        return everyone

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
