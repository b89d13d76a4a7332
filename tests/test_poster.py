"""The poster draws its figures at the largest scale at which all fit A0 (a row with room to
spare grows to fill it), so that a wide figure's text prints as large as a narrow one's;
nothing overlaps or leaves the page, and captions wrap within their figure's width,
however many figures there are."""

import itertools
import re
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from PIL import Image

from fromscratch.figures import plots, poster
from fromscratch.figures.poster import Panel

# The sizes (inches) at which the demo saved its 21 poster figures (2026-12-05), in the
# poster's order: the course's 9 (single plots, two-panel rows, the samples' text), then the
# studies' 12 (up to the Perceiver's four panels in a row); a test figure drawn at that
# size is saved about as large.
DEMO_SIZES = [
    (6.2, 4.0), (8.8, 3.7), (6.2, 4.0), (12.3, 4.1), (6.2, 4.0), (12.3, 4.1), (6.2, 4.0),
    (8.8, 3.7), (7.7, 6.7),
    (12.8, 4.3), (7.9, 4.1), (10.3, 7.1), (6.2, 4.2), (9.8, 4.3), (15.8, 3.8), (6.2, 4.2),
    (7.0, 5.1), (14.8, 4.1), (14.8, 4.3), (8.8, 8.1), (10.8, 4.1),
]  # fmt: skip
COURSE_AND_A_STUDY = 11  # the course's figures and the augmentation study's two
CAPTION = (  # of the demo's captions, one of the longer ones
    "Training loss (nats per review, smoothed) and test accuracy against training tokens; "
    "bands: one standard deviation over seeds."
)


def saved_figure(folder, index, size):
    fig, ax = plt.subplots(figsize=size)
    ax.plot([0, 1], [0, 1])
    ax.set(xlabel="training tokens", ylabel="validation loss (nats/token)", title=f"fig {index}")
    return plots.save(fig, folder / f"fig{index}")[0]


@pytest.fixture(scope="module")
def demo_panels(tmp_path_factory):
    folder = tmp_path_factory.mktemp("figures")
    return [
        Panel(saved_figure(folder, i, size), f"Panel {i}: what it shows", CAPTION)
        for i, size in enumerate(DEMO_SIZES)
    ]


def drawn_boxes(fig):
    """Every text's and image's box on the page, in inches: (x0, y0, x1, y1)."""
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer).extents / fig.dpi for t in fig.texts]
    width, height = fig.get_size_inches()
    for ax in fig.axes:
        (x0, y0), (x1, y1) = ax.get_position().get_points()
        boxes.append((x0 * width, y0 * height, x1 * width, y1 * height))
    return boxes


def assert_laid_out_cleanly(fig, layout, panels):
    # the panels in the order given, read as a page is: rows top to bottom, each from the left
    assert [placed.panel for placed in layout.placed] == panels
    for a, b in itertools.pairwise(layout.placed):
        assert b.top < a.top or (b.top == a.top and b.left > a.left)
    # room to spare goes between the rows up to a gutter more each, not spread down the page
    rows = [list(row) for _, row in itertools.groupby(layout.placed, key=lambda p: p.top)]
    for above, below in itertools.pairwise(rows):
        gap = above[0].top - poster.row_height(above) - below[0].top
        assert poster.GUTTER - 1e-9 <= gap <= 2 * poster.GUTTER + 1e-9
    width, height = poster.A0_INCHES
    # measured at a print's resolution: at the screen's 100 dpi, the raster's hinting and
    # whole pixels widen 9 pt text by 2% (the poster is a PDF, its text the font's widths)
    fig.set_dpi(300)
    boxes = drawn_boxes(fig)
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    for a, b in itertools.combinations(boxes, 2):
        apart = a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
        assert apart, f"{a} overlaps {b}"
    # a caption stays within its figure's width
    renderer = fig.canvas.get_renderer()
    captions = [t for t in fig.texts if t.get_fontsize() == layout.placed[0].caption_pt]
    assert len(captions) == len(layout.placed)
    for text, placed in zip(captions, layout.placed, strict=True):
        assert text.get_window_extent(renderer).width / fig.dpi <= placed.width + 1e-6
        assert text.get_text().replace("\n", " ") == placed.panel.caption  # its own, wrapped


def test_the_course_and_a_study_print_near_their_own_size(demo_panels):
    """The course's figures and a study's each print at 85% of its saved size or more
    (in three fixed columns, a wide one printed at 58%); a row with room to spare across
    grows to fill it, all its figures alike."""
    panels = demo_panels[:COURSE_AND_A_STUDY]
    fig, layout = poster.draw_poster(panels, "Transformers from scratch", "demo")
    assert layout.scale >= 0.85 and layout.text_scale == 1
    rows = itertools.groupby(layout.placed, key=lambda placed: placed.top)
    for _, row in rows:
        row = list(row)
        for placed in row:
            saved_width, _ = poster.saved_size(placed.panel.image)
            assert placed.width == pytest.approx(saved_width * placed.scale, rel=1e-3)
            assert placed.scale == row[0].scale
        assert layout.scale <= row[0].scale <= layout.scale * poster.GROW + 1e-9
        if row[0].scale < layout.scale * poster.GROW:  # grown to the page's width
            width = sum(placed.width for placed in row) + poster.GUTTER * (len(row) - 1)
            assert width == pytest.approx(poster.A0_INCHES[0] - 2 * poster.MARGIN)
    assert_laid_out_cleanly(fig, layout, panels)
    plt.close(fig)


