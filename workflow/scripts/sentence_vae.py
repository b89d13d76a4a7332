# The sentence-VAE study: tables of its runs, then its four figures.
from pathlib import Path

from fromscratch.figures import sentence_vae as figures
from fromscratch.figures import tables

s = snakemake  # noqa: F821
root = Path(s.output.results).parent  # the study folder: runs/vae/<variant>/seed<k>/
results = tables.runs(root)
curves = tables.curves(root)
results.to_csv(s.output.results, index=False)
curves.to_csv(s.output.curves, index=False)

variants = s.params.variants
figures.training(curves, variants, s.output.training, "Sentence VAE: training")
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
