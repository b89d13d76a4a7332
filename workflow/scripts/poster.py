# The A0 poster: every figure with its heading and caption.
from fromscratch.figures import logged
from fromscratch.figures.poster import Panel, make_poster

s = logged(snakemake)  # noqa: F821
panels = [
    Panel(path, heading, caption)
    for path, heading, caption in zip(
        s.input.panels, s.params.headings, s.params.captions, strict=True
    )
]
make_poster(panels, s.output[0], s.params.title, s.params.subtitle)
