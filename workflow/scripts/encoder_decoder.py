# The encoder/decoder study: per-length and per-run tables, and accuracy against length.
from pathlib import Path

from fromscratch.figures import encoder_decoder, logged, published
from fromscratch.figures.tables import write_csv

s = logged(snakemake)  # noqa: F821
table = encoder_decoder.accuracy_table([Path(p).parent for p in s.input.runs])
write_csv(table, s.output.lengths)
write_csv(encoder_decoder.run_table(table), s.output.runs)
encoder_decoder.accuracy_by_length(table, s.output.figure, s.params.title)
published(s)
