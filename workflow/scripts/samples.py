# The first sample of each GPT, as a figure.
from pathlib import Path

from fromscratch.figures import logged, plots, published

s = logged(snakemake)  # noqa: F821
texts = {
    name: Path(path).read_text().split("\n\n---\n\n")[0]
    for name, path in zip(s.params.names, s.input.samples, strict=True)
}
plots.samples(texts, s.output[0], s.params.title)
published(s)
