# The distillation study: its table of every evaluation, and its two figures.
from fromscratch.figures import distillation, logged, published
from fromscratch.figures.tables import write_csv

s = logged(snakemake)  # noqa: F821
table = distillation.results_table(s.params.students, s.input.students, s.input.teacher)
write_csv(table, s.output.table)
distillation.by_layers(table, s.output.layers, s.params.teacher_name)
distillation.by_length(table, s.output.lengths, s.params.teacher_name)
published(s)
