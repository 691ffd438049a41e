"""Figures of the FactorTopy chapter that are not surface maps (those are in :mod:`.maps`).

Each function draws one figure at the book's width (:mod:`neuroalign_utils.style`) and returns it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import style
from . import analysis


def plot_hierarchy_slope(table: pd.DataFrame, fit: dict, ax=None):
    """ι̂ of every vertex in V1, V2&V3, OPA, EBA against its ideal level, with the fitted line."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.4))
    family = table["roi"].map(analysis.roi_family)
    keep = family.isin(list(analysis.HIERARCHY_LEVELS))
    level = family[keep].map(analysis.HIERARCHY_LEVELS).to_numpy()
    jitter = np.random.default_rng(0).uniform(-0.03, 0.03, len(level))
    ax.scatter(level + jitter, table.loc[keep, "iota"], s=6, alpha=0.4, color="C0", label="vertices")
    x = np.linspace(0, 1, 2)
    ax.plot(x, fit["b0"] + fit["slope"] * x, color="k", label="least-squares fit")
    ax.plot(x, x, ls=":", color="grey", label="ideal (β = 1)")
    ax.set(xticks=[0, 1 / 3, 2 / 3, 1], xticklabels=["V1", "V2&V3", "OPA", "EBA"],
           ylabel=r"layer position $\hat\iota$", ylim=(-0.05, 1.05))
    ax.legend(frameon=False, loc="upper left")
    return ax.figure


def plot_layer_recovery(recovery: pd.DataFrame, n_layers: int, ax=None):
    """Planted and chosen layer of every ROI, one row per ROI (planted: open circle; chosen: dot)."""
    import matplotlib.pyplot as plt

    named = recovery.drop(index="Unknown", errors="ignore")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 0.28 * len(named) + 0.9))
    rows = np.arange(len(named))
    hit = (named["planted_layer"] == named["recovered_layer"]).to_numpy()
    ax.scatter(named["planted_layer"], rows, s=90, facecolors="none", edgecolors="k", label="planted")
    ax.scatter(named["recovered_layer"][hit], rows[hit], s=30, color="C2", label="chosen = planted")
    ax.scatter(named["recovered_layer"][~hit], rows[~hit], s=30, color="C3", label="chosen ≠ planted")
    ax.set(yticks=rows, yticklabels=named.index, xticks=range(n_layers), xlim=(-0.5, n_layers - 0.5),
           ylim=(len(named) - 0.5, -0.5), xlabel="layer (ROI-mean layer weights, argmax)")
    ax.grid(axis="x", color="0.9")
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax.figure


def plot_position_scale_recovery(table: pd.DataFrame, truth: pd.DataFrame, axes=None):
    """Planted vs chosen image position (mostly local vertices) and planted vs chosen global share."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=style.book_size(3.2))
    a1, a2 = axes
    local = truth["scale"].to_numpy() < 0.3
    for axis, (col, true_col) in enumerate((("space_x", "pos_x"), ("space_y", "pos_y"))):
        a1.scatter(truth[true_col][local], table[col][local], s=4, alpha=0.4, color=f"C{axis}",
                   label=("x" if axis == 0 else "y"))
    a1.plot([-1, 1], [-1, 1], color="grey", ls=":")
    a1.set(xlabel="planted position", ylabel="space selector", title="Position (planted scale < 0.3)")
    a1.legend(frameon=False)
    a2.scatter(truth["scale"], table["scale"], s=4, alpha=0.4, color="C2")
    a2.plot([0, 1], [0, 1], color="grey", ls=":")
    a2.set(xlabel="planted global share", ylabel="scale selector", title="Scale per vertex")
    axes[0].figure.tight_layout()
    return axes[0].figure


def plot_top_channels(images, rgb_by_roi: dict):
    """Each ROI's top-3 read-out components as RGB over the local tokens, beside the image."""
    import matplotlib.pyplot as plt

    n_img, n_roi = len(images), len(rgb_by_roi)
    panel = style.BOOK_WIDTH / (n_roi + 1)
    fig, axes = plt.subplots(n_img, n_roi + 1, figsize=(style.BOOK_WIDTH, panel * n_img + 0.3), squeeze=False)
    for i, img in enumerate(images):
        axes[i, 0].imshow(np.clip(img, 0, 1))
        for j, (roi, rgbs) in enumerate(rgb_by_roi.items(), start=1):
            axes[i, j].imshow(rgbs[i], interpolation="nearest")
            if i == 0:
                axes[i, j].set_title(roi)
    axes[0, 0].set_title("image")
    for a in axes.ravel():
        a.set_axis_off()
    fig.tight_layout()
    return fig


