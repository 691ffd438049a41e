"""Figures of the artificial-kernel chapter, sized for the book's column.

Every function takes ``axes=`` / ``ax=`` (made at :func:`neuroalign_utils.style.book_size` when
absent) and returns the figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from .. import style


def _bare(ax) -> None:
    """No ticks and no frame (an image panel that keeps its axis label)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _grey(image) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    return image.mean(axis=-1) if image.ndim == 3 else image


def plot_attention_gallery(kernels: xr.DataArray, scenes: xr.DataArray, models, *, image: int = 0, head: int = 0,
                           n_layers: int = 6, axes=None):
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
            (kernels.model == model) & (kernels.kind == "attention_map") & (kernels.image == image)
            & (kernels.attention_head == head), drop=True,
        )
        layers = np.unique(maps.layer_index.values)
        if layers.size == 0:
            continue
        chosen = layers[np.linspace(0, len(layers) - 1, min(n_layers, len(layers))).astype(int)]
        rows.append((model, [maps.where(maps.layer_index == index, drop=True)[0] for index in chosen]))
    n_cols = max(len(r[1]) for r in rows)
    if axes is None:
        _, axes = plt.subplots(len(rows), n_cols, figsize=style.book_size(1.55 * len(rows) + 0.3),
                               squeeze=False, layout="constrained")
    ratios = [[np.asarray(k.values, dtype=np.float64) / float(np.mean(k.values)) for k in row] for _, row in rows]
    # the largest factor away from uniform, either way (a map may fall to ~0 somewhere: at most 1/100 is drawn)
    spread = min(max(max(float(r.max()), 1 / max(float(r.min()), 1e-12)) for row in ratios for r in row), 100.0)
    spread = max(spread, 1.001)
    norm = LogNorm(vmin=1 / spread, vmax=spread)
    image_handle = None
    for (model, row), row_ratios, row_axes in zip(rows, ratios, axes):
        for ax, kernel, ratio in zip(row_axes, row, row_ratios):
            ax.imshow(_grey(scenes[image].values), cmap="gray", vmin=0, vmax=1, extent=(0, 1, 1, 0))
            image_handle = ax.imshow(np.clip(ratio, 1 / spread, spread), cmap="PuOr_r", norm=norm, alpha=0.65,
                                     extent=(0, 1, 1, 0), interpolation="bilinear")
            ax.set_title(f"layer {int(kernel.layer_index)}\n{int(kernel.original_height)}×{int(kernel.original_width)}")
            _bare(ax)
        row_axes[0].set_ylabel(str(model).replace(" (", "\n("), rotation=0, ha="right", va="center")
        for ax in row_axes[len(row):]:
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
        _, axes = plt.subplots(len(layers), n_show, figsize=style.book_size(0.78 * len(layers) + 0.3),
                               squeeze=False, layout="constrained")
    handle = None
    for row, (model, layer) in zip(axes, layers):
        members = conv.where((conv.model == model) & (conv.layer == layer), drop=True)
        for ax, kernel in zip(row, members[:n_show]):
            values = np.asarray(kernel.values, dtype=np.float64)
            handle = ax.imshow(values / (np.abs(values).max() or 1.0), cmap="RdBu_r", vmin=-1, vmax=1)
            _bare(ax)
        for ax in row[len(members[:n_show]):]:
            ax.axis("off")
        row[0].set_ylabel(f"{model}\n{'.'.join(layer.split('.')[-2:])}, "
                          f"{int(members.original_height[0])}×{int(members.original_width[0])}",
                          rotation=0, ha="right", va="center")
    fig = axes[0, 0].figure
    bar = fig.colorbar(handle, ax=axes, fraction=0.03, pad=0.02, ticks=[-1, 0, 1])
    bar.set_label("kernel / max |kernel|")
    return fig


def plot_attention_coverage(coverage: pd.DataFrame, *, ax=None):
    """Mean effective coverage ``exp(H)/N`` per layer, one line per model; dashed: uniform attention."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=style.book_size(3.0, width=6.0))
    by_layer = coverage.groupby(["model", "layer_index"])["coverage"].mean().reset_index()
    models = list(pd.unique(by_layer["model"]))
    for (model, group), colour in zip(by_layer.groupby("model", sort=False), style.category_colours(len(models))):
        ax.plot(group["layer_index"], group["coverage"], "o-", color=colour, label=model)
    ax.axhline(1.0, color="k", ls="--", lw=0.8, label="uniform attention")
    ax.set(xlabel="layer index", ylabel="effective coverage exp(H)/N", ylim=(0, 1.08))
    ax.legend(frameon=False, loc="lower left")
    fig = ax.figure
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
        ``{model label: {layer: array (out, in, h, w)}}`` (:func:`~neuroalign_utils.zoo.trained_random.twin_filters`);
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
        _, axes = plt.subplots(len(rows), n_show, figsize=style.book_size(0.72 * len(rows) + 0.4),
                               squeeze=False, layout="constrained")
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
        for ax in row_axes[len(shown):]:
            ax.axis("off")
        size = f"{values.shape[-2]}×{values.shape[-1]}"
        where = {"embeddings.patch_embeddings.projection": "patch embedding", "_conv_stem": "stem"}.get(layer, layer)
        row_axes[0].set_ylabel(f"{label.replace(' (', chr(10) + '(')}\n{where} {size}" if layer else
                               f"{label}\n{size}", rotation=0, ha="right", va="center")
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
        _, axes = plt.subplots(1, len(measures), figsize=style.book_size(0.45 * (len(groups) + 1) + 1.2),
                               squeeze=False, sharey=True)
        axes = axes[0]
    for ax, measure in zip(axes, measures):
        rows = margins[margins["measure"] == measure].reset_index(drop=True)
        labels = [f"{r.architecture}\n{r.group}" for r in rows.itertuples()]
        y = np.arange(len(rows))[::-1] + (1 if reference is not None else 0)
        for yi, row in zip(y, rows.itertuples()):
            ax.errorbar(row.trained, yi + 0.12, xerr=[[row.trained - row.trained_ci_low], [row.trained_ci_high - row.trained]],
                        fmt="o", color="C0", capsize=2, label="trained" if yi == y[0] else None)
            ax.errorbar(row.random, yi - 0.12, xerr=[[row.random - row.random_ci_low], [row.random_ci_high - row.random]],
                        fmt="s", color="0.55", capsize=2, label="random twin" if yi == y[0] else None)
        if reference is not None:
            ref = reference[reference["measure"] == measure].iloc[0]
            ax.errorbar(ref["value"], 0, xerr=[[ref["value"] - ref["ci_low"]], [ref["ci_high"] - ref["value"]]],
                        fmt="D", color="k", capsize=2, label="neural kernels")
            labels.append(f"neural kernels\n{ref['size']}")
        ax.set_yticks(list(y) + ([0] if reference is not None else []), labels)
        ax.set(xlabel=MEASURES[measure], xlim=(0, None))
        ax.grid(axis="x", lw=0.4, color="0.9")
    fig = axes[0].figure
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
