# The Perceiver study: its table of every run, and quality and cost against context length.
from fromscratch.figures import perceiver

s = snakemake  # noqa: F821
results = perceiver.table(s.input.plans, s.input.costs, s.input.summaries, s.params.splits)
results.to_csv(s.output.table, index=False)
perceiver.context_figure(results, s.output.png, s.params.title)
