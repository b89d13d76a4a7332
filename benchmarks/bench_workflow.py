"""The pipeline's own overheads: how long Snakemake takes to plan the `full` DAG (a dry
run), and what one job pays to go through the launcher instead of a function call.

    python benchmarks/bench_workflow.py [--repeats N] [--out FILE.json]

Launcher overhead: the demo data set's `prepare` stage (a small real job) run in this
process, then as `fromscratch run prepare --launcher local` and `--launcher debug`
(submitit's in-process executor) in a fresh process, as a Snakemake rule runs it. The
difference is the per-job overhead; a bare `python -c "import torch"` in the same run shows
how much of it any Python job that uses torch pays anyway. Medians over repeats.

A demo training job (a classifier, 20 steps, W&B offline), most of the demo DAG's jobs:
`fromscratch run train` against the same command ending as Python ends by default (the
garbage collector over every object at exit), in alternating runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, write_result

from fromscratch.stages import get_stage

BIN = Path(sys.executable).parent
# the rules call `fromscratch`: Snakemake refuses to plan without it on PATH, and `make
# bench` runs this without the environment activated
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def seconds(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, env=ENV)
    return time.perf_counter() - start


def median_of(repeats: int, fn) -> float:
    return statistics.median(fn() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        snakemake = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "Snakefile")]
        snakemake += ["--configfile", str(ROOT / "config.yaml"), "--directory", str(scratch)]
        dry_run_command = [*snakemake, "-n", "--config", "preset=full"]
        dry_run = median_of(args.repeats, lambda: seconds(dry_run_command, scratch))
        startup = median_of(args.repeats, lambda: seconds([*snakemake, "--version"], scratch))
        plan = subprocess.run(dry_run_command, cwd=scratch, capture_output=True, text=True, env=ENV)
        job_count = int(re.search(r"^total\s+(\d+)", plan.stdout + plan.stderr, re.M)[1])

        prepare = get_stage("prepare")

        def kwargs():
            out = scratch / "demo-words"
            shutil.rmtree(out, ignore_errors=True)
            return {"dataset": "demo", "tokenizer": "words", "out": str(out)}

        def in_process():
            k = kwargs()
            start = time.perf_counter()
            prepare(**k)
            return time.perf_counter() - start

        def launched(launcher: str):
            command = [str(BIN / "fromscratch"), "run", "prepare", "--launcher", launcher]
            command += ["--args", json.dumps(kwargs()), "--log-dir", str(scratch / "logs")]
            return seconds(command, scratch)

        in_process()  # warm-up: imports
        training_job = training_job_arguments(scratch / "demo-words", scratch)
        times = {
            "in process (function call)": median_of(args.repeats, in_process),
            "fromscratch run --launcher local": median_of(args.repeats, lambda: launched("local")),
            "fromscratch run --launcher debug": median_of(args.repeats, lambda: launched("debug")),
            'python -c "import torch"': median_of(
                args.repeats, lambda: seconds([sys.executable, "-c", "import torch"], scratch)
            ),
        }
        exits = {"fromscratch": [str(BIN / "fromscratch")], "default exit": DEFAULT_EXIT}
        training = {name: [] for name in exits}
        for _ in range(args.repeats):
            for name, command in exits.items():
                shutil.rmtree(scratch / "train", ignore_errors=True)
                training[name].append(seconds([*command, *training_job], scratch))
        training = {name: statistics.median(runs) for name, runs in training.items()}
    overhead = times["fromscratch run --launcher local"] - times["in process (function call)"]
    for name, t in times.items():
        print(f"{name:<36}{t:7.2f} s")
    print(
        f"demo training job: {training['fromscratch']:.2f} s, {training['default exit']:.2f} s "
        "with Python's default exit"
    )
    print(
        f"full DAG: {job_count} jobs planned in {dry_run:.2f} s (snakemake startup "
        f"{startup:.2f} s); launcher overhead per local job {overhead:.2f} s"
    )
    path = write_result(
        "workflow",
        {
            "full_dag_jobs": job_count,
            "dry_run_s": dry_run,
            "snakemake_version_s": startup,
            "job_seconds": times,
            "launcher_overhead_s": overhead,
            "python_torch_import_s": times['python -c "import torch"'],
            "training_job_s": training["fromscratch"],
            "training_job_default_exit_s": training["default exit"],
        },
        args.out,
    )
    print(f"→ {path}")


# `fromscratch` as it was before its quick exit: main, then Python's own
DEFAULT_EXIT = [
    sys.executable,
    "-c",
    "import sys; from fromscratch.cli import main; sys.exit(main())",
]


def training_job_arguments(data: Path, scratch: Path) -> list[str]:
    """`fromscratch run train` arguments for a demo-sized classifier on `data`, 20 steps,
    logging to W&B offline, as the demo DAG's training jobs do."""
    config = {
        "data": str(data),
        "model": {"family": "classifier", "n_layer": 1, "n_head": 4, "n_embd": 64, "context": 128},
        "batch_size": 8,
        "lr": 1e-3,
        "max_steps": 20,
        "warmup_steps": 5,
        "eval_splits": "test",
        "wandb_mode": "offline",
    }
    job = {"config": config, "out": str(scratch / "train"), "resume": False}
    arguments = ["run", "train", "--launcher", "local", "--threads", "1"]
    return [*arguments, "--args", json.dumps(job), "--log-dir", str(scratch / "logs")]


if __name__ == "__main__":
    main()
