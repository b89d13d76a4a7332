# The cramming study's tables (one row per run; one per recipe) and its two figures.
from fromscratch.figures import cramming, logged, published
from fromscratch.figures.tables import write_csv

s = logged(snakemake)  # noqa: F821
runs = cramming.runs_table(s.input.runs, s.params.metric)
write_csv(runs, s.output.runs)
write_csv(cramming.ablation_table(runs, s.params.metric, s.params.budget_s), s.output.ablations)
cramming.budget_figure(
    runs,
    cramming.reference_table(s.input.reference, s.params.metric),
    s.params.metric,
    s.output.budget,
    s.params.title,
    reference_label=s.params.reference_label,
    published=s.params.published,
)
cramming.ablation_figure(
    runs, s.params.metric, s.params.budget_s, s.output.ablations_figure, s.params.title
)
published(s)
