"""Neural kernels: one response-weighted stimulus map per neuron, N = Tᵀ·FS (Jalil et al., eq. 3).

What enters the product, precisely:

* **FS**, the flattened scenes: each natural-scene template (values in [0, 1]) is resized to the kernel
  size with anti-aliasing (``skimage.transform.resize``, bilinear, area-averaging when shrinking),
  flattened, and the mean scene is subtracted pixel by pixel (so FS holds each scene's *contrast*).
* **T**, the responses: for each presentation, the trial dF/F in percent relative to that trial's own
  pre-stimulus baseline (the 4 presentation lengths before onset; :func:`..allen.responses.trial_dff`),
  averaged over the response window (default 0–0.5 s after onset, i.e. the 250 ms scene and the
  calcium transient's rise), then averaged over the repeats of each scene. (The reduction runs
  experiment by experiment over the dask chunks of the tidy array; averaging over repeats first and
  over the window second gives the same numbers.) Each cell's responses are centred over scenes.
* **N = Tᵀ·FS / n_scenes**: the covariance between a cell's response and each pixel's contrast. Without
  the two centrings, every kernel would be dominated by the mean scene times the mean response; with
  them, a cell with a linear receptive field *g* gets ``N ≈ C·g`` (C the pixel covariance of the scenes),
  a smoothed copy of its receptive field. ``center=False`` gives the raw product of the paper's
  equation instead.

The time-resolved variant replaces the single window by consecutive bins after onset (default 0.25 s
wide, 0–1 s), giving one map per bin. The product is one matrix multiplication for all cells of all
experiments (cells × scenes by scenes × pixels), never a loop over cells.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr

from .._validation import check_float, check_shape2d

logger = logging.getLogger(__name__)

DEFAULT_SIZE = (24, 32)
"""Default kernel (height, width): the scenes' 918 × 1174 aspect at 1/38 of their size."""


def flattened_scenes(scenes: xr.DataArray, size=DEFAULT_SIZE, *, center: bool = True) -> xr.DataArray:
    """Scenes resized to ``size`` (anti-aliased), optionally minus the mean scene: ``(scene, y, x)``."""
    from skimage.transform import resize

    h, w = check_shape2d(size, "size")
    values = np.stack([resize(np.asarray(s, dtype=np.float64), (h, w), anti_aliasing=True, mode="reflect")
                       for s in scenes.values])
    if center:
        values = values - values.mean(axis=0, keepdims=True)
    return xr.DataArray(values, dims=("scene", "y", "x"), coords={"scene": scenes["scene"].values}, name="fs")


def scene_responses(
    dff: xr.DataArray,
    *,
    window=(0.0, 0.5),
    time_resolved: bool = False,
    bin_width: float = 0.25,
    bins_end: float = 1.0,
) -> xr.DataArray:
    """T: trial-averaged response (trial dF/F, %) of every cell to every scene.

    Parameters
    ----------
    dff : xarray.DataArray
        ``(cell, presentation, time)`` from :func:`neuroalign_utils.allen.loading.load_responses`.
    window : (float, float), default=(0.0, 0.5)
        Response window ``[start, end)`` in seconds from onset (non-time-resolved variant).
    time_resolved : bool, default=False
        One response per time bin ``[k·bin_width, (k+1)·bin_width)`` for ``k`` up to ``bins_end``.
    bin_width, bins_end : float
        Bin width and end of the last bin (s), time-resolved variant only.

    Returns
    -------
    xarray.DataArray
        ``(cell, scene)``, or ``(cell, scene, time_bin)`` with ``time_bin`` coordinates = bin starts (s).
    """
    from ..allen.responses import scene_traces

    start, end = (check_float(v, "window") for v in window)
    if not start < end:
        raise ValueError(f"'window' must be (start, end) with start < end; {window!r} was provided.")
    if time_resolved:
        bin_width = check_float(bin_width, "bin_width", minimum=1e-3)
        bins_end = check_float(bins_end, "bins_end", minimum=bin_width)
        starts = np.arange(0.0, bins_end - 1e-9, bin_width)
    else:
        starts = np.array([start])
    time = dff["time"].values
    masks = [(time >= b - 1e-9) & (time < b + (bin_width if time_resolved else end - start) - 1e-9) for b in starts]
    empty = [float(b) for b, m in zip(starts, masks) if not m.any()]
    if empty:
        raise ValueError(f"'window' / bins starting at {empty} s hold no sample of the time axis "
                         f"({time.min():.3f}–{time.max():.3f} s).")
    # averaging over trials then over time equals averaging each trial's window then over trials
    traces = scene_traces(dff)  # (cell, scene, time), trial-averaged; one pass over the data
    binned = np.stack([traces.values[:, :, m].mean(axis=2) for m in masks], axis=-1)
    out = traces.isel(time=0, drop=True).expand_dims(time_bin=starts, axis=-1).copy(data=binned)
    out = out.drop_vars([c for c in ("frame_offset",) if c in out.coords])
    return (out if time_resolved else out.isel(time_bin=0, drop=True)).rename("scene_response")


