"""Numbers for prose are formatted one way; the paper-vs-run table reads the papers' values."""

from __future__ import annotations

import math

import pytest

from neuroalign_utils import report, style


@pytest.mark.parametrize(
    "value, expected",
    [
        (0.4226, "0.42"),
        (1234, "1,234"),
        (-0.40432, "−0.40"),
        (0.0004997, "5.0 × 10⁻⁴"),
        (1e-12, "1.0 × 10⁻¹²"),
        (0.0, "0"),
        (math.nan, "n/a"),
        (None, "n/a"),
    ],
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


def test_text_verdicts_read_names_and_unreported_quantities():
    assert report.compare_to_paper("VISpm", "VISpm, in all models") == "same"
    assert report.compare_to_paper("VISp", "VISpm, in all models") == "differs"
    assert report.compare_to_paper("Scnn1a_2", "Scnn1a-2") == "differs"
    assert report.compare_to_paper("24 × 32", "not reported (the size is not given)") == "not in the paper"
    assert report.compare_to_paper(0.3, 0.34) == "lower"
    assert report.compare_to_paper(None, 0.34) == "not computed"


def test_paper_table_and_its_sentence_flip():
    good = report.paper_comparison("allen_natural_scenes", {"n_scenes": 118, "fastest_area": "VISpm"}, why="synthetic")
    assert list(good["reading"]) == ["same; synthetic", "same; synthetic"]
    assert report.describe_paper_agreement(good).startswith("All 2 quantities")
    broken = report.paper_comparison("allen_natural_scenes", {"n_scenes": 60, "fastest_area": "VISam"}, why="synthetic")
    assert list(broken["reading"]) == ["lower; synthetic", "differs; synthetic"]
    assert report.describe_paper_agreement(broken).startswith("None of the 2 quantities")
    judged = report.paper_comparison(
        "kernel_alignment",
        {"attention_minus_convolution": "−0.01 (p = 0.4)"},
        why="random weights",
        verdicts={"attention_minus_convolution": "does not agree"},
    )
    assert judged["reading"].iloc[0] == "does not agree; random weights"


def test_paper_sentence_keeps_names_and_grammar():
    table = report.paper_comparison(
        "neural_kernels", {"n_clusters": 3, "umap_n_neighbors": 15, "n_selected": 400}, why="small run"
    )
    sentence = report.describe_paper_agreement(table)
    assert sentence.startswith("1 of the 3 quantities the paper reports matches")
    assert "K-means clusters per class" in sentence and "neural kernels selected" in sentence
    assert report._mid_sentence("Best-aligned brain area") == "best-aligned brain area"
    assert report._mid_sentence("Semantic-SAM-T parameters") == "Semantic-SAM-T parameters"
    assert report._mid_sentence("UMAP neighbours") == "UMAP neighbours"
