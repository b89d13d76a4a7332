"""Running the real Snakemake workflow from the tests, in a scratch working directory."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def snakemake(
    workdir, *args, config=ROOT / "config.yaml", snakefile=ROOT / "Snakefile", timeout=1200
):
    """Run snakemake on `snakefile` (the project's) with results under `workdir` and
    `config` as the config file."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [
            str(BIN / "snakemake"),
            "--snakefile",
            str(snakefile),
            "--configfile",
            str(config),
            "--directory",
            str(workdir),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def planned_jobs(result) -> dict[str, int]:
    """How many jobs of each rule a (dry) run lists in its job-count table (not the total)."""
    rows = re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.M)
    return {rule: int(n) for rule, n in rows if rule != "total"}


@pytest.fixture
def workdir(tmp_path):
    return tmp_path
