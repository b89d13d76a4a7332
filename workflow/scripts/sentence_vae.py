# The sentence-VAE study: tables of its runs, then its four figures.
from fromscratch.figures import logged, published, tables
from fromscratch.figures import sentence_vae as figures

s = logged(snakemake)  # noqa: F821
results = tables.runs(s.input.summaries)  # the runs declared, not all on disk
curves = tables.curves(s.input.summaries)
tables.write_csv(results, s.output.results)
tables.write_csv(curves, s.output.curves)

variants = s.params.variants
figures.training(
    curves,
    variants,
    s.output.training,
    "Sentence VAE: training",
    schedules=figures.kl_schedules(s.input.summaries),  # β at every step, not just logged
)
figures.summary(results, variants, s.output.summary, "Sentence VAE: the latent code")
figures.latent(
    dict(zip(variants, s.input.latents, strict=True)),
    results,
    s.params.seeds[0],
    s.output.latent,
    "Sentence VAE: test sentences' μ by review label",
)
figures.interpolations(
    s.input.examples,
    s.output.interpolations,
    f"Sentence VAE ({s.params.example_variant}, seed {s.params.seeds[0]}): decoded from z",
)
published(s)
