"""Kernel alignment of zoo models with neural kernels: tables with nulls, and the paper's figure types.

:func:`alignment_summary` computes the all-pairs 1 − RMSE table once for the real neural kernels and
once for phase-randomised copies of them (same power spectra, scrambled phases), aggregates both by
the requested groupings with bootstrap intervals, and tests each model's real-versus-null margin and
its attention-versus-convolution difference with permutation tests. The plotting functions draw the
paper's figure types from these tables (Figs 2, 3/S5, 4, 5/S4).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr

from .._validation import check_int
from ..kernels.similarity import aggregate_similarity, kernel_similarity, permutation_test, phase_randomize

logger = logging.getLogger(__name__)

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


def alignment_summary(
    neural: xr.DataArray,
    artificial: xr.DataArray,
    groupings: dict,
    *,
    n_bootstrap: int = 1000,
    n_permutations: int = 2000,
    random_state: int = 0,
    device="auto",
) -> dict:
    """Similarity tables, their null counterparts and per-model tests.

    Parameters
    ----------
    neural, artificial : xarray.DataArray
        Kernels in the shared format (neural coordinates such as ``area``, artificial ones such as
        ``model``, ``layer_type``).
    groupings : dict
        ``{name: [coordinate, ...]}``, e.g. ``{"area": ["model", "area"]}``.
    n_bootstrap, n_permutations, random_state : int
    device : str or torch.device, default="auto"
        Where the all-pairs products run (see
        :func:`neuroalign_utils.kernels.similarity.kernel_similarity`); checked before any work.
        Aggregation, bootstrap and permutation tests run on the CPU with NumPy.

    Returns
    -------
    dict
        ``similarity`` / ``null_similarity`` (xarray.Dataset), ``difference`` (real − null similarity of
        each neural kernel and its own surrogate, as a Dataset of the same layout), ``tables`` (``{name: DataFrame}`` with
        ``null_value``, ``null_ci_low``, ``null_ci_high`` columns joined, and the margin over the null:
        ``margin`` with ``margin_ci_low`` / ``margin_ci_high``, a bootstrap over neural kernels of each
        kernel's real − null difference (paired: a kernel and its own surrogate), and ``r_margin``, the
        same difference in mean Pearson r) and ``tests`` (one row per model: real − null margin and
        attention − convolution difference, with p-values; the margin equals the ``margin`` of a
        ``["model"]`` grouping).
    """
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", minimum=1)
    n_permutations = check_int(n_permutations, "n_permutations", minimum=1)
    similarity = kernel_similarity(neural, artificial, device=device)
    surrogates = xr.DataArray(
        phase_randomize(neural, n_surrogates=1, random_state=random_state),
        dims=neural.dims,
        coords={name: coord for name, coord in neural.coords.items() if coord.dims == (neural.dims[0],)},
    )
    null = kernel_similarity(surrogates, artificial, device=device)
    difference = _paired_difference(similarity, null)
    tables = {}
    for name, by in groupings.items():
        real = aggregate_similarity(similarity, by, n_bootstrap=n_bootstrap, random_state=random_state)
        chance = aggregate_similarity(null, by, n_bootstrap=n_bootstrap, random_state=random_state)
        chance = chance[by + ["value", "ci_low", "ci_high"]].rename(
            columns={"value": "null_value", "ci_low": "null_ci_low", "ci_high": "null_ci_high"}
        )
        margin = aggregate_similarity(difference, by, n_bootstrap=n_bootstrap, random_state=random_state)
        margin = margin[by + ["value", "ci_low", "ci_high"]].rename(
            columns={"value": "margin", "ci_low": "margin_ci_low", "ci_high": "margin_ci_high"}
        )
        r_margin = aggregate_similarity(difference, by, variable="pearson_r", n_bootstrap=1)
        r_margin = r_margin[by + ["value"]].rename(columns={"value": "r_margin"})
        tables[name] = real.merge(chance, on=by, how="left").merge(margin, on=by, how="left").merge(
            r_margin, on=by, how="left")
    return {
        "similarity": similarity,
        "null_similarity": null,
        "difference": difference,
        "tables": tables,
        "tests": _model_tests(similarity, null, n_permutations, random_state),
    }


def _paired_difference(similarity: xr.Dataset, null: xr.Dataset) -> xr.Dataset:
    """Real minus null similarity of each neural kernel and its own surrogate, over the kernels both kept."""
    real_index, null_index = similarity["neural_index"].values, null["neural_index"].values
    if np.array_equal(real_index, null_index):  # the usual case: no copies of the (neural × artificial) tables
        real, chance = similarity, null
    else:
        common = np.intersect1d(real_index, null_index)
        real = similarity.isel(neural=np.flatnonzero(np.isin(real_index, common)))
        chance = null.isel(neural=np.flatnonzero(np.isin(null_index, common)))
    if not np.array_equal(real["artificial_index"].values, chance["artificial_index"].values):
        raise ValueError("The real and null similarity tables hold different artificial kernels.")
    return real.copy(deep=False, data={
        "one_minus_rmse": real["one_minus_rmse"].values - chance["one_minus_rmse"].values,
        "pearson_r": real["pearson_r"].values - chance["pearson_r"].values,
    })


def _model_tests(similarity, null, n_permutations, random_state) -> pd.DataFrame:
    rows = []
    for model in pd.unique(similarity["model"].values):
        columns = similarity["model"].values == model
        real = similarity["one_minus_rmse"].values[:, columns].mean(axis=1)
        chance = null["one_minus_rmse"].values[:, null["model"].values == model].mean(axis=1)
        vs_null = permutation_test(real, chance, n_permutations=n_permutations, random_state=random_state)
        per_kernel = similarity["one_minus_rmse"].values[:, columns].mean(axis=0)
        types = similarity["layer_type"].values[columns] if "layer_type" in similarity.coords else np.array([])
        row = {"model": model, "real_minus_null": vs_null["difference"], "p_real_vs_null": vs_null["p_value"]}
        if {"attention", "convolution"} <= set(types):
            versus = permutation_test(
                per_kernel[types == "attention"], per_kernel[types == "convolution"],
                n_permutations=n_permutations, alternative="two-sided", random_state=random_state,
            )
            row.update(attention_minus_convolution=versus["difference"], p_attention_vs_convolution=versus["p_value"])
        rows.append(row)
    return pd.DataFrame(rows)


def combine_kernel_sets(kernel_sets, size) -> xr.DataArray:
    """Concatenate kernel arrays of different sizes and coordinate sets into one shared-format array.

    Each set is resized to ``size`` (anti-aliased bilinear, as in the similarity engine); a
    per-kernel coordinate missing from a set is filled with −1 (numbers) or ``""`` (text), and the
    original size is recorded in ``original_height`` / ``original_width`` where it was not already.

    Parameters
    ----------
    kernel_sets : sequence of xarray.DataArray
        Arrays in the shared kernel format ``(kernel, y, x)``.
    size : int or (int, int)

    Returns
    -------
    xarray.DataArray
    """
    from ..kernels.similarity import resize_kernels

    def per_kernel(array):
        return {name: coord.values for name, coord in array.coords.items() if coord.dims == ("kernel",) and name != "kernel"}

    columns = {}
    for array in kernel_sets:
        for name, values in per_kernel(array).items():
            columns.setdefault(name, values.dtype)
    parts = []
    for array in kernel_sets:
        coords = per_kernel(array)
        n = array.sizes["kernel"]
        coords.setdefault("original_height", np.full(n, array.sizes["y"]))
        coords.setdefault("original_width", np.full(n, array.sizes["x"]))
        for name, dtype in columns.items():
            if name not in coords:
                coords[name] = np.full(n, -1) if np.issubdtype(dtype, np.number) else np.full(n, "", dtype=object)
        parts.append(
            xr.DataArray(
                resize_kernels(array.values, size).astype(np.float32), dims=("kernel", "y", "x"),
                coords={name: ("kernel", values) for name, values in coords.items()},
            )
        )
    combined = xr.concat(parts, dim="kernel")
    return combined.assign_coords(kernel=np.arange(combined.sizes["kernel"])).rename("kernels")


# --------------------------------------------------------------------------- trained against random
def trained_random_margins(
    similarity: xr.Dataset,
    pairs: dict,
    by=(),
    *,
    n_bootstrap: int = 1000,
    ci: float = 0.95,
    random_state: int = 0,
) -> pd.DataFrame:
    """Each trained model's mean similarity minus its random twin's, paired over neural kernels.

    For every neural kernel the mean over the trained model's kernels (in a group) minus the mean over
    its random twin's kernels (in the same group) is one paired difference; the margin is their mean and
    its interval resamples neural kernels (the independent units, as in
    :func:`~neuroalign_utils.kernels.similarity.aggregate_similarity`).

    Parameters
    ----------
    similarity : xarray.Dataset
        :func:`~neuroalign_utils.kernels.similarity.kernel_similarity` output, or
        :func:`alignment_summary`'s ``difference`` (then the margin is trained − random of the margins over
        the phase-randomised null).
    pairs : dict
        ``{trained model label: random twin label}`` (:func:`~neuroalign_utils.zoo.kernels.twin_pairs`).
    by : sequence of str
        Further groupings besides the model: neural coordinates (``area``, ``genotype``) and artificial
        ones (``kind``, ``layer_type``); a group that only one of the two models has is left out.
    n_bootstrap, ci, random_state
        The bootstrap over neural kernels.

    Returns
    -------
    pandas.DataFrame
        ``model`` (the trained label), ``twin``, the ``by`` columns, ``trained``, ``random`` (mean 1 − RMSE),
        ``margin`` (trained − random), ``ci_low``, ``ci_high``, ``r_margin`` (the same difference in mean
        Pearson r), ``n_neural``, ``n_trained``, ``n_random`` (kernels compared).
    """
    by = [by] if isinstance(by, str) else list(by)
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", minimum=1)
    models = similarity["model"].values.astype(str)
    missing = sorted({m for pair in pairs.items() for m in pair} - set(models))
    if missing:
        raise ValueError(f"'pairs' names model(s) {missing} that are not in the similarity table; models are "
                         f"{sorted(set(models))}.")
    neural_by = [c for c in by if c in similarity.coords and similarity[c].dims == ("neural",)]
    artificial_by = [c for c in by if c in similarity.coords and similarity[c].dims == ("artificial",)]
    unknown = [c for c in by if c not in neural_by + artificial_by]
    if unknown:
        raise ValueError(f"'by' has unknown column(s) {unknown}; accepted values are "
                         f"{[c for c in similarity.coords if similarity[c].ndim == 1]}.")
    score, r = similarity["one_minus_rmse"].values, similarity["pearson_r"].values
    neural = pd.DataFrame({c: similarity[c].values for c in neural_by}, index=np.arange(similarity.sizes["neural"]))
    artificial = pd.DataFrame({"model": models, **{c: similarity[c].values for c in artificial_by}})
    neural_groups = list(neural.groupby(neural_by, sort=True).indices.items()) if neural_by else [((), neural.index.values)]
    rng = np.random.default_rng(check_int(random_state, "random_state", minimum=0))
    rows = []
    for trained, random in pairs.items():
        sides = {side: artificial[artificial["model"] == label] for side, label in (("trained", trained), ("random", random))}
        if artificial_by:
            groups = {side: rows_.groupby(artificial_by, sort=True).indices for side, rows_ in sides.items()}
            keys = [k for k in groups["trained"] if k in groups["random"]]
            columns = {k: (sides["trained"].index.values[groups["trained"][k]], sides["random"].index.values[groups["random"][k]])
                       for k in keys}
        else:
            columns = {(): (sides["trained"].index.values, sides["random"].index.values)}
        for artificial_key, (trained_cols, random_cols) in columns.items():
            for neural_key, neural_rows in neural_groups:
                block = np.ix_(neural_rows, trained_cols), np.ix_(neural_rows, random_cols)
                per_neural = score[block[0]].mean(axis=1) - score[block[1]].mean(axis=1)
                draws = rng.integers(0, per_neural.size, size=(n_bootstrap, per_neural.size))
                low, high = np.quantile(per_neural[draws].mean(axis=1), [(1 - ci) / 2, (1 + ci) / 2])
                key = dict(zip(neural_by, np.atleast_1d(neural_key) if neural_by else ()))
                key.update(zip(artificial_by, artificial_key if isinstance(artificial_key, tuple) else (artificial_key,)))
                rows.append({
                    "model": trained, "twin": random, **key,
                    "trained": float(score[block[0]].mean()), "random": float(score[block[1]].mean()),
                    "margin": float(per_neural.mean()), "ci_low": float(low), "ci_high": float(high),
                    "r_margin": float(r[block[0]].mean(axis=1).mean() - r[block[1]].mean(axis=1).mean()),
                    "n_neural": int(len(neural_rows)), "n_trained": int(len(trained_cols)),
                    "n_random": int(len(random_cols)),
                })
    columns = ["model", "twin", *by, "trained", "random", "margin", "ci_low", "ci_high", "r_margin", "n_neural",
               "n_trained", "n_random"]
    return pd.DataFrame(rows, columns=columns)


#: The verdicts of :func:`twin_verdict`, as words after the trained model's name.
TWIN_WORDS = {
    "better": "aligns better than its random twin by a meaningful margin",
    "slightly better": "aligns better than its random twin, but by less than a meaningful margin",
    "same": "is indistinguishable from its random twin",
    "worse": "aligns worse than its random twin",
}


#: The verdicts of :func:`twin_verdict` in a table cell.
TWIN_SHORT = {"better": "better, meaningfully", "slightly better": "better, negligibly", "same": "indistinguishable",
              "worse": "worse"}


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
        :func:`trained_random_margins` of the real similarities, one row per model (no further grouping).
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
        text = (f"{row.model} {TWIN_WORDS[verdict]}: mean 1 − RMSE {report.format_number(row.trained, 3)} against "
                f"{report.format_number(row.random, 3)}, a difference of {report.format_number(row.margin)} "
                f"(95 % interval {report.format_interval(row.ci_low, row.ci_high)}, worth r = "
                f"{report.format_number(row.r_margin)})")
        if null_rows is not None and row.model in null_rows.index:
            extra = null_rows.loc[row.model]
            beyond = direction_words(float(extra["ci_low"]), float(extra["ci_high"]))
            text += (f"; over the phase-randomised null the trained model's margin is {beyond} its twin's "
                     f"({report.format_number(float(extra['margin']))}, "
                     f"{report.format_interval(float(extra['ci_low']), float(extra['ci_high']))})")
        sentences.append(text + ".")
    verdicts = [twin_verdict(r.ci_low, r.ci_high, r.r_margin) for r in table.itertuples()]
    if all(v == "better" for v in verdicts):
        sentences.append("Training moved every model's kernels towards the neural kernels by a meaningful margin.")
    elif not any(v in ("better", "slightly better") for v in verdicts):
        sentences.append("Training did not move any model's kernels towards the neural kernels: the trained "
                         "weights align no better than random ones.")
    else:
        n_up = sum(v in ("better", "slightly better") for v in verdicts)
        sentences.append(f"Training moved the kernels towards the neural kernels in "
                         f"{report.format_count(n_up, len(verdicts))} models"
                         + ("" if "better" in verdicts else ", and in none by a meaningful margin") + ".")
    return " ".join(sentences)


def combine_twin_margins(overall: pd.DataFrame, by_kind: pd.DataFrame) -> pd.DataFrame:
    """One table of trained − random margins: all kernels, then each kind of kernel of the models that have
    more than one (a model with one kind would show the same margin twice, from two bootstraps).

    Parameters
    ----------
    overall, by_kind : pandas.DataFrame
        :func:`trained_random_margins` without grouping and by ``["kind", "layer_type"]``.

    Returns
    -------
    pandas.DataFrame
        The rows of both with a ``kernels`` column (``"all kernels"`` or a :data:`KIND_LABELS` label), each
        model's rows together, all kernels first.
    """
    kinds = by_kind.assign(kernels=[KIND_LABELS[k] for k in zip(by_kind["kind"], by_kind["layer_type"])])
    several = kinds.groupby("model")["kernels"].transform("size") > 1
    table = pd.concat([overall.assign(kernels="all kernels"), kinds[several].drop(columns=["kind", "layer_type"])],
                      ignore_index=True)
    order = {model: i for i, model in enumerate(pd.unique(overall["model"]))}  # each model's rows together
    return table.sort_values("model", key=lambda m: m.map(order), kind="stable").reset_index(drop=True)


def twin_levels(result: dict, pairs: dict) -> pd.DataFrame:
    """Mean 1 − RMSE of each trained model and its random twin, each beside its own phase-randomised null,
    for all their kernels and per kind of kernel.

    Parameters
    ----------
    result : dict
        :func:`alignment_summary` output with groupings ``"model": ["model"]`` and
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
    columns = {"value": "", "ci_low": "_ci_low", "ci_high": "_ci_high", "null_value": "_null",
               "null_ci_low": "_null_ci_low", "null_ci_high": "_null_ci_high"}
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


