# The final metric of each variant of a comparison, seeds as error bars and points.
import pandas as pd

from fromscratch.figures import logged, plots, published

s = logged(snakemake)  # noqa: F821
runs = pd.read_csv(s.input.runs, dtype={"variant": str})  # n_head 4 is the variant "4"
plots.comparison(
    runs,
    s.wildcards.experiment,
    s.params.metric,
    s.output[0],
    s.params.title,
    order=s.params.order,
    variable=s.params.variable,
)
published(s)
