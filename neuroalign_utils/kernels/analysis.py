"""Reading the alignment tables: chance levels, verdicts, model tables and the sentences chosen from them.

The alignment scale (:data:`CHANCE`, :func:`score_from_r`, :func:`meaningful_margin`), the verdict of a
margin over the null (:func:`margin_verdict`, :func:`model_table`) and of a trained model against its
random twin (:func:`twin_verdict`, :func:`twin_levels`, :func:`combine_twin_margins`), and the
``describe_*`` functions that choose the chapter's result sentences from a run's numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: 1 − RMSE of two unrelated kernels (r = 0): 1 − √2.
CHANCE = 1.0 - float(np.sqrt(2.0))


#: Increase in mean Pearson r over the null from which a margin counts as meaningful in size (a "small"
#: correlation in Cohen's terms); smaller margins can be significant with thousands of pairs and still
#: say nothing about spatial structure.
MEANINGFUL_R = 0.1


#: Significance level of the permutation tests.
ALPHA = 0.05


def score_from_r(r):
    """1 − RMSE of two z-scored kernels with Pearson correlation ``r``: ``1 − √(2(1 − r))``."""
    return 1.0 - np.sqrt(2.0 * (1.0 - np.asarray(r, dtype=np.float64)))


def meaningful_margin(null_r: float = 0.0, delta_r: float = MEANINGFUL_R) -> float:
    """The 1 − RMSE margin that an increase of ``delta_r`` in correlation over ``null_r`` gives."""
    return float(score_from_r(null_r + delta_r) - score_from_r(null_r))


#: The verdicts of :func:`twin_verdict`, as words after the trained model's name.
TWIN_WORDS = {
    "better": "aligns better than its random twin by a meaningful margin",
    "slightly better": "aligns better than its random twin, but by less than a meaningful margin",
    "same": "is indistinguishable from its random twin",
    "worse": "aligns worse than its random twin",
}


#: The verdicts of :func:`twin_verdict` in a table cell.
TWIN_SHORT = {
    "better": "better, meaningfully",
    "slightly better": "better, negligibly",
    "same": "indistinguishable",
    "worse": "worse",
}


def twin_verdict(ci_low: float, ci_high: float, r_margin: float) -> str:
    """Trained against random twin, from the margin's 95 % interval and its size in r.

    ``"better"`` when the interval lies above 0 and the margin is worth at least :data:`MEANINGFUL_R` of
    correlation, ``"slightly better"`` when it lies above 0 with a smaller size, ``"worse"`` when it lies
    below 0, else ``"same"``.
    """
    if ci_low > 0:
        return "better" if r_margin >= MEANINGFUL_R else "slightly better"
    if ci_high < 0:
        return "worse"
    return "same"


def describe_trained_vs_random(table: pd.DataFrame, *, over_null: pd.DataFrame | None = None) -> str:
    """Whether each trained model aligns with the neural kernels better than its random twin.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`~neuroalign_utils.kernels.pipeline.trained_random_margins` of the real similarities, one row per
        model (no further grouping).
    over_null : pandas.DataFrame, optional
        The same of the margins over the null (``alignment_summary(...)["difference"]``): whether training
        changed what the kernels share with neural kernels beyond their power spectra.
    """
    from .. import report

    if table.empty:
        return "No trained model was compared with its random twin."
    sentences = []
    null_rows = over_null.set_index("model") if over_null is not None and len(over_null) else None
    for row in table.itertuples():
        verdict = twin_verdict(row.ci_low, row.ci_high, row.r_margin)
        text = (
            f"{row.model} {TWIN_WORDS[verdict]}: mean 1 − RMSE {report.format_number(row.trained, 3)} against "
            f"{report.format_number(row.random, 3)}, a difference of {report.format_number(row.margin)} "
            f"(95 % interval {report.format_interval(row.ci_low, row.ci_high)}, worth r = "
            f"{report.format_number(row.r_margin)})"
        )
        if null_rows is not None and row.model in null_rows.index:
            extra = null_rows.loc[row.model]
            beyond = direction_words(float(extra["ci_low"]), float(extra["ci_high"]))
            text += (
                f"; over the phase-randomised null the trained model's margin is {beyond} its twin's "
                f"({report.format_number(float(extra['margin']))}, "
                f"{report.format_interval(float(extra['ci_low']), float(extra['ci_high']))})"
            )
        sentences.append(text + ".")
    verdicts = [twin_verdict(r.ci_low, r.ci_high, r.r_margin) for r in table.itertuples()]
    if all(v == "better" for v in verdicts):
        sentences.append("Training moved every model's kernels towards the neural kernels by a meaningful margin.")
    elif not any(v in ("better", "slightly better") for v in verdicts):
        sentences.append(
            "Training did not move any model's kernels towards the neural kernels: the trained "
            "weights align no better than random ones."
        )
    else:
        n_up = sum(v in ("better", "slightly better") for v in verdicts)
        sentences.append(
            f"Training moved the kernels towards the neural kernels in "
            f"{report.format_count(n_up, len(verdicts))} models"
            + ("" if "better" in verdicts else ", and in none by a meaningful margin")
            + "."
        )
    return " ".join(sentences)


def combine_twin_margins(overall: pd.DataFrame, by_kind: pd.DataFrame) -> pd.DataFrame:
    """One table of trained − random margins: all kernels, then each kind of kernel of the models that have
    more than one (a model with one kind would show the same margin twice, from two bootstraps).

    Parameters
    ----------
    overall, by_kind : pandas.DataFrame
        :func:`~neuroalign_utils.kernels.pipeline.trained_random_margins` without grouping and by
        ``["kind", "layer_type"]``.

    Returns
    -------
    pandas.DataFrame
        The rows of both with a ``kernels`` column (``"all kernels"`` or a :data:`KIND_LABELS` label), each
        model's rows together, all kernels first.
    """
    kinds = by_kind.assign(kernels=[KIND_LABELS[k] for k in zip(by_kind["kind"], by_kind["layer_type"])])
    several = kinds.groupby("model")["kernels"].transform("size") > 1
    table = pd.concat(
        [overall.assign(kernels="all kernels"), kinds[several].drop(columns=["kind", "layer_type"])], ignore_index=True
    )
    order = {model: i for i, model in enumerate(pd.unique(overall["model"]))}  # each model's rows together
    return table.sort_values("model", key=lambda m: m.map(order), kind="stable").reset_index(drop=True)


def twin_levels(result: dict, pairs: dict) -> pd.DataFrame:
    """Mean 1 − RMSE of each trained model and its random twin, each beside its own phase-randomised null,
    for all their kernels and per kind of kernel.

    Parameters
    ----------
    result : dict
        :func:`~neuroalign_utils.kernels.pipeline.alignment_summary` output with groupings ``"model": ["model"]`` and
        ``"kind": ["model", "kind", "layer_type"]``.
    pairs : dict
        ``{trained label: random twin label}``.

    Returns
    -------
    pandas.DataFrame
        One row per trained model and kernel set (``kernels``: ``"all kernels"`` and, for a model with more
        than one kind of kernel, each :data:`KIND_LABELS` label that both models have): ``model``, ``twin``,
        ``kernels`` and, for ``trained`` and ``random``,
        the mean with its interval (``trained``, ``trained_ci_low``, ``trained_ci_high``) and the null's
        (``trained_null``, ``trained_null_ci_low``, ``trained_null_ci_high``), likewise ``random_*``.
    """
    columns = {
        "value": "",
        "ci_low": "_ci_low",
        "ci_high": "_ci_high",
        "null_value": "_null",
        "null_ci_low": "_null_ci_low",
        "null_ci_high": "_null_ci_high",
    }
    sets = [("all kernels", result["tables"]["model"])]
    kind_table = result["tables"].get("kind")
    if kind_table is not None:
        for (kind, layer_type), label in KIND_LABELS.items():
            sets.append((label, kind_table[(kind_table["kind"] == kind) & (kind_table["layer_type"] == layer_type)]))
    rows = []
    for trained, random in pairs.items():
        n_kinds = 0 if kind_table is None else int((kind_table["model"] == trained).sum())
        for label, table in sets if n_kinds > 1 else sets[:1]:  # one kind: the same as all kernels
            found = {side: table[table["model"] == model] for side, model in (("trained", trained), ("random", random))}
            if any(f.empty for f in found.values()):
                continue
            row = {"model": trained, "twin": random, "kernels": label}
            for side, rows_ in found.items():
                row.update({f"{side}{suffix}": float(rows_[column].iloc[0]) for column, suffix in columns.items()})
            rows.append(row)
    return pd.DataFrame(rows)


def describe_twin_groups(table: pd.DataFrame, group: str) -> str:
    """Per trained model, in how many ``group`` values (areas, genotypes) its margin over the random twin lies
    above 0, below 0, or spans 0 (95 % intervals), naming the largest."""
    from .. import report

    if table.empty:
        return f"No trained model was compared with its random twin by {group}."
    parts = []
    for model, rows in table.groupby("model", sort=False):
        above, below = rows[rows["ci_low"] > 0], rows[rows["ci_high"] < 0]
        n = len(rows)
        text = (
            f"{model} sits above its twin in {report.format_count(len(above), n)} {group}s and below it in "
            f"{report.format_count(len(below), n)}"
        )
        best = rows.loc[rows["margin"].idxmax()]
        if len(above):
            text += (
                f" (largest: {best[group]}, {report.format_number(best['margin'])}, "
                f"{report.format_interval(best['ci_low'], best['ci_high'])})"
            )
        parts.append(text)
    return f"By {group}: " + "; ".join(parts) + "."


def direction_words(ci_low: float, ci_high: float) -> str:
    """``"above"`` / ``"below"`` / ``"no different from"``: where a difference's 95 % interval lies against 0."""
    return "above" if ci_low > 0 else "below" if ci_high < 0 else "no different from"