def plot_twin_levels(levels: pd.DataFrame, *, ax=None):
    """Each trained model (blue dots) beside its random twin (grey squares), each with its own
    phase-randomised null (open markers), per set of kernels, with 95 % intervals, the level of
    unrelated kernels (r = 0) and of r = 0.1."""
    import matplotlib.pyplot as plt

    from .. import style

    if ax is None:
        _, ax = plt.subplots(figsize=style.book_size(3.6))
    x = np.arange(len(levels))
    marks = (("trained", -0.21, "o", "C0", "C0", "trained"), ("trained_null", -0.07, "o", "white", "C0", "trained: null"),
             ("random", 0.07, "s", "0.45", "0.45", "random twin"), ("random_null", 0.21, "s", "white", "0.45", "random twin: null"))
    for column, offset, marker, face, edge, label in marks:
        ax.errorbar(x + offset, levels[column], yerr=[levels[column] - levels[f"{column}_ci_low"],
                    levels[f"{column}_ci_high"] - levels[column]], fmt=marker, mfc=face, mec=edge, color=edge,
                    capsize=2, lw=0.8, label=label)
    _reference_lines(ax, margin=False)
    # two levels of labels: the kernel set under each group, the model under its groups
    ax.set_xticks(x, [k.replace(" ", "\n", 1) for k in levels["kernels"]])
    architectures = levels["model"].str.split(" (", regex=False).str[0]
    for name in pd.unique(architectures):
        where = x[(architectures == name).to_numpy()]
        ax.annotate(name, xy=(where.mean(), 0), xycoords=("data", "axes fraction"), xytext=(0, -34),
                    textcoords="offset points", ha="center", va="top", fontweight="bold")
        if where.min() > 0:
            ax.axvline(where.min() - 0.5, color="0.85", lw=0.8)
    ax.set_xlim(-0.6, len(levels) - 0.4)
    ax.set(ylabel="mean 1 − RMSE")
    ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3)
    fig = ax.figure
    fig.tight_layout()
    return fig


