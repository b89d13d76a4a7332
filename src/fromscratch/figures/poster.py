"""An A0 portrait poster: a title banner, then every figure with its heading above it and
a caption below that says what to read from it.

The figures keep their saved proportions, text included, and are drawn at the largest
scale at which all of them fit the page: a wide figure's text comes out as large as a
narrow one's (squeezed into a fixed column, it would shrink its own text, and no other's,
to a size nobody reads from a metre away). They fill the page in rows, in their order; a
row with room to spare across grows to fill it, by up to GROW.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextToPath
from PIL import Image

from fromscratch.figures.plots import DPI
from fromscratch.io import atomic_path

A0_INCHES = (33.11, 46.81)  # 841 × 1189 mm, portrait
MARGIN = 1.0  # inches around the page's content
GUTTER = 0.8  # inches between figures, across and down
TITLE_PT, SUBTITLE_PT = 80, 36
HEADING_PT, CAPTION_PT = 28, 20  # readable from a metre and a half
LINE_SPACING = 1.25  # of the font size, between a text's lines
# The largest scale: a few figures are drawn at most this much larger than saved, rather
# than blown up to fill the page. Below TEXT_FOLLOWS, headings and captions shrink with
# the figures, so that any number of them fits.
MAX_SCALE, TEXT_FOLLOWS, SCALE_STEP = 1.6, 0.6, 0.01
GROW = 1.3  # a row with room to spare across grows to fill it, by up to this much
PREVIEW_DPI = 40  # the PNG preview: 1,324 × 1,872 pixels


@dataclass
class Panel:
    image: Path  # a PNG, saved at plots.DPI
    heading: str
    caption: str


@dataclass
class Placed:
    """Where a panel went, in inches from the page's bottom left corner."""

    panel: Panel
    left: float
    top: float  # of its heading
    width: float  # of its figure, heading and caption
    image_height: float
    scale: float  # of its figure, against its saved size
    heading: list[str]  # its lines
    caption: list[str]
    heading_pt: float
    caption_pt: float


@dataclass
class Layout:
    scale: float  # of the figures, against their saved size: at least this (GROW: at most)
    text_scale: float  # of the headings' and captions' sizes
    placed: list[Placed]


def make_poster(
    panels: list[Panel], out: str | Path, title: str, subtitle: str, preview: str | Path = ""
) -> Layout:
    """The poster as a PDF at `out`, and as a PNG at `preview` if given: small enough to
    open on a screen or in W&B (PREVIEW_DPI), large enough to judge the layout."""
    fig, layout = draw_poster(panels, title, subtitle)
    images = [image for ax in fig.axes for image in ax.images]
    # The PDF embeds each figure's pixels as they are, to print at the figure's own
    # resolution (resampled to the page's 100 dpi, a figure drawn at 0.6 of its size would
    # lose half of them); the small preview smooths them instead, so its text stays legible.
    for path, kind, dpi, interpolation in (
        (out, "pdf", None, "none"),
        (preview, "png", PREVIEW_DPI, "antialiased"),
    ):
        if path:
            for image in images:
                image.set_interpolation(interpolation)
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(Path(path)) as tmp:
                fig.savefig(tmp, format=kind, dpi=dpi)
    plt.close(fig)
    low, high = min(p.scale for p in layout.placed), max(p.scale for p in layout.placed)
    ticks, legends = (matplotlib.rcParams[key] for key in ("xtick.labelsize", "legend.fontsize"))
    print(
        f"poster: {len(panels)} figures at {low:.2f}–{high:.2f} of their saved size: their "
        f"{ticks:g} pt tick labels print at {ticks * low:.1f}–{ticks * high:.1f} pt, their "
        f"{legends:g} pt legends at {legends * low:.1f}–{legends * high:.1f} pt"
    )
    return layout


def draw_poster(panels: list[Panel], title: str, subtitle: str) -> tuple[plt.Figure, Layout]:
    width, height = A0_INCHES
    fig = plt.figure(figsize=A0_INCHES)

    def write(left: float, top: float, lines: str, **style) -> None:  # inches from bottom left
        fig.text(left / width, top / height, lines, va="top", linespacing=LINE_SPACING, **style)

    top = height - MARGIN
    write(width / 2, top, title, ha="center", fontsize=TITLE_PT, fontweight="bold")
    top -= 1.5 * TITLE_PT / 72
    subtitle_lines = wrap(subtitle, width - 2 * MARGIN, SUBTITLE_PT)  # a study's question
    write(width / 2, top, "\n".join(subtitle_lines), ha="center", multialignment="center",
          fontsize=SUBTITLE_PT, color="0.3")  # fmt: skip
    top -= text_height(len(subtitle_lines), SUBTITLE_PT) + 0.25 * SUBTITLE_PT / 72 + GUTTER
    sizes = [saved_size(panel.image) for panel in panels]
    layout = fit(panels, sizes, width - 2 * MARGIN, top - MARGIN, left=MARGIN, top=top)
    for p in layout.placed:
        write(p.left, p.top, "\n".join(p.heading), fontsize=p.heading_pt, fontweight="bold")
        image_bottom = p.top - text_height(len(p.heading), p.heading_pt) - GUTTER / 4
        image_bottom -= p.image_height
        box = [p.left / width, image_bottom / height, p.width / width, p.image_height / height]
        ax = fig.add_axes(box)
        ax.imshow(mpimg.imread(p.panel.image))
        ax.axis("off")
        caption = "\n".join(p.caption)
        write(p.left, image_bottom - GUTTER / 4, caption, fontsize=p.caption_pt, color="0.15")
    return fig, layout


