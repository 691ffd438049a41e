"""Figures of the Allen natural-scenes chapter (Jalil et al. Figs S1–S3), sized for the book's column.

Every ``plot_*`` function takes ``axes=`` (one Axes, or an array of Axes where it draws several panels;
made at :func:`neuroalign_utils.style.book_size` when ``None``) and returns the figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import style
from . import metadata

CLASSES = ("excitatory", "inhibitory")


def class_colours() -> dict:
    """One colour per cell class (the same in every figure of the chapter)."""
    return dict(zip(CLASSES, style.category_colours(len(CLASSES))))


def _area_order(values) -> list:
    present = set(values)
    return [a for a in metadata.AREAS if a in present] + sorted(present - set(metadata.AREAS))


def plot_counts_by_area(cells: pd.DataFrame, experiments: pd.DataFrame, *, axes=None):
    """Experiments per area (left) and cells per area, stacked by class (right)."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=style.book_size(3.0))
    order = _area_order(cells["area"])
    colours = class_colours()
    experiments_per_area = experiments.groupby("area").size().reindex(order, fill_value=0)
    axes[0].bar(order, experiments_per_area.to_numpy(), color="0.55")
    axes[0].set(title="Experiments per area", ylabel="experiments")
    by_class = cells.groupby(["area", "cell_class"]).size().unstack(fill_value=0).reindex(order, fill_value=0)
    bottom = np.zeros(len(order))
    for cell_class in CLASSES:
        if cell_class in by_class:
            axes[1].bar(
                order, by_class[cell_class].to_numpy(), bottom=bottom, color=colours[cell_class], label=cell_class
            )
            bottom += by_class[cell_class].to_numpy()
    axes[1].set(title="Cells per area", ylabel="cells", ylim=(0, 1.3 * max(bottom.max(), 1)))
    axes[1].legend(frameon=False, ncol=2, loc="upper center")
    for ax in axes:
        ax.tick_params(axis="x", rotation=45)
    fig = axes[0].figure
    fig.tight_layout()
    return fig


def plot_cells_by_genotype(cells: pd.DataFrame, *, axes=None):
    """Cells per Table S1 genotype, horizontal bars coloured by class, most cells on top."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    counts = cells.groupby("genotype_abbreviation").size().sort_values()
    if axes is None:
        _, axes = plt.subplots(figsize=style.book_size(0.8 + 0.24 * len(counts), width=6.0))
    cell_class = cells.drop_duplicates("genotype_abbreviation").set_index("genotype_abbreviation")["cell_class"]
    colours = class_colours()
    axes.barh(counts.index, counts.to_numpy(), color=[colours[cell_class[g]] for g in counts.index])
    handles = [Patch(color=colours[cls], label=cls) for cls in CLASSES if (cell_class == cls).any()]
    axes.set(xlabel="cells", title="Cells per genotype (Table S1 abbreviations)")
    axes.legend(handles=handles, frameon=False, loc="lower right")
    fig = axes.figure
    fig.tight_layout()
    return fig


def plot_area_latencies(latencies: pd.DataFrame, *, peak_threshold: float, axes=None):
    """Mean time to peak ± s.e.m. of the strong cells per area (left) and their count (right)."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=style.book_size(3.0))
    areas = list(latencies.index)
    axes[0].bar(areas, latencies["mean"].to_numpy(), yerr=latencies["sem"].to_numpy(), color="0.6", capsize=3)
    axes[0].set(title="Mean time to peak", ylabel="time to peak (s)")
    axes[1].bar(areas, latencies["n_strong"].to_numpy(), color="0.35")
    axes[1].set(title=f"Cells with peak dF/F > {peak_threshold:g} %", ylabel="cells")
    for ax in axes:
        ax.tick_params(axis="x", rotation=45)
    fig = axes[0].figure
    fig.tight_layout()
    return fig


def plot_cell_trials(
    trials: np.ndarray,
    time: np.ndarray,
    scene_image: np.ndarray,
    *,
    title: str,
    presentation_s: float = 0.25,
    axes=None,
):
    """One cell's preferred scene (left) and its dF/F on every trial of it, with the mean (right).

    Parameters
    ----------
    trials : numpy.ndarray, shape (n_trials, n_times)
        Trial dF/F (%).
    time : numpy.ndarray, shape (n_times,)
        Seconds from onset.
    scene_image : numpy.ndarray
        The scene, values in [0, 1].
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=style.book_size(2.8), gridspec_kw={"width_ratios": [1, 1.9]})
    axes[0].imshow(scene_image, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("its preferred scene")
    axes[0].axis("off")
    axes[1].plot(time, trials.T, color="0.75", lw=0.6)
    axes[1].plot(time, np.nanmean(trials, axis=0), color="k", lw=2, label="mean over trials")
    axes[1].axvspan(0, presentation_s, color="C1", alpha=0.2, label="scene on")
    axes[1].set(xlabel="time from onset (s)", ylabel="dF/F (%)", title=title)
    axes[1].legend(frameon=False, loc="upper right")
    fig = axes[0].figure
    fig.tight_layout()
    return fig
