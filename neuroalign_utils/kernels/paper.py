"""The "Paper vs. this run" tables of the kernel-alignment chapters (01–04).

:func:`neuroalign_utils.report.paper_comparison` reads a number against the paper's number. Many of
Jalil et al.'s findings are names (the slowest area, the best model) or qualitative statements, and
some quantities are not reported at all; :func:`paper_table` reads those too:

* a name is the **same** as the paper's when the paper's text starts with it ("VISpm" against "VISpm,
  in all models"), else it **differs**;
* a quantity the paper does not report is **not in the paper**;
* a qualitative finding gets the verdict its chapter computed (``verdicts``), e.g. "agrees" or
  "does not agree", from a function that chooses it from this run's numbers.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import pandas as pd

from .. import report
from ..paper_values import paper_values


def _is_number(x) -> bool:
    try:
        return math.isfinite(float(x)) and not isinstance(x, str)
    except (TypeError, ValueError):
        return False


def text_verdict(ours: Any, paper: str, paper_value: Any = None) -> str | None:
    """The reading of one row whose paper value is text; ``None`` where the numeric reading applies.

    Parameters
    ----------
    ours : str or number
        This run's value.
    paper : str
        The paper's text (``paper`` field of ``paper_values.yaml``).
    paper_value : number, optional
        The paper's single number, when it gives one (then the numeric reading applies).
    """
    if _is_number(paper_value):
        return None
    if str(paper).strip().lower().startswith("not reported"):
        return "not in the paper"
    if _is_number(ours) or ours is None:
        return None
    ours = str(ours).strip()
    if re.match(re.escape(ours) + r"(?![\w-])", str(paper).strip(), flags=re.IGNORECASE):
        return "same"
    return "differs"


def paper_table(
    chapter: str,
    this_run: Mapping[str, Any],
    *,
    why: str | Mapping[str, str],
    verdicts: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """:func:`neuroalign_utils.report.paper_comparison`, with names, unreported quantities and
    qualitative findings read as the module docstring says.

    Parameters
    ----------
    chapter, this_run, why
        As for :func:`~neuroalign_utils.report.paper_comparison`.
    verdicts : mapping of key → str, optional
        The reading of qualitative rows, chosen by the chapter from its numbers.
    """
    table = report.paper_comparison(chapter, this_run, why=why)
    reported = paper_values(chapter).set_index("key")
    keys = [key for key in reported.index if key in this_run]  # paper_comparison's row order
    verdicts = dict(verdicts or {})
    readings = []
    for key, reading in zip(keys, table["reading"]):
        verdict = verdicts.get(key) or text_verdict(this_run[key], reported.loc[key, "paper"], reported.loc[key, "value"])
        if verdict is not None:
            reason = reading.split("; ", 1)[1] if "; " in reading else ""
            reading = f"{verdict}; {reason}" if reason else verdict
        readings.append(reading)
    return table.assign(reading=readings)


#: Readings that count as matching the paper.
MATCHING = ("same", "close", "agrees")


def _mid_sentence(label: str) -> str:
    """A table label inside a sentence: first letter lower-cased unless the first word is a name (UMAP, Semantic-SAM-T)."""
    head, *tail = label.split(" ")[0].split("-")
    ordinary = head[1:].isalpha() and head[1:].islower() and all(t.isalpha() and t.islower() for t in tail)
    return label[0].lower() + label[1:] if ordinary else label


def describe_paper_agreement(table: pd.DataFrame) -> str:
    """One sentence reading a :func:`paper_table`: how many quantities match the paper and which do not."""
    verdicts = table["reading"].str.split(";").str[0].str.strip()
    compared = ~verdicts.isin(["not in the paper", "not computed"])
    matching = verdicts.isin(MATCHING)
    missing = table.loc[verdicts == "not computed", "quantity"].tolist()
    n, k = int(compared.sum()), int(matching.sum())
    tail = f" This run does not compute {report.join_words(_mid_sentence(q) for q in missing)}." if missing else ""
    if n == 0:
        return "The paper reports none of the quantities this run computes, so nothing here can be checked against it." + tail
    others = [_mid_sentence(q) for q in table.loc[compared & ~matching, "quantity"]]
    if k == n:
        return f"All {n} quantities the paper reports match this run (same or within 10 %)." + tail
    if k == 0:
        return f"None of the {n} quantities the paper reports matches this run: {report.join_words(others)} differ." + tail
    return (f"{k} of the {n} quantities the paper reports {'matches' if k == 1 else 'match'} this run (same or within 10 %); "
            f"{report.join_words(others)} {'differs' if len(others) == 1 else 'differ'}." + tail)
