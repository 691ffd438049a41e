"""The three papers' own numbers, for each chapter's "Paper vs. this run" table.

The values live in ``paper_values.yaml`` beside this module (package data, so they are read the same way
from a source checkout and from an installed wheel). Each entry names its chapter, a ``key`` under which
the chapter computes the matching number of its own run, the value as the paper reports it, and where in
the paper it comes from.
"""

from __future__ import annotations

import functools
import math
import re
from importlib import resources
from numbers import Real
from typing import Any

import pandas as pd
import yaml

#: Columns of :func:`paper_values`, in order.
COLUMNS = ("chapter", "key", "quantity", "paper", "value", "unit", "source", "cite", "note")
#: Fields every entry must have (``note`` is optional).
REQUIRED = ("chapter", "key", "quantity", "paper", "value", "unit", "source", "cite")
#: The book's chapters, in reading order (the ``NN_<name>.md`` notebooks); the tests keep this in step
#: with :func:`neuroalign_utils.chapters.list_chapters`, which needs the book's folder and so cannot be
#: used from an installed wheel.
CHAPTERS = (
    "overview",
    "allen_natural_scenes",
    "neural_kernels",
    "artificial_kernels",
    "kernel_alignment",
    "v1t_training",
    "v1t_analysis",
    "factortopy_encoding",
    "synthesis",
)
RESOURCE = "paper_values.yaml"
_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


def validate_entries(entries: Any) -> list[dict]:
    """Check the parsed YAML and return its entries, with ``note`` filled in where absent.

    Parameters
    ----------
    entries : list of dict
        The parsed content of ``paper_values.yaml``.

    Returns
    -------
    list of dict
        The same entries; each has every field of :data:`COLUMNS` (``note`` defaults to ``""``).

    Raises
    ------
    ValueError
        Naming the first offending entry (by position, chapter and key) and what is wrong with it: not
        a mapping, a missing or unknown field, a chapter not in :data:`CHAPTERS`, a key that is not
        snake_case or is repeated within its chapter, a ``value`` that is neither a finite number nor
        null, or a text field that is not a string.
    """
    if not isinstance(entries, list):
        raise ValueError(f"{RESOURCE} must hold a list of entries; found {type(entries).__name__}.")
    seen: set[tuple[str, str]] = set()
    checked = []
    for i, entry in enumerate(entries):
        where = f"{RESOURCE} entry {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} must be a mapping of fields; found {type(entry).__name__}.")
        where += f" ({entry.get('chapter')!r}, {entry.get('key')!r})"
        missing = [f for f in REQUIRED if f not in entry]
        if missing:
            raise ValueError(f"{where} lacks the field(s) {missing}; every entry needs {list(REQUIRED)}.")
        unknown = sorted(set(entry) - set(COLUMNS))
        if unknown:
            raise ValueError(f"{where} has unknown field(s) {unknown}; accepted fields are {list(COLUMNS)}.")
        for field in COLUMNS:
            if field != "value" and field in entry and not isinstance(entry[field], str):
                raise ValueError(f"{where}: '{field}' must be a string; {entry[field]!r} was given.")
        if entry["chapter"] not in CHAPTERS:
            raise ValueError(f"{where}: unknown chapter {entry['chapter']!r}; valid chapters are {list(CHAPTERS)}.")
        if not _KEY.match(entry["key"]):
            raise ValueError(f"{where}: 'key' must be snake_case (lower-case letters, digits, underscores).")
        if (entry["chapter"], entry["key"]) in seen:
            raise ValueError(f"{where}: key {entry['key']!r} is used twice in chapter {entry['chapter']!r}.")
        seen.add((entry["chapter"], entry["key"]))
        value = entry["value"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value)):
            raise ValueError(f"{where}: 'value' must be a finite number or null; {value!r} was given.")
        for field in ("quantity", "paper", "source", "cite"):
            if not entry[field].strip():
                raise ValueError(f"{where}: '{field}' is empty.")
        checked.append({**entry, "note": entry.get("note", "")})
    return checked


@functools.lru_cache(maxsize=1)
def _load() -> tuple[dict, ...]:
    text = resources.files(__package__).joinpath(RESOURCE).read_text(encoding="utf-8")
    return tuple(validate_entries(yaml.safe_load(text)))


def paper_values(chapter: str | None = None) -> pd.DataFrame:
    """The papers' own numbers, one row per quantity, for one chapter or for all.

    Parameters
    ----------
    chapter : str, optional
        A chapter name (one of :data:`CHAPTERS`, e.g. ``"v1t_training"``). ``None`` returns every entry.
        A chapter without entries (``"overview"``, ``"synthesis"``) gives an empty table.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`: ``chapter``, ``key`` (the name under which the chapter computes its
        own value), ``quantity`` (label for readers), ``paper`` (the value as the paper states it),
        ``value`` (float; NaN where the paper gives no single number), ``unit``, ``source`` (table,
        figure or section of the paper), ``cite`` (BibTeX key in ``book/references.bib``) and ``note``
        (``""`` when there is none). Rows keep the file's order; the index is a plain range.

    Raises
    ------
    ValueError
        If ``chapter`` is not a chapter name; the message lists the valid ones.

    Examples
    --------
    >>> table = paper_values("v1t_training")
    >>> table.set_index("key").loc["single_trial_corr_v1t_with_behaviour", "value"]
    0.426
    """
    if chapter is not None and chapter not in CHAPTERS:
        raise ValueError(f"Unknown chapter {chapter!r}; valid chapters are: {', '.join(CHAPTERS)}.")
    rows = [dict(e) for e in _load() if chapter is None or e["chapter"] == chapter]
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["value"] = pd.to_numeric(table["value"], errors="raise").astype(float)
    return table.reset_index(drop=True)
