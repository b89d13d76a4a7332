"""Batch-size search: the largest power-of-two batch that fits in memory, and the
throughput at every size on the way.

Each size is tried with a few real training steps (forward, backward, AdamW) on
full-length sequences. On a GPU the attempt runs in this process; a CUDA out-of-memory
error ends the search, and the peak is `torch.cuda.max_memory_allocated`. On a CPU the
limit is a memory cap from the config (`memory_cap_mb`), and each attempt runs in a
fresh child process whose peak resident memory the kernel reports (`wait4`), so one
attempt's memory never hides inside another's. Only running out of memory means "does not
fit": any other failure (a model that cannot be built, data that is not there) ends the
search with its error.

Sizes double (1, 2, 4, …) up to `max_batch_size` and stop at the first that does not fit,
so the result is also a throughput-versus-batch-size curve. Writes `batch_size.json`
(`batch_size`: the largest that fits; a training config takes it as `batch_size_from`).
How large a batch is worth its cost is another question, which the gradient noise scale
answers (train/noise_scale.py, a stage of its own).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fromscratch import FromScratchError, leave_objects_to_the_os_at_exit, message_of_ours
from fromscratch.config import check_integer
from fromscratch.data import PreparedData
from fromscratch.io import write_json
from fromscratch.train.config import TrainConfig
from fromscratch.train.models import model_config

PROBE_STEPS = 3


def probe(config: TrainConfig, batch_size: int, steps: int = PROBE_STEPS) -> dict:
    """Run `steps` training steps at `batch_size` on full-length batches; tokens/s."""
    from fromscratch.train.loop import Trainer

    trainer = Trainer.scratch(config, batch_size=batch_size, grad_accum=1, batch_size_from="")
    trainer.batches = full_length(trainer)
    trainer.train_step(lr=1e-9)  # warm-up: allocator, kernels
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(lr=1e-9)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    tokens = (
        batch_size * trainer.context
        if config.family != "classifier"
        else (batch_size * trainer.max_length)
    )
    return {
        "batch_size": batch_size,
        "step_s": seconds,
        "tokens_per_s": tokens / seconds,
        "threads": torch.get_num_threads(),  # a CPU's tokens/s depend on them
    }


def full_length(trainer):
    """Batches of the longest sequences training can see (the worst case for memory)."""
    c = trainer.config
    generator = torch.Generator().manual_seed(0)
    vocab = trainer.model.config.vocab_size
    if c.family == "classifier":
        shape = (c.batch_size, trainer.max_length)
        return lambda i: (
            torch.randint(vocab, shape, generator=generator),
            torch.ones(shape, dtype=torch.bool),
            torch.randint(2, (c.batch_size,), generator=generator),
        )
    shape = (c.batch_size, trainer.context)
    return lambda i: (
        torch.randint(vocab, shape, generator=generator),
        torch.randint(vocab, shape, generator=generator),
    )


def on_a_gpu(config: TrainConfig) -> bool:
    """Whether the config's device is a CUDA GPU here (auto, cuda, cuda:1, ...)."""
    wants = "cuda" if config.device == "auto" else torch.device(config.device).type
    return wants == "cuda" and torch.cuda.is_available()


def measure(
    config: TrainConfig, batch_size: int, steps: int = PROBE_STEPS
) -> tuple[dict | None, float]:
    """(probe result, or None if it did not fit; peak memory in MB) of one batch size.

    On a GPU the probe runs here and the peak is what PyTorch allocated; on a CPU it runs
    in a fresh process, whose peak resident memory is the whole cost of training.
    """
    if on_a_gpu(config):
        gpu = torch.device("cuda" if config.device == "auto" else config.device)
        with torch.cuda.device(gpu):  # its memory, not the current GPU's (cuda:1, ...)
            torch.cuda.reset_peak_memory_stats()
            try:
                result = probe(config, batch_size, steps)
                peak_mb = torch.cuda.max_memory_allocated() / 2**20
            except torch.cuda.OutOfMemoryError:
                result, peak_mb = None, float("nan")
            torch.cuda.empty_cache()
        return result, peak_mb
    return probe_in_child(config.to_dict(), batch_size, steps)


