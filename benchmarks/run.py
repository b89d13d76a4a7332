"""Every benchmark, one after the other, then benchmarks/RESULTS.md (`make bench`).

    python benchmarks/run.py [--only NAME ...] [--skip NAME ...] [--quick]

Each benchmark runs in its own process (a fresh interpreter: no warm caches or threads
carried from one to the next), writes benchmarks/results/NAME.json, and logs to
benchmarks/out/logs/NAME.log. Data comes from $FROMSCRATCH_MIRROR (or the original hosts).
About 10-21 minutes on a 2-core CPU; --quick runs each briefly, to check that all of them work
(into benchmarks/out/quick/, not the committed results).
The IMDb quality bar (1,900 steps, 5-15 minutes of training on its own) is
`make bench-imdb`; its last result stays in the table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from common import HERE, OUT

# name -> (script and arguments, the arguments that make it quick)
BENCHMARKS = {
    "gpt_throughput": (["bench_gpt_throughput.py", "--rounds", "21"], ["--rounds", "1"]),
    "gpt_throughput-nobias": (
        ["bench_gpt_throughput.py", "--rounds", "21", "--no-bias"],
        ["--rounds", "1"],
    ),
    "gpt_throughput-bf16": (
        ["bench_gpt_throughput.py", "--rounds", "21", "--precision", "bf16"],
        ["--rounds", "1"],
    ),
    "sampling": (["bench_sampling.py"], ["--rounds", "1", "--new-tokens", "20"]),
    "tokenizers": (["bench_tokenizers.py"], ["--rounds", "1"]),
    "dataloader": (["bench_dataloader.py"], None),
    "train_loop": (["bench_train_loop.py"], ["--rounds", "1", "--configs", "small"]),
    "workflow": (["bench_workflow.py"], ["--repeats", "1"]),
    "quality-shakespeare": (["bench_quality.py", "shakespeare"], ["--set", "time_budget_s=5"]),
    "lr-grid": (["bench_lr_grid.py"], ["--budget", "3", "--grid", "1e-3"]),
}


def children_environment(environ) -> dict:
    """The benchmarks' environment: this one, with a mirror folder named relative to here
    made absolute (they run in benchmarks/, where `../shared/data` is another folder)."""
    env = dict(environ)
    mirror = env.get("FROMSCRATCH_MIRROR", "")
    if mirror and "://" not in mirror:
        env["FROMSCRATCH_MIRROR"] = os.path.abspath(mirror)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--skip", nargs="+", choices=list(BENCHMARKS), default=[])
    parser.add_argument("--quick", action="store_true", help="a short run of each")
    args = parser.parse_args()

    logs = OUT / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env, table = children_environment(os.environ), HERE / "RESULTS.md"
    if args.quick:  # its numbers mean nothing: keep them away from the committed results
        env["FROMSCRATCH_BENCH_RESULTS"] = str(OUT / "quick")
        table = OUT / "quick" / "RESULTS.md"
    failed = []
    for name in [n for n in args.only if n not in args.skip]:
        command, quick = BENCHMARKS[name]
        if args.quick:
            if quick is None:
                print(f"{name:<22} skipped (no quick form)")
                continue
            command = [*command, *quick]
        start = time.perf_counter()
        with open(logs / f"{name}.log", "w") as log:
            done = subprocess.run(
                [sys.executable, *command],
                cwd=HERE,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        status = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        print(f"{name:<22}{time.perf_counter() - start:7.0f} s  {status}  ({logs / name}.log)")
        if done.returncode:
            failed.append(name)
    subprocess.run([sys.executable, "report.py", "--out", table], cwd=HERE, env=env, check=True)
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}; see their logs")


if __name__ == "__main__":
    main()