#: Kernel kinds in the layer figures: (kind, layer_type) → label.
KIND_LABELS = {
    ("attention_map", "attention"): "attention maps",
    ("weight", "attention"): "attention weights",
    ("weight", "convolution"): "convolution weights",
}


# --------------------------------------------------------------------------- numbers and sentences
def model_table(result: dict, model_parameters: pd.Series | None = None) -> pd.DataFrame:
    """One row per model: mean 1 − RMSE, its null, the margin, its size in r, the permutation p and
    the verdict, every number computed once (from the ``["model"]`` grouping and the tests).

    Parameters
    ----------
    result : dict
        :func:`~neuroalign_utils.kernels.pipeline.alignment_summary` output whose groupings include
        ``"model": ["model"]``.
    model_parameters : pandas.Series, optional
        Parameter count per model.

    Returns
    -------
    pandas.DataFrame
        Indexed by model, ordered by mean 1 − RMSE (highest first): ``parameters``, ``value``,
        ``ci_low``, ``ci_high``, ``null_value``, ``margin``, ``margin_ci_low``, ``margin_ci_high``,
        ``r_margin``, ``p_real_vs_null``, ``verdict`` and, where a model has both, ``attention_minus_convolution``
        and ``p_attention_vs_convolution``.
    """
    if "model" not in result["tables"]:
        raise ValueError(
            "'result' has no 'model' table; call alignment_summary with groupings={'model': ['model'], ...}."
        )
    table = result["tables"]["model"].set_index("model")
    tests = result["tests"].set_index("model")
    columns = [
        "value",
        "ci_low",
        "ci_high",
        "null_value",
        "null_ci_low",
        "null_ci_high",
        "margin",
        "margin_ci_low",
        "margin_ci_high",
        "r_margin",
        "n_artificial",
    ]
    out = table[columns].join(tests.drop(columns=["real_minus_null"]), how="left")
    if model_parameters is not None:
        out.insert(0, "parameters", model_parameters.reindex(out.index).astype(float))
    out["verdict"] = [margin_verdict(row.p_real_vs_null, row.r_margin) for row in out.itertuples()]
    return out.sort_values("value", ascending=False)


