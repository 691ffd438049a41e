"""One look for every figure of the book: sizes that fit the text column, fonts readable there.

The book's text column is about 670–780 px wide (in 1,280–1,400 px windows); figures are drawn at
100 dpi and at most :data:`BOOK_WIDTH` inches wide (with room for a tight bounding box to grow), so
they are shown at (nearly) their own size and a 9-point label stays at least 8 points on the page.
Categorical colours never repeat within a figure (:func:`category_colours`).
"""

from __future__ import annotations

import matplotlib as mpl

#: Widest figure, in inches at 100 dpi, that the book shows without shrinking it.
BOOK_WIDTH = 7.0
#: Smallest font size (points) any text in a figure may use.
MIN_FONT_SIZE = 9

_RC = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.title_fontsize": 9,
    "figure.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.cmap": "viridis",
}


def use_book_style() -> None:
    """Set matplotlib's defaults for the book's figures (sizes, fonts, dpi), and let pandas show whole
    table cells (its default cuts text after 50 characters)."""
    import pandas as pd

    mpl.rcParams.update(_RC)
    pd.set_option("display.max_colwidth", None)


def book_size(height: float, width: float = BOOK_WIDTH) -> tuple[float, float]:
    """A figure size no wider than the text column."""
    return (min(float(width), BOOK_WIDTH), float(height))


def category_colours(n: int) -> list:
    """``n`` distinct colours (tab10 up to 10, tab20 up to 20); more than 20 categories is refused.

    Raises
    ------
    ValueError
        When ``n`` > 20: colours would repeat, so the figure needs markers or panels instead.
    """
    import matplotlib.pyplot as plt

    if n > 20:
        raise ValueError(f"'n' is {n}; at most 20 categories get distinct colours (use markers or panels beyond).")
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i) for i in range(n)]