def probe_in_child(
    config_dict: dict, batch_size: int, steps: int = PROBE_STEPS
) -> tuple[dict | None, float]:
    """(result, or None if it ran out of memory; peak resident MB) of a probe in a fresh
    process.  Any other failure of the child is an error that names the child's.

    The child reports its own high-water mark (Linux's VmHWM counts from its exec): the
    rusage of a child (ru_maxrss) would also hold the parent's size at the fork.  It runs
    on this process's threads (the job's --threads, or SLURM's CPUs), as training would,
    not on torch's default of every core.
    """
    code = (
        "import sys; from fromscratch.train.batch_size import probe_and_report; "
        "probe_and_report(*sys.argv[1:])"
    )
    arguments = [json.dumps(config_dict), str(batch_size), str(steps), str(torch.get_num_threads())]
    with tempfile.TemporaryFile("w+") as errors:
        child = subprocess.Popen(
            [sys.executable, "-c", code, *arguments],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        try:
            stdout = child.stdout.read()
        except BaseException:  # stopped (SIGTERM, Ctrl-C): the probe must not run on alone
            child.kill()
            child.wait()
            raise
        child.stdout.close()
        _, status, usage = os.wait4(child.pid, 0)  # reaps the child; its rusage too
        returncode = os.waitstatus_to_exitcode(status)
        if returncode == -signal.SIGKILL:  # the kernel's out-of-memory killer
            return None, usage.ru_maxrss / 1024  # an upper bound: killed on the way up
        if returncode != 0 or not stdout.strip():
            errors.seek(0)
            lines = errors.read().strip().splitlines() or [f"exit code {returncode}"]
            if ours := message_of_ours(lines[-1]):  # a setting the probe could not take
                raise FromScratchError(ours)
            raise FromScratchError(f"batch-size search: batch {batch_size} failed: {lines[-1]}")
    report = json.loads(stdout.strip().splitlines()[-1])
    return report["result"], report["peak_mb"] or usage.ru_maxrss / 1024


def probe_and_report(config_json: str, batch_size: str, steps: str, threads: str) -> None:
    """The child process of probe_in_child: its report as one line of JSON on stdout.

    Running out of memory is a result (None); any other error ends the child with its
    traceback on stderr.
    """
    torch.set_num_threads(int(threads))
    config = TrainConfig.from_dict(json.loads(config_json))
    before = own_memory_mb("VmRSS")  # Python and torch alone, before the model is built
    try:
        result = probe(config, int(batch_size), int(steps))
    except Exception as error:
        if not out_of_memory(error):
            raise
        result = None
    if result is not None and before is not None:
        result["resident_before_mb"] = before
    print(json.dumps({"result": result, "peak_mb": own_memory_mb("VmHWM")}))
    leave_objects_to_the_os_at_exit()


def out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an allocation that failed: CUDA's, or the CPU allocator's (which
    PyTorch raises as a plain RuntimeError)."""
    return isinstance(error, MemoryError | torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    )


def own_memory_mb(field: str) -> float | None:
    """This process's memory in MB as /proc/self/status's `field` gives it (Linux; VmHWM:
    the peak resident since it started, VmRSS: resident now), else None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def check_options(max_batch_size: int, memory_cap_mb: float) -> None:
    """A one-line error for a search that cannot be made (before any work is done)."""
    check_integer("batch-size search", "max_batch_size", max_batch_size)
    if not 0 < memory_cap_mb < math.inf:
        raise FromScratchError(
            f"batch-size search: memory_cap_mb={memory_cap_mb:g}; it must be a finite number > 0"
        )


def search(
    config: TrainConfig,
    out: str | Path,
    max_batch_size: int = 1024,
    memory_cap_mb: float = 8192,
) -> dict:
    check_options(max_batch_size, memory_cap_mb)
    # a wrong model field, data folder or split fails here, not inside the first probe
    model_config(config.model)
    PreparedData(config.data).check_split(config.train_split)
    out = Path(out)
    cuda = on_a_gpu(config)
    tried = []
    batch_size = 1
    while batch_size <= max_batch_size:
        result, peak_mb = measure(config, batch_size)
        # the cap is a CPU's (its RAM, shared); a GPU's limit is its own memory
        fits = result is not None and (cuda or peak_mb <= memory_cap_mb)
        tried.append(
            {
                "batch_size": batch_size,
                "fits": fits,
                "peak_memory_mb": peak_mb,
                **({k: result[k] for k in ("step_s", "tokens_per_s", "threads")} if result else {}),
            }
        )
        print(
            f"batch {batch_size:5d}: {'fits' if fits else 'does not fit'}, "
            f"peak {peak_mb:,.0f} MB"
            + (f", {result['tokens_per_s']:,.0f} tokens/s" if result else ""),
            file=sys.stderr,
        )
        if not fits:
            break
        batch_size *= 2
    fitting = [t for t in tried if t["fits"]]
    if not fitting:
        limit = "this GPU's memory" if cuda else f"{memory_cap_mb:,.0f} MB"
        raise FromScratchError(f"not even a batch of 1 fits in {limit}")
    fastest = max(fitting, key=lambda t: t["tokens_per_s"])
    if tried[-1]["fits"]:  # the choice is the search's ceiling, not the memory's
        print(
            f"every batch size up to max_batch_size={max_batch_size} fits; a larger one may "
            "too (raise max_batch_size to find the memory's limit)",
            file=sys.stderr,
        )
    result = {
        "batch_size": fitting[-1]["batch_size"],
        "fastest_batch_size": fastest["batch_size"],
        "device": "cuda" if cuda else "cpu",
        "memory_cap_mb": memory_cap_mb,
        "max_batch_size": max_batch_size,
        "tried": tried,
    }
    write_json(out / "batch_size.json", result)
    summary = {k: v for k, v in result.items() if k != "tried"}
    config.log_results(out / "batch-size", config.to_dict(), tried, summary, x_axis="batch_size")
    return result
