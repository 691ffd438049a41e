"""Figures of the FactorTopy chapter that are not surface maps (those are in :mod:`.maps`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import analysis


def plot_hierarchy_slope(table: pd.DataFrame, fit: dict, ax=None):
    """ι̂ of every vertex in V1, V2&V3, OPA, EBA against its ideal level, with the fitted line."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.4))
    family = table["roi"].map(analysis.roi_family)
    keep = family.isin(list(analysis.HIERARCHY_LEVELS))
    level = family[keep].map(analysis.HIERARCHY_LEVELS).to_numpy()
    jitter = np.random.default_rng(0).uniform(-0.03, 0.03, len(level))
    ax.scatter(level + jitter, table.loc[keep, "iota"], s=6, alpha=0.4, color="C0")
    x = np.linspace(0, 1, 2)
    ax.plot(x, fit["b0"] + fit["slope"] * x, color="k",
            label=f"β = {fit['slope']:.2f} [{fit['slope_low']:.2f}, {fit['slope_high']:.2f}]")
    ax.plot(x, x, ls=":", color="grey", label="ideal")
    ax.set(xticks=[0, 1 / 3, 2 / 3, 1], xticklabels=["V1", "V2&V3", "OPA", "EBA"],
           ylabel=r"layer position $\hat\iota$", title="Hierarchy slope", ylim=(-0.05, 1.05))
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    return ax.figure


def plot_ground_truth(recovery: pd.DataFrame, table: pd.DataFrame, truth: pd.DataFrame, n_layers: int):
    """Planted vs recovered: layer per ROI, image position per vertex, scale per vertex."""
    import matplotlib.pyplot as plt

    fig, (a0, a1, a2) = plt.subplots(1, 3, figsize=(11, 3.5))
    jitter = np.random.default_rng(0).uniform(-0.2, 0.2, (2, len(recovery)))
    px, py = recovery["planted_layer"] + jitter[0], recovery["recovered_layer"] + jitter[1]
    a0.scatter(px, py, s=12 + recovery["n_vertices"] / 3, alpha=0.6)
    for roi, x, y in zip(recovery.index, px, py):
        a0.annotate(roi, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=6, alpha=0.8)
    a0.plot([0, n_layers - 1], [0, n_layers - 1], color="grey", ls=":")
    a0.set(xlabel="planted layer", ylabel="recovered layer (ROI argmax)", title="Layer per ROI")
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
    fig.tight_layout()
    return fig


def plot_top_channels(images, rgb_by_roi: dict):
    """Each ROI's top-3 read-out components as RGB over the local tokens, beside the image."""
    import matplotlib.pyplot as plt

    n_img, n_roi = len(images), len(rgb_by_roi)
    fig, axes = plt.subplots(n_img, n_roi + 1, figsize=(1.6 * (n_roi + 1), 1.6 * n_img), squeeze=False)
    for i, img in enumerate(images):
        axes[i, 0].imshow(np.clip(img, 0, 1))
        for j, (roi, rgbs) in enumerate(rgb_by_roi.items(), start=1):
            axes[i, j].imshow(rgbs[i], interpolation="nearest")
            if i == 0:
                axes[i, j].set_title(roi, fontsize=9)
    axes[0, 0].set_title("image", fontsize=9)
    for a in axes.ravel():
        a.set_axis_off()
    fig.tight_layout()
    return fig


def plot_layer_predictability(matrices: dict):
    """Heat maps of :func:`features.cross_layer_predictability`, one per labelled backbone."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(matrices), figsize=(3.4 * len(matrices), 3.0), squeeze=False)
    for a, (label, mat) in zip(axes[0], matrices.items()):
        im = a.imshow(mat, vmin=0, vmax=1, cmap="magma")
        for (i, j), v in np.ndenumerate(mat):
            a.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
        a.set(title=label, xlabel="predictor layer", ylabel="read-out of layer")
    fig.colorbar(im, ax=list(axes[0]), fraction=0.03, label="held-out R²")
    return fig
