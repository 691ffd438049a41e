"""Interactive figures that need no kernel and no network: plotly figures written as self-contained HTML.

A ``view_*`` function of a lens (nilearn's naming: ``view_*`` is interactive, ``plot_*`` is matplotlib)
builds a :class:`plotly.graph_objects.Figure` and returns it wrapped in an :class:`InteractiveFigure`:
an HTML fragment that carries plotly.js inline (from the ``plotly`` package, never a CDN), so the
static book shows it read from a local build, offline. plotly.js weighs about 4.8 MB, so a page should
carry it once: a second interactive figure on the same page passes ``include_plotlyjs=False`` and
draws with the copy the first one loaded.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from . import storage


class InteractiveFigure:
    """A plotly figure as a self-contained HTML fragment (a notebook displays it; the book embeds it).

    Parameters
    ----------
    figure : plotly.graph_objects.Figure
        Kept as ``figure`` for readers who want to change it (``figure.show()`` in a live kernel).
    include_plotlyjs : bool, default=True
        Inline plotly.js in the fragment; False when an earlier figure on the same page carries it.

    Attributes
    ----------
    figure : plotly.graph_objects.Figure
    html : str
        ``<div>`` with the figure (and plotly.js when ``include_plotlyjs``), no external reference.
    """

    def __init__(self, figure, *, include_plotlyjs: bool = True):
        import plotly.io

        if not isinstance(include_plotlyjs, bool):  # plotly also takes "cdn" or a URL: refused here
            raise ValueError(f"'include_plotlyjs' must be True or False; got {include_plotlyjs!r}.")
        self.figure = figure
        self.include_plotlyjs = include_plotlyjs
        self.html = plotly.io.to_html(
            figure,
            include_plotlyjs=include_plotlyjs,
            include_mathjax=False,
            full_html=False,
            # the plot follows the column's width; no "edit in Chart Studio" link, no plotly logo
            default_width="100%",
            config={"responsive": True, "displaylogo": False},
        )

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"<InteractiveFigure: {self.figure.layout.title.text or 'plotly figure'}>"

    def save_as_html(self, path) -> Path:
        """Write a standalone page (plotly.js inline) that any browser opens offline; returns its path."""
        page = self.html if self.include_plotlyjs else InteractiveFigure(self.figure).html
        title = html.escape(self.figure.layout.title.text or "figure")
        head = f'<head><meta charset="utf-8"><title>{title}</title></head>'
        document = f"<!DOCTYPE html>\n<html>{head}\n<body>{page}</body></html>\n"
        path = Path(path)
        with storage.atomic_path(path) as tmp:
            Path(tmp).write_text(document, encoding="utf-8")
        return path


def hex_colours(rgb) -> list[str]:
    """``#rrggbb`` of each row of an (N, 3) RGB array in [0, 1] (plotly reads these strings, not matplotlib's
    0–1 tuples; the shortest colour string, which keeps a page with a colour per vertex small)."""
    rgb = np.round(255 * np.clip(np.asarray(rgb, dtype=np.float64), 0, 1)).astype(int)
    return ["#{:02x}{:02x}{:02x}".format(*row) for row in rgb.tolist()]
