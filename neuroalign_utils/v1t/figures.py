"""Figures of the V1T lens: every ``plot_*`` accepts ``axes=`` (created when None) and returns the figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import style
from .pipeline import model_order, short_label


def plot_training_curves(histories: pd.DataFrame, *, axes=None):
    """Validation single-trial correlation per epoch, one line (distinct colour) per (core, behaviour).

    ``axes``: one Axes to draw in (created when None). Returns the figure.
    """
    if axes is None:
        _, axes = plt.subplots(figsize=style.book_size(3.2, 6.0))
    ax = axes
    keys = model_order(map(tuple, histories[["core", "behaviour"]].drop_duplicates().to_numpy()))
    for (core, behaviour), colour in zip(keys, style.category_colours(len(keys))):
        h = histories[(histories["core"] == core) & (histories["behaviour"] == behaviour)]
        ax.plot(h["epoch"], h["validation_correlation"], "o-", ms=3, color=colour, label=short_label(core, behaviour))
    ax.set(xlabel="epoch", ylabel="validation single-trial correlation")
    ax.legend(frameon=False)
    ax.figure.tight_layout()
    return ax.figure


def plot_test_correlations(results: pd.DataFrame, *, axes=None):
    """Test correlations per model: single-trial (left) and to the repeat average (right).

    Bars: mean over mice; dots: one per mouse; dashed line: the planted noise ceiling of that metric
    (mean over mice), drawn only for synthetic mice (``*_ceiling`` columns present).
    ``axes``: two Axes to draw in (created when None). Returns the figure.
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=style.book_size(3.2), sharey=True)
    keys = model_order(map(tuple, results[["core", "behaviour"]].drop_duplicates().to_numpy()))
    colours = style.category_colours(len(keys))
    names = {"v1t": "V1T", "cnn": "CNN"}
    for ax, metric, ceiling, title in [
        (axes[0], "single_trial_correlation", "single_trial_ceiling", "single trial"),
        (axes[1], "correlation_to_average", "correlation_to_average_ceiling", "to the repeat average"),
    ]:
        for i, (key, colour) in enumerate(zip(keys, colours)):
            values = results[(results["core"] == key[0]) & (results["behaviour"] == key[1])][metric].to_numpy()
            ax.bar(i, values.mean(), color=colour, width=0.7)
            ax.plot(np.full(len(values), i), values, "o", color="black", ms=3.5)
        if ceiling in results:
            level = results.groupby("mouse")[ceiling].first().mean()
            ax.axhline(level, color="black", ls="--", lw=1)
            ax.text(len(keys) - 0.6, level + 0.02, "planted ceiling", ha="right", va="bottom")
        ax.set_xticks(range(len(keys)), [f"{names.get(c, c)}\n{'with' if b else 'without'}" for c, b in keys])
        ax.set(title=title, ylim=(0, 1), xlabel="core, behaviour")
    axes[0].set_ylabel("test correlation")
    axes[0].figure.tight_layout()
    return axes[0].figure


def plot_rollout(images, maps, centres=None, *, axes=None):
    """Images (top row) and the same images under their attention-rollout maps (bottom row), one column each.

    Parameters
    ----------
    images, maps : array-like, shape (n, h, w)
        Grey-level images (in SD of the training images) and their rollout maps (each sums to 1).
    centres : array-like, shape (n, 2), optional
        Each map's centre of mass ``(x, y)`` in pixels, marked with a cyan cross.
    axes : array of matplotlib Axes, shape (2, n), optional
        Created on a new figure when None.
    """
    images, maps = np.asarray(images), np.asarray(maps)
    if axes is None:
        _, axes = plt.subplots(2, len(images), figsize=style.book_size(2.5), layout="constrained", squeeze=False)
    axes = np.asarray(axes).reshape(2, len(images))
    fig = axes[0, 0].figure
    top = float(maps.max())
    low, high = np.percentile(images, [0, 100])
    for k, column in enumerate(axes.T):
        grey = column[0].imshow(images[k], cmap="gray", vmin=low, vmax=high)
        column[1].imshow(images[k], cmap="gray", vmin=low, vmax=high)
        overlay = column[1].imshow(maps[k], cmap="magma", alpha=0.65, vmin=0, vmax=top)
        if centres is not None:
            column[1].plot(*np.asarray(centres)[k], "+", color="cyan", ms=10, mew=2)
        for ax in column:
            ax.set(xticks=[], yticks=[])
    axes[0, 0].set_ylabel("image")
    axes[1, 0].set_ylabel("rollout")
    fig.colorbar(grey, ax=list(axes[0]), shrink=0.9, label="image (SD)")
    fig.colorbar(overlay, ax=list(axes[1]), shrink=0.9, label="attention share")
    return fig


def plot_arfs(arfs: dict, *, centres=None, unit_labels=None, axes=None):
    """Artificial receptive fields, one row per model and one column per unit, each divided by its largest
    absolute value (one colour bar, −1 to 1).

    Parameters
    ----------
    arfs : dict of str to array-like, shape (n, h, w)
        Model label (the row's label) → the aRFs of the same ``n`` units.
    centres : array-like, shape (n, 2), optional
        The units' planted RF centres ``(x, y)`` in pixels, marked with a black cross.
    unit_labels : sequence of str, optional
        Column titles; ``unit 0`` … by default.
    axes : array of matplotlib Axes, shape (len(arfs), n), optional
        Created on a new figure when None.
    """
    n = len(next(iter(arfs.values())))
    unit_labels = [f"unit {k}" for k in range(n)] if unit_labels is None else list(unit_labels)
    if axes is None:
        _, axes = plt.subplots(
            len(arfs), n, figsize=style.book_size(0.5 + 0.85 * len(arfs)), squeeze=False, layout="constrained"
        )
    axes = np.asarray(axes).reshape(len(arfs), n)
    image = None
    for row, (label, units) in zip(axes, arfs.items()):
        for k, ax in enumerate(row):
            arf = np.asarray(units[k])
            image = ax.imshow(arf / np.abs(arf).max(), cmap="RdBu_r", vmin=-1, vmax=1)
            if centres is not None:
                ax.plot(*np.asarray(centres)[k], "x", color="black", ms=7, mew=1.5)
            ax.set(xticks=[], yticks=[])
        row[0].set_ylabel(label)
    for ax, title in zip(axes[0], unit_labels):
        ax.set_title(title)
    fig = axes[0, 0].figure
    fig.colorbar(image, ax=list(axes.ravel()), shrink=0.9, label="aRF / max |aRF|")
    return fig
