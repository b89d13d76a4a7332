# The LR range test's curve with the chosen learning rate marked.
from fromscratch.figures import plots

s = snakemake  # noqa: F821
plots.lr_range(s.input.curve, s.input.choice, s.output[0], s.params.title)
