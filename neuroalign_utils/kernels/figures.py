"""Figures of the kernel-alignment lens (chapters 02–04), sized for the book's column.

Neural kernels (chapter 02), artificial kernels and trained-versus-random filters (chapter 03), and the
alignment tables (chapter 04: the paper's Figs 2, 3/S5, 4, 5/S4). Kernels are drawn in one diverging
colour map, each divided by its own largest magnitude so that every panel uses the full scale; one
colour bar (−1 … 1, "kernel / max |kernel|") serves the figure. Every ``plot_*`` function takes
``axes=`` (one Axes, or an array of Axes where it draws several panels; made at
:func:`neuroalign_utils.style.book_size` when ``None``) and returns the figure. :func:`view_group_margins`
is interactive (:mod:`neuroalign_utils.interactive`): every area × genotype group, with hover labels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from .. import style
from ..interactive import hex_colours
from .analysis import CHANCE, KIND_LABELS, MEANINGFUL_R, meaningful_margin, score_from_r

KERNEL_CMAP = "RdBu_r"


def _normalised(kernel) -> np.ndarray:
    kernel = np.asarray(kernel, dtype=np.float64)
    limit = float(np.abs(kernel).max())
    return kernel / limit if limit > 0 else kernel


def _kernel_colour_bar(fig, image, axes, label: str = "kernel / max |kernel|") -> None:
    bar = fig.colorbar(image, ax=axes, fraction=0.03, pad=0.02, ticks=[-1, 0, 1])
    bar.set_label(label)


def plot_kernel_gallery(
    kernels, labels, *, n_cols: int = 6, colour_bar_label: str = "kernel / max |kernel|", axes=None
):
    """One panel per kernel, titled with its label, sharing one colour bar.

    Parameters
    ----------
    kernels : array-like, shape (n, h, w), or a sequence of 2-D arrays
        A sequence may mix sizes (e.g. neural kernels beside artificial ones).
    labels : sequence of str
    n_cols : int, default=6
    colour_bar_label : str, default="kernel / max |kernel|"
        What the colour bar measures (each panel is divided by its own largest magnitude).
    """
    import matplotlib.pyplot as plt

    kernels = [np.asarray(kernel) for kernel in kernels]
    n_rows = int(np.ceil(len(kernels) / n_cols))
    if axes is None:
        _, axes = plt.subplots(
            n_rows, n_cols, figsize=style.book_size(max(1.15 * n_rows + 0.2, 1.8)), squeeze=False, layout="constrained"
        )
    axes = np.atleast_2d(axes)
    image = None
    for ax in axes.flat:
        ax.axis("off")
    for ax, kernel, label in zip(axes.flat, kernels, labels):
        image = ax.imshow(_normalised(kernel), cmap=KERNEL_CMAP, vmin=-1, vmax=1)
        ax.set_title(label)
    fig = axes.flat[0].figure
    if image is not None:
        _kernel_colour_bar(fig, image, axes, colour_bar_label)
    return fig


def plot_time_resolved(resolved, rows: pd.Series, *, bin_width: float, axes=None):
    """Time-resolved kernels: one row per labelled kernel (``rows``: label → kernel position), one
    column per time bin, each row on its own scale (divided by its largest magnitude over bins)."""
    import matplotlib.pyplot as plt

    starts = resolved["time_bin"].values
    if axes is None:
        _, axes = plt.subplots(
            len(rows),
            len(starts),
            figsize=style.book_size(1.0 * len(rows) + 0.5, width=6.2),
            squeeze=False,
            layout="constrained",
        )
    image = None
    for row, (label, index) in enumerate(rows.items()):
        cell = np.asarray(resolved.isel(kernel=int(index)).values, dtype=np.float64)
        limit = float(np.abs(cell).max()) or 1.0
        for col, start in enumerate(starts):
            ax = axes[row, col]
            image = ax.imshow(cell[col] / limit, cmap=KERNEL_CMAP, vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"{start:.2f}–{start + bin_width:.2f} s")
            if col == 0:
                ax.set_ylabel(label)
    fig = axes[0, 0].figure
    if image is not None:
        bar = fig.colorbar(image, ax=axes, fraction=0.04, pad=0.02, ticks=[-1, 0, 1])
        bar.set_label("kernel / max |kernel| of its row")
    return fig


def plot_rf_recovery(recovery: pd.DataFrame, *, area_order, cre_order, axes=None):
    """Pearson r of kernel and planted RF for the responsive cells: by area (top), by Cre line (bottom)."""
    import matplotlib.pyplot as plt

    responsive = recovery[recovery["responsive"]]
    if axes is None:
        _, axes = plt.subplots(2, 1, figsize=style.book_size(5.4))
    for ax, column, order in ((axes[0], "area", area_order), (axes[1], "cre", cre_order)):
        order = [o for o in order if o in set(responsive[column])]
        ax.boxplot([responsive.loc[responsive[column] == o, "r_planted_rf"] for o in order], tick_labels=order)
        ax.axhline(0, color="k", lw=0.6)
        ax.set(ylabel="r with planted RF", title=f"By {'area' if column == 'area' else 'Cre line'}")
    axes[1].tick_params(axis="x", rotation=45)
    fig = axes[0].figure
    fig.tight_layout()
    return fig


def plot_selection(selection: pd.DataFrame, *, area_order, axes=None):
    """The UMAP embeddings of the balanced selection, one row per embedded class.

    Left: selected kernels coloured by K-means cluster, kernels left out as grey crosses. Right: all
    kernels coloured by area (one legend for the figure).
    """
    import matplotlib.pyplot as plt

    classes = [
        c for c in ("excitatory", "inhibitory") if (selection.loc[selection["cell_class"] == c, "cluster"] >= 0).any()
    ]
    if axes is None:
        _, axes = plt.subplots(len(classes), 2, figsize=style.book_size(3.0 * len(classes) + 0.6), squeeze=False)
    areas = [a for a in area_order if a in set(selection["area"])]
    area_colour = dict(zip(areas, style.category_colours(len(areas))))
    n_clusters = max(int(selection["cluster"].max()) + 1, 1)
    if n_clusters > 20:
        raise ValueError(f"{n_clusters} clusters cannot get distinct colours; plot at most 20.")
    # a palette apart from the areas' (tab10), so a cluster's colour never reads as an area's
    cluster_colour = [plt.get_cmap("tab20b")(i) for i in np.linspace(0, 1, n_clusters)]
    for row, cell_class in enumerate(classes):
        part = selection[selection["cell_class"] == cell_class]
        chosen, left = part[part["selected"]], part[~part["selected"]]
        ax = axes[row, 0]
        ax.scatter(left["umap_x"], left["umap_y"], marker="x", s=12, color="0.6", lw=0.8)
        ax.scatter(chosen["umap_x"], chosen["umap_y"], s=10, color=[cluster_colour[c] for c in chosen["cluster"]])
        ax.set(title=f"{cell_class}: clusters ({len(left)} left out)", xlabel="UMAP 1", ylabel="UMAP 2")
        ax = axes[row, 1]
        ax.scatter(part["umap_x"], part["umap_y"], s=10, color=[area_colour[a] for a in part["area"]])
        ax.set(title=f"{cell_class}: areas", xlabel="UMAP 1", ylabel="UMAP 2")
    fig = axes[0, 0].figure
    handles = [plt.Line2D([], [], marker="o", ls="", color=area_colour[a], label=a) for a in areas]
    fig.legend(handles=handles, loc="lower center", ncol=len(areas), frameon=False, title="area (right-hand panels)")
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    return fig


def plot_diversity(diversity: dict, *, axes=None):
    """How alike the kernels are: pairwise |r| among all and among the selected kernels, and the selection's
    mean |r| against random picks of the same size.

    Parameters
    ----------
    diversity : dict
        From :func:`neuroalign_utils.kernels.selection.selection_diversity`.

    Left: the distribution (density) of |r| over all pairs of kernels (grey) and over the pairs of
    selected kernels (line), with their means (dashed). Right: the mean |r| of each random pick
    per class (grey histogram), of each pick per cluster when present (outlined histogram), of the
    selection (solid line) and of all kernels (dotted line).
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=style.book_size(3.4), layout="constrained")
    (selected_colour,) = style.category_colours(1)
    bins = np.linspace(0, 1, 41)
    ax = axes[0]
    ax.hist(diversity["abs_r_all"], bins=bins, density=True, color="0.75", label=f"all {diversity['n_all']:,} kernels")
    ax.hist(
        diversity["abs_r_selected"],
        bins=bins,
        density=True,
        histtype="step",
        lw=1.6,
        color=selected_colour,
        label=f"{diversity['n_selected']:,} selected",
    )
    ax.axvline(diversity["all"], color="0.4", ls="--", lw=1)
    ax.axvline(diversity["selected"], color=selected_colour, ls="--", lw=1)
    ax.set(xlabel="|r| between two kernels", ylabel="density", xlim=(0, 1), title="Pairs of kernels")
    ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    ax = axes[1]
    within = diversity.get("random_within_clusters")
    values = np.concatenate([diversity["random"], within if within is not None else [], [diversity["selected"]]])
    bins = np.linspace(values.min(), values.max(), 31)
    ax.hist(diversity["random"], bins=bins, color="0.75", label="random, per class")
    if within is not None:
        ax.hist(within, bins=bins, histtype="step", color="k", lw=1, label="random, per cluster")
    ax.axvline(diversity["selected"], color=selected_colour, lw=1.6, label="selection")
    ax.axvline(diversity["all"], color="k", ls=":", lw=1.2, label="all kernels")
    ax.set(xlabel="mean pairwise |r|", ylabel="picks", title="Mean |r| of a pick")
    ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    return axes[0].figure


