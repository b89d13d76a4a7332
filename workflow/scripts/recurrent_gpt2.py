# Bits per token along long documents for every variant of the recurrent GPT: the table
# (per model, seed and variant) and the figure of one corpus.
from fromscratch.figures import logged, published, recurrent_gpt2
from fromscratch.figures.tables import write_csv

s = logged(snakemake)  # noqa: F821
positions, table, summary = recurrent_gpt2.read_results(
    s.input.summaries, s.params.models, s.params.seeds
)
write_csv(table, s.output.table)
recurrent_gpt2.along_document(positions, summary, s.output.figure, s.params.title, s.params.bin)
published(s)