def margin_verdict(p_value: float, r_margin: float) -> str:
    """Whether a margin over the null is a finding: "clears the null", "negligible" or "null".

    A margin clears the null when its permutation p is below :data:`ALPHA` and it is worth at least
    :data:`MEANINGFUL_R` of correlation; with p below :data:`ALPHA` but a smaller size it is
    statistically above the null but negligible; otherwise it is indistinguishable from the null.
    """
    if not (np.isfinite(p_value) and p_value < ALPHA):
        return "null"
    return "clears the null" if r_margin >= MEANINGFUL_R else "negligible"


#: The verdicts of :func:`margin_verdict` in a table cell.
VERDICT_SHORT = {
    "clears the null": "clears the null",
    "negligible": "significant, negligible",
    "null": "no different from the null",
}


VERDICT_WORDS = {
    "clears the null": "clears the null",
    "negligible": "is above the null statistically but negligible in size",
    "null": "is indistinguishable from the null",
}


VERDICT_WORDS_PLURAL = {
    "clears the null": "clear the null",
    "negligible": "are above the null statistically but negligible in size",
    "null": "are indistinguishable from the null",
}


def _span(values, fmt=None) -> str:
    """``"a to b"`` for the smallest and largest of ``values`` as displayed, or one value when they read the same."""
    from .. import report

    fmt = fmt or report.format_number
    low, high = fmt(float(np.min(values))), fmt(float(np.max(values)))
    return low if low == high else f"{low} to {high}"


