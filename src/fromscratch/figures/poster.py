"""An A0 portrait poster: a title banner, then the figures in two columns, each with its
heading and a caption that says what to read from it."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg
import matplotlib.pyplot as plt

from fromscratch.io import atomic_path

A0_INCHES = (33.11, 46.81)  # 841 × 1189 mm, portrait


@dataclass
class Panel:
    image: Path  # a PNG
    heading: str
    caption: str


def make_poster(panels: list[Panel], out: str | Path, title: str, subtitle: str) -> Path:
    columns = 2 if len(panels) <= 12 else 3  # the course alone, or with its studies
    rows = max(1, math.ceil(len(panels) / columns))
    text_scale = 2 / columns
    fig = plt.figure(figsize=A0_INCHES)
    width_in, height_in = A0_INCHES
    fig.text(0.5, 0.975, title, ha="center", va="top", fontsize=72, fontweight="bold")
    fig.text(0.5, 0.948, subtitle, ha="center", va="top", fontsize=34, color="0.3")
    top, bottom, gap = 0.92, 0.02, 0.01
    cell_h = (top - bottom) / rows
    gutter = 0.04
    cell_w = (1 - (columns + 1) * gutter) / columns
    for i, panel in enumerate(panels):
        row, col = divmod(i, columns)
        left = gutter + col * (cell_w + gutter)
        cell_top = top - row * cell_h
        heading_size, caption_size = 34 * text_scale**0.5, 22 * text_scale
        fig.text(left, cell_top, panel.heading, fontsize=heading_size, fontweight="bold", va="top")
        # about 90 characters a line fill a two-column cell at 22 pt
        caption = textwrap.fill(panel.caption, width=round(90 * cell_w / 0.44 / text_scale))
        caption_h = 0.007 * text_scale * (caption.count("\n") + 1)
        # The image keeps its aspect: as wide as the cell, unless that is too tall.
        image = mpimg.imread(panel.image)
        aspect = image.shape[0] / image.shape[1]
        room = cell_h - caption_h - 4 * gap
        w = min(cell_w, room * height_in / (aspect * width_in))
        h = w * aspect * width_in / height_in
        image_top = cell_top - 2.2 * gap
        ax = fig.add_axes([left, image_top - h, w, h])
        ax.imshow(image)
        ax.axis("off")
        caption_top = image_top - h - 0.4 * gap
        fig.text(left, caption_top, caption, fontsize=caption_size, va="top", color="0.15")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="pdf")
    plt.close(fig)
    return out
