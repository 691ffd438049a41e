"""The papers' own numbers (``neuroalign_utils/paper_values.yaml``) and their loader."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from neuroalign_utils import chapters
from neuroalign_utils import paper_values as pv

REPO = Path(__file__).resolve().parents[1]
YAML = REPO / "neuroalign_utils" / "paper_values.yaml"
BIB = REPO / "book" / "references.bib"


@pytest.fixture(scope="module")
def raw_entries():
    return yaml.safe_load(YAML.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def bib_keys():
    return set(re.findall(r"^\s*@\w+\s*\{\s*([^,\s]+)\s*,", BIB.read_text(encoding="utf-8"), flags=re.M))


def test_every_entry_has_the_required_fields(raw_entries):
    assert raw_entries, "paper_values.yaml is empty"
    for entry in raw_entries:
        missing = [f for f in pv.REQUIRED if f not in entry]
        assert not missing, f"{entry.get('chapter')}/{entry.get('key')} lacks {missing}"
        assert set(entry) <= set(pv.COLUMNS), f"{entry['chapter']}/{entry['key']}: unknown fields"
        for field in ("quantity", "paper", "source", "cite"):
            assert isinstance(entry[field], str) and entry[field].strip(), f"{entry['key']}: empty {field}"
        assert isinstance(entry["unit"], str)


def test_chapters_are_the_books_chapters(raw_entries):
    names = [c.name for c in chapters.list_chapters(REPO)]
    assert list(pv.CHAPTERS) == names, "paper_values.CHAPTERS is out of step with notebooks/"
    unknown = {e["chapter"] for e in raw_entries} - set(names)
    assert not unknown, f"unknown chapters {unknown}; valid: {names}"


def test_keys_are_snake_case_and_unique_per_chapter(raw_entries):
    seen = set()
    for entry in raw_entries:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", entry["key"]), entry["key"]
        pair = (entry["chapter"], entry["key"])
        assert pair not in seen, f"duplicate key {pair}"
        seen.add(pair)


def test_cite_keys_exist_in_the_bibliography(raw_entries, bib_keys):
    missing = {e["cite"] for e in raw_entries} - bib_keys
    assert not missing, f"cite keys not in book/references.bib: {missing}"


def test_values_are_finite_numbers_or_null(raw_entries):
    for entry in raw_entries:
        value = entry["value"]
        if value is not None:
            assert isinstance(value, (int, float)) and not isinstance(value, bool), entry["key"]
            assert math.isfinite(value), entry["key"]


def test_every_reproduced_chapter_has_entries(raw_entries):
    counts = pd.Series([e["chapter"] for e in raw_entries]).value_counts()
    reproduced = [c for c in pv.CHAPTERS if c not in ("overview", "synthesis")]
    for chapter in reproduced:
        assert counts.get(chapter, 0) >= 3, chapter


def test_loader_returns_the_columns_and_filters_by_chapter(raw_entries):
    table = pv.paper_values()
    assert list(table.columns) == list(pv.COLUMNS)
    assert len(table) == len(raw_entries)
    assert table["value"].dtype == float
    v1t = pv.paper_values("v1t_training")
    assert set(v1t["chapter"]) == {"v1t_training"}
    assert v1t.set_index("key").loc["single_trial_corr_v1t_with_behaviour", "value"] == pytest.approx(0.426)
    assert all(type(note) is str for note in table["note"])


def test_chapter_without_entries_gives_an_empty_table():
    table = pv.paper_values("overview")
    assert table.empty and list(table.columns) == list(pv.COLUMNS)


def test_unknown_chapter_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid chapters are: overview, allen_natural_scenes"):
        pv.paper_values("no_such_chapter")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda e: e.pop("source"), "lacks the field"),
        (lambda e: e.update(chapter="nope"), "unknown chapter"),
        (lambda e: e.update(key="Not Snake"), "snake_case"),
        (lambda e: e.update(value="0.3"), "finite number or null"),
        (lambda e: e.update(value=float("nan")), "finite number or null"),
        (lambda e: e.update(extra="x"), "unknown field"),
    ],
)
def test_validator_names_the_problem(raw_entries, change, message):
    entry = dict(raw_entries[0])
    change(entry)
    with pytest.raises(ValueError, match=message):
        pv.validate_entries([entry])


def test_validator_refuses_a_repeated_key(raw_entries):
    with pytest.raises(ValueError, match="used twice"):
        pv.validate_entries([dict(raw_entries[0]), dict(raw_entries[0])])
