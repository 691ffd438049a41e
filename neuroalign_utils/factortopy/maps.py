"""Per-vertex values on nilearn's bundled fsaverage5 surfaces (flat or inflated), both hemispheres.

Values are given for the model's vertices (hemisphere + fsaverage index below 10,242); every other
vertex of the mesh is drawn grey. Colours are computed here (argmax layer × confidence brightness, a
2-D colour map for image positions, or a scalar colour map), then painted per triangle (a
matplotlib ``PolyCollection``), so one function draws every map of the chapter with a legend or colour bar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import style
from .._validation import check_in_allowed
from .loading import FSAVERAGE5_N_VERTICES, HEMISPHERES, fsaverage5_mesh

GREY = np.array([0.82, 0.82, 0.82])


SURFACES = ("flat", "inflated")


def _surface_mesh(hemisphere: str, surface: str):
    """2-D vertex positions, the faces to draw (back to front) and a shading factor per face.

    The flat mesh is already 2-D. The inflated mesh is seen from behind (the occipital pole, where the
    visual ROIs lie, faces the viewer): orthographic projection on (x, z), faces turned away from the
    viewer are left out, the rest are painted far to near and shaded by how directly they face the viewer.
    """
    from nilearn import surface as nilearn_surface

    side = {"lh": "left", "rh": "right"}[hemisphere]
    mesh_key = {"flat": "flat", "inflated": "infl"}[surface]
    coords, faces = nilearn_surface.load_surf_mesh(fsaverage5_mesh()[f"{mesh_key}_{side}"])
    coords, faces = np.asarray(coords, dtype=np.float64), np.asarray(faces)
    if surface == "flat":
        return coords[:, :2], faces, np.ones(len(faces))
    tri = coords[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    facing = -normal[:, 1]  # the viewer looks along +y, from behind the head
    front = facing > 0
    order = np.argsort(-tri[front][:, :, 1].mean(1), kind="stable")  # far (large y) first
    return coords[:, [0, 2]], faces[front][order], (0.35 + 0.65 * facing[front])[order]


def layer_colours(argmax: np.ndarray, confidence: np.ndarray, n_layers: int, cmap: str = "turbo") -> np.ndarray:
    """RGB per vertex: hue from the argmax layer, brightness from the confidence (section 3.2)."""
    import matplotlib

    # the colour map's ends are dark in "turbo": use its bright middle so brightness reads as confidence
    base = matplotlib.colormaps[cmap](0.1 + 0.8 * np.asarray(argmax) / max(1, n_layers - 1))[:, :3]
    bright = 0.25 + 0.75 * np.clip(np.asarray(confidence), 0, 1)
    return base * bright[:, None]


def position_colours(xy: np.ndarray) -> np.ndarray:
    """RGB per vertex from an image position in [−1, 1]²: red ← x, blue ← y, green ← 1 − eccentricity."""
    xy = np.clip(np.asarray(xy, dtype=np.float64), -1, 1)
    ecc = np.clip(np.hypot(xy[:, 0], xy[:, 1]) / np.sqrt(2), 0, 1)
    return np.stack([(xy[:, 0] + 1) / 2, 1 - ecc, (xy[:, 1] + 1) / 2], 1)


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
    ax=None,
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
    ax : array of two matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    check_in_allowed(kind, "kind", ("scalar", "category", "layer", "position"))
    check_in_allowed(surface, "surface", SURFACES)
    values = np.asarray(values)
    if len(values) != len(vertices):
        raise ValueError(f"'values' has {len(values)} entries; expected {len(vertices)} (one per vertex of "
                         f"'vertices').")
    index = vertices["fsaverage_index"].to_numpy()
    if index.size and index.max() >= FSAVERAGE5_N_VERTICES:
        raise ValueError(f"'vertices' must index fsaverage5 (below {FSAVERAGE5_N_VERTICES}); the largest "
                         f"index is {index.max()}.")
    norm, palette_by_name = None, {}
    if kind == "scalar":
        norm = Normalize(np.nanmin(values) if vmin is None else vmin, np.nanmax(values) if vmax is None else vmax)
        colours = matplotlib.colormaps[cmap](norm(values))[:, :3]
    elif kind == "category":
        categories, codes = np.unique(values.astype(str), return_inverse=True)
        palette = np.array(style.category_colours(len(categories)))[:, :3]
        colours = palette[codes]
        palette_by_name = dict(zip(categories, palette))
    elif kind == "layer":
        n_layers = int(values[:, 0].max()) + 1 if n_layers is None else n_layers
        colours = layer_colours(values[:, 0].astype(int), values[:, 1], n_layers)
    else:
        colours = position_colours(values)

    if ax is None:  # a legend beside the maps widens the saved figure: leave it room in the column
        legend_outside = kind in ("category", "layer")
        fig, ax = plt.subplots(1, 2, figsize=style.book_size(3.4, width=6.4 if legend_outside else style.BOOK_WIDTH))
    fig = ax[0].figure
    for a, hemi in zip(ax, HEMISPHERES):
        xy, faces, shade = _surface_mesh(hemi, surface)
        rows = (vertices["hemisphere"] == hemi).to_numpy()
        vertex_rgb = np.tile(GREY, (len(xy), 1))
        vertex_rgb[index[rows]] = colours[rows]
        face_rgb = vertex_rgb[faces].mean(1) * shade[:, None]
        a.add_collection(_face_collection(xy, faces, face_rgb))
        if roi_outline and "roi" in vertices:
            _outline(a, xy, faces, index[rows], vertices.loc[rows, "roi"].to_numpy())
        # flat maps zoom on the ROI; the inflated view shows the whole hemisphere from behind
        inside = xy[index[rows]] if rows.any() and surface == "flat" else xy[np.unique(faces)]
        pad = 0.08 * np.ptp(inside, axis=0)
        a.set(xlim=(inside[:, 0].min() - pad[0], inside[:, 0].max() + pad[0]),
              ylim=(inside[:, 1].min() - pad[1], inside[:, 1].max() + pad[1]), aspect="equal",
              title=f"{'left' if hemi == 'lh' else 'right'} hemisphere")
        a.set_axis_off()
    if title:
        fig.suptitle(title)
    _legend(fig, ax, kind, norm, cmap, colorbar_label, n_layers, palette_by_name)
    return fig


def _face_collection(xy, faces, face_rgb):
    from matplotlib.collections import PolyCollection

    return PolyCollection(xy[faces], facecolors=face_rgb, edgecolors=face_rgb, linewidths=0.2)


def _outline(ax, xy, faces, index, roi):
    """Draw mesh edges whose two triangles lie in different ROIs (or one inside, one outside)."""
    label = np.full(len(xy), -1)
    codes, uniques = pd.factorize(pd.Series(roi))
    label[index] = codes
    tri_label = label[faces]
    face_label = np.where((tri_label == tri_label[:, :1]).all(1), tri_label[:, 0], -2)
    edges = {}
    for f, tri in enumerate(faces):
        for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])):
            edges.setdefault((min(a, b), max(a, b)), []).append(face_label[f])
    segments = [xy[[a, b]] for (a, b), labs in edges.items()
                if len(labs) == 2 and labs[0] != labs[1] and max(labs) >= 0]
    from matplotlib.collections import LineCollection

    ax.add_collection(LineCollection(segments, colors="k", linewidths=0.5))


def _legend(fig, ax, kind, norm, cmap, label, n_layers, palette_by_name):
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    if kind == "scalar":
        sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(sm, ax=list(ax), fraction=0.04, label=label)
    elif kind == "category":
        handles = [Patch(color=c, label=name) for name, c in palette_by_name.items()
                   if name != "Unknown"]
        ax[1].legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
                     ncol=1 + len(handles) // 12)
    elif kind == "layer":
        handles = [Patch(color=layer_colours(np.array([i]), np.array([1.0]), n_layers)[0], label=f"layer {i}")
                   for i in range(n_layers)]
        ax[1].legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
                     title="argmax layer\n(dim = soft)")
    elif kind == "position":
        inset = fig.add_axes([0.92, 0.35, 0.07, 0.3])
        g = np.linspace(-1, 1, 41)
        gx, gy = np.meshgrid(g, g)
        inset.imshow(position_colours(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(41, 41, 3),
                     extent=(-1, 1, 1, -1))
        inset.set_title("image\nposition")
        inset.set_xticks([-1, 1])
        inset.set_yticks([-1, 1])
    plt.figure(fig.number)
