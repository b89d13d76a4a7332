"""The demo DAG end to end: here (local launcher) and through the real SLURM cluster.

To keep the suite short, both runs use a smaller demo (one seed, two variants of each
comparison, fewer steps) given as an extra config file; everything else — data, tuning,
training, sampling, tables, figures, poster — is the real DAG.
"""

import json
import re
import subprocess

import pytest

from .conftest import ROOT, snakemake

SMALL_DEMO = """
cluster:
  default: {cpus: 1, mem_gb: 4, time_min: 20}
presets:
  demo:
    seeds: [0]
    compare: {attention: [simple, multihead], position: [none, learned]}
    tune:
      lr_range: {steps: 30}
      batch_size: {max_batch_size: 8}
    classifier: {train: {max_steps: 60, eval_every: 30}}
    gpt: {train: {max_steps: 60, eval_every: 30}}
"""
RUNS = ["attention/simple", "attention/multihead", "position/none", "position/learned"]


def run_demo(workdir, *extra):
    config = workdir / "small-demo.yaml"
    config.write_text(SMALL_DEMO)
    result = snakemake(
        workdir, "--cores", "2", "--configfile", str(ROOT / "config.yaml"), str(config), *extra
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return workdir / "results" / "demo"


def summaries(results):
    return {
        run: json.loads((results / "runs" / run / "seed0" / "summary.json").read_text())
        for run in RUNS
    }


@pytest.fixture(scope="module")
def local_demo(tmp_path_factory):
    return run_demo(tmp_path_factory.mktemp("local"))


@pytest.mark.slow
def test_demo_dag_makes_every_figure_and_the_poster(local_demo):
    figures = local_demo / "figures"
    for name in (
        "lr_range-classifier",
        "lr_range-gpt",
        "batch_size-classifier",
        "compare-attention",
        "compare-position",
        "curves-attention",
        "curves-position",
        "samples",
    ):
        for suffix in (".png", ".pdf"):
            assert (figures / f"{name}{suffix}").stat().st_size > 10_000, name
    poster = (local_demo / "poster.pdf").read_bytes()
    assert poster.startswith(b"%PDF") and len(poster) > 100_000
    lr = json.loads((local_demo / "tune" / "classifier" / "lr_range.json").read_text())
    batch = json.loads((local_demo / "tune" / "classifier" / "batch_size.json").read_text())
    config = summaries(local_demo)["attention/multihead"]["config"]
    assert (config["lr"], config["batch_size"]) == (lr["lr"], batch["batch_size"])  # tuned inputs
    assert (
        (local_demo / "samples" / "position-learned-seed0.txt").read_text().startswith("the film")
    )
    assert list(
        (local_demo / "runs" / "attention" / "multihead" / "seed0" / "wandb").glob("offline-run-*")
    )


@pytest.mark.slow
def test_changing_figure_code_reruns_only_figure_rules(local_demo):
    # Snakemake ignores a bare touch of a small file whose content is unchanged (it keeps
    # checksums), so the test really changes the figure code, then restores it.
    workdir = local_demo.parent.parent
    plots = ROOT / "src" / "fromscratch" / "figures" / "plots.py"
    original = plots.read_text()
    try:
        plots.write_text(original + "\n# changed by a test\n")
        result = snakemake(
            workdir,
            "-n",
            "--configfile",
            str(ROOT / "config.yaml"),
            str(workdir / "small-demo.yaml"),
        )
    finally:
        plots.write_text(original)
    assert result.returncode == 0
    planned = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.MULTILINE))
    assert "train" not in planned and "lr_range" not in planned and "sample" not in planned
    assert {"tables", "poster"} <= set(planned)


@pytest.mark.slow
@pytest.mark.slurm
def test_demo_dag_on_slurm_gives_the_local_metrics(local_demo, slurm_cluster, tmp_path):
    results = run_demo(tmp_path, "--profile", str(ROOT / "profiles" / "slurm"))
    jobs = list((results / "logs" / "jobs" / "train").glob("*_log.out"))
    assert jobs, "no SLURM job logs"
    local, cluster = summaries(local_demo), summaries(results)
    for run in RUNS:
        for key, value in local[run].items():
            if "/" in key:  # the evaluation metrics
                assert cluster[run][key] == pytest.approx(value, rel=1e-6), (run, key)
    assert subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip() == ""
