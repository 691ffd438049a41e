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


def alignment_summary(
    neural: xr.DataArray,
    artificial: xr.DataArray,
    groupings: dict,
    *,
    n_bootstrap: int = 1000,
    n_permutations: int = 2000,
    random_state: int = 0,
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

    Returns
    -------
    dict
        ``similarity`` / ``null_similarity`` (xarray.Dataset), ``tables`` (``{name: DataFrame}`` with
        ``null_value``, ``null_ci_low``, ``null_ci_high`` columns joined) and ``tests`` (one row per
        model: real − null margin and attention − convolution difference, with p-values).
    """
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", minimum=1)
    n_permutations = check_int(n_permutations, "n_permutations", minimum=1)
    similarity = kernel_similarity(neural, artificial)
    surrogates = xr.DataArray(
        phase_randomize(neural, n_surrogates=1, random_state=random_state),
        dims=neural.dims,
        coords={name: coord for name, coord in neural.coords.items() if coord.dims == (neural.dims[0],)},
    )
    null = kernel_similarity(surrogates, artificial)
    tables = {}
    for name, by in groupings.items():
        real = aggregate_similarity(similarity, by, n_bootstrap=n_bootstrap, random_state=random_state)
        chance = aggregate_similarity(null, by, n_bootstrap=n_bootstrap, random_state=random_state)
        chance = chance[by + ["value", "ci_low", "ci_high"]].rename(
            columns={"value": "null_value", "ci_low": "null_ci_low", "ci_high": "null_ci_high"}
        )
        tables[name] = real.merge(chance, on=by, how="left")
    return {
        "similarity": similarity,
        "null_similarity": null,
        "tables": tables,
        "tests": _model_tests(similarity, null, n_permutations, random_state),
    }


def _model_tests(similarity, null, n_permutations, random_state) -> pd.DataFrame:
    rows = []
    for model in pd.unique(similarity["model"].values):
        columns = similarity["model"].values == model
        real = similarity["one_minus_rmse"].values[:, columns].mean(axis=1)
        chance = null["one_minus_rmse"].values[:, null["model"].values == model].mean(axis=1)
        vs_null = permutation_test(real, chance, n_permutations=n_permutations, random_state=random_state)
        per_kernel = similarity["one_minus_rmse"].values[:, columns].mean(axis=0)
        types = similarity["layer_type"].values[columns]
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


# --------------------------------------------------------------------------- figures
def plot_model_bubbles(table: pd.DataFrame, group: str, model_parameters: pd.Series, *, ax=None):
    """Fig 2 (top) analogue: per model, one bubble per ``group`` value; bubble area ∝ model parameters.

    The grey band per model is the phase-randomised null (its range over the groups).
    """
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 3.5))[1]
    models = [m for m in model_parameters.sort_values().index if m in set(table["model"])]
    groups = sorted(table[group].unique())
    sizes = 30 + 400 * model_parameters[models] / model_parameters[models].max()
    offsets = np.linspace(-0.3, 0.3, len(groups)) if len(groups) > 1 else [0.0]
    for i, model in enumerate(models):
        rows = table[table["model"] == model].set_index(group)
        ax.fill_between([i - 0.4, i + 0.4], rows["null_ci_low"].min(), rows["null_ci_high"].max(), color="0.85", lw=0)
        for offset, value in zip(offsets, groups):
            if value in rows.index:
                row = rows.loc[value]
                colour = plt.cm.tab10(groups.index(value) % 10)
                ax.errorbar(i + offset, row["value"], yerr=[[row["value"] - row["ci_low"]], [row["ci_high"] - row["value"]]],
                            color=colour, lw=0.8)
                ax.scatter(i + offset, row["value"], s=sizes[model], color=colour, alpha=0.6,
                           label=value if i == 0 else None, edgecolor="k", lw=0.3)
    ax.set_xticks(range(len(models)), models, rotation=20)
    ax.set(ylabel="mean 1 − RMSE", title=f"by {group} (grey: phase-randomised null)")
    ax.legend(frameon=False, fontsize=7, ncol=2, loc="best", markerscale=0.4)
    return ax


def plot_layer_type_bars(table: pd.DataFrame, *, ax=None):
    """Fig 2 (bottom) analogue: attention (A) vs convolution (C) kernels per model, with nulls."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 3))[1]
    labels = []
    for i, row in enumerate(table.sort_values(["model", "layer_type"]).itertuples()):
        colour = "C0" if row.layer_type == "attention" else "C3"
        ax.bar(i, row.value - row.null_value, color=colour, alpha=0.7)
        ax.errorbar(i, row.value - row.null_value, yerr=[[row.value - row.ci_low], [row.ci_high - row.value]], color="k", lw=0.8)
        labels.append(f"{row.model}\n{row.layer_type[0].upper()}")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set(ylabel="1 − RMSE above null", title="attention (A, blue) vs convolution (C, red)")
    return ax


def plot_trends(table: pd.DataFrame, group: str, model_order, *, ax=None):
    """Fig 4 analogue: one line per ``group`` value across models (ordered), with intervals."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5, 3))[1]
    order = [m for m in model_order if m in set(table["model"])]
    for value, rows in table.groupby(group):
        rows = rows.set_index("model").reindex(order)
        x = np.arange(len(order))
        ax.plot(x, rows["value"], "o-", label=value, lw=1)
        ax.fill_between(x, rows["ci_low"], rows["ci_high"], alpha=0.15)
    ax.set_xticks(range(len(order)), order, rotation=20)
    ax.set(ylabel="mean 1 − RMSE", title=f"trend by {group}")
    ax.legend(frameon=False, fontsize=7, ncol=2)
    return ax


def plot_layer_scatter(table: pd.DataFrame, *, axes=None):
    """Fig 5/S4 analogue: per model, mean 1 − RMSE per layer; size ∝ layer parameters.

    Attention layers in colour (hollow: attention maps, filled: attention weights), convolution
    layers in black; the grey line is the layer's null.
    """
    import matplotlib.pyplot as plt

    models = list(pd.unique(table["model"]))
    if axes is None:
        _, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3), squeeze=False)
        axes = axes[0]
    for ax, model, colour in zip(axes, models, [f"C{i}" for i in range(10)]):
        rows = table[table["model"] == model]
        sizes = 10 + 200 * rows["n_parameters"] / max(rows["n_parameters"].max(), 1)
        for kind, marker_fill in (("weight", True), ("attention_map", False)):
            for layer_type in ("attention", "convolution"):
                sel = (rows["kind"] == kind) & (rows["layer_type"] == layer_type)
                if not sel.any():
                    continue
                base = colour if layer_type == "attention" else "k"
                ax.scatter(rows.loc[sel, "layer_index"], rows.loc[sel, "value"], s=sizes[sel],
                           facecolors=base if marker_fill else "none", edgecolors=base, alpha=0.7,
                           label="attention map" if kind == "attention_map" else f"{layer_type} weights")
        null = rows.groupby("layer_index")["null_value"].mean()
        ax.plot(null.index, null.values, color="0.6", lw=1, label="null")
        ax.set(title=model, xlabel="layer index", ylabel="mean 1 − RMSE")
        ax.legend(frameon=False, fontsize=6)
    return axes


def plot_overlay(scene: np.ndarray, neural_kernel: np.ndarray, artificial_kernels, labels, *, axes=None):
    """Fig 3/S5 analogue: kernels overlaid on a scene, and their 1-D column profiles (z-scored)."""
    import matplotlib.pyplot as plt

    from ..kernels.similarity import resize_kernels, zscore_kernels

    n = len(artificial_kernels)
    if axes is None:
        _, axes = plt.subplots(1, n + 2, figsize=(2.6 * (n + 2), 2.6))
    size = neural_kernel.shape
    resized = resize_kernels(np.stack(artificial_kernels), size)
    stack = zscore_kernels(np.concatenate([neural_kernel[None], resized]))
    extent = (0, 1, 1, 0)
    for ax, kernel, label in zip(axes, stack, ["neural", *labels]):
        ax.imshow(scene, cmap="gray", extent=extent)
        ax.imshow(kernel, cmap="RdBu_r", alpha=0.55, extent=extent, interpolation="bilinear")
        ax.set_title(label, fontsize=7)
        ax.axis("off")
    profile_ax = axes[n + 1]
    profile_ax.plot(stack[0].mean(axis=0), color="k", lw=2, label="neural")
    for kernel, label in zip(stack[1:], labels):
        profile_ax.plot(kernel.mean(axis=0), lw=1, label=label)
    profile_ax.set(xlabel="x (kernel pixels)", ylabel="column mean (z)", title="1-D profiles")
    profile_ax.legend(frameon=False, fontsize=6)
    return axes
