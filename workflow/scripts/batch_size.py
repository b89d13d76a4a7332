# Throughput and peak memory against batch size.
from fromscratch.figures import plots

s = snakemake  # noqa: F821
plots.batch_size(s.input.result, s.output[0], s.params.title)