def saved_size(image: Path) -> tuple[float, float]:
    """A PNG's width and height in inches, as plots.save drew it."""
    with Image.open(image) as png:  # reads the header alone
        columns, rows = png.size
    return columns / DPI, rows / DPI


def fit(
    panels: list[Panel],
    sizes: list[tuple[float, float]],
    width: float,
    height: float,
    left: float = 0.0,
    top: float = 0.0,
) -> Layout:
    """The largest scale (a multiple of SCALE_STEP, at most MAX_SCALE) at which the panels
    fit a box `width` × `height` inches, and where each goes. Found by bisection: a smaller
    scale fits wherever a larger one does, give or take where the rows break."""

    def rows_at(steps: int) -> list[list[Placed]]:
        scale = steps * SCALE_STEP
        return pack(panels, sizes, scale, text_scale_at(scale), width)

    def fits(steps: int) -> bool:
        return rows_height(rows_at(steps)) <= height

    most = round(MAX_SCALE / SCALE_STEP)
    if fits(most):
        steps = most
    else:  # fits(low) (or low is the smallest step), not fits(high)
        low, high = 1, most
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if fits(middle) else (low, middle)
        steps = low
    rows, scale = rows_at(steps), steps * SCALE_STEP
    used = rows_height(rows)
    # what is left of the height goes between the rows, evenly, up to a gutter more each
    spare = min(GUTTER, (height - used) / max(1, len(rows) - 1)) if used < height else 0
    placed, row_top = [], top
    for row in rows:
        row_width = sum(p.width for p in row)
        # as wide as the page across, gaps no wider than three gutters (a short last row
        # stays together, centred)
        gap = min(3 * GUTTER, (width - row_width) / (len(row) - 1)) if len(row) > 1 else 0
        x = left + (width - row_width - gap * (len(row) - 1)) / 2
        for p in row:
            p.left, p.top = x, row_top
            x += p.width + gap
            placed.append(p)
        row_top -= row_height(row) + GUTTER + spare
    return Layout(scale, text_scale_at(scale), placed)


def text_scale_at(scale: float) -> float:
    """How much the headings and captions shrink when the figures are drawn at `scale`."""
    return min(1.0, scale / TEXT_FOLLOWS)


def pack(panels, sizes, scale, text_scale, width) -> list[list[Placed]]:
    """The panels in rows, in order, each row no wider than `width` at `scale` with a
    gutter between its figures, then grown to fill the width (by up to GROW). The rows
    break where their heights add up to the least: a tall figure joins other tall ones
    rather than stretching a row of short ones. A figure wider than the page is narrowed
    to it."""
    heading_pt, caption_pt = HEADING_PT * text_scale, CAPTION_PT * text_scale

    def place(i: int, row_scale: float) -> Placed:
        (w, h), fig_width = sizes[i], min(sizes[i][0] * row_scale, width)
        heading = wrap(panels[i].heading, fig_width, heading_pt, bold=True)
        caption = wrap(panels[i].caption, fig_width, caption_pt)
        return Placed(panels[i], 0, 0, fig_width, h * fig_width / w, row_scale, heading,
                      caption, heading_pt, caption_pt)  # fmt: skip

    def row(start: int, end: int) -> list[Placed] | None:
        figures = sum(min(w * scale, width) for w, _ in sizes[start:end])
        across = width - GUTTER * (end - start - 1)
        if end - start > 1 and figures > across:
            return None
        grown = max(scale, min(scale * GROW, scale * across / figures, MAX_SCALE))
        return [place(i, grown) for i in range(start, end)]

    # least[i]: the least height of the first i panels in rows, and the rows
    least: list[tuple[float, list[list[Placed]]]] = [(0.0, [])]
    for end in range(1, len(panels) + 1):
        options = []
        for start in range(end - 1, -1, -1):
            if (last := row(start, end)) is None:
                break
            options.append((least[start][0] + row_height(last) + GUTTER, [*least[start][1], last]))
        least.append(min(options, key=lambda option: option[0]))
    return least[-1][1]


def rows_height(rows: list[list[Placed]]) -> float:
    """Inches, from the first row's top to the last's bottom, a gutter between them."""
    return sum(row_height(row) for row in rows) + GUTTER * (len(rows) - 1)


def row_height(row: list[Placed]) -> float:
    return max(panel_height(p) for p in row)


def panel_height(p: Placed) -> float:
    """Heading, a quarter gutter, figure, a quarter gutter, caption: inches."""
    return (
        text_height(len(p.heading), p.heading_pt)
        + p.image_height
        + GUTTER / 2
        + text_height(len(p.caption), p.caption_pt)
    )


def text_height(lines: int, points: float) -> float:
    return (lines * LINE_SPACING * points) / 72


def wrap(text: str, width: float, points: float, bold: bool = False) -> list[str]:
    """`text` in lines no wider than `width` inches at `points` (measured with the font the
    poster draws it in); a word longer than a line gets a line of its own."""
    width *= 0.98  # the renderers' widths differ from the font's by a few per mille
    lines = [""]
    for word in text.split():
        trial = f"{lines[-1]} {word}".lstrip()
        if lines[-1] and text_width(trial, round(points, 2), bold) > width:
            lines.append(word)
        else:
            lines[-1] = trial
    return lines


@cache
def text_width(text: str, points: float, bold: bool) -> float:
    """Inches, the advance of `text` in matplotlib's default font."""
    prop = FontProperties(size=points, weight="bold" if bold else "normal")
    width, _, _ = TextToPath().get_text_width_height_descent(text, prop, ismath=False)
    return width / 72
