"""Figures of the neural-kernel chapter, sized for the book's column.

Kernels are drawn in one diverging colour map, each divided by its own largest magnitude so that
every panel uses the full scale; one colour bar (−1 … 1, "kernel / max |kernel|") serves the figure.
Every function takes ``axes=`` / ``ax=`` (made at :func:`neuroalign_utils.style.book_size` when
absent) and returns the figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import style

KERNEL_CMAP = "RdBu_r"


def _normalised(kernel) -> np.ndarray:
    kernel = np.asarray(kernel, dtype=np.float64)
    limit = float(np.abs(kernel).max())
    return kernel / limit if limit > 0 else kernel


def _kernel_colour_bar(fig, image, axes, label: str = "kernel / max |kernel|") -> None:
    bar = fig.colorbar(image, ax=axes, fraction=0.03, pad=0.02, ticks=[-1, 0, 1])
    bar.set_label(label)


def plot_kernel_gallery(kernels, labels, *, n_cols: int = 6, colour_bar_label: str = "kernel / max |kernel|",
                        axes=None):
    """One panel per kernel, titled with its label, sharing one colour bar.

    Parameters
    ----------
    kernels : array-like, shape (n, h, w)
    labels : sequence of str
    n_cols : int, default=6
    colour_bar_label : str, default="kernel / max |kernel|"
        What the colour bar measures (each panel is divided by its own largest magnitude).
    """
    import matplotlib.pyplot as plt

    kernels = np.asarray(kernels)
    n_rows = int(np.ceil(len(kernels) / n_cols))
    if axes is None:
        _, axes = plt.subplots(n_rows, n_cols, figsize=style.book_size(max(1.15 * n_rows + 0.2, 1.8)), squeeze=False,
                               layout="constrained")
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
        _, axes = plt.subplots(len(rows), len(starts), figsize=style.book_size(1.0 * len(rows) + 0.5, width=6.2),
                               squeeze=False, layout="constrained")
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

    classes = [c for c in ("excitatory", "inhibitory")
               if (selection.loc[selection["cell_class"] == c, "cluster"] >= 0).any()]
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
    selected_colour, = style.category_colours(1)
    bins = np.linspace(0, 1, 41)
    ax = axes[0]
    ax.hist(diversity["abs_r_all"], bins=bins, density=True, color="0.75", label=f"all {diversity['n_all']:,} kernels")
    ax.hist(diversity["abs_r_selected"], bins=bins, density=True, histtype="step", lw=1.6, color=selected_colour,
            label=f"{diversity['n_selected']:,} selected")
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
