# The Perceiver study: its table of every run, and quality and cost against context length.
from fromscratch.figures import logged, perceiver, published
from fromscratch.figures.tables import write_csv

s = logged(snakemake)  # noqa: F821
results = perceiver.table(s.input.plans, s.input.costs, s.input.summaries, s.params.splits)
write_csv(results, s.output.table)
perceiver.context_figure(results, s.output.png, s.params.title)
published(s)