# --------------------------------------------------------------------------- artificial kernels (chapter 03)
def _bare(ax) -> None:
    """No ticks and no frame (an image panel that keeps its axis label)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _grey(image) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    return image.mean(axis=-1) if image.ndim == 3 else image


def plot_attention_gallery(
    kernels: xr.DataArray, scenes: xr.DataArray, models, *, image: int = 0, head: int = 0, n_layers: int = 6, axes=None
):
    """Attention received per image location, one row per model, ``n_layers`` layers spread over depth.

    Each map is shown as a multiple of the uniform share (1 = every location receives the same
    attention), over the scene, on one logarithmic diverging scale centred on 1 with one colour bar, so
    that nearly uniform maps look nearly flat and concentration (above 1) and depletion (below 1) get the
    same room.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    rows = []
    for model in models:
        maps = kernels.where(
            (kernels.model == model)
            & (kernels.kind == "attention_map")
            & (kernels.image == image)
            & (kernels.attention_head == head),
            drop=True,
        )
        layers = np.unique(maps.layer_index.values)
        if layers.size == 0:
            continue
        chosen = layers[np.linspace(0, len(layers) - 1, min(n_layers, len(layers))).astype(int)]
        rows.append((model, [maps.where(maps.layer_index == index, drop=True)[0] for index in chosen]))
    n_cols = max(len(r[1]) for r in rows)
    if axes is None:
        _, axes = plt.subplots(
            len(rows), n_cols, figsize=style.book_size(1.55 * len(rows) + 0.3), squeeze=False, layout="constrained"
        )
    ratios = [[np.asarray(k.values, dtype=np.float64) / float(np.mean(k.values)) for k in row] for _, row in rows]
    # the largest factor away from uniform, either way (a map may fall to ~0 somewhere: at most 1/100 is drawn)
    spread = min(max(max(float(r.max()), 1 / max(float(r.min()), 1e-12)) for row in ratios for r in row), 100.0)
    spread = max(spread, 1.001)
    norm = LogNorm(vmin=1 / spread, vmax=spread)
    image_handle = None
    for (model, row), row_ratios, row_axes in zip(rows, ratios, axes):
        for ax, kernel, ratio in zip(row_axes, row, row_ratios):
            ax.imshow(_grey(scenes[image].values), cmap="gray", vmin=0, vmax=1, extent=(0, 1, 1, 0))
            image_handle = ax.imshow(
                np.clip(ratio, 1 / spread, spread),
                cmap="PuOr_r",
                norm=norm,
                alpha=0.65,
                extent=(0, 1, 1, 0),
                interpolation="bilinear",
            )
            ax.set_title(f"layer {int(kernel.layer_index)}\n{int(kernel.original_height)}×{int(kernel.original_width)}")
            _bare(ax)
        row_axes[0].set_ylabel(str(model).replace(" (", "\n("), rotation=0, ha="right", va="center")
        for ax in row_axes[len(row) :]:
            ax.axis("off")
    fig = axes[0, 0].figure
    bar = fig.colorbar(image_handle, ax=axes, fraction=0.03, pad=0.02)
    bar.set_label("attention ÷ uniform share (log scale)")
    return fig


