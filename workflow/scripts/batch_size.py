# Throughput and peak memory against batch size, and the gradient noise scale where measured.
from fromscratch.figures import logged, plots, published

s = logged(snakemake)  # noqa: F821
plots.batch_size(s.input.result, s.output[0], s.params.title, noise_path=s.input.noise or None)
published(s)