def plot_twin_group_margins(tables: dict, *, axes=None):
    """Trained − random margin per neural group (rows), one panel per grouping (area, genotype …), one colour
    per trained model: dots with 95 % intervals; solid line: no difference from the random twin; dashed:
    the margin of r = 0.1.

    Parameters
    ----------
    tables : dict
        ``{group column: trained_random_margins(..., by=[group]) table}``.
    """
    import matplotlib.pyplot as plt

    from .. import style

    tables = {group: table for group, table in tables.items() if len(table)}
    if not tables:
        return None
    if axes is None:
        rows = max(table[group].nunique() for group, table in tables.items())
        _, axes = plt.subplots(1, len(tables), figsize=style.book_size(0.26 * rows + 1.6), squeeze=False)
        axes = axes[0]
    models = list(dict.fromkeys(m for table in tables.values() for m in table["model"]))
    colours = dict(zip(models, style.category_colours(len(models))))
    offsets = dict(zip(models, np.linspace(-0.15, 0.15, len(models)) if len(models) > 1 else [0.0]))
    for ax, (group, table) in zip(axes, tables.items()):
        values = sorted(table[group].astype(str).unique())
        position = {v: len(values) - 1 - i for i, v in enumerate(values)}
        for model, rows in table.groupby("model", sort=False):
            y = rows[group].astype(str).map(position).to_numpy() + offsets[model]
            ax.errorbar(rows["margin"], y, xerr=[rows["margin"] - rows["ci_low"], rows["ci_high"] - rows["margin"]],
                        fmt="o", ms=4, color=colours[model], capsize=2, lw=0.8, label=model.split(" (")[0])
        ax.axvline(0.0, color="0.3", lw=1, label="random twin (margin 0)")
        ax.axvline(meaningful_margin(), color="0.3", lw=1, ls="--", label=f"r = {MEANINGFUL_R:g} above the twin")
        ax.set_yticks(list(position.values()), list(position))
        ax.set(xlabel="trained − random, 1 − RMSE", title=f"by {group}")
    fig = axes[0].figure
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False)  # two columns stay within the width
    fig.tight_layout(rect=(0, 0.6 * np.ceil(len(labels) / 2) / 2 / fig.get_size_inches()[1], 1, 1))
    return fig


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
        text = (f"{model} sits above its twin in {report.format_count(len(above), n)} {group}s and below it in "
                f"{report.format_count(len(below), n)}")
        best = rows.loc[rows["margin"].idxmax()]
        if len(above):
            text += (f" (largest: {best[group]}, {report.format_number(best['margin'])}, "
                     f"{report.format_interval(best['ci_low'], best['ci_high'])})")
        parts.append(text)
    return f"By {group}: " + "; ".join(parts) + "."


