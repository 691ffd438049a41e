"""What the surface maps draw: nilearn's bundled fsaverage5 meshes (flat or inflated) and per-vertex colours.

Values are given for the model's vertices (hemisphere + fsaverage index below 10,242); every other
vertex of the mesh is drawn grey. This module computes the 2-D mesh seen on the page
(:func:`surface_mesh`), the colour of every vertex (:func:`vertex_colours`: argmax layer × confidence
brightness, a 2-D colour map for image positions, a qualitative palette for categories, or a scalar
colour map) and the borders between ROIs (:func:`roi_borders`);
:func:`neuroalign_utils.factortopy.figures.plot_surface_maps` paints them per triangle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import style
from .loading import fsaverage5_mesh

GREY = np.array([0.82, 0.82, 0.82])


SURFACES = ("flat", "inflated")


def mesh_3d(hemisphere: str, surface: str):
    """Vertex coordinates (10,242, 3) in mm and faces (20,480, 3) of one hemisphere's fsaverage5 mesh."""
    from nilearn import surface as nilearn_surface

    side = {"lh": "left", "rh": "right"}[hemisphere]
    mesh_key = {"flat": "flat", "inflated": "infl"}[surface]
    coords, faces = nilearn_surface.load_surf_mesh(fsaverage5_mesh()[f"{mesh_key}_{side}"])
    return np.asarray(coords, dtype=np.float64), np.asarray(faces)


def sulcal_depth(hemisphere: str) -> np.ndarray:
    """FreeSurfer's sulcal depth of every fsaverage5 vertex of one hemisphere (positive: in a sulcus)."""
    from nilearn import surface as nilearn_surface

    side = {"lh": "left", "rh": "right"}[hemisphere]
    return np.asarray(nilearn_surface.load_surf_data(fsaverage5_mesh()[f"sulc_{side}"]))


def surface_mesh(hemisphere: str, surface: str):
    """2-D vertex positions, the faces to draw (back to front) and a shading factor per face.

    The flat mesh is already 2-D. The inflated mesh is seen from behind (the occipital pole, where the
    visual ROIs lie, faces the viewer): orthographic projection on (x, z), faces turned away from the
    viewer are left out, the rest are painted far to near and shaded by how directly they face the viewer.
    """
    coords, faces = mesh_3d(hemisphere, surface)
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


#: What :func:`vertex_colours` can colour by.
KINDS = ("scalar", "category", "layer", "position")


@dataclass
class VertexColours:
    """RGB of every vertex and what its legend or colour bar needs.

    Attributes
    ----------
    rgb : ndarray, (N, 3)
    norm : matplotlib.colors.Normalize or None
        ``kind="scalar"``: the colour scale.
    palette : dict
        ``kind="category"``: category → RGB.
    n_layers : int or None
        ``kind="layer"``: the number of layers coloured.
    """

    rgb: np.ndarray
    norm: object = None
    palette: dict = field(default_factory=dict)
    n_layers: int | None = None


def vertex_colours(
    values: np.ndarray,
    kind: str,
    *,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    n_layers: int | None = None,
) -> VertexColours:
    """Colour (N,) or (N, 2) ``values`` as :func:`~neuroalign_utils.factortopy.figures.plot_surface_maps`
    describes for each ``kind``."""
    import matplotlib
    from matplotlib.colors import Normalize

    if kind == "scalar":
        norm = Normalize(np.nanmin(values) if vmin is None else vmin, np.nanmax(values) if vmax is None else vmax)
        return VertexColours(matplotlib.colormaps[cmap](norm(values))[:, :3], norm=norm)
    if kind == "category":
        categories, codes = np.unique(values.astype(str), return_inverse=True)
        palette = np.array(style.category_colours(len(categories)))[:, :3]
        return VertexColours(palette[codes], palette=dict(zip(categories, palette)))
    if kind == "layer":
        n_layers = int(values[:, 0].max()) + 1 if n_layers is None else n_layers
        return VertexColours(layer_colours(values[:, 0].astype(int), values[:, 1], n_layers), n_layers=n_layers)
    return VertexColours(position_colours(values))


def roi_borders(xy: np.ndarray, faces: np.ndarray, index: np.ndarray, roi) -> list:
    """Mesh edges (2 × 2 arrays of ``xy``) whose two triangles lie in different ROIs (or one inside, one
    outside the ROIs); ``index`` are the mesh vertices labelled by ``roi``."""
    label = np.full(len(xy), -1)
    codes, _ = pd.factorize(pd.Series(roi))
    label[index] = codes
    tri_label = label[faces]
    face_label = np.where((tri_label == tri_label[:, :1]).all(1), tri_label[:, 0], -2)
    # every face's three edges as (low, high) vertex pairs; an edge drawn is shared by exactly two faces
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    edge_label = np.tile(face_label, 3)
    key = edges[:, 0].astype(np.int64) * len(xy) + edges[:, 1]
    order = np.argsort(key, kind="stable")
    _, first, count = np.unique(key[order], return_index=True, return_counts=True)
    first = first[count == 2]
    one, other = edge_label[order[first]], edge_label[order[first + 1]]
    drawn = order[first[(one != other) & (np.maximum(one, other) >= 0)]]
    return list(xy[edges[drawn]])
