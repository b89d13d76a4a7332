"""The pipeline's own overheads: how long Snakemake takes to plan the `full` DAG (a dry
run), and what one job pays to go through the launcher instead of a function call.

    python benchmarks/bench_workflow.py [--repeats N] [--out FILE.json]

Launcher overhead: the demo data set's `prepare` stage (a small real job) run in this
process, then as `fromscratch run prepare --launcher local` and `--launcher debug`
(submitit's in-process executor) in a fresh process, as a Snakemake rule runs it. The
difference is the per-job overhead; a bare `python -c "import torch"` in the same run shows
how much of it any Python job that uses torch pays anyway. Medians over repeats.
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
        times = {
            "in process (function call)": median_of(args.repeats, in_process),
            "fromscratch run --launcher local": median_of(args.repeats, lambda: launched("local")),
            "fromscratch run --launcher debug": median_of(args.repeats, lambda: launched("debug")),
            'python -c "import torch"': median_of(
                args.repeats, lambda: seconds([sys.executable, "-c", "import torch"], scratch)
            ),
        }
    overhead = times["fromscratch run --launcher local"] - times["in process (function call)"]
    for name, t in times.items():
        print(f"{name:<36}{t:7.2f} s")
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
        },
        args.out,
    )
    print(f"→ {path}")


if __name__ == "__main__":
    main()
