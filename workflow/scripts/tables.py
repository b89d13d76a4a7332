# Tidy tables of the runs the rule declares as inputs (not every run folder on disk): one
# row per run, one per metric point.
from fromscratch.figures import logged, published, tables

s = logged(snakemake)  # noqa: F821
tables.write_csv(tables.runs(s.input.runs), s.output.runs)
tables.write_csv(tables.curves(s.input.runs), s.output.curves)
published(s)