def describe_null(models: pd.DataFrame, *, weights) -> str:
    """The chapter's main result: where the models sit against chance and the null, and whether any
    margin is a finding (significance and size, see :func:`margin_verdict`); with random weights, that
    any alignment is a control.

    ``weights`` is the weights of every model (``"random"`` or ``"pretrained"``) or ``{model: weights}``
    (models missing from it, such as a V1T trained on the data, count as trained)."""
    from .. import report

    if models.empty:
        return "No model was compared."
    low, high = float(models["value"].min()), float(models["value"].max())
    null_low, null_high = float(models["null_value"].min()), float(models["null_value"].max())
    if len(models) == 1:
        level = f"{models.index[0]} sits at {report.format_number(low, 3)}"
    elif report.format_number(low, 3) == report.format_number(high, 3):
        level = f"every model sits at {report.format_number(low, 3)}"
    else:
        level = f"the models sit between {report.format_number(low, 3)} and {report.format_number(high, 3)}"
    null = (
        report.format_number(null_low, 3)
        if report.format_number(null_low, 3) == report.format_number(null_high, 3)
        else f"{report.format_number(null_low, 3)} to {report.format_number(null_high, 3)}"
    )
    text = (
        f"In mean 1 − RMSE {level}, against {null} for the phase-randomised null and "
        f"{report.format_number(CHANCE, 3)} for unrelated kernels (r = 0)."
    )
    rows = []
    for verdict in VERDICT_WORDS:  # models grouped by verdict, so the sentence stays readable with many models
        group = models[models["verdict"] == verdict]
        if len(group) == 1:
            row = group.iloc[0]
            rows.append(
                f"{group.index[0]} {VERDICT_WORDS[verdict]} (margin {report.format_number(row['margin'])}, "
                f"worth r = {report.format_number(row['r_margin'])}; permutation "
                f"{report.format_p(row['p_real_vs_null'])})"
            )
        elif len(group):
            rows.append(
                f"{report.join_words(group.index)} {VERDICT_WORDS_PLURAL[verdict]} (margins "
                f"{_span(group['margin'])}, worth r = {_span(group['r_margin'])}; permutation "
                f"{_span(group['p_real_vs_null'], report.format_p)})"
            )
    text += " " + "; ".join(rows) + "."
    spread_only = models[(models["margin"] > 0) & (models["r_margin"] <= 0)]
    if len(spread_only):
        names = report.join_words(spread_only.index)
        text += (
            f" For {names} the mean correlation is no higher than the null's: 1 − RMSE is concave in r, so "
            f"its margin comes from a narrower spread of correlations, not from kernels that correlate more."
        )
    verdicts = set(models["verdict"])
    threshold = (
        f"a margin counts as meaningful from r = {MEANINGFUL_R:g} above the null, "
        f"about {report.format_number(meaningful_margin())} in 1 − RMSE"
    )
    if verdicts <= {"null", "negligible"}:
        text += (
            f" This is a null result: no model's kernels align with the neural kernels beyond what their "
            f"power spectra alone give ({threshold})."
        )
    else:
        cleared = report.join_words(models.index[models["verdict"] == "clears the null"])
        text += (
            f" {cleared} {'clears' if ' and ' not in cleared else 'clear'} the null by a meaningful margin "
            f"({threshold})."
        )
    if isinstance(weights, str):
        if weights == "random":
            text += (
                " The weights are random, so whatever alignment there is, is a control for the architecture and "
                "the scenes, not a finding about trained models."
            )
        return text
    random = [m for m in models.index if weights.get(m) == "random"]
    if random:
        text += (
            f" The weights of {report.join_words(random)} are random: their alignment is a control for the "
            "architecture and the scenes, not a finding about trained models."
        )
    return text