def direction_words(ci_low: float, ci_high: float) -> str:
    """``"above"`` / ``"below"`` / ``"no different from"``: where a difference's 95 % interval lies against 0."""
    return "above" if ci_low > 0 else "below" if ci_high < 0 else "no different from"


# --------------------------------------------------------------------------- figures
#: Kernel kinds in the layer figures: (kind, layer_type) → label.
KIND_LABELS = {
    ("attention_map", "attention"): "attention maps",
    ("weight", "attention"): "attention weights",
    ("weight", "convolution"): "convolution weights",
}


def category_styles(values) -> dict:
    """A (colour, marker) pair per category, never repeated: distinct colours up to 20 categories,
    then the ten tab10 colours combined with three markers (up to 30)."""
    from .. import style
    import matplotlib.pyplot as plt

    values = list(values)
    if len(values) <= 20:
        return {v: (c, "o") for v, c in zip(values, style.category_colours(len(values)))}
    if len(values) > 30:
        raise ValueError(f"{len(values)} categories cannot get distinct colour and marker pairs; plot at most 30.")
    colours = [plt.get_cmap("tab10")(i) for i in range(10)]
    return {v: (colours[i % 10], "os^"[i // 10]) for i, v in enumerate(values)}


def _reference_lines(ax, *, margin: bool) -> None:
    """The null (or r = 0) and the meaningful-size level, labelled for the legend."""
    if margin:
        ax.axhline(0.0, color="0.3", lw=1, label="null (margin 0)")
        ax.axhline(meaningful_margin(), color="0.3", lw=1, ls="--", label=f"r = {MEANINGFUL_R:g} above the null")
    else:
        ax.axhline(CHANCE, color="0.3", lw=1, label="unrelated kernels (r = 0)")
        ax.axhline(float(score_from_r(MEANINGFUL_R)), color="0.3", lw=1, ls="--", label=f"r = {MEANINGFUL_R:g}")


def _model_labels(models, model_parameters) -> list:
    if model_parameters is None:
        return [str(m) for m in models]
    return [f"{m}\n{model_parameters[m] / 1e6:.0f} M" if np.isfinite(model_parameters.get(m, np.nan)) else str(m)
            for m in models]


def _slanted(models) -> bool:
    """Whether model names are slanted under the axis (many or long ones); the figure then needs more height."""
    return len(models) > 4 or max((len(str(m)) for m in models), default=0) > 14


def _set_model_ticks(ax, models, model_parameters=None) -> None:
    """Model names (and sizes) under the axis; slanted when there are many or long ones, so they never overlap."""
    labels = _model_labels(models, model_parameters)
    if _slanted(models):  # one line per label, slanted
        ax.set_xticks(range(len(labels)), [label.replace("\n", ", ") for label in labels], rotation=30, ha="right",
                      rotation_mode="anchor")
    else:
        ax.set_xticks(range(len(labels)), labels)


def plot_identity(r, score, *, random_state: int = 0, ax=None):
    """1 − RMSE against Pearson r for (up to 5,000 randomly chosen) kernel pairs, with ``1 − √(2(1 − r))``."""
    import matplotlib.pyplot as plt

    from .. import style

    if ax is None:
        _, ax = plt.subplots(figsize=style.book_size(3.2, width=4.6))
    r, score = np.ravel(r), np.ravel(score)
    pick = np.random.default_rng(random_state).choice(r.size, size=min(5000, r.size), replace=False)
    grid = np.linspace(-1, 1, 200)
    ax.scatter(r[pick], score[pick], s=4, alpha=0.3, color="C0", label="kernel pairs")
    ax.plot(grid, score_from_r(grid), "k", lw=1, label=r"$1-\sqrt{2(1-r)}$")
    ax.set(xlabel="Pearson r", ylabel="1 − RMSE")
    ax.legend(frameon=False, loc="upper left")
    fig = ax.figure
    fig.tight_layout()
    return fig


def plot_model_levels(models: pd.DataFrame, model_parameters: pd.Series | None = None, *, ax=None):
    """Each model's mean 1 − RMSE (coloured dot and 95 % interval) beside its phase-randomised null
    (grey), with the levels of unrelated kernels (r = 0) and of r = 0.1."""
    import matplotlib.pyplot as plt

    from .. import style

    order = list(models.sort_values("parameters").index) if "parameters" in models else list(models.index)
    if ax is None:
        _, ax = plt.subplots(figsize=style.book_size(4.4, width=style.BOOK_WIDTH) if _slanted(order)
                             else style.book_size(3.4, width=6.0))
    x = np.arange(len(order))
    rows = models.loc[order]
    ax.errorbar(x - 0.1, rows["value"], yerr=[rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]],
                fmt="o", color="C0", capsize=3, label="real neural kernels")
    ax.errorbar(x + 0.1, rows["null_value"], yerr=[rows["null_value"] - rows["null_ci_low"],
                rows["null_ci_high"] - rows["null_value"]], fmt="s", color="0.55", capsize=3,
                label="phase-randomised null")
    _reference_lines(ax, margin=False)
    _set_model_ticks(ax, order, model_parameters)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set(ylabel="mean 1 − RMSE")
    if _slanted(order):  # the slanted names need the full width: the legend goes above the panel
        ax.legend(frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    else:
        ax.legend(frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig = ax.figure
    fig.tight_layout()
    return fig


def _margin_errorbar(ax, x, rows: pd.DataFrame, **style_kwargs):
    """Margins with their 95 % intervals (``margin``, ``margin_ci_low``, ``margin_ci_high`` of ``rows``)."""
    ax.errorbar(x, rows["margin"], yerr=[rows["margin"] - rows["margin_ci_low"], rows["margin_ci_high"] - rows["margin"]],
                **style_kwargs)


def plot_group_margins(table: pd.DataFrame, group: str, model_order, model_parameters: pd.Series | None = None,
                       *, ax=None):
    """Margin over the null per ``group`` value (area, genotype …) and model: dots with 95 % intervals,
    thin lines joining a value across models (ordered by size; Figs 2 top and 4 of the paper)."""
    import matplotlib.pyplot as plt

    from .. import style

    groups = sorted(table[group].astype(str).unique())
    order = [m for m in model_order if m in set(table["model"])]
    # many values, or slanted model names that need the full width: the legend goes below, in columns
    legend_rows = int(np.ceil((len(groups) + 2) / 5)) if len(groups) > 8 or _slanted(order) else 0
    if ax is None:
        _, ax = plt.subplots(figsize=style.book_size(3.4 + 0.28 * legend_rows + (0.9 if _slanted(order) else 0.0)))
    styles = category_styles(groups)
    offsets = np.linspace(-0.3, 0.3, len(groups)) if len(groups) > 1 else np.zeros(1)
    for offset, value in zip(offsets, groups):
        rows = table[table[group].astype(str) == value].set_index("model").reindex(order)
        colour, marker = styles[value]
        x = np.arange(len(order)) + offset
        ax.plot(x, rows["margin"], color=colour, lw=0.6, alpha=0.6)
        _margin_errorbar(ax, x, rows, fmt=marker, color=colour, ms=4, lw=0.8, label=value)
    _reference_lines(ax, margin=True)
    _set_model_ticks(ax, order, model_parameters)
    ax.set(ylabel="1 − RMSE above the null")
    fig = ax.figure
    if legend_rows:
        fig.legend(*ax.get_legend_handles_labels(), frameon=False, loc="lower center", ncol=5, title=group)
        fig.tight_layout(rect=(0, (0.3 * legend_rows + 0.35) / fig.get_size_inches()[1], 1, 1))
    else:
        ax.legend(frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5), title=group)
        fig.tight_layout()
    return fig


def plot_kind_margins(table: pd.DataFrame, model_order, *, ax=None):
    """Margin over the null of attention maps, attention weights and convolution weights, per model
    (dots with 95 % intervals; Fig. 2 bottom of the paper)."""
    import matplotlib.pyplot as plt

    from .. import style

    order = [m for m in model_order if m in set(table["model"])]
    if ax is None:
        _, ax = plt.subplots(figsize=style.book_size(4.2, width=style.BOOK_WIDTH) if _slanted(order)
                             else style.book_size(3.2, width=6.4))
    kinds = [k for k in KIND_LABELS if ((table["kind"] == k[0]) & (table["layer_type"] == k[1])).any()]
    colours = dict(zip(kinds, style.category_colours(len(kinds))))
    offsets = np.linspace(-0.2, 0.2, len(kinds)) if len(kinds) > 1 else np.zeros(1)
    for offset, kind in zip(offsets, kinds):
        rows = table[(table["kind"] == kind[0]) & (table["layer_type"] == kind[1])].set_index("model").reindex(order)
        x = np.arange(len(order)) + offset
        _margin_errorbar(ax, x, rows, fmt="o", color=colours[kind], capsize=3, label=KIND_LABELS[kind])
    _reference_lines(ax, margin=True)
    _set_model_ticks(ax, order)
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set(ylabel="1 − RMSE above the null")
    if _slanted(order):  # the slanted names need the full width: the legend goes above the panel
        ax.legend(frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3)
    else:
        ax.legend(frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig = ax.figure
    fig.tight_layout()
    return fig


def plot_layer_margins(table: pd.DataFrame, *, axes=None):
    """Per model (one panel each), the margin over the null of every layer: dots with 95 % intervals,
    coloured by kernel kind, dot area ∝ the layer's parameters (Figs 5 and S4 of the paper)."""
    import matplotlib.pyplot as plt

    from .. import style

    models = list(pd.unique(table["model"]))
    if axes is None:
        n_rows = int(np.ceil(len(models) / 2))
        _, axes = plt.subplots(n_rows, min(2, len(models)), figsize=style.book_size(3.0 * n_rows + 0.5),
                               squeeze=False, sharey=True)
    axes = np.atleast_1d(axes).ravel()
    kinds = [k for k in KIND_LABELS if ((table["kind"] == k[0]) & (table["layer_type"] == k[1])).any()]
    colours = dict(zip(kinds, style.category_colours(len(kinds))))
    for ax, model in zip(axes, models):
        rows = table[table["model"] == model]
        largest = max(float(rows["n_parameters"].max()), 1.0) if "n_parameters" in rows else 1.0
        for kind in kinds:
            sel = rows[(rows["kind"] == kind[0]) & (rows["layer_type"] == kind[1])]
            if sel.empty:
                continue
            ax.errorbar(sel["layer_index"], sel["margin"], yerr=[sel["margin"] - sel["margin_ci_low"],
                        sel["margin_ci_high"] - sel["margin"]], fmt="none", ecolor=colours[kind], lw=0.7)
            sizes = 12 + 80 * sel["n_parameters"] / largest if "n_parameters" in sel else 20
            ax.scatter(sel["layer_index"], sel["margin"], s=sizes, color=colours[kind], alpha=0.8,
                       label=KIND_LABELS[kind], zorder=3)
        _reference_lines(ax, margin=True)
        ax.set(title=model, xlabel="layer index")
    axes[0].set_ylabel("1 − RMSE above the null")
    for ax in axes[len(models):]:
        ax.axis("off")
    fig = axes[0].figure
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:len(models)]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.55 / fig.get_size_inches()[1], 1, 1))  # room for the legend's two rows
    return fig


def _wrap_name(name: str, width: int = 14) -> str:
    """A long model name broken after the underscore nearest its middle, for a narrow panel's title."""
    cuts = [i for i, c in enumerate(name) if c == "_"]
    if len(name) <= width or not cuts:
        return name
    cut = min(cuts, key=lambda i: abs(i - len(name) / 2))
    return f"{name[:cut + 1]}\n{name[cut + 1:]}"


def plot_overlay(scene: np.ndarray, neural_kernel: np.ndarray, artificial_kernels, labels, *, fig=None):
    """Fig 3/S5 analogue: the neural kernel and its best artificial matches, z-scored and overlaid on a
    scene with one colour bar (top row), and their column profiles (bottom).

    Parameters
    ----------
    labels : sequence of str
        One title per artificial kernel (short: they sit above panels of a fifth of the text width).
    """
    import matplotlib.pyplot as plt

    from .. import style
    from ..kernels.similarity import resize_kernels, zscore_kernels

    n = len(artificial_kernels)
    if fig is None:
        fig = plt.figure(figsize=style.book_size(4.4))
    size = neural_kernel.shape
    resized = resize_kernels(np.stack(artificial_kernels), size)
    stack = zscore_kernels(np.concatenate([neural_kernel[None], resized])).reshape(n + 1, *size)
    limit = float(np.abs(stack).max())
    extent = (0, size[1], size[0], 0)  # kernel pixels: the scene keeps the kernels' aspect ratio
    width = 0.86 / (n + 1)
    image = None
    for i, (kernel, label) in enumerate(zip(stack, ["neural kernel", *labels])):
        ax = fig.add_axes((0.01 + i * width, 0.56, width * 0.94, 0.34))
        ax.imshow(scene, cmap="gray", extent=extent)
        image = ax.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.6, extent=extent,
                          interpolation="bilinear")
        ax.set_title("\n".join(_wrap_name(line) for line in label.split("\n")))
        ax.axis("off")
    bar = fig.colorbar(image, cax=fig.add_axes((0.9, 0.6, 0.015, 0.26)))
    bar.set_label("z-score")
    profile = fig.add_axes((0.09, 0.12, 0.5, 0.36))
    colours = style.category_colours(n + 1)
    profile.plot(stack[0].mean(axis=0), color="k", lw=2, label="neural kernel")
    for kernel, label, colour in zip(stack[1:], labels, colours[1:]):
        profile.plot(kernel.mean(axis=0), lw=1.2, color=colour, label=label.replace("\n", " "))
    profile.set(xlabel="x (kernel pixels)", ylabel="column mean (z)")
    profile.legend(frameon=False, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


def plot_model_bubbles(table: pd.DataFrame, group: str, model_parameters: pd.Series, *, ax=None):
    """Fig 2 (top) analogue: per model, one bubble per ``group`` value; bubble area ∝ model parameters.

    The grey band per model is the phase-randomised null (its range over the groups).
    """
    import matplotlib.pyplot as plt

    from .. import style

    ax = ax or plt.subplots(figsize=style.book_size(3.5))[1]
    models = [m for m in model_parameters.sort_values().index if m in set(table["model"])]
    groups = sorted(table[group].astype(str).unique())
    styles = category_styles(groups)
    sizes = 30 + 400 * model_parameters[models] / model_parameters[models].max()
    offsets = np.linspace(-0.3, 0.3, len(groups)) if len(groups) > 1 else [0.0]
    for i, model in enumerate(models):
        rows = table[table["model"] == model].set_index(table.loc[table["model"] == model, group].astype(str))
        ax.fill_between([i - 0.4, i + 0.4], rows["null_ci_low"].min(), rows["null_ci_high"].max(), color="0.85", lw=0)
        for offset, value in zip(offsets, groups):
            if value in rows.index:
                row = rows.loc[value]
                colour, marker = styles[value]
                ax.errorbar(i + offset, row["value"], yerr=[[row["value"] - row["ci_low"]], [row["ci_high"] - row["value"]]],
                            color=colour, lw=0.8)
                ax.scatter(i + offset, row["value"], s=sizes[model], color=colour, marker=marker, alpha=0.6,
                           label=value if i == 0 else None, edgecolor="k", lw=0.3)
    _set_model_ticks(ax, models)
    ax.set(ylabel="mean 1 − RMSE", title=f"by {group} (grey: phase-randomised null)")
    ax.legend(frameon=False, ncol=2, loc="best", markerscale=0.4)
    return ax


# --------------------------------------------------------------------------- numbers and sentences
def model_table(result: dict, model_parameters: pd.Series | None = None) -> pd.DataFrame:
    """One row per model: mean 1 − RMSE, its null, the margin, its size in r, the permutation p and
    the verdict, every number computed once (from the ``["model"]`` grouping and the tests).

    Parameters
    ----------
    result : dict
        :func:`alignment_summary` output whose groupings include ``"model": ["model"]``.
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
        raise ValueError("'result' has no 'model' table; call alignment_summary with groupings={'model': ['model'], ...}.")
    table = result["tables"]["model"].set_index("model")
    tests = result["tests"].set_index("model")
    columns = ["value", "ci_low", "ci_high", "null_value", "null_ci_low", "null_ci_high", "margin", "margin_ci_low",
               "margin_ci_high", "r_margin", "n_artificial"]
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
VERDICT_SHORT = {"clears the null": "clears the null", "negligible": "significant, negligible",
                 "null": "no different from the null"}

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
    null = (report.format_number(null_low, 3) if report.format_number(null_low, 3) == report.format_number(null_high, 3)
            else f"{report.format_number(null_low, 3)} to {report.format_number(null_high, 3)}")
    text = (f"In mean 1 − RMSE {level}, against {null} for the phase-randomised null and "
            f"{report.format_number(CHANCE, 3)} for unrelated kernels (r = 0).")
    rows = []
    for verdict in VERDICT_WORDS:  # models grouped by verdict, so the sentence stays readable with many models
        group = models[models["verdict"] == verdict]
        if len(group) == 1:
            row = group.iloc[0]
            rows.append(f"{group.index[0]} {VERDICT_WORDS[verdict]} (margin {report.format_number(row['margin'])}, "
                        f"worth r = {report.format_number(row['r_margin'])}; permutation "
                        f"{report.format_p(row['p_real_vs_null'])})")
        elif len(group):
            rows.append(f"{report.join_words(group.index)} {VERDICT_WORDS_PLURAL[verdict]} (margins "
                        f"{_span(group['margin'])}, worth r = {_span(group['r_margin'])}; permutation "
                        f"{_span(group['p_real_vs_null'], report.format_p)})")
    text += " " + "; ".join(rows) + "."
    spread_only = models[(models["margin"] > 0) & (models["r_margin"] <= 0)]
    if len(spread_only):
        names = report.join_words(spread_only.index)
        text += (f" For {names} the mean correlation is no higher than the null's: 1 − RMSE is concave in r, so "
                 f"its margin comes from a narrower spread of correlations, not from kernels that correlate more.")
    verdicts = set(models["verdict"])
    threshold = (f"a margin counts as meaningful from r = {MEANINGFUL_R:g} above the null, "
                 f"about {report.format_number(meaningful_margin())} in 1 − RMSE")
    if verdicts <= {"null", "negligible"}:
        text += (f" This is a null result: no model's kernels align with the neural kernels beyond what their "
                 f"power spectra alone give ({threshold}).")
    else:
        cleared = report.join_words(models.index[models["verdict"] == "clears the null"])
        text += f" {cleared} {'clears' if ' and ' not in cleared else 'clear'} the null by a meaningful margin ({threshold})."
    if isinstance(weights, str):
        if weights == "random":
            text += (" The weights are random, so whatever alignment there is, is a control for the architecture and "
                     "the scenes, not a finding about trained models.")
        return text
    random = [m for m in models.index if weights.get(m) == "random"]
    if random:
        text += (f" The weights of {report.join_words(random)} are random: their alignment is a control for the "
                 "architecture and the scenes, not a finding about trained models.")
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
        return ("No model has both attention and convolution kernels, so they cannot be compared.", "not computed",
                "not computed")
    rows = models.dropna(subset=["attention_minus_convolution"])
    higher = rows[(rows["attention_minus_convolution"] > 0) & (rows["p_attention_vs_convolution"] < ALPHA)]
    lower = rows[(rows["attention_minus_convolution"] < 0) & (rows["p_attention_vs_convolution"] < ALPHA)]
    parts = [f"{model} {report.format_number(row['attention_minus_convolution'])} "
             f"({report.format_p(row['p_attention_vs_convolution'])})" for model, row in rows.iterrows()]
    text = f"Attention minus convolution kernels, in mean 1 − RMSE: {report.join_words(parts)}."
    n = len(rows)
    if len(higher) == n:
        text += (" Attention kernels score higher in every model, as the paper reports." if n > 1 else
                 " Attention kernels score higher, as the paper reports for every model.")
        verdict = "agrees"
    else:
        text += (f" Attention kernels score significantly higher in {report.format_count(len(higher), n)} "
                 f"{'models' if n > 1 else 'model'} and lower in {report.format_count(len(lower), n)}; the paper "
                 "found them higher in every model.")
        verdict = "does not agree"
    biggest = float(rows["attention_minus_convolution"].abs().max())
    if biggest < meaningful_margin():
        text += (f" Every difference is below {report.format_number(meaningful_margin())}, the margin that "
                 f"r = {MEANINGFUL_R:g} would give, so none is large.")
    summary = (f"attention higher in {report.format_count(len(higher), n)} models, lower in "
               f"{report.format_count(len(lower), n)} (p < {ALPHA:g})")
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
        text = f"The best-aligned {group} differs between models ({report.join_words(f'{v} in {m}' for m, v in best['by_model'].items())})"
    if best["separated"]:
        return text + ", and its interval lies above every other's."
    return text + f", but the intervals overlap, so the data cannot single out one {group}."


def describe_identity(deviation: float) -> str:
    """Whether every pair's 1 − RMSE equals ``1 − √(2(1 − r))`` (largest absolute deviation given)."""
    from .. import report

    if deviation == 0:
        return "Every pair lies exactly on the curve."
    if deviation < 1e-9:
        return f"Every pair lies on the curve: the largest deviation, {report.format_number(deviation)}, is floating-point rounding."
    return (f"Pairs deviate from the curve by up to {report.format_number(deviation)}: the kernels were not z-scored "
            "as the definition assumes.")


def describe_best_pairs(best_real: float, best_null: float, n_pairs: int) -> str:
    """The best single pair against the best pair the phase-randomised null finds among as many."""
    from .. import report

    text = (f"The best of the {report.format_number(int(n_pairs))} pairs scores {report.format_number(best_real)}; "
            f"the best pair of the phase-randomised null scores {report.format_number(best_null)}.")
    if best_real - best_null < meaningful_margin():
        return text + " Picking the best of so many finds a good-looking match by chance alone: it is not evidence of alignment."
    return text + " The best real pair stands above what chance finds among as many candidates."


def describe_v1t(*, include_v1t: bool, record=None, problem: str | None = None) -> str:
    """Whether the trained V1T joins the comparison, and from which run."""
    if not include_v1t:
        return "The trained V1T is left out of this comparison (`include_v1t=False`)."
    if record is not None:
        return f"The trained V1T joins as one more model, from {record.describe()}."
    if problem == "incomplete":
        return ("The last V1T analysis run in this data folder did not finish, so the trained V1T is left out; "
                "run that chapter again, then this one, to add it.")
    return ("The V1T analysis chapter has not run in this data folder, so the trained V1T is not part of this "
            "comparison; run that chapter (it comes later in the book), then this one again, to add it.")


def describe_setting(*, weights: str, synthetic: bool, n_models: int, n_neural: int, n_trained: int = 0) -> str:
    """Why this run's numbers may differ from the paper's (the ``why`` of the paper-vs-run table).

    ``n_models``: the paper's models compared (with ``weights``); ``n_trained``: trained models outside the
    paper's zoo, each with a random twin."""
    parts = [f"{n_models} of the paper's models with {weights} weights" if weights == "random"
             else f"{n_models} of the paper's models, pretrained"]
    if n_trained:
        parts.append(f"{n_trained} trained models outside the paper's zoo, each with a random twin")
    parts.append(f"{n_neural:,} {'synthetic ' if synthetic else ''}neural kernels")
    return ", ".join(parts)
