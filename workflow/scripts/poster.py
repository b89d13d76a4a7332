# An A0 poster: its figures, each with its heading and caption; a PNG preview beside it.
from fromscratch.figures import logged, published
from fromscratch.figures.poster import Panel, make_poster

s = logged(snakemake)  # noqa: F821
panels = [
    Panel(path, heading, caption)
    for path, heading, caption in zip(
        s.input.panels, s.params.headings, s.params.captions, strict=True
    )
]
make_poster(panels, s.output[0], s.params.title, s.params.subtitle, preview=s.output[1])
published(s)
