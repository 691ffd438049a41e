"""Every figure of the FactorTopy lens.

Each ``plot_*`` function follows nilearn's convention: it draws into ``axes`` (one matplotlib Axes, or an
array of them where it draws several panels) or, when ``axes`` is omitted, into a new figure sized for
the book (:mod:`neuroalign_utils.style`), and returns the Figure. The surface maps take their meshes and
colours from :mod:`.maps`. :func:`view_layer_surface` is the layer map in 3-D, interactive
(:mod:`neuroalign_utils.interactive`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import style
from .._validation import check_in_allowed, check_int
from ..interactive import hex_colours
from . import analysis, maps
from .loading import FSAVERAGE5_N_VERTICES, HEMISPHERES


def _axes_grid(axes, shape: tuple) -> np.ndarray:
    """``axes`` as an array of ``shape``; a clear error when it holds another number of Axes."""
    axes = np.asarray(axes, dtype=object)
    if axes.size != int(np.prod(shape)):
        raise ValueError(
            f"'axes' must hold {int(np.prod(shape))} matplotlib Axes (one per panel); {axes.size} were given."
        )
    return axes.reshape(shape)


def plot_stimuli(images, titles, axes=None):
    """Stimuli side by side, each with its title (what it is, or its NSD id).

    Parameters
    ----------
    images : sequence of (H, W, 3) arrays in [0, 1]
    titles : sequence of str, one per image
    axes : array of matplotlib Axes, optional
        One per image; a new row at the book's width when omitted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, len(images), figsize=style.book_size(1.6))
    axes = _axes_grid(axes, (len(images),))
    for ax, image, title in zip(axes, images, titles):
        ax.imshow(image)
        ax.set_title(title)
        ax.set_axis_off()
    return axes[0].figure


def plot_training_history(history: pd.DataFrame, *, decay_steps: int, ceiling: float | None = None, axes=None):
    """Validation R² against training step, the step where the entropy term ends and the planted ceiling.

    Parameters
    ----------
    history : DataFrame
        ``step`` and ``val_r2`` (:attr:`.training.TrainingResult.history`).
    decay_steps : int
        Step at which the entropy term reaches zero (dotted line).
    ceiling : float, optional
        Best reachable R² of a synthetic subject (dashed line); omitted for a real one.
    axes : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(figsize=(4.5, 3))
    ax = axes
    ax.plot(history["step"], history["val_r2"], marker="o", ms=3, label="validation R²")
    ax.axvline(decay_steps, color="grey", ls=":", label="entropy term off")
    if ceiling is not None:
        ax.axhline(ceiling, color="k", ls="--", lw=0.8, label="planted ceiling")
    ax.set(xlabel="step", ylabel="validation R²")
    ax.legend(frameon=False)
    return ax.figure


def plot_hierarchy_slope(table: pd.DataFrame, fit: dict, axes=None):
    """ι̂ of every vertex in V1, V2&V3, OPA, EBA against its ideal level, with the fitted line.

    ``fit`` is :func:`.analysis.hierarchy_slope`'s result; ``axes`` one matplotlib Axes (a new figure when
    omitted). Returns the Figure.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(figsize=(4.5, 3.4))
    ax = axes
    family = table["roi"].map(analysis.roi_family)
    keep = family.isin(list(analysis.HIERARCHY_LEVELS))
    level = family[keep].map(analysis.HIERARCHY_LEVELS).to_numpy()
    jitter = np.random.default_rng(0).uniform(-0.03, 0.03, len(level))
    ax.scatter(level + jitter, table.loc[keep, "iota"], s=6, alpha=0.4, color="C0", label="vertices")
    x = np.linspace(0, 1, 2)
    ax.plot(x, fit["b0"] + fit["slope"] * x, color="k", label="least-squares fit")
    ax.plot(x, x, ls=":", color="grey", label="ideal (β = 1)")
    ax.set(
        xticks=[0, 1 / 3, 2 / 3, 1],
        xticklabels=["V1", "V2&V3", "OPA", "EBA"],
        ylabel=r"layer position $\hat\iota$",
        ylim=(-0.05, 1.05),
    )
    ax.legend(frameon=False, loc="upper left")
    return ax.figure


