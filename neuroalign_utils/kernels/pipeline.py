"""Kernel alignment of zoo models with neural kernels: the computation the alignment chapter runs.

:func:`alignment_summary` computes the all-pairs 1 − RMSE table once for the real neural kernels and
once for phase-randomised copies of them (same power spectra, scrambled phases), aggregates both by
the requested groupings with bootstrap intervals, and tests each model's real-versus-null margin and
its attention-versus-convolution difference with permutation tests. :func:`trained_random_margins`
compares each trained model with its random twin over the same neural kernels;
:func:`combine_kernel_sets` brings kernel sets of different sizes into one array. The tables' verdicts
and sentences are in :mod:`~neuroalign_utils.kernels.analysis`, their figures (the paper's Figs 2,
3/S5, 4, 5/S4) in :mod:`~neuroalign_utils.kernels.figures`.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr

from .._validation import check_int
from .similarity import aggregate_similarity, kernel_similarity, permutation_test, phase_randomize

logger = logging.getLogger(__name__)


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
        each neural kernel and its own surrogate, as a Dataset of the same layout), ``tables``
        (``{name: DataFrame}`` with ``null_value``, ``null_ci_low``, ``null_ci_high`` columns joined, and
        the margin over the null: ``margin`` with ``margin_ci_low`` / ``margin_ci_high``, a bootstrap over
        neural kernels of each kernel's real − null difference (paired: a kernel and its own surrogate),
        and ``r_margin``, the same difference in mean Pearson r) and ``tests`` (one row per model:
        real − null margin and attention − convolution difference, with p-values; the margin equals the
        ``margin`` of a ``["model"]`` grouping).
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
        tables[name] = (
            real.merge(chance, on=by, how="left").merge(margin, on=by, how="left").merge(r_margin, on=by, how="left")
        )
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
    return real.copy(
        deep=False,
        data={
            "one_minus_rmse": real["one_minus_rmse"].values - chance["one_minus_rmse"].values,
            "pearson_r": real["pearson_r"].values - chance["pearson_r"].values,
        },
    )


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
                per_kernel[types == "attention"],
                per_kernel[types == "convolution"],
                n_permutations=n_permutations,
                alternative="two-sided",
                random_state=random_state,
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
        return {
            name: coord.values for name, coord in array.coords.items() if coord.dims == ("kernel",) and name != "kernel"
        }

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
                resize_kernels(array.values, size).astype(np.float32),
                dims=("kernel", "y", "x"),
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
        ``{trained model label: random twin label}`` (:func:`~neuroalign_utils.kernels.artificial.twin_pairs`).
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
        raise ValueError(
            f"'pairs' names model(s) {missing} that are not in the similarity table; models are {sorted(set(models))}."
        )
    neural_by = [c for c in by if c in similarity.coords and similarity[c].dims == ("neural",)]
    artificial_by = [c for c in by if c in similarity.coords and similarity[c].dims == ("artificial",)]
    unknown = [c for c in by if c not in neural_by + artificial_by]
    if unknown:
        raise ValueError(
            f"'by' has unknown column(s) {unknown}; accepted values are "
            f"{[c for c in similarity.coords if similarity[c].ndim == 1]}."
        )
    score, r = similarity["one_minus_rmse"].values, similarity["pearson_r"].values
    neural = pd.DataFrame({c: similarity[c].values for c in neural_by}, index=np.arange(similarity.sizes["neural"]))
    artificial = pd.DataFrame({"model": models, **{c: similarity[c].values for c in artificial_by}})
    neural_groups = (
        list(neural.groupby(neural_by, sort=True).indices.items()) if neural_by else [((), neural.index.values)]
    )
    rng = np.random.default_rng(check_int(random_state, "random_state", minimum=0))
    rows = []
    for trained, random in pairs.items():
        sides = {
            side: artificial[artificial["model"] == label] for side, label in (("trained", trained), ("random", random))
        }
        if artificial_by:
            groups = {side: rows_.groupby(artificial_by, sort=True).indices for side, rows_ in sides.items()}
            keys = [k for k in groups["trained"] if k in groups["random"]]
            columns = {
                k: (
                    sides["trained"].index.values[groups["trained"][k]],
                    sides["random"].index.values[groups["random"][k]],
                )
                for k in keys
            }
        else:
            columns = {(): (sides["trained"].index.values, sides["random"].index.values)}
        for artificial_key, (trained_cols, random_cols) in columns.items():
            for neural_key, neural_rows in neural_groups:
                block = np.ix_(neural_rows, trained_cols), np.ix_(neural_rows, random_cols)
                per_neural = score[block[0]].mean(axis=1) - score[block[1]].mean(axis=1)
                draws = rng.integers(0, per_neural.size, size=(n_bootstrap, per_neural.size))
                low, high = np.quantile(per_neural[draws].mean(axis=1), [(1 - ci) / 2, (1 + ci) / 2])
                key = dict(zip(neural_by, np.atleast_1d(neural_key) if neural_by else ()))
                key.update(
                    zip(artificial_by, artificial_key if isinstance(artificial_key, tuple) else (artificial_key,))
                )
                rows.append(
                    {
                        "model": trained,
                        "twin": random,
                        **key,
                        "trained": float(score[block[0]].mean()),
                        "random": float(score[block[1]].mean()),
                        "margin": float(per_neural.mean()),
                        "ci_low": float(low),
                        "ci_high": float(high),
                        "r_margin": float(r[block[0]].mean(axis=1).mean() - r[block[1]].mean(axis=1).mean()),
                        "n_neural": int(len(neural_rows)),
                        "n_trained": int(len(trained_cols)),
                        "n_random": int(len(random_cols)),
                    }
                )
    columns = [
        "model",
        "twin",
        *by,
        "trained",
        "random",
        "margin",
        "ci_low",
        "ci_high",
        "r_margin",
        "n_neural",
        "n_trained",
        "n_random",
    ]
    return pd.DataFrame(rows, columns=columns)