def describe_attention_vs_convolution(models: pd.DataFrame) -> tuple[str, str, str]:
    """Attention against convolution kernels per model.

    Returns
    -------
    (str, str, str)
        The sentence; the paper-table verdict ("agrees" when attention kernels score higher in every
        model, each with p below :data:`ALPHA`, else "does not agree"); a short summary for the table.
    """
    from .. import report

    if "attention_minus_convolution" not in models or models["attention_minus_convolution"].isna().all():
        return (
            "No model has both attention and convolution kernels, so they cannot be compared.",
            "not computed",
            "not computed",
        )
    rows = models.dropna(subset=["attention_minus_convolution"])
    higher = rows[(rows["attention_minus_convolution"] > 0) & (rows["p_attention_vs_convolution"] < ALPHA)]
    lower = rows[(rows["attention_minus_convolution"] < 0) & (rows["p_attention_vs_convolution"] < ALPHA)]
    parts = [
        f"{model} {report.format_number(row['attention_minus_convolution'])} "
        f"({report.format_p(row['p_attention_vs_convolution'])})"
        for model, row in rows.iterrows()
    ]
    text = f"Attention minus convolution kernels, in mean 1 − RMSE: {report.join_words(parts)}."
    n = len(rows)
    if len(higher) == n:
        text += (
            " Attention kernels score higher in every model, as the paper reports."
            if n > 1
            else " Attention kernels score higher, as the paper reports for every model."
        )
        verdict = "agrees"
    else:
        text += (
            f" Attention kernels score significantly higher in {report.format_count(len(higher), n)} "
            f"{'models' if n > 1 else 'model'} and lower in {report.format_count(len(lower), n)}; the paper "
            "found them higher in every model."
        )
        verdict = "does not agree"
    biggest = float(rows["attention_minus_convolution"].abs().max())
    if biggest < meaningful_margin():
        text += (
            f" Every difference is below {report.format_number(meaningful_margin())}, the margin that "
            f"r = {MEANINGFUL_R:g} would give, so none is large."
        )
    summary = (
        f"attention higher in {report.format_count(len(higher), n)} models, lower in "
        f"{report.format_count(len(lower), n)} (p < {ALPHA:g})"
    )
    return text, verdict, summary