def plot_layer_predictability(matrices: dict):
    """Heat maps of :func:`features.cross_layer_predictability`, one per labelled backbone."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(matrices), figsize=style.book_size(3.2, 3.3 * len(matrices) + 0.8),
                             squeeze=False)
    for a, (label, mat) in zip(axes[0], matrices.items()):
        im = a.imshow(mat, vmin=0, vmax=1, cmap="magma")
        for (i, j), v in np.ndenumerate(mat):
            a.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k")
        a.set(title=label, xlabel="predictor layer", ylabel="read-out of layer",
              xticks=range(len(mat)), yticks=range(len(mat)))
    fig.colorbar(im, ax=list(axes[0]), fraction=0.03, label="held-out R²")
    return fig


def plot_layer_distinctness(matrices: dict, by_distance: pd.DataFrame, *, labels: dict | None = None, axes=None):
    """Cross-layer R² of several backbones: one heat map each, then mean R² against layer distance.

    Parameters
    ----------
    matrices : dict
        Key → (L, L) matrix of :func:`features.cross_layer_predictability` (row: read-out layer, column:
        predictor layer), as in ``analysis.compare_layer_distinctness(...)["matrices"]``.
    by_distance : DataFrame
        ``model`` (a key of ``matrices``), ``layers_apart``, ``r2``, ``ci_low``, ``ci_high``, as in
        ``analysis.compare_layer_distinctness(...)["by_distance"]``; the interval is drawn as a band.
    labels : dict, optional
        Key → label shown in titles and legend.
    axes : sequence of matplotlib Axes, optional
        ``len(matrices) + 1`` axes; a new figure at the book's width when omitted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    labels = labels or {}
    if axes is None:
        fig = plt.figure(figsize=style.book_size(3.0), layout="constrained")
        # heat maps, their colour bar, a spacer, then the curve panel
        grid = fig.add_gridspec(1, len(matrices) + 3, width_ratios=[1] * len(matrices) + [0.06, 0.12, 1.3])
        axes = [fig.add_subplot(grid[0, i]) for i in range(len(matrices))] + [fig.add_subplot(grid[0, -1])]
        colour_bar_axis = fig.add_subplot(grid[0, len(matrices)])
    else:
        colour_bar_axis = None
    *maps, curve = axes
    for a, colour, (key, mat) in zip(maps, style.category_colours(len(matrices)), matrices.items()):
        label = labels.get(key, key)
        im = a.imshow(mat, vmin=0, vmax=1, cmap="magma")
        ticks = range(0, len(mat), max(1, len(mat) // 4))
        a.set(title=label, xlabel="predictor layer", xticks=ticks, yticks=ticks)
        rows = by_distance[by_distance["model"] == key]
        curve.plot(rows["layers_apart"], rows["r2"], marker="o", ms=3, color=colour, label=label)
        curve.fill_between(rows["layers_apart"], rows["ci_low"], rows["ci_high"], color=colour, alpha=0.25, lw=0)
    maps[0].set_ylabel("read-out of layer")
    curve.set(xlabel="layers apart", ylabel="mean held-out R²", ylim=(min(0.0, curve.get_ylim()[0]), 1.02))
    curve.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    curve.legend(frameon=False, loc="lower left")
    fig = curve.figure
    if colour_bar_axis is not None:
        fig.colorbar(im, cax=colour_bar_axis, label="held-out R²")
    else:
        fig.colorbar(im, ax=list(maps), fraction=0.04, pad=0.03, label="held-out R²")
    return fig
