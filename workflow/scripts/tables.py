# Tidy tables of every run under results/<preset>/runs/: one row per run, one per metric point.
from fromscratch.figures import tables

tables.runs(snakemake.params.results).to_csv(snakemake.output.runs, index=False)  # noqa: F821
tables.curves(snakemake.params.results).to_csv(snakemake.output.curves, index=False)  # noqa: F821