def best_group(table: pd.DataFrame, group: str) -> dict:
    """The ``group`` value (area, genotype …) with the highest mean 1 − RMSE in each model.

    Returns
    -------
    dict
        ``name`` (the best value when it is the same in every model, else ``None``), ``by_model``
        ({model: best}), ``separated`` (whether in every model its interval lies above every other
        value's interval).
    """
    by_model, separated = {}, True
    for model, rows in table.groupby("model", sort=False):
        rows = rows.sort_values("value", ascending=False)
        by_model[str(model)] = str(rows[group].iloc[0])
        if len(rows) > 1 and rows["ci_low"].iloc[0] <= rows["ci_high"].iloc[1:].max():
            separated = False
    names = set(by_model.values())
    return {"name": names.pop() if len(names) == 1 else None, "by_model": by_model, "separated": separated}


def describe_best_group(best: dict, group: str) -> str:
    """Which ``group`` value aligns best, and whether the intervals can tell it from the others."""
    from .. import report

    if best["name"] is not None:
        text = f"The best-aligned {group} is {best['name']}" + (" in every model" if len(best["by_model"]) > 1 else "")
    else:
        text = (
            f"The best-aligned {group} differs between models "
            f"({report.join_words(f'{v} in {m}' for m, v in best['by_model'].items())})"
        )
    if best["separated"]:
        return text + ", and its interval lies above every other's."
    return text + f", but the intervals overlap, so the data cannot single out one {group}."


def describe_identity(deviation: float) -> str:
    """Whether every pair's 1 − RMSE equals ``1 − √(2(1 − r))`` (largest absolute deviation given)."""
    from .. import report

    if deviation == 0:
        return "Every pair lies exactly on the curve."
    if deviation < 1e-9:
        return (
            f"Every pair lies on the curve: the largest deviation, {report.format_number(deviation)}, "
            "is floating-point rounding."
        )
    return (
        f"Pairs deviate from the curve by up to {report.format_number(deviation)}: the kernels were not z-scored "
        "as the definition assumes."
    )


def describe_best_pairs(best_real: float, best_null: float, n_pairs: int) -> str:
    """The best single pair against the best pair the phase-randomised null finds among as many."""
    from .. import report

    text = (
        f"The best of the {report.format_number(int(n_pairs))} pairs scores {report.format_number(best_real)}; "
        f"the best pair of the phase-randomised null scores {report.format_number(best_null)}."
    )
    if best_real - best_null < meaningful_margin():
        return text + (
            " Picking the best of so many finds a good-looking match by chance alone: it is not evidence of alignment."
        )
    return text + " The best real pair stands above what chance finds among as many candidates."


def describe_v1t(*, include_v1t: bool, record=None, problem: str | None = None) -> str:
    """Whether the trained V1T joins the comparison, and from which run."""
    if not include_v1t:
        return "The trained V1T is left out of this comparison (`include_v1t=False`)."
    if record is not None:
        return f"The trained V1T joins as one more model, from {record.describe()}."
    if problem == "incomplete":
        return (
            "The last V1T analysis run in this data folder did not finish, so the trained V1T is left out; "
            "run that chapter again, then this one, to add it."
        )
    return (
        "The V1T analysis chapter has not run in this data folder, so the trained V1T is not part of this "
        "comparison; run that chapter (it comes later in the book), then this one again, to add it."
    )


def describe_setting(*, weights: str, synthetic: bool, n_models: int, n_neural: int, n_trained: int = 0) -> str:
    """Why this run's numbers may differ from the paper's (the ``why`` of the paper-vs-run table).

    ``n_models``: the paper's models compared (with ``weights``); ``n_trained``: trained models outside the
    paper's zoo, each with a random twin."""
    parts = [
        f"{n_models} of the paper's models with {weights} weights"
        if weights == "random"
        else f"{n_models} of the paper's models, pretrained"
    ]
    if n_trained:
        parts.append(f"{n_trained} trained models outside the paper's zoo, each with a random twin")
    parts.append(f"{n_neural:,} {'synthetic ' if synthetic else ''}neural kernels")
    return ", ".join(parts)
