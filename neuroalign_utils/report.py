"""Numbers and sentences for the book's prose, and the "paper vs. this run" tables.

Every number a chapter quotes is formatted here once (significant digits, ``p < 0.001``, intervals,
percentages), so one quantity reads the same wherever it appears. Sentences that state a result
(recovered, beats, clears its null) are returned by functions that choose the words from the numbers;
a chapter glues their output into its prose instead of writing the conclusion by hand.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .paper_values import paper_values

#: Where :func:`paper_comparison` saves a chapter's table in its results folder.
PAPER_COMPARISON_FILE = "paper_comparison.parquet"


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def format_number(x, digits: int = 2) -> str:
    """``x`` with ``digits`` significant digits (two decimals from 1 to 10; integers with thousands
    separators; powers of ten below 0.001); "n/a" if not finite."""
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if not _finite(x):
        return "n/a"
    x = float(x)
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    if magnitude < -3:  # 0.000012 reads badly: 1.2 × 10⁻⁵
        mantissa = f"{x / 10**magnitude:.{digits - 1}f}".replace("-", "−")
        return f"{mantissa} × 10{str(magnitude).translate(_SUPERSCRIPT)}"
    decimals = max(digits - 1 - magnitude, 2 if magnitude == 0 else 0)  # 1.04, not 1.0
    return f"{round(x, decimals):,.{decimals}f}".replace("-", "−")


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def format_p(p, *, floor: float = 0.001) -> str:
    """A p-value for prose: ``p < 0.001`` below ``floor``, else two significant digits (``p = 0.031``)."""
    if not _finite(p):
        return "p n/a"
    p = float(p)
    if p < floor:
        return f"p < {floor:g}"
    return f"p = {format_number(p, 2)}"


def format_percent(fraction, digits: int = 0) -> str:
    """A fraction in [0, 1] as a percentage with ``digits`` decimals ("86 %")."""
    if not _finite(fraction):
        return "n/a"
    return f"{100 * float(fraction):.{digits}f} %"


def format_interval(low, high, digits: int = 2) -> str:
    """ "``low`` to ``high``", both ends with the decimals that ``digits`` significant digits of the
    larger end need, and more (up to six) where fewer would print two equal ends."""
    if not (_finite(low) and _finite(high)):
        return "n/a"
    low, high = float(low), float(high)
    size = max(abs(low), abs(high), 1e-12)
    decimals = max(digits - 1 - math.floor(math.log10(size)), 0)
    while decimals < 6 and f"{low:.{decimals}f}" == f"{high:.{decimals}f}" and low != high:
        decimals += 1
    return f"{low:.{decimals}f} to {high:.{decimals}f}".replace("-", "−")


def format_count(k: int, n: int) -> str:
    """ "``k`` of ``n``"."""
    return f"{int(k)} of {int(n)}"


def join_words(items) -> str:
    """ "a", "a and b", "a, b and c"."""
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """ "1 cell", "2 cells"."""
    return f"{int(n):,} {singular if int(n) == 1 else plural_form or singular + 's'}"


def compare_to_paper(ours, paper, *, relative_tolerance: float = 0.1) -> str:
    """How this run's value stands against the paper's.

    Numbers: "same", "close" (within ``relative_tolerance``), "higher" or "lower". Text: "not in the
    paper" when the paper's text starts with "not reported"; "same" when the paper's text starts with
    this run's name ("VISpm" against "VISpm, in all models"), else "differs". "not computed" when this
    run has no value.
    """
    if _finite(ours) and _finite(paper):
        ours, paper = float(ours), float(paper)
        if ours == paper:
            return "same"
        if abs(ours - paper) <= relative_tolerance * max(abs(paper), 1e-12):
            return "close"
        return "higher" if ours > paper else "lower"
    if isinstance(paper, str) and paper.strip().lower().startswith("not reported"):
        return "not in the paper"
    if ours is None or (isinstance(ours, float) and not _finite(ours)):
        return "not computed"
    if _finite(ours):
        return "differs"  # a number against a paper that gives only text
    name = re.escape(str(ours).strip())
    return "same" if re.match(name + r"(?![\w-])", str(paper).strip(), flags=re.IGNORECASE) else "differs"


def paper_comparison(
    chapter: str,
    this_run: Mapping[str, Any],
    *,
    why: str | Mapping[str, str],
    verdicts: Mapping[str, str] | None = None,
    results_dir=None,
) -> pd.DataFrame:
    """The "paper vs. this run" table of one chapter.

    Parameters
    ----------
    chapter : str
        Chapter name (see :func:`neuroalign_utils.paper_values.paper_values`).
    this_run : mapping of key → value
        This run's value for each paper quantity (numbers or short strings); keys absent here are left
        out of the table.
    why : str or mapping of key → str
        Why this run may differ from the paper (synthetic data, size, random weights…), for every row or
        per key. It is joined to the computed comparison ("lower; synthetic mice, 8 epochs").
    verdicts : mapping of key → str, optional
        The reading of rows that :func:`compare_to_paper` cannot judge (qualitative findings), chosen by
        the chapter from its numbers ("agrees", "does not agree").
    results_dir : path-like, optional
        The chapter's results folder: the table is saved there as ``paper_comparison.parquet``, where
        the synthesis chapter gathers every chapter's table.

    Returns
    -------
    pandas.DataFrame
        Columns ``quantity``, ``paper``, ``source``, ``this run``, ``reading``, one row per quantity.
    """
    reported = paper_values(chapter)
    unknown = sorted(set(this_run) - set(reported["key"]))
    if unknown:
        raise ValueError(f"No paper value for {unknown} in chapter {chapter!r}; known keys: {list(reported['key'])}.")
    rows = []
    for entry in reported.itertuples():
        if entry.key not in this_run:
            continue
        ours = this_run[entry.key]
        paper = entry.value if _finite(entry.value) else entry.paper
        reason = why.get(entry.key, "") if isinstance(why, Mapping) else why
        verdict = (verdicts or {}).get(entry.key) or compare_to_paper(ours, paper)
        shown = format_number(ours, 3) if _finite(ours) else ("n/a" if ours is None else str(ours))
        unit = f" {entry.unit}" if isinstance(entry.unit, str) and entry.unit and _finite(ours) else ""
        rows.append(
            {
                "quantity": entry.quantity,
                "paper": entry.paper,
                "source": entry.source,
                "this run": shown + unit,
                "reading": f"{verdict}; {reason}" if reason else verdict,
            }
        )
    table = pd.DataFrame(rows, columns=["quantity", "paper", "source", "this run", "reading"])
    if results_dir is not None:
        from .storage import atomic_path

        with atomic_path(Path(results_dir) / PAPER_COMPARISON_FILE) as tmp:
            table.to_parquet(tmp)
    return table


#: Readings that count as matching the paper.
MATCHING = ("same", "close", "agrees")


def _mid_sentence(label: str) -> str:
    """A table label inside a sentence: first letter lower-cased unless the first word is a name (UMAP,
    Semantic-SAM-T)."""
    head, *tail = label.split(" ")[0].split("-")
    ordinary = head[1:].isalpha() and head[1:].islower() and all(t.isalpha() and t.islower() for t in tail)
    return label[0].lower() + label[1:] if ordinary else label


def describe_paper_agreement(table: pd.DataFrame) -> str:
    """One sentence reading a :func:`paper_comparison` table: how many quantities match and which do not."""
    verdicts = table["reading"].str.split(";").str[0].str.strip()
    compared = ~verdicts.isin(["not in the paper", "not computed"])
    matching = verdicts.isin(MATCHING)
    missing = table.loc[verdicts == "not computed", "quantity"].tolist()
    n, k = int(compared.sum()), int(matching.sum())
    tail = f" This run does not compute {join_words(_mid_sentence(q) for q in missing)}." if missing else ""
    if n == 0:
        none = "The paper reports none of the quantities this run computes, so nothing here can be checked against it."
        return none + tail
    others = [_mid_sentence(q) for q in table.loc[compared & ~matching, "quantity"]]
    if k == n:
        return f"All {n} quantities the paper reports match this run (same or within 10 %)." + tail
    if k == 0:
        return f"None of the {n} quantities the paper reports matches this run: {join_words(others)} differ." + tail
    return (
        f"{k} of the {n} quantities the paper reports {'matches' if k == 1 else 'match'} this run (same or "
        f"within 10 %); {join_words(others)} {'differs' if len(others) == 1 else 'differ'}." + tail
    )
