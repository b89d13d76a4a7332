"""Poster figures from the files under results/ (never from the W&B API).

`tables.py` reads the given runs' summary.json and metrics.jsonl into tidy pandas tables
(and writes CSV files atomically); `plots.py` draws them with seaborn; `poster.py` lays
the figures out on an A0 page. Each figure job then sends what it wrote to W&B
(`published`), to be looked at beside the runs.
"""

from pathlib import Path


def logged(snakemake):
    """A figure script's `snakemake` object, after sending what the script prints, warns
    and raises to its rule's log file: Snakemake runs a `script:` rule without the
    `> {log} 2>&1` of a shell rule, so the file would stay empty. The script's process
    then ends without the garbage collector's passes over pandas', matplotlib's and
    Snakemake's objects (a figure job took 6.5 s instead of 7.1 on a 2-core CPU)."""
    import atexit
    import sys

    from fromscratch import leave_objects_to_the_os_at_exit

    atexit.register(leave_objects_to_the_os_at_exit)

    # open for the rest of the script's process, which ends with the rule
    log = open(snakemake.log[0], "w", encoding="utf-8", buffering=1)  # noqa: SIM115
    sys.stdout = sys.stderr = log
    return snakemake


def published(snakemake) -> None:
    """Send a figure job's figures (PNG) and tables (CSV) to W&B as a run of their own
    (any other file it wrote, a poster's PDF, as a file of that run),
    where config.yaml's wandb is on: group `<preset>-figures`, job type `figures`, named
    after the rule and its wildcards; its files in results/<preset>/wandb-figures/ (not
    under figures/: W&B keeps copies of the PNGs)."""
    from fromscratch.track import TrackingConfig

    settings, preset = snakemake.config["wandb"], snakemake.config["preset"]
    if settings["mode"] == "disabled":
        return
    job = "/".join([snakemake.rule, *map(str, snakemake.wildcards)])
    tracking = TrackingConfig(
        wandb_mode=settings["mode"],
        wandb_project=settings["project"],
        wandb_entity=settings.get("entity", ""),
        group=f"{preset}-figures",
        job_type="figures",
        tags=preset,
        run_name=f"figures/{job}",
    )
    written = [Path(path) for path in snakemake.output]
    run_config = {"rule": snakemake.rule, "inputs": list(map(str, snakemake.input)),
                  "outputs": list(map(str, written))}  # fmt: skip
    out = Path("results", preset, "wandb-figures", *job.split("/"))
    tracker = tracking.tracker(out, run_config, None, ())
    tracker.log_files(
        images=[path for path in written if path.suffix == ".png"],
        tables=[path for path in written if path.suffix == ".csv"],
        files=[path for path in written if path.suffix not in (".png", ".csv")],
    )
    tracker.finish({}, run_config)
