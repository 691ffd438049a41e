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