def plot_conv_kernels(kernels: xr.DataArray, *, models=None, n_show: int = 8, axes=None):
    """A few selected kernels of every convolution layer (rows), as stored (resized), one colour bar.

    Each kernel is divided by its largest magnitude; the row label gives the model, layer and the
    filter's original size. ``models``: the models to draw (default: all).
    """
    import matplotlib.pyplot as plt

    conv = kernels.where((kernels.kind == "weight") & (kernels.layer_type == "convolution"), drop=True)
    if models is not None:
        conv = conv.where(conv.model.isin(list(models)), drop=True)
    layers = list(dict.fromkeys(zip(conv.model.values, conv.layer.values)))
    if axes is None:
        _, axes = plt.subplots(
            len(layers), n_show, figsize=style.book_size(0.78 * len(layers) + 0.3), squeeze=False, layout="constrained"
        )
    handle = None
    for row, (model, layer) in zip(axes, layers):
        members = conv.where((conv.model == model) & (conv.layer == layer), drop=True)
        for ax, kernel in zip(row, members[:n_show]):
            values = np.asarray(kernel.values, dtype=np.float64)
            handle = ax.imshow(values / (np.abs(values).max() or 1.0), cmap="RdBu_r", vmin=-1, vmax=1)
            _bare(ax)
        for ax in row[len(members[:n_show]) :]:
            ax.axis("off")
        row[0].set_ylabel(
            f"{model}\n{'.'.join(layer.split('.')[-2:])}, "
            f"{int(members.original_height[0])}×{int(members.original_width[0])}",
            rotation=0,
            ha="right",
            va="center",
        )
    fig = axes[0, 0].figure
    bar = fig.colorbar(handle, ax=axes, fraction=0.03, pad=0.02, ticks=[-1, 0, 1])
    bar.set_label("kernel / max |kernel|")
    return fig


