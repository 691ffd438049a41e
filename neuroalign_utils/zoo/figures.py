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
    attention), over the scene, on one diverging scale centred on 1 with one colour bar, so that
    nearly uniform maps look nearly flat.
    """
    import matplotlib.pyplot as plt

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
    spread = max(float(np.abs(r - 1).max()) for row in ratios for r in row) or 1e-3
    image_handle = None
    for (model, row), row_ratios, row_axes in zip(rows, ratios, axes):
        for ax, kernel, ratio in zip(row_axes, row, row_ratios):
            ax.imshow(_grey(scenes[image].values), cmap="gray", vmin=0, vmax=1, extent=(0, 1, 1, 0))
            image_handle = ax.imshow(ratio, cmap="PuOr_r", vmin=1 - spread, vmax=1 + spread, alpha=0.65,
                                     extent=(0, 1, 1, 0), interpolation="bilinear")
            ax.set_title(f"layer {int(kernel.layer_index)}\n{int(kernel.original_height)}×{int(kernel.original_width)}")
            _bare(ax)
        row_axes[0].set_ylabel(model)
        for ax in row_axes[len(row):]:
            ax.axis("off")
    fig = axes[0, 0].figure
    bar = fig.colorbar(image_handle, ax=axes, fraction=0.03, pad=0.02)
    bar.set_label("attention ÷ uniform share")
    return fig


def plot_conv_kernels(kernels: xr.DataArray, *, n_show: int = 8, axes=None):
    """A few selected kernels of every convolution layer (rows), as stored (resized), one colour bar.

    Each kernel is divided by its largest magnitude; the row label gives the model, layer and the
    filter's original size.
    """
    import matplotlib.pyplot as plt

    conv = kernels.where((kernels.kind == "weight") & (kernels.layer_type == "convolution"), drop=True)
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
