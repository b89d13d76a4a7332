# The encoder/decoder study: per-length and per-run tables, and accuracy against length.
from pathlib import Path

from fromscratch.figures import encoder_decoder
from fromscratch.io import atomic_path

s = snakemake  # noqa: F821
table = encoder_decoder.accuracy_table([Path(p).parent for p in s.input.runs])
for frame, path in ((table, s.output.lengths), (encoder_decoder.run_table(table), s.output.runs)):
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
encoder_decoder.accuracy_by_length(table, s.output.figure, s.params.title)