def plot_attention_coverage(coverage: pd.DataFrame, *, axes=None):
    """Mean effective coverage ``exp(H)/N`` per layer, one line per model; dashed: uniform attention."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(figsize=style.book_size(3.0, width=6.0))
    by_layer = coverage.groupby(["model", "layer_index"])["coverage"].mean().reset_index()
    models = list(pd.unique(by_layer["model"]))
    for (model, group), colour in zip(by_layer.groupby("model", sort=False), style.category_colours(len(models))):
        axes.plot(group["layer_index"], group["coverage"], "o-", color=colour, label=model)
    axes.axhline(1.0, color="k", ls="--", lw=0.8, label="uniform attention")
    axes.set(xlabel="layer index", ylabel="effective coverage exp(H)/N", ylim=(0, 1.08))
    axes.legend(frameon=False, loc="lower left")
    fig = axes.figure
    fig.tight_layout()
    return fig


def _spread_by_concentration(filters: np.ndarray, n: int) -> np.ndarray:
    """``n`` filters at evenly spaced ranks of spectral concentration, most concentrated first (the same rule
    for every build, so the rows show each build's range rather than its best)."""
    from .trained_random import filter_spectrum_measures

    concentration = filter_spectrum_measures(filters)["spectral_concentration"].fillna(-1.0).to_numpy()
    order = np.argsort(-concentration, kind="stable")
    return np.asarray(filters)[order[np.linspace(0, len(order) - 1, min(n, len(order))).astype(int)]]


def plot_twin_filters(filters: dict, *, neural=None, n_show: int = 10, axes=None):
    """First-layer filters of trained models beside their random twins' (and a few neural kernels).

    Parameters
    ----------
    filters : dict
        ``{model label: {layer: array (out, in, h, w)}}``
        (:func:`~neuroalign_utils.kernels.trained_random.twin_filters`);
        each model's first layer is drawn: ``n_show`` filters at evenly spaced ranks of spectral concentration,
        most concentrated first. Three-channel
        filters are drawn as RGB images (mid-grey = 0, each filter divided by its largest magnitude); others
        on the diverging colour map of the neural kernels.
    neural : array-like (kernel, y, x), optional
        Neural kernels for the last row, drawn as they are (each divided by its largest magnitude).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    rows = [(label, layer, values) for label, layers in filters.items() for layer, values in list(layers.items())[:1]]
    if neural is not None:
        rows.append(("neural kernels", "", np.asarray(neural, dtype=np.float64)[:, None]))
    if axes is None:
        _, axes = plt.subplots(
            len(rows), n_show, figsize=style.book_size(0.72 * len(rows) + 0.4), squeeze=False, layout="constrained"
        )
    handle = None
    for row_axes, (label, layer, values) in zip(axes, rows):
        shown = _spread_by_concentration(values, n_show) if layer else np.asarray(values)[:n_show]
        for ax, kernel in zip(row_axes, shown):
            kernel = np.asarray(kernel, dtype=np.float64)
            scaled = kernel / (np.abs(kernel).max() or 1.0)
            if scaled.shape[0] == 3:
                ax.imshow(0.5 + 0.5 * scaled.transpose(1, 2, 0), interpolation="nearest")
            else:
                handle = ax.imshow(scaled[0], cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
            _bare(ax)
        for ax in row_axes[len(shown) :]:
            ax.axis("off")
        size = f"{values.shape[-2]}×{values.shape[-1]}"
        where = {"embeddings.patch_embeddings.projection": "patch embedding", "_conv_stem": "stem"}.get(layer, layer)
        row_axes[0].set_ylabel(
            f"{label.replace(' (', chr(10) + '(')}\n{where} {size}" if layer else f"{label}\n{size}",
            rotation=0,
            ha="right",
            va="center",
        )
    fig = axes[0, 0].figure
    if handle is not None:
        bar = fig.colorbar(handle, ax=axes, fraction=0.03, pad=0.02, ticks=[-1, 0, 1])
        bar.set_label("kernel / max |kernel|")
    return fig


def plot_filter_measures(margins: pd.DataFrame, reference: pd.DataFrame | None = None, *, axes=None):
    """Mean filter measures of trained models and their random twins, per filter group, with 95 % intervals.

    One panel per measure; one row per (model, filter group): the trained build (blue dot) and its
    random twin (grey square), each with its bootstrap interval; ``reference`` (neural kernels) as a black
    diamond in a row of its own.
    """
    import matplotlib.pyplot as plt

    from .trained_random import MEASURES

    measures = [m for m in MEASURES if m in set(margins["measure"])]
    if axes is None:
        groups = margins[["architecture", "group"]].drop_duplicates()
        _, axes = plt.subplots(
            1, len(measures), figsize=style.book_size(0.45 * (len(groups) + 1) + 1.2), squeeze=False, sharey=True
        )
        axes = axes[0]
    for ax, measure in zip(axes, measures):
        rows = margins[margins["measure"] == measure].reset_index(drop=True)
        labels = [f"{r.architecture}\n{r.group}" for r in rows.itertuples()]
        y = np.arange(len(rows))[::-1] + (1 if reference is not None else 0)
        for yi, row in zip(y, rows.itertuples()):
            ax.errorbar(
                row.trained,
                yi + 0.12,
                xerr=[[row.trained - row.trained_ci_low], [row.trained_ci_high - row.trained]],
                fmt="o",
                color="C0",
                capsize=2,
                label="trained" if yi == y[0] else None,
            )
            ax.errorbar(
                row.random,
                yi - 0.12,
                xerr=[[row.random - row.random_ci_low], [row.random_ci_high - row.random]],
                fmt="s",
                color="0.55",
                capsize=2,
                label="random twin" if yi == y[0] else None,
            )
        if reference is not None:
            ref = reference[reference["measure"] == measure].iloc[0]
            ax.errorbar(
                ref["value"],
                0,
                xerr=[[ref["value"] - ref["ci_low"]], [ref["ci_high"] - ref["value"]]],
                fmt="D",
                color="k",
                capsize=2,
                label="neural kernels",
            )
            labels.append(f"neural kernels\n{ref['size']}")
        ax.set_yticks(list(y) + ([0] if reference is not None else []), labels)
        ax.set(xlabel=MEASURES[measure], xlim=(0, None))
        ax.grid(axis="x", lw=0.4, color="0.9")
    fig = axes[0].figure
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


# --------------------------------------------------------------------------- alignment (chapter 04)
def plot_twin_levels(levels: pd.DataFrame, *, axes=None):
    """Each trained model (blue dots) beside its random twin (grey squares), each with its own
    phase-randomised null (open markers), per set of kernels, with 95 % intervals, the level of
    unrelated kernels (r = 0) and of r = 0.1."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(figsize=style.book_size(3.6))
    x = np.arange(len(levels))
    marks = (
        ("trained", -0.21, "o", "C0", "C0", "trained"),
        ("trained_null", -0.07, "o", "white", "C0", "trained: null"),
        ("random", 0.07, "s", "0.45", "0.45", "random twin"),
        ("random_null", 0.21, "s", "white", "0.45", "random twin: null"),
    )
    for column, offset, marker, face, edge, label in marks:
        axes.errorbar(
            x + offset,
            levels[column],
            yerr=[levels[column] - levels[f"{column}_ci_low"], levels[f"{column}_ci_high"] - levels[column]],
            fmt=marker,
            mfc=face,
            mec=edge,
            color=edge,
            capsize=2,
            lw=0.8,
            label=label,
        )
    _reference_lines(axes, margin=False)
    # two levels of labels: the kernel set under each group, the model under its groups
    axes.set_xticks(x, [k.replace(" ", "\n", 1) for k in levels["kernels"]])
    architectures = levels["model"].str.split(" (", regex=False).str[0]
    for name in pd.unique(architectures):
        where = x[(architectures == name).to_numpy()]
        axes.annotate(
            name,
            xy=(where.mean(), 0),
            xycoords=("data", "axes fraction"),
            xytext=(0, -34),
            textcoords="offset points",
            ha="center",
            va="top",
            fontweight="bold",
        )
        if where.min() > 0:
            axes.axvline(where.min() - 0.5, color="0.85", lw=0.8)
    axes.set_xlim(-0.6, len(levels) - 0.4)
    axes.set(ylabel="mean 1 − RMSE")
    axes.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3)
    fig = axes.figure
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
            ax.errorbar(
                rows["margin"],
                y,
                xerr=[rows["margin"] - rows["ci_low"], rows["ci_high"] - rows["margin"]],
                fmt="o",
                ms=4,
                color=colours[model],
                capsize=2,
                lw=0.8,
                label=model.split(" (")[0],
            )
        ax.axvline(0.0, color="0.3", lw=1, label="random twin (margin 0)")
        ax.axvline(meaningful_margin(), color="0.3", lw=1, ls="--", label=f"r = {MEANINGFUL_R:g} above the twin")
        ax.set_yticks(list(position.values()), list(position))
        ax.set(xlabel="trained − random, 1 − RMSE", title=f"by {group}")
    fig = axes[0].figure
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False)  # two columns stay within the width
    fig.tight_layout(rect=(0, 0.6 * np.ceil(len(labels) / 2) / 2 / fig.get_size_inches()[1], 1, 1))
    return fig