def test_the_scale_is_the_largest_that_fits(demo_panels):
    sizes = [poster.saved_size(p.image) for p in demo_panels]
    width, height = 30.0, 40.0
    layout = poster.fit(demo_panels, sizes, width, height)

    def rows_height(scale):
        rows = poster.pack(demo_panels, sizes, scale, poster.text_scale_at(scale), width)
        return poster.rows_height(rows)

    assert rows_height(layout.scale) <= height < rows_height(layout.scale + poster.SCALE_STEP)


def test_a_few_figures_are_not_blown_up(demo_panels):
    fig, layout = poster.draw_poster(demo_panels[:3], "A title", "a subtitle")
    assert {placed.scale for placed in layout.placed} == {poster.MAX_SCALE}
    assert_laid_out_cleanly(fig, layout, demo_panels[:3])
    plt.close(fig)


def test_any_number_of_figures_fits_the_page(demo_panels):
    """Eighty-four figures (a study with many comparisons of one's own): figures and text
    shrink together, and still nothing overlaps or leaves the page."""
    fig, layout = poster.draw_poster(demo_panels * 4, "A title", "a subtitle")
    assert layout.scale < poster.TEXT_FOLLOWS and layout.text_scale < 1
    assert_laid_out_cleanly(fig, layout, demo_panels * 4)
    plt.close(fig)


def test_the_rows_break_where_their_heights_add_up_to_the_least():
    """Against every way to cut the course's figures into rows that fit the page across
    (a run of figures that fits is one row: split, each part would grow taller)."""
    sizes, scale = DEMO_SIZES[:8], 0.9
    panels = [
        Panel(Path(f"{i}.png"), f"Panel {i}: what it shows", CAPTION) for i in range(len(sizes))
    ]
    width = poster.A0_INCHES[0] - 2 * poster.MARGIN

    def rows(start, end):
        text_scale = poster.text_scale_at(scale)
        return poster.pack(panels[start:end], sizes[start:end], scale, text_scale, width)

    heights = []
    for cuts in itertools.chain.from_iterable(
        itertools.combinations(range(1, len(sizes)), k) for k in range(len(sizes))
    ):
        parts = [rows(a, b) for a, b in itertools.pairwise((0, *cuts, len(sizes)))]
        if all(len(part) == 1 for part in parts):
            heights.append(poster.rows_height([part[0] for part in parts]))
    assert poster.rows_height(rows(0, len(sizes))) == pytest.approx(min(heights))


def test_a_figure_wider_than_the_page_is_narrowed_to_it(tmp_path):
    panels = [Panel(saved_figure(tmp_path, 0, (40.0, 4.0)), "A wide figure", CAPTION)]
    fig, layout = poster.draw_poster(panels, "A title", "a subtitle")
    assert layout.placed[0].width == pytest.approx(poster.A0_INCHES[0] - 2 * poster.MARGIN)
    assert_laid_out_cleanly(fig, layout, panels)
    plt.close(fig)


def test_a_long_word_gets_its_own_line():
    lines = poster.wrap("see results/demo/studies/cramming/tables/budget.csv now", 2.0, 22)
    assert lines == ["see", "results/demo/studies/cramming/tables/budget.csv", "now"]


def test_the_poster_is_a_pdf_with_a_png_preview(demo_panels, tmp_path, monkeypatch):
    """... written atomically: a failed write leaves the poster before it in place."""
    out, preview = tmp_path / "poster.pdf", tmp_path / "preview" / "poster.png"

    def half_drawn(fig, target, **kwargs):
        Path(target).write_bytes(b"half")
        raise ZeroDivisionError

    out.write_bytes(b"old")
    monkeypatch.setattr(plt.Figure, "savefig", half_drawn)
    with pytest.raises(ZeroDivisionError):
        poster.make_poster(demo_panels[:4], out, "A title", "a subtitle", preview=preview)
    monkeypatch.undo()
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["poster.pdf"]
    poster.make_poster(demo_panels[:4], out, "A title", "a subtitle", preview=preview)
    assert out.read_bytes().startswith(b"%PDF") and not list(tmp_path.glob("**/*.tmp"))
    with Image.open(preview) as png:  # A0 at the preview's resolution
        assert png.size == tuple(round(side * poster.PREVIEW_DPI) for side in poster.A0_INCHES)


def test_the_pdf_keeps_every_figures_pixels(demo_panels, tmp_path):
    """Each figure is embedded at its PNG's own size, not resampled to the page's dpi:
    placed below its saved size, that would print its text at a fraction of its pixels."""
    panels = demo_panels[:3]
    poster.make_poster(panels, tmp_path / "poster.pdf", "A title", "a subtitle")
    embedded = re.findall(rb"/Width (\d+) /Height (\d+)", (tmp_path / "poster.pdf").read_bytes())
    sizes = []
    for panel in panels:
        with Image.open(panel.image) as png:
            sizes.append(png.size)
    assert sorted((int(w), int(h)) for w, h in embedded) == sorted(sizes)


def test_a_studys_question_as_the_subtitle_wraps_within_the_page(demo_panels):
    """A study's poster: the course's figures and the study's, its question below the
    title; two questions' worth of text take two lines."""
    question = (
        "Does a seq2seq task need an encoder/decoder, or does a GPT reading the source as a "
        "prefix do as well? (preset small)"
    )
    panels = demo_panels[:COURSE_AND_A_STUDY]
    fig, layout = poster.draw_poster(panels, "A title", f"{question} {question}")
    subtitle = next(t for t in fig.texts if t.get_fontsize() == poster.SUBTITLE_PT)
    assert subtitle.get_text().count("\n") == 1
    assert layout.scale >= 0.85
    assert_laid_out_cleanly(fig, layout, panels)
    plt.close(fig)
