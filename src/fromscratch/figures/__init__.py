"""Poster figures from the files under results/ (never from the W&B API).

`tables.py` reads the given runs' summary.json and metrics.jsonl into tidy pandas tables
(and writes CSV files atomically); `plots.py` draws them with seaborn; `poster.py` lays
the figures out on an A0 page.
"""


def logged(snakemake):
    """A figure script's `snakemake` object, after sending what the script prints, warns
    and raises to its rule's log file: Snakemake runs a `script:` rule without the
    `> {log} 2>&1` of a shell rule, so the file would stay empty."""
    import sys

    # open for the rest of the script's process, which ends with the rule
    log = open(snakemake.log[0], "w", encoding="utf-8", buffering=1)  # noqa: SIM115
    sys.stdout = sys.stderr = log
    return snakemake
