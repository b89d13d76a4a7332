"""The figure rules read exactly the results they declare as inputs."""

import json

import pandas as pd

from ..conftest import wandb_records
from .conftest import snakemake


def test_the_tables_hold_exactly_the_runs_the_rule_declares(workdir):
    """Run folders left on disk by an older config (a seed, a variant or a comparison it
    no longer has) stay out of runs.csv and curves.csv, whatever ran before."""
    preset = "presets={demo: {seeds: [1], compare: {attention: [multihead], position: [learned]}}}"
    declared = {("attention", "multihead", 1), ("position", "learned", 1)}
    stale = {("attention", "simple", 1), ("position", "learned", 0), ("heads", "4", 1)}
    for experiment, variant, seed in declared | stale:
        folder = workdir / "results" / "demo" / "runs" / experiment / variant / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({"test/loss": 1.0}))
        (folder / "metrics.jsonl").write_text(json.dumps({"step": 10, "loss": 2.0}) + "\n")

    # the runs' own rules are left out: their summaries stand in for finished runs
    result = snakemake(
        workdir, "results/demo/tables/runs.csv", "--cores", "1", "--allowed-rules", "tables",
        "--config", preset,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for table in ("runs", "curves"):
        rows = pd.read_csv(workdir / "results" / "demo" / "tables" / f"{table}.csv", dtype=str)
        found = {(e, v, int(s)) for e, v, s in rows[["experiment", "variant", "seed"]].values}
        assert found == declared, table
    # and to W&B (config.yaml's: offline), a run of the figure job's own beside the runs
    run_folder = workdir / "results" / "demo" / "wandb-figures" / "tables"
    records = wandb_records(run_folder)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.run_group, run.job_type, run.display_name) == (
        "demo-figures",
        "figures",
        "figures/tables",
    )
    logged = {item.nested_key[0] if item.nested_key else item.key
              for r in records if r.WhichOneof("record_type") == "history"
              for item in r.history.item}  # fmt: skip
    assert {"runs table", "curves table"} <= logged


def test_a_failing_figure_rule_leaves_its_error_in_its_log(workdir):
    """Snakemake's message on a failed rule points at its log: a script rule's must hold
    the error, as a shell rule's does."""
    preset = "presets={demo: {seeds: [1], compare: {attention: [multihead], position: [learned]}}}"
    for experiment in ("attention/multihead", "position/learned"):
        folder = workdir / "results" / "demo" / "runs" / experiment / "seed1"
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text('{"test/loss": 1.0')  # cut short
        (folder / "metrics.jsonl").write_text(json.dumps({"step": 10, "loss": 2.0}) + "\n")
    result = snakemake(
        workdir, "results/demo/tables/runs.csv", "--cores", "1", "--allowed-rules", "tables",
        "--config", preset,
    )  # fmt: skip
    assert result.returncode != 0
    log = (workdir / "results" / "demo" / "logs" / "figures" / "tables.log").read_text()
    assert "Traceback" in log and "summary.json" in log, log