def plot_layer_recovery(recovery: pd.DataFrame, n_layers: int, axes=None):
    """Planted and chosen layer of every ROI, one row per ROI (planted: open circle; chosen: dot).

    ``recovery`` is :func:`.pipeline.ground_truth_recovery`'s table; ``axes`` one matplotlib Axes (a new
    figure when omitted). Returns the Figure.
    """
    import matplotlib.pyplot as plt

    named = recovery.drop(index="Unknown", errors="ignore")
    if axes is None:
        _, axes = plt.subplots(figsize=(4.5, 0.28 * len(named) + 0.9))
    ax = axes
    rows = np.arange(len(named))
    hit = (named["planted_layer"] == named["recovered_layer"]).to_numpy()
    ax.scatter(named["planted_layer"], rows, s=90, facecolors="none", edgecolors="k", label="planted")
    ax.scatter(named["recovered_layer"][hit], rows[hit], s=30, color="C2", label="chosen = planted")
    ax.scatter(named["recovered_layer"][~hit], rows[~hit], s=30, color="C3", label="chosen ≠ planted")
    ax.set(
        yticks=rows,
        yticklabels=named.index,
        xticks=range(n_layers),
        xlim=(-0.5, n_layers - 0.5),
        ylim=(len(named) - 0.5, -0.5),
        xlabel="layer (ROI-mean layer weights, argmax)",
    )
    ax.grid(axis="x", color="0.9")
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return ax.figure


def plot_position_scale_recovery(table: pd.DataFrame, truth: pd.DataFrame, axes=None):
    """Planted vs chosen image position (mostly local vertices) and planted vs chosen global share.

    ``axes``: two matplotlib Axes (a new figure at the book's width when omitted). Returns the Figure.
    """
    import matplotlib.pyplot as plt

    created = axes is None
    if created:
        _, axes = plt.subplots(1, 2, figsize=style.book_size(3.2))
    a1, a2 = _axes_grid(axes, (2,))
    local = truth["scale"].to_numpy() < 0.3
    for axis, (col, true_col) in enumerate((("space_x", "pos_x"), ("space_y", "pos_y"))):
        a1.scatter(
            truth[true_col][local],
            table[col][local],
            s=4,
            alpha=0.4,
            color=f"C{axis}",
            label=("x" if axis == 0 else "y"),
        )
    a1.plot([-1, 1], [-1, 1], color="grey", ls=":")
    a1.set(xlabel="planted position", ylabel="space selector", title="Position (planted scale < 0.3)")
    a1.legend(frameon=False)
    a2.scatter(truth["scale"], table["scale"], s=4, alpha=0.4, color="C2")
    a2.plot([0, 1], [0, 1], color="grey", ls=":")
    a2.set(xlabel="planted global share", ylabel="scale selector", title="Scale per vertex")
    if created:
        a1.figure.tight_layout()
    return a1.figure