def category_styles(values) -> dict:
    """A (colour, marker) pair per category, never repeated: distinct colours up to 20 categories,
    then the ten tab10 colours combined with three markers (up to 30)."""
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
    return [
        f"{m}\n{model_parameters[m] / 1e6:.0f} M" if np.isfinite(model_parameters.get(m, np.nan)) else str(m)
        for m in models
    ]


def _slanted(models) -> bool:
    """Whether model names are slanted under the axis (many or long ones); the figure then needs more height."""
    return len(models) > 4 or max((len(str(m)) for m in models), default=0) > 14


def _set_model_ticks(ax, models, model_parameters=None) -> None:
    """Model names (and sizes) under the axis; slanted when there are many or long ones, so they never overlap."""
    labels = _model_labels(models, model_parameters)
    if _slanted(models):  # one line per label, slanted
        ax.set_xticks(
            range(len(labels)),
            [label.replace("\n", ", ") for label in labels],
            rotation=30,
            ha="right",
            rotation_mode="anchor",
        )
    else:
        ax.set_xticks(range(len(labels)), labels)


def _finish_model_panel(axes, order, *, ylabel: str, legend_columns: int):
    """x range and y label of a panel with one column per model, its legend placed, the figure laid out."""
    axes.set_xlim(-0.6, len(order) - 0.4)
    axes.set(ylabel=ylabel)
    if _slanted(order):  # the slanted names need the full width: the legend goes above the panel
        axes.legend(frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=legend_columns)
    else:
        axes.legend(frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig = axes.figure
    fig.tight_layout()
    return fig


def plot_identity(r, score, *, random_state: int = 0, axes=None):
    """1 − RMSE against Pearson r for (up to 5,000 randomly chosen) kernel pairs, with ``1 − √(2(1 − r))``."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(figsize=style.book_size(3.2, width=4.6))
    r, score = np.ravel(r), np.ravel(score)
    pick = np.random.default_rng(random_state).choice(r.size, size=min(5000, r.size), replace=False)
    grid = np.linspace(-1, 1, 200)
    axes.scatter(r[pick], score[pick], s=4, alpha=0.3, color="C0", label="kernel pairs")
    axes.plot(grid, score_from_r(grid), "k", lw=1, label=r"$1-\sqrt{2(1-r)}$")
    axes.set(xlabel="Pearson r", ylabel="1 − RMSE")
    axes.legend(frameon=False, loc="upper left")
    fig = axes.figure
    fig.tight_layout()
    return fig


def plot_model_levels(models: pd.DataFrame, model_parameters: pd.Series | None = None, *, axes=None):
    """Each model's mean 1 − RMSE (coloured dot and 95 % interval) beside its phase-randomised null
    (grey), with the levels of unrelated kernels (r = 0) and of r = 0.1."""
    import matplotlib.pyplot as plt

    order = list(models.sort_values("parameters").index) if "parameters" in models else list(models.index)
    if axes is None:
        _, axes = plt.subplots(
            figsize=style.book_size(4.4, width=style.BOOK_WIDTH) if _slanted(order) else style.book_size(3.4, width=6.0)
        )
    x = np.arange(len(order))
    rows = models.loc[order]
    axes.errorbar(
        x - 0.1,
        rows["value"],
        yerr=[rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]],
        fmt="o",
        color="C0",
        capsize=3,
        label="real neural kernels",
    )
    axes.errorbar(
        x + 0.1,
        rows["null_value"],
        yerr=[rows["null_value"] - rows["null_ci_low"], rows["null_ci_high"] - rows["null_value"]],
        fmt="s",
        color="0.55",
        capsize=3,
        label="phase-randomised null",
    )
    _reference_lines(axes, margin=False)
    _set_model_ticks(axes, order, model_parameters)
    return _finish_model_panel(axes, order, ylabel="mean 1 − RMSE", legend_columns=2)


def _margin_errorbar(ax, x, rows: pd.DataFrame, **style_kwargs):
    """Margins with their 95 % intervals (``margin``, ``margin_ci_low``, ``margin_ci_high`` of ``rows``)."""
    ax.errorbar(
        x,
        rows["margin"],
        yerr=[rows["margin"] - rows["margin_ci_low"], rows["margin_ci_high"] - rows["margin"]],
        **style_kwargs,
    )


def plot_group_margins(
    table: pd.DataFrame, group: str, model_order, model_parameters: pd.Series | None = None, *, axes=None
):
    """Margin over the null per ``group`` value (area, genotype …) and model: dots with 95 % intervals,
    thin lines joining a value across models (ordered by size; Figs 2 top and 4 of the paper)."""
    import matplotlib.pyplot as plt

    groups = sorted(table[group].astype(str).unique())
    order = [m for m in model_order if m in set(table["model"])]
    # many values, or slanted model names that need the full width: the legend goes below, in columns
    legend_rows = int(np.ceil((len(groups) + 2) / 5)) if len(groups) > 8 or _slanted(order) else 0
    if axes is None:
        _, axes = plt.subplots(figsize=style.book_size(3.4 + 0.28 * legend_rows + (0.9 if _slanted(order) else 0.0)))
    styles = category_styles(groups)
    offsets = np.linspace(-0.3, 0.3, len(groups)) if len(groups) > 1 else np.zeros(1)
    for offset, value in zip(offsets, groups):
        rows = table[table[group].astype(str) == value].set_index("model").reindex(order)
        colour, marker = styles[value]
        x = np.arange(len(order)) + offset
        axes.plot(x, rows["margin"], color=colour, lw=0.6, alpha=0.6)
        _margin_errorbar(axes, x, rows, fmt=marker, color=colour, ms=4, lw=0.8, label=value)
    _reference_lines(axes, margin=True)
    _set_model_ticks(axes, order, model_parameters)
    axes.set(ylabel="1 − RMSE above the null")
    fig = axes.figure
    if legend_rows:
        fig.legend(*axes.get_legend_handles_labels(), frameon=False, loc="lower center", ncol=5, title=group)
        fig.tight_layout(rect=(0, (0.3 * legend_rows + 0.35) / fig.get_size_inches()[1], 1, 1))
    else:
        axes.legend(frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5), title=group)
        fig.tight_layout()
    return fig


def plot_kind_margins(table: pd.DataFrame, model_order, *, axes=None):
    """Margin over the null of attention maps, attention weights and convolution weights, per model
    (dots with 95 % intervals; Fig. 2 bottom of the paper)."""
    import matplotlib.pyplot as plt

    order = [m for m in model_order if m in set(table["model"])]
    if axes is None:
        _, axes = plt.subplots(
            figsize=style.book_size(4.2, width=style.BOOK_WIDTH) if _slanted(order) else style.book_size(3.2, width=6.4)
        )
    kinds = [k for k in KIND_LABELS if ((table["kind"] == k[0]) & (table["layer_type"] == k[1])).any()]
    colours = dict(zip(kinds, style.category_colours(len(kinds))))
    offsets = np.linspace(-0.2, 0.2, len(kinds)) if len(kinds) > 1 else np.zeros(1)
    for offset, kind in zip(offsets, kinds):
        rows = table[(table["kind"] == kind[0]) & (table["layer_type"] == kind[1])].set_index("model").reindex(order)
        x = np.arange(len(order)) + offset
        _margin_errorbar(axes, x, rows, fmt="o", color=colours[kind], capsize=3, label=KIND_LABELS[kind])
    _reference_lines(axes, margin=True)
    _set_model_ticks(axes, order)
    return _finish_model_panel(axes, order, ylabel="1 − RMSE above the null", legend_columns=3)


def plot_layer_margins(table: pd.DataFrame, *, axes=None):
    """Per model (one panel each), the margin over the null of every layer: dots with 95 % intervals,
    coloured by kernel kind, dot area ∝ the layer's parameters (Figs 5 and S4 of the paper)."""
    import matplotlib.pyplot as plt

    models = list(pd.unique(table["model"]))
    if axes is None:
        n_rows = int(np.ceil(len(models) / 2))
        _, axes = plt.subplots(
            n_rows, min(2, len(models)), figsize=style.book_size(3.0 * n_rows + 0.5), squeeze=False, sharey=True
        )
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
            ax.errorbar(
                sel["layer_index"],
                sel["margin"],
                yerr=[sel["margin"] - sel["margin_ci_low"], sel["margin_ci_high"] - sel["margin"]],
                fmt="none",
                ecolor=colours[kind],
                lw=0.7,
            )
            sizes = 12 + 80 * sel["n_parameters"] / largest if "n_parameters" in sel else 20
            ax.scatter(
                sel["layer_index"],
                sel["margin"],
                s=sizes,
                color=colours[kind],
                alpha=0.8,
                label=KIND_LABELS[kind],
                zorder=3,
            )
        _reference_lines(ax, margin=True)
        ax.set(title=model, xlabel="layer index")
    axes[0].set_ylabel("1 − RMSE above the null")
    for ax in axes[len(models) :]:
        ax.axis("off")
    fig = axes[0].figure
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1 : len(models)]:
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
    return f"{name[: cut + 1]}\n{name[cut + 1 :]}"


