"""Numbers for prose are formatted one way; the paper-vs-run table reads the papers' values."""

from __future__ import annotations

import math

import pytest

from neuroalign_utils import report, style


@pytest.mark.parametrize(
    "value, expected",
    [(0.4226, "0.42"), (1234, "1,234"), (-0.40432, "−0.40"), (0.0004997, "5.0 × 10⁻⁴"), (1e-12, "1.0 × 10⁻¹²"),
     (0.0, "0"), (math.nan, "n/a"), (None, "n/a")],
)
def test_format_number(value, expected):
    assert report.format_number(value) == expected


def test_p_values_read_as_prose():
    assert report.format_p(0.0004997501249375312) == "p < 0.001"
    assert report.format_p(0.4812) == "p = 0.48"
    assert report.format_p(math.nan) == "p n/a"


def test_intervals_never_print_two_equal_ends():
    assert report.format_interval(1.0409, 1.0411) == "1.0409 to 1.0411"
    assert report.format_interval(-0.2, 0.35) == "−0.20 to 0.35"
    assert report.format_interval(1.5, 1.5) == "1.5 to 1.5"


def test_paper_comparison_joins_the_papers_values_to_this_run():
    table = report.paper_comparison("factortopy_encoding", {"hierarchy_slope_imagenet": 0.40}, why="synthetic")
    assert list(table.columns) == ["quantity", "paper", "source", "this run", "reading"]
    row = table.iloc[0]
    assert row["source"] == "Table 2" and row["this run"] == "0.400" and row["reading"] == "close; synthetic"
    lower = report.paper_comparison("factortopy_encoding", {"hierarchy_slope_imagenet": 0.1}, why={})
    assert lower.iloc[0]["reading"] == "lower"
    with pytest.raises(ValueError, match="known keys"):
        report.paper_comparison("factortopy_encoding", {"no_such_quantity": 1}, why="")


def test_categories_get_distinct_colours_or_an_error():
    colours = style.category_colours(13)
    assert len(set(colours)) == 13
    with pytest.raises(ValueError, match="at most 20"):
        style.category_colours(21)


def test_paper_comparison_is_saved_for_the_synthesis(tmp_path):
    import pandas as pd

    table = report.paper_comparison("factortopy_encoding", {"n_clusters": 20}, why="", results_dir=tmp_path)
    saved = pd.read_parquet(tmp_path / report.PAPER_COMPARISON_FILE)
    assert saved.equals(table) and saved.iloc[0]["reading"] == "same"
