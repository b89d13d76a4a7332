# Training loss (smoothed) and the evaluation metric against training tokens, seeds as bands;
# the loss in the unit of the comparison's model (nats per token, or per review).
import pandas as pd

from fromscratch.figures import logged, plots, published

s = logged(snakemake)  # noqa: F821
curves = pd.read_csv(s.input.curves, dtype={"variant": str})
plots.training_curves(
    curves,
    s.wildcards.experiment,
    s.output[0],
    s.params.title,
    eval_metric=s.params.metric,
    order=s.params.order,
    variable=s.params.variable,
    loss_unit=plots.LOSS_UNITS[s.params.model],
)
published(s)