def plot_overlay(scene: np.ndarray, neural_kernel: np.ndarray, artificial_kernels, labels, *, axes=None):
    """Fig 3/S5 analogue: the neural kernel and its best artificial matches, z-scored and overlaid on a
    scene with one colour bar (top row), and their column profiles (bottom).

    Parameters
    ----------
    labels : sequence of str
        One title per artificial kernel (short: they sit above panels of a fifth of the text width).
    axes : sequence of matplotlib Axes, optional
        ``len(artificial_kernels) + 2`` Axes: one per overlay (the neural kernel first), then the profile
        panel. Made on a new figure, with a colour-bar axis beside the overlays, when ``None``.
    """
    import matplotlib.pyplot as plt

    from .similarity import resize_kernels, zscore_kernels

    n = len(artificial_kernels)
    colour_bar_axes = None
    if axes is None:
        fig = plt.figure(figsize=style.book_size(4.4))
        width = 0.86 / (n + 1)
        overlays = [fig.add_axes((0.01 + i * width, 0.56, width * 0.94, 0.34)) for i in range(n + 1)]
        colour_bar_axes = fig.add_axes((0.9, 0.6, 0.015, 0.26))
        profile = fig.add_axes((0.09, 0.12, 0.5, 0.36))
    else:
        axes = list(np.ravel(axes))
        if len(axes) != n + 2:
            raise ValueError(
                f"'axes' must hold {n + 2} Axes (one per overlay, then the profile); {len(axes)} were provided."
            )
        *overlays, profile = axes
        fig = profile.figure
    size = neural_kernel.shape
    resized = resize_kernels(np.stack(artificial_kernels), size)
    stack = zscore_kernels(np.concatenate([neural_kernel[None], resized])).reshape(n + 1, *size)
    limit = float(np.abs(stack).max())
    extent = (0, size[1], size[0], 0)  # kernel pixels: the scene keeps the kernels' aspect ratio
    image = None
    for ax, kernel, label in zip(overlays, stack, ["neural kernel", *labels]):
        ax.imshow(scene, cmap="gray", extent=extent)
        image = ax.imshow(
            kernel, cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.6, extent=extent, interpolation="bilinear"
        )
        ax.set_title("\n".join(_wrap_name(line) for line in label.split("\n")))
        ax.axis("off")
    if colour_bar_axes is not None:
        bar = fig.colorbar(image, cax=colour_bar_axes)
    else:
        bar = fig.colorbar(image, ax=overlays)
    bar.set_label("z-score")
    colours = style.category_colours(n + 1)
    profile.plot(stack[0].mean(axis=0), color="k", lw=2, label="neural kernel")
    for kernel, label, colour in zip(stack[1:], labels, colours[1:]):
        profile.plot(kernel.mean(axis=0), lw=1.2, color=colour, label=label.replace("\n", " "))
    profile.set(xlabel="x (kernel pixels)", ylabel="column mean (z)")
    profile.legend(frameon=False, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


def plot_model_bubbles(table: pd.DataFrame, group: str, model_parameters: pd.Series, *, axes=None):
    """Fig 2 (top) analogue: per model, one bubble per ``group`` value; bubble area ∝ model parameters.

    The grey band per model is the phase-randomised null (its range over the groups).
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(figsize=style.book_size(3.5))
    models = [m for m in model_parameters.sort_values().index if m in set(table["model"])]
    groups = sorted(table[group].astype(str).unique())
    styles = category_styles(groups)
    sizes = 30 + 400 * model_parameters[models] / model_parameters[models].max()
    offsets = np.linspace(-0.3, 0.3, len(groups)) if len(groups) > 1 else [0.0]
    for i, model in enumerate(models):
        rows = table[table["model"] == model].set_index(table.loc[table["model"] == model, group].astype(str))
        axes.fill_between([i - 0.4, i + 0.4], rows["null_ci_low"].min(), rows["null_ci_high"].max(), color="0.85", lw=0)
        for offset, value in zip(offsets, groups):
            if value in rows.index:
                row = rows.loc[value]
                colour, marker = styles[value]
                axes.errorbar(
                    i + offset,
                    row["value"],
                    yerr=[[row["value"] - row["ci_low"]], [row["ci_high"] - row["value"]]],
                    color=colour,
                    lw=0.8,
                )
                axes.scatter(
                    i + offset,
                    row["value"],
                    s=sizes[model],
                    color=colour,
                    marker=marker,
                    alpha=0.6,
                    label=value if i == 0 else None,
                    edgecolor="k",
                    lw=0.3,
                )
    _set_model_ticks(axes, models)
    axes.set(ylabel="mean 1 − RMSE", title=f"by {group} (grey: phase-randomised null)")
    axes.legend(frameon=False, ncol=2, loc="best", markerscale=0.4)
    return axes.figure


#: Columns :func:`view_group_margins` reads (an ``alignment_summary`` table grouped by model, area, genotype).
GROUP_MARGIN_COLUMNS = (
    "model",
    "area",
    "genotype",
    "value",
    "null_value",
    "margin",
    "margin_ci_low",
    "margin_ci_high",
    "r_margin",
    "n_neural",
    "n_artificial",
)


def view_group_margins(
    table: pd.DataFrame,
    model_order,
    model_parameters: pd.Series | None = None,
    *,
    height: int = 480,
    include_plotlyjs: bool = True,
):
    """Margin over the null of every (visual area × genotype) group and model, interactive: hover a dot
    for its group and numbers, click an area in the legend to hide it, drag to zoom.

    One dot per group and model (models ordered as ``model_order``, the areas side by side within a
    model's column, one colour per area), with its 95 % bootstrap interval; solid line: the null, dashed
    line: the margin of r = 0.1 above it. The figure carries plotly.js inline (no network).

    Parameters
    ----------
    table : DataFrame
        The ``["model", "area", "genotype"]`` table of :func:`.pipeline.alignment_summary`, with the
        columns of :data:`GROUP_MARGIN_COLUMNS`.
    model_order : sequence of str
        Models from left to right (those absent from ``table`` are skipped).
    model_parameters : Series, optional
        Parameter count of each model, shown under its name.
    height : int, default=480
        Height in pixels (the width follows the page's column).
    include_plotlyjs : bool, default=True
        False when an earlier interactive figure on the same page already carries plotly.js.

    Returns
    -------
    neuroalign_utils.interactive.InteractiveFigure
        Its ``html`` is shown by a notebook and embedded by the book; ``figure`` is the plotly Figure.
    """
    import plotly.graph_objects as go

    from .. import report
    from .._validation import check_int
    from ..interactive import InteractiveFigure

    missing = [c for c in GROUP_MARGIN_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"'table' lacks the column(s) {missing}; it needs {list(GROUP_MARGIN_COLUMNS)}.")
    order = [m for m in model_order if m in set(table["model"])]
    if not order:
        raise ValueError(
            f"'model_order' names none of the table's models; they are {sorted(set(table['model'].astype(str)))}."
        )
    height = check_int(height, "height", minimum=200)
    table = table[table["model"].isin(order)]
    areas = sorted(table["area"].astype(str).unique())
    genotypes = sorted(table["genotype"].astype(str).unique())
    column = {m: i for i, m in enumerate(order)}
    area_offset = dict(zip(areas, np.linspace(-0.3, 0.3, len(areas)) if len(areas) > 1 else [0.0]))
    # within an area's slot each genotype keeps its own offset, so a group's dots line up across models
    spread = 0.35 * (0.6 / (len(areas) - 1) if len(areas) > 1 else 0.6)
    genotype_offset = dict(zip(genotypes, np.linspace(-spread, spread, len(genotypes)) if len(genotypes) > 1 else [0]))

    def fmt(v, digits=3):
        return report.format_number(v, digits)

    traces = []
    for area, colour in zip(areas, hex_colours([c[:3] for c in style.category_colours(len(areas))])):
        rows = table[table["area"].astype(str) == area]
        x = [column[m] + area_offset[area] + genotype_offset[str(g)] for m, g in zip(rows["model"], rows["genotype"])]
        hover = [
            f"<b>{area} × {g}</b><br>{m}<br>margin over the null {fmt(mg)}, as r {fmt(rm, 2)}<br>"
            f"95 % CI {report.format_interval(lo, hi, 3)}<br>"
            f"1 − RMSE {fmt(v)}, null {fmt(nv)}<br>{n:,} neural × {a:,} artificial kernels"
            for m, g, mg, lo, hi, rm, v, nv, n, a in rows[
                [
                    "model",
                    "genotype",
                    "margin",
                    "margin_ci_low",
                    "margin_ci_high",
                    "r_margin",
                    "value",
                    "null_value",
                    "n_neural",
                    "n_artificial",
                ]
            ].itertuples(index=False)
        ]
        traces.append(
            go.Scatter(
                x=x,
                y=rows["margin"].to_numpy(),
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=(rows["margin_ci_high"] - rows["margin"]).to_numpy(),
                    arrayminus=(rows["margin"] - rows["margin_ci_low"]).to_numpy(),
                    thickness=0.8,
                    width=0,
                ),
                mode="markers",
                marker=dict(size=6, color=colour),
                name=area,
                text=hover,
                hovertemplate="%{text}<extra></extra>",
            )
        )
    labels = [label.replace("\n", ", ") for label in _model_labels(order, model_parameters)]
    figure = go.Figure(traces)
    references = ((0.0, "solid", "null"), (meaningful_margin(), "dash", f"r = {MEANINGFUL_R:g} above the null"))
    for level, dash, text in references:
        figure.add_hline(
            y=level,
            line=dict(color="#4d4d4d", width=1, dash=dash),
            annotation_text=text,
            annotation_position="top left",
            annotation_font_size=11,
        )
    figure.update_layout(
        height=height,
        margin=dict(l=60, r=10, t=10, b=10),
        template="simple_white",
        xaxis=dict(tickmode="array", tickvals=list(range(len(order))), ticktext=labels, range=[-0.6, len(order) - 0.4]),
        yaxis=dict(title=dict(text="1 − RMSE above the null"), zeroline=False),
        # below the mode bar (top right), which would cover the legend's title
        legend=dict(title=dict(text="area"), y=0.9, yanchor="top"),
        hoverlabel=dict(align="left"),
    )
    return InteractiveFigure(figure, include_plotlyjs=include_plotlyjs)