def neural_kernels(
    dff: xr.DataArray,
    scenes: xr.DataArray,
    *,
    size=DEFAULT_SIZE,
    window=(0.0, 0.5),
    time_resolved: bool = False,
    bin_width: float = 0.25,
    bins_end: float = 1.0,
    center: bool = True,
) -> xr.DataArray:
    """Neural kernels N = Tᵀ·FS of every cell (definitions in the module docstring).

    Parameters
    ----------
    dff : xarray.DataArray
        ``(cell, presentation, time)`` tidy dF/F (NumPy- or dask-backed, one chunk per experiment).
    scenes : xarray.DataArray
        ``(scene, y, x)`` scene templates in [0, 1] (:func:`neuroalign_utils.allen.loading.load_scene_templates`).
    size : int or (int, int), default=(24, 32)
        Kernel height and width.
    window, time_resolved, bin_width, bins_end
        See :func:`scene_responses`.
    center : bool, default=True
        Centre responses and scenes over scenes before the product (see module docstring).

    Returns
    -------
    xarray.DataArray
        ``kernels`` with dims ``(kernel, y, x)`` (``(kernel, time_bin, y, x)`` when time-resolved),
        float64, carrying every per-cell coordinate of ``dff`` (area, Cre line, genotype, class, …)
        along ``kernel``; attrs record the window and size.
    """
    size = check_shape2d(size, "size")
    if set(scenes["scene"].values) < set(np.unique(dff["scene"].values)):
        raise ValueError("'scenes' lacks scenes that 'dff' presents; pass the experiment's full template stack.")
    responses = scene_responses(dff, window=window, time_resolved=time_resolved, bin_width=bin_width,
                                bins_end=bins_end)
    if center:
        responses = responses - responses.mean("scene")
    fs = flattened_scenes(scenes.sel(scene=responses["scene"].values), size, center=center)
    n_scenes = fs.sizes["scene"]
    kernels = xr.dot(responses, fs, dims="scene") / n_scenes  # one matrix product for all cells
    dims = ("cell", "time_bin", "y", "x") if time_resolved else ("cell", "y", "x")
    kernels = kernels.transpose(*dims)
    kernels = kernels.rename({"cell": "kernel"}).rename("kernels")
    kernels.attrs = {
        "definition": "N = T^T FS / n_scenes; T = trial-averaged trial dF/F (%) in the window, centred over "
        "scenes; FS = resized scenes minus the mean scene" if center else "N = T^T FS / n_scenes (raw)",
        "window_s": list(window),
        "size": list(size),
        "time_resolved": int(time_resolved),
    }
    return kernels


def planted_rf_correlation(kernels: xr.DataArray, planted_maps: np.ndarray) -> np.ndarray:
    """Pearson r between each kernel and its planted receptive field (same order, same grid).

    Parameters
    ----------
    kernels : xarray.DataArray
        ``(kernel, y, x)``.
    planted_maps : numpy.ndarray
        ``(kernel, y, x)`` signed planted RFs, e.g. from
        :func:`neuroalign_utils.allen.synthetic.planted_rf_maps` on the kernel grid.

    Returns
    -------
    numpy.ndarray of shape (n_kernels,)
        NaN for a constant kernel.
    """
    a = kernels.values.reshape(kernels.sizes["kernel"], -1)
    b = np.asarray(planted_maps, dtype=np.float64).reshape(len(a), -1)
    if a.shape != b.shape:
        raise ValueError(f"'planted_maps' must match the kernels' shape {kernels.shape}; got {np.shape(planted_maps)}.")
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a**2).sum(axis=1) * (b**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=1) / denominator, np.nan)


def select_balanced_kernels(
    kernels: xr.DataArray,
    *,
    n_clusters: int = 10,
    per_cluster: int = 50,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    spread: float = 1.0,
    random_state: int = 0,
) -> pd.DataFrame:
    """The paper's balanced selection, run separately on excitatory and inhibitory kernels.

    Kernels are z-scored (population std, as in the similarity engine) and passed, class by class, to
    :func:`neuroalign_utils.kernels.selection.select_representative_kernels` (UMAP, K-means, the
    ``per_cluster`` members nearest each centroid). A class with fewer than ``2 · n_clusters`` kernels
    is too small to embed and cluster meaningfully: all of its kernels are kept, with a warning.

    Returns
    -------
    pandas.DataFrame
        One row per kernel, in order: ``cell_class, umap_x, umap_y, cluster, distance_to_centroid,
        selected``; NaN embedding / cluster −1 for classes kept whole.
    """
    import warnings

    from .selection import select_representative_kernels
    from .similarity import zscore_kernels

    classes = kernels["cell_class"].values
    out = pd.DataFrame({"cell_class": classes, "umap_x": np.nan, "umap_y": np.nan, "cluster": -1,
                        "distance_to_centroid": np.nan, "selected": False})
    for cell_class in pd.unique(classes):
        rows = np.flatnonzero(classes == cell_class)
        if rows.size < 2 * n_clusters:
            warnings.warn(
                f"Only {rows.size} {cell_class} kernels (fewer than 2 × n_clusters = {2 * n_clusters}): all are "
                "kept, without embedding or clustering.",
                stacklevel=2,
            )
            out.loc[rows, "selected"] = True
            continue
        chosen = select_representative_kernels(
            zscore_kernels(kernels.values[rows]), n_clusters=n_clusters, per_cluster=per_cluster,
            n_neighbors=n_neighbors, min_dist=min_dist, spread=spread, random_state=random_state,
        )
        for column in chosen.columns:
            out.loc[rows, column] = chosen[column].to_numpy()
    out["cluster"] = out["cluster"].astype(int)
    out["selected"] = out["selected"].astype(bool)
    return out
