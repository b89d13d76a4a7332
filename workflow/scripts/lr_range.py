# The LR range test's curve with the chosen learning rate marked; the loss in the unit of
# the model tuned (nats per token, or per review).
from fromscratch.figures import logged, plots, published

s = logged(snakemake)  # noqa: F821
plots.lr_range(
    s.input.curve,
    s.input.choice,
    s.output[0],
    s.params.title,
    loss_unit=plots.LOSS_UNITS[s.wildcards.model],
)
published(s)
