"""Helpers shared by the benchmarks: machine description, timing, JSON output, goal text."""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from fromscratch.io import write_json

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent  # the checkout
OUT = HERE / "out"  # runs, data, logs: not kept in git
# One JSON per benchmark (and its figures), kept in git: rerunning one benchmark updates its
# row of RESULTS.md and leaves the others.  `run.py --quick` points this elsewhere.
RESULTS = Path(os.environ.get("FROMSCRATCH_BENCH_RESULTS", HERE / "results"))
CONFIGS = HERE / "configs"
QUALITY_DATA = {  # config name -> (data set, tokenizer, vocabulary size; None: its default)
    "shakespeare-char": ("shakespeare", "chars", None),
    "imdb-classifier": ("imdb", "words", 40_000),
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def throughput_goal_text(goals: dict) -> str:
    """The GPT throughput benchmark's goals as text: "×1.25 HF: not met; MFU ≥ 85%: met"."""
    bars = {"ratio_vs_hf": lambda bar: f"×{bar} HF", "mfu": lambda bar: f"MFU ≥ {bar:.0%}"}
    return "; ".join(
        f"{bars[kind](goal['goal'])}: {'met' if goal['met'] else 'not met'}"
        for kind, goal in goals.items()
    )


@functools.cache
def copy_buffers(megabytes: int, device: str) -> tuple:
    """Two tensors for measure_memory_bandwidth, made once: filling them costs more than
    timing the copy.  Every page is written, so none is the kernel's shared zero page."""
    import torch

    source = torch.full((megabytes * 2**20 // 4,), 1.0, device=device)
    return source, torch.empty_like(source)


def measure_memory_bandwidth(
    megabytes: int = 256, seconds: float = 0.2, device: str = "cpu"
) -> float:
    """Bytes/s a large tensor copy moves (read + write): what bounds a training step's
    elementwise ops (GELU, LayerNorm, adds), as the matmul rate bounds its matmuls.  The
    tensor outsizes any cache, so this is main memory."""
    import torch

    source, target = copy_buffers(megabytes, device)
    sync = torch.cuda.synchronize if source.is_cuda else lambda: None
    target.copy_(source)  # warm-up
    sync()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        target.copy_(source)
        sync()
        n += 1
    return 2 * source.nbytes * n / (time.perf_counter() - start)


def machine() -> dict:
    import numpy
    import torch

    return {
        "cpu": cpu_name(),
        # the same model name covers CPUs with and without AVX-512 (and bf16 instructions)
        "vector_isa": torch.backends.cpu.get_cpu_capability(),
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def paired_ratio(ours: list[float], peer: list[float]) -> float:
    """Rates timed in alternating rounds: the median over rounds of each round's ratio, so
    that the machine's drift, which moves both within a round, cancels out."""
    return statistics.median(a / b for a, b in zip(ours, peer, strict=True))


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def write_result(name: str, result: dict, out: Path | None = None) -> Path:
    """benchmarks/results/NAME.json (or `out`), atomically, with the machine it ran on."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    write_json(path, {"benchmark": name, "machine": machine(), **result})
    return path


def quality_config(name: str, mirror: str | None = None, overrides: dict | None = None):
    """The training config of a quality benchmark (configs/NAME.yaml), its data prepared
    from the mirror into benchmarks/out/data/ on first use, with the vocabulary fitted on
    the run's training split(s): a folder fitted on others is refused, not used."""
    from fromscratch import FromScratchError
    from fromscratch.data import PreparedData, prepare
    from fromscratch.train import load_config

    config = load_config(CONFIGS / f"{name}.yaml", overrides)
    config = dataclasses.replace(config, data=str(HERE.parent / config.data))  # from any cwd
    try:
        fit_on = PreparedData(config.data).fit_on
    except FromScratchError:  # none yet, or one from an earlier version of its data set
        dataset, tokenizer, vocab_size = QUALITY_DATA[name]
        prepare(dataset, config.data, mirror=mirror, tokenizer=tokenizer,
                vocab_size=vocab_size, fit_on=config.train_split)  # fmt: skip
        return config
    # None: a vocabulary not learned from this data (bytes; another data set's)
    if fit_on is not None and set(fit_on.split("+")) != set(config.train_split.split("+")):
        raise FromScratchError(
            f"{config.data}: its vocabulary is fitted on {fit_on}, and this run trains on "
            f"{config.train_split}; give it a data folder of its own (--set data=...)"
        )
    return config
