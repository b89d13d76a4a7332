# The augmentation study's tables (every score; the headline metric per strategy and set)
# and its two figures: the classifier's accuracy and the GPT's bits per byte.
from fromscratch.figures import augmentation, logged, published
from fromscratch.figures.tables import write_csv

s = logged(snakemake)  # noqa: F821
results = augmentation.results_table(s.input.evaluations, s.params.rates)
write_csv(results, s.output.results)
write_csv(augmentation.summary_table(results), s.output.summary)
augmentation.classifier_figure(
    results, s.params.order["classifier"], s.output.classifier, s.params.title
)
augmentation.lm_figure(results, s.params.order["lm"], s.output.lm, s.params.title)
published(s)