def plot_top_channels(images, rgb_by_roi: dict, axes=None):
    """Each ROI's top-3 read-out components as RGB over the local tokens, beside the image.

    Parameters
    ----------
    images : sequence of (H, W, 3) arrays in [0, 1]
    rgb_by_roi : dict
        ROI → one (g, g, 3) image per image (:func:`.analysis.top_channel_image`).
    axes : array of matplotlib Axes, optional
        ``len(images)`` rows × ``len(rgb_by_roi) + 1`` columns; a new figure at the book's width when
        omitted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    n_img, n_roi = len(images), len(rgb_by_roi)
    created = axes is None
    if created:
        panel = style.BOOK_WIDTH / (n_roi + 1)
        _, axes = plt.subplots(n_img, n_roi + 1, figsize=(style.BOOK_WIDTH, panel * n_img + 0.3), squeeze=False)
    axes = _axes_grid(axes, (n_img, n_roi + 1))
    fig = axes[0, 0].figure
    for i, img in enumerate(images):
        axes[i, 0].imshow(np.clip(img, 0, 1))
        for j, (roi, rgbs) in enumerate(rgb_by_roi.items(), start=1):
            axes[i, j].imshow(rgbs[i], interpolation="nearest")
            if i == 0:
                axes[i, j].set_title(roi)
    axes[0, 0].set_title("image")
    for a in axes.ravel():
        a.set_axis_off()
    if created:
        fig.tight_layout()
    return fig


def plot_layer_predictability(matrices: dict, axes=None):
    """Heat maps of :func:`.features.cross_layer_predictability`, one per labelled backbone.

    ``matrices``: label → (L, L) matrix; ``axes``: one matplotlib Axes per matrix (a new figure at the
    book's width when omitted). Returns the Figure.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, len(matrices), figsize=style.book_size(3.2, 3.3 * len(matrices) + 0.8), squeeze=False)
    axes = _axes_grid(axes, (len(matrices),))
    fig = axes[0].figure
    for a, (label, mat) in zip(axes, matrices.items()):
        im = a.imshow(mat, vmin=0, vmax=1, cmap="magma")
        for (i, j), v in np.ndenumerate(mat):
            a.text(j, i, f"{v:.2f}", ha="center", va="center", color="w" if v < 0.6 else "k")
        a.set(
            title=label,
            xlabel="predictor layer",
            ylabel="read-out of layer",
            xticks=range(len(mat)),
            yticks=range(len(mat)),
        )
    fig.colorbar(im, ax=list(axes), fraction=0.03, label="held-out R²")
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
    *heat_maps, curve = axes
    for a, colour, (key, mat) in zip(heat_maps, style.category_colours(len(matrices)), matrices.items()):
        label = labels.get(key, key)
        im = a.imshow(mat, vmin=0, vmax=1, cmap="magma")
        ticks = range(0, len(mat), max(1, len(mat) // 4))
        a.set(title=label, xlabel="predictor layer", xticks=ticks, yticks=ticks)
        rows = by_distance[by_distance["model"] == key]
        curve.plot(rows["layers_apart"], rows["r2"], marker="o", ms=3, color=colour, label=label)
        curve.fill_between(rows["layers_apart"], rows["ci_low"], rows["ci_high"], color=colour, alpha=0.25, lw=0)
    heat_maps[0].set_ylabel("read-out of layer")
    curve.set(xlabel="layers apart", ylabel="mean held-out R²", ylim=(min(0.0, curve.get_ylim()[0]), 1.02))
    curve.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    curve.legend(frameon=False, loc="lower left")
    fig = curve.figure
    if colour_bar_axis is not None:
        fig.colorbar(im, cax=colour_bar_axis, label="held-out R²")
    else:
        fig.colorbar(im, ax=list(heat_maps), fraction=0.04, pad=0.03, label="held-out R²")
    return fig


def plot_surface_maps(
    values,
    vertices: pd.DataFrame,
    *,
    kind: str = "scalar",
    surface: str = "flat",
    title: str = "",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    n_layers: int | None = None,
    roi_outline: bool = True,
    colorbar_label: str = "",
    axes=None,
):
    """Draw per-vertex values on both hemispheres' fsaverage5 flat maps (or inflated, seen from behind).

    Parameters
    ----------
    values : array-like
        ``kind="scalar"``: (N,) numbers; ``"category"``: (N,) labels (ROI names, cluster ids), drawn
        with a qualitative palette and a legend; ``"layer"``: (N, 2) argmax layer and confidence;
        ``"position"``: (N, 2) image x, y in [−1, 1]. N = ``len(vertices)``.
    vertices : DataFrame
        ``hemisphere`` and ``fsaverage_index`` (below 10,242) of each value, and optionally ``roi``.
    kind : {"scalar", "category", "layer", "position"}
    surface : {"flat", "inflated"}, default="flat"
        nilearn's flattened cortex, or the inflated surface seen from behind (occipital pole in front).
    title, cmap, vmin, vmax, colorbar_label
        Scalar maps' colour scale.
    n_layers : int, optional
        Number of layers (``kind="layer"``), default max argmax + 1.
    roi_outline : bool
        Draw the borders between ROIs.
    axes : array of two matplotlib Axes, optional
        Left and right hemisphere; a new figure at the book's width when omitted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PolyCollection

    check_in_allowed(kind, "kind", maps.KINDS)
    check_in_allowed(surface, "surface", maps.SURFACES)
    values = np.asarray(values)
    if len(values) != len(vertices):
        raise ValueError(
            f"'values' has {len(values)} entries; expected {len(vertices)} (one per vertex of 'vertices')."
        )
    index = vertices["fsaverage_index"].to_numpy()
    if index.size and index.max() >= FSAVERAGE5_N_VERTICES:
        raise ValueError(
            f"'vertices' must index fsaverage5 (below {FSAVERAGE5_N_VERTICES}); the largest index is {index.max()}."
        )
    colours = maps.vertex_colours(values, kind, cmap=cmap, vmin=vmin, vmax=vmax, n_layers=n_layers)

    if axes is None:  # a legend beside the maps widens the saved figure: leave it room in the column
        legend_outside = kind in ("category", "layer")
        _, axes = plt.subplots(1, 2, figsize=style.book_size(3.4, width=6.4 if legend_outside else style.BOOK_WIDTH))
    axes = _axes_grid(axes, (2,))
    fig = axes[0].figure
    for a, hemi in zip(axes, HEMISPHERES):
        xy, faces, shade = maps.surface_mesh(hemi, surface)
        rows = (vertices["hemisphere"] == hemi).to_numpy()
        vertex_rgb = np.tile(maps.GREY, (len(xy), 1))
        vertex_rgb[index[rows]] = colours.rgb[rows]
        # flat maps zoom on the ROI; the inflated view shows the whole hemisphere from behind
        inside = xy[index[rows]] if rows.any() and surface == "flat" else xy[np.unique(faces)]
        pad = 0.08 * np.ptp(inside, axis=0)
        low, high = inside.min(0) - pad, inside.max(0) + pad
        corners = xy[faces]
        # faces wholly outside the window are clipped away: not building them saves most of a zoomed map's time
        seen = ((corners.max(1) >= low) & (corners.min(1) <= high)).all(1)
        face_rgb = vertex_rgb[faces[seen]].mean(1) * shade[seen, None]
        a.add_collection(PolyCollection(corners[seen], facecolors=face_rgb, edgecolors=face_rgb, linewidths=0.2))
        if roi_outline and "roi" in vertices:
            borders = maps.roi_borders(xy, faces, index[rows], vertices.loc[rows, "roi"].to_numpy())
            a.add_collection(LineCollection(borders, colors="k", linewidths=0.5))
        a.set(
            xlim=(low[0], high[0]),
            ylim=(low[1], high[1]),
            aspect="equal",
            title=f"{'left' if hemi == 'lh' else 'right'} hemisphere",
        )
        a.set_axis_off()
    if title:
        fig.suptitle(title)
    _surface_legend(fig, axes, kind, colours, cmap, colorbar_label)
    return fig


#: The per-vertex quantities of a fitted selector table that :func:`plot_selector_map` draws, with what each shows.
SELECTOR_MAPS = {
    "layer": "layer selector: hue = the layer with the largest weight, brightness = confidence (dim = a soft choice)",
    "position": "space selector: the image position each vertex reads (red ← x, blue ← y, green ← near the centre)",
    "scale": "scale selector: the global-token share of each vertex (0 local, 1 global)",
    "iota": "layer position ι̂ = Σ_l (l − 1)/(L − 1) · ω_l of each vertex (0 first layer, 1 last)",
    "r2": "test R² of each vertex",
}


def plot_selector_map(
    table: pd.DataFrame,
    quantity: str,
    *,
    n_layers: int | None = None,
    r2_max: float | None = None,
    surface: str = "flat",
    axes=None,
):
    """One quantity of a fitted FactorTopy model on the cortex (:func:`plot_surface_maps` with its colouring).

    Parameters
    ----------
    table : DataFrame
        The selector table of a fit (:func:`neuroalign_utils.factortopy.analysis.selector_table` with a
        ``test_r2`` column, ``pipeline.Fit.table``): one row per vertex, with its ``hemisphere``,
        ``fsaverage_index`` and ``roi``.
    quantity : {"layer", "position", "scale", "iota", "r2"}
        See :data:`SELECTOR_MAPS`.
    n_layers : int, optional
        Number of layers of the backbone (``"layer"``); by default the table's ``layer_*`` columns.
    r2_max : float, optional
        Top of the R² colour scale; by default the largest R², at least 0.1.
    surface : {"flat", "inflated"}
    axes : array of two matplotlib Axes, optional
    """
    check_in_allowed(quantity, "quantity", SELECTOR_MAPS)
    common = dict(surface=surface, axes=axes)
    if quantity == "layer":
        if n_layers is None:
            n_layers = sum(str(c).startswith("layer_") and str(c)[6:].isdigit() for c in table.columns)
        values = table[["layer_argmax", "confidence"]].to_numpy()
        return plot_surface_maps(values, table, kind="layer", n_layers=n_layers, **common)
    if quantity == "position":
        return plot_surface_maps(table[["space_x", "space_y"]].to_numpy(), table, kind="position", **common)
    if quantity == "scale":
        scale = table["scale"].to_numpy()
        return plot_surface_maps(scale, table, vmin=0, vmax=1, cmap="coolwarm", colorbar_label="global share", **common)
    if quantity == "iota":
        iota = table["iota"].to_numpy()
        return plot_surface_maps(iota, table, vmin=0, vmax=1, cmap="turbo", colorbar_label="layer position ι̂", **common)
    r2 = table["test_r2"].to_numpy()
    top = max(0.1, float(np.nanmax(r2))) if r2_max is None else r2_max
    return plot_surface_maps(r2, table, vmin=0, vmax=top, cmap="inferno", colorbar_label="test R²", **common)


def _surface_legend(fig, axes, kind: str, colours: maps.VertexColours, cmap: str, label: str) -> None:
    """The colour bar (scalar), legend (category, layer) or position key of a surface map."""
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if kind == "scalar":
        sm = matplotlib.cm.ScalarMappable(norm=colours.norm, cmap=cmap)
        fig.colorbar(sm, ax=list(axes), fraction=0.04, label=label)
    elif kind == "category":
        handles = [Patch(color=c, label=name) for name, c in colours.palette.items() if name != "Unknown"]
        axes[1].legend(
            handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, ncol=1 + len(handles) // 12
        )
    elif kind == "layer":
        n_layers = colours.n_layers
        handles = [
            Patch(color=maps.layer_colours(np.array([i]), np.array([1.0]), n_layers)[0], label=f"layer {i}")
            for i in range(n_layers)
        ]
        axes[1].legend(
            handles=handles,
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            frameon=False,
            title="argmax layer\n(dim = soft)",
        )
    elif kind == "position":
        inset = fig.add_axes([0.92, 0.35, 0.07, 0.3])
        g = np.linspace(-1, 1, 41)
        gx, gy = np.meshgrid(g, g)
        inset.imshow(
            maps.position_colours(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(41, 41, 3), extent=(-1, 1, 1, -1)
        )
        inset.set_title("image\nposition")
        inset.set_xticks([-1, 1])
        inset.set_yticks([-1, 1])
    plt.figure(fig.number)


def view_layer_surface(
    values,
    vertices: pd.DataFrame,
    *,
    n_layers: int | None = None,
    title: str = "",
    height: int = 520,
    include_plotlyjs: bool = True,
):
    """The layer selector on both inflated fsaverage5 hemispheres, in 3-D: drag to turn, scroll to zoom.

    The colours are those of ``plot_surface_maps(..., kind="layer")``: hue = the layer with the largest
    weight, brightness = confidence; cortex outside the subject's vertices is grey (darker in sulci).
    Hovering a vertex names its hemisphere, fsaverage index, ROI, layer and confidence. The view opens
    from behind, as the static inflated map. The figure carries plotly.js inline (no network).

    Parameters
    ----------
    values : array-like, shape (N, 2)
        Argmax layer and confidence in [0, 1] of each vertex, N = ``len(vertices)``.
    vertices : DataFrame
        ``hemisphere`` ("lh" or "rh") and ``fsaverage_index`` (below 10,242) of each value, and
        optionally ``roi``.
    n_layers : int, optional
        Number of layers, default the largest argmax + 1.
    title : str, optional
    height : int, default=520
        Height in pixels (the width follows the page's column).
    include_plotlyjs : bool, default=True
        False when an earlier interactive figure on the same page already carries plotly.js.

    Returns
    -------
    neuroalign_utils.interactive.InteractiveFigure
        Its ``html`` is shown by a notebook and embedded by the book; ``figure`` is the plotly Figure.
    """
    import plotly.graph_objects as go

    from ..interactive import InteractiveFigure

    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != 2 or len(values) != len(vertices):
        raise ValueError(
            f"'values' must have shape ({len(vertices)}, 2): argmax layer and confidence of each vertex of "
            f"'vertices'; got shape {values.shape}."
        )
    hemisphere = vertices["hemisphere"].to_numpy().astype(str)
    unknown = sorted(str(h) for h in set(hemisphere) - set(HEMISPHERES))  # plain str: numpy 2 shows np.str_(...)
    if unknown:
        raise ValueError(f"'vertices' column 'hemisphere' must hold {list(HEMISPHERES)}; got {unknown}.")
    index = vertices["fsaverage_index"].to_numpy().astype(int)
    if index.size and (index.min() < 0 or index.max() >= FSAVERAGE5_N_VERTICES):
        raise ValueError(
            f"'vertices' must index fsaverage5 (0 to {FSAVERAGE5_N_VERTICES - 1}); got {index.min()} to {index.max()}."
        )
    argmax = values[:, 0].astype(int)
    n_layers = int(argmax.max()) + 1 if n_layers is None else check_int(n_layers, "n_layers", minimum=1)
    if argmax.size and (argmax.min() < 0 or argmax.max() >= n_layers):
        raise ValueError(f"'values[:, 0]' (argmax layer) must lie in 0 … {n_layers - 1} ('n_layers' − 1).")
    colours = maps.layer_colours(argmax, values[:, 1], n_layers)
    roi = vertices["roi"].to_numpy().astype(str) if "roi" in vertices else np.full(len(vertices), "–")

    coords, faces, rgb, labels = [], [], [], []
    offset = 0
    for hemi in HEMISPHERES:
        xyz, tri = maps.mesh_3d(hemi, "inflated")
        # the inflated hemispheres are each centred on 0: set them side by side, 10 mm apart
        xyz = xyz - [xyz[:, 0].max() + 5, 0, 0] if hemi == "lh" else xyz - [xyz[:, 0].min() - 5, 0, 0]
        vertex_rgb = np.where((maps.sulcal_depth(hemi) > 0)[:, None], 0.8 * maps.GREY, maps.GREY)
        vertex_label = np.full(len(xyz), "", dtype=object)
        rows = hemisphere == hemi
        vertex_rgb[index[rows]] = colours[rows]
        vertex_label[index[rows]] = [
            f"{'left' if hemi == 'lh' else 'right'} {i} · {r}<br>layer {layer} · confidence {c:.2f}"
            for i, r, layer, c in zip(index[rows], roi[rows], argmax[rows], values[rows, 1])
        ]
        coords.append(xyz)
        faces.append(tri + offset)
        rgb.append(vertex_rgb)
        labels.append(vertex_label)
        offset += len(xyz)
    xyz, tri, rgb, labels = np.concatenate(coords), np.concatenate(faces), np.concatenate(rgb), np.concatenate(labels)
    # two meshes: the subject's triangles, which answer a hover, and the rest of the cortex, which does not
    in_subject = (labels[tri] != "").any(axis=1)
    meshes = [
        _mesh_trace(xyz, tri[~in_subject], rgb, name="cortex", hoverinfo="skip"),
        _mesh_trace(xyz, tri[in_subject], rgb, labels, name="subject", hovertemplate="%{text}<extra></extra>"),
    ]
    # the legend: one entry per layer, at full confidence (plotly has no legend for vertex colours)
    keys = [
        go.Scatter3d(
            x=[None],
            y=[None],
            z=[None],
            mode="markers",
            marker=dict(size=8, symbol="square", color=colour),
            name=f"layer {layer}",
        )
        for layer, colour in enumerate(
            hex_colours(maps.layer_colours(np.arange(n_layers), np.ones(n_layers), n_layers))
        )
    ]
    hidden = dict(visible=False, showbackground=False)
    figure = go.Figure(
        [*meshes, *keys],
        layout=dict(
            title=dict(text=title),
            height=check_int(height, "height", minimum=200),
            margin=dict(l=0, r=0, t=30 if title else 0, b=0),
            # below the mode bar (top right), which would cover the legend's title
            legend=dict(
                title=dict(text="argmax layer<br>(dim = soft)"),
                y=0.9,
                yanchor="top",
                itemclick=False,
                itemdoubleclick=False,
            ),
            scene=dict(
                xaxis=hidden,
                yaxis=hidden,
                zaxis=hidden,
                aspectmode="data",
                camera=dict(eye=dict(x=0.0, y=-1.5, z=0.2), up=dict(x=0, y=0, z=1)),
            ),
        ),
    )
    return InteractiveFigure(figure, include_plotlyjs=include_plotlyjs)


def _mesh_trace(xyz, faces, rgb, text=None, **options):
    """A plotly Mesh3d of ``faces`` holding only the vertices they use (``text``: a hover label per vertex)."""
    import plotly.graph_objects as go

    used, faces = np.unique(faces, return_inverse=True)
    faces = faces.reshape(-1, 3)
    # a hemisphere pair has 20,484 vertices: 16-bit indices take half the bytes of the default 32 on the page
    index = faces.astype(np.uint16 if len(used) < 2**16 else np.uint32)
    return go.Mesh3d(
        x=xyz[used, 0].astype(np.float32),
        y=xyz[used, 1].astype(np.float32),
        z=xyz[used, 2].astype(np.float32),
        i=index[:, 0],
        j=index[:, 1],
        k=index[:, 2],
        vertexcolor=hex_colours(rgb[used]),
        text=None if text is None else text[used],
        lighting=dict(ambient=0.55, diffuse=0.6, specular=0.05, roughness=0.9),
        showlegend=False,
        **options,
    )
