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

import functools
import logging

import numpy as np
import pandas as pd
import xarray as xr

from .._validation import check_float, check_shape2d
from ..statistics import pearson_r
from .selection import SelectionSettings, checked_settings, select_representative_kernels

logger = logging.getLogger(__name__)

DEFAULT_SIZE = (24, 32)
"""Default kernel (height, width): the scenes' 918 × 1174 aspect at 1/38 of their size."""


def flattened_scenes(scenes: xr.DataArray, size=DEFAULT_SIZE, *, center: bool = True) -> xr.DataArray:
    """Scenes resized to ``size`` (anti-aliased), optionally minus the mean scene: ``(scene, y, x)``."""
    from skimage.transform import resize

    h, w = check_shape2d(size, "size")
    values = np.stack(
        [resize(np.asarray(s, dtype=np.float64), (h, w), anti_aliasing=True, mode="reflect") for s in scenes.values]
    )
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
    scheduler="threads",
) -> xr.DataArray:
    """T: trial-averaged response (trial dF/F, %) of every cell to every scene.

    Parameters
    ----------
    dff : xarray.DataArray
        ``(cell, presentation, time)`` from :func:`neuroalign_utils.allen.loading.load_responses`, or
        its scene traces ``(cell, scene, time)`` from :func:`neuroalign_utils.allen.responses.scene_traces`
        (the Allen chapter saves them as ``scene_traces.nc``), which spares a pass over the files.
    window : (float, float), default=(0.0, 0.5)
        Response window ``[start, end)`` in seconds from onset (non-time-resolved variant).
    time_resolved : bool, default=False
        One response per time bin ``[k·bin_width, (k+1)·bin_width)`` for ``k`` up to ``bins_end``.
    bin_width, bins_end : float
        Bin width and end of the last bin (s), time-resolved variant only.
    scheduler : str or distributed.Client, default="threads"
        Where the per-experiment tasks run when ``dff`` is the dask-backed tidy array: each reads one
        experiment, reduces it to its responses on the worker and sends back only those (cells ×
        scenes × bins). ``"local:N"``, an address or a ``Client`` run them on a ``distributed`` cluster
        (:mod:`neuroalign_utils.parallel`); ignored for scene traces, which are already reduced.

    Returns
    -------
    xarray.DataArray
        ``(cell, scene)``, or ``(cell, scene, time_bin)`` with ``time_bin`` coordinates = bin starts (s).
    """
    from .. import parallel
    from ..allen import responses as allen_responses

    parallel.check_scheduler(scheduler)
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
        raise ValueError(
            f"'window' / bins starting at {empty} s hold no sample of the time axis "
            f"({time.min():.3f}–{time.max():.3f} s)."
        )
    # averaging over trials then over time equals averaging each trial's window then over trials
    masks = np.stack(masks)
    if "presentation" in dff.dims:  # one pass over the files, one task per experiment, small results back
        task = functools.partial(_experiment_responses, reduce=allen_responses.block_reducer(dff), masks=masks)
        binned = np.concatenate(
            allen_responses.map_experiments(dff, task, scheduler=scheduler, progress=False, desc="scene responses")
        )
        cells = {name: coord for name, coord in dff.coords.items() if coord.dims == ("cell",)}
        scenes = np.unique(dff["scene"].values)
        out = xr.DataArray(binned, dims=("cell", "scene", "time_bin"), coords={**cells, "scene": scenes})
        out = out.assign_coords(time_bin=starts)
    else:
        binned = _bin_traces(dff.values, masks)
        out = dff.isel(time=0, drop=True).expand_dims(time_bin=starts, axis=-1).copy(data=binned)
        out = out.drop_vars([c for c in ("frame_offset",) if c in out.coords])
    return (out if time_resolved else out.isel(time_bin=0, drop=True)).rename("scene_response")


def _bin_traces(traces: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(cell, scene, time) traces averaged over each mask of time samples: (cell, scene, bin)."""
    return np.stack([traces[:, :, m].mean(axis=2) for m in masks], axis=-1)


def _experiment_responses(block: np.ndarray, *, reduce, masks: np.ndarray) -> np.ndarray:
    """One experiment's tidy block → its binned scene responses (a task of :func:`scene_responses`)."""
    return _bin_traces(reduce(block)[0], masks)


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
    scheduler="threads",
) -> xr.DataArray:
    """Neural kernels N = Tᵀ·FS of every cell (definitions in the module docstring).

    Parameters
    ----------
    dff : xarray.DataArray
        ``(cell, presentation, time)`` tidy dF/F (NumPy- or dask-backed, one chunk per experiment), or
        its scene traces ``(cell, scene, time)`` (see :func:`scene_responses`).
    scenes : xarray.DataArray
        ``(scene, y, x)`` scene templates in [0, 1] (:func:`neuroalign_utils.allen.loading.load_scene_templates`).
    size : int or (int, int), default=(24, 32)
        Kernel height and width.
    window, time_resolved, bin_width, bins_end
        See :func:`scene_responses`.
    center : bool, default=True
        Centre responses and scenes over scenes before the product (see module docstring).
    scheduler : str or distributed.Client, default="threads"
        Where the per-experiment tasks computing T run (see :func:`scene_responses`); the product itself
        is one small matrix multiplication in this process.

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
    responses = scene_responses(
        dff, window=window, time_resolved=time_resolved, bin_width=bin_width, bins_end=bins_end, scheduler=scheduler
    )
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
        "scenes; FS = resized scenes minus the mean scene"
        if center
        else "N = T^T FS / n_scenes (raw)",
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
    return pearson_r(a, b, axis=1, constant="nan")


def select_balanced_kernels(
    kernels: xr.DataArray,
    settings: SelectionSettings | None = None,
    *,
    random_state: int = 0,
) -> pd.DataFrame:
    """The paper's balanced selection, run separately on excitatory and inhibitory kernels.

    Kernels are z-scored (population std, as in the similarity engine) and passed, class by class, to
    :func:`neuroalign_utils.kernels.selection.select_representative_kernels` (UMAP, K-means, the
    ``per_cluster`` members nearest each centroid). A class with fewer than ``2 · n_clusters`` kernels
    is too small to embed and cluster meaningfully: all of its kernels are kept, with a warning.

    Parameters
    ----------
    kernels : xarray.DataArray
        Neural kernels ``(kernel, y, x)`` with a ``cell_class`` coordinate.
    settings : SelectionSettings, optional
        Clusters, kernels per cluster and UMAP settings (default: ``SelectionSettings()``, the paper's).
    random_state : int, default=0
        Seed of UMAP and K-means.

    Returns
    -------
    pandas.DataFrame
        One row per kernel, in order: ``cell_class, umap_x, umap_y, cluster, distance_to_centroid,
        selected``; NaN embedding / cluster −1 for classes kept whole.
    """
    import warnings

    from .similarity import zscore_kernels

    settings = checked_settings(settings)
    n_clusters = settings.n_clusters
    classes = kernels["cell_class"].values
    out = pd.DataFrame(
        {
            "cell_class": classes,
            "umap_x": np.nan,
            "umap_y": np.nan,
            "cluster": -1,
            "distance_to_centroid": np.nan,
            "selected": False,
        }
    )
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
            zscore_kernels(kernels.values[rows]), settings, random_state=random_state
        )
        for column in chosen.columns:
            out.loc[rows, column] = chosen[column].to_numpy()
    out["cluster"] = out["cluster"].astype(int)
    out["selected"] = out["selected"].astype(bool)
    return out


# --------------------------------------------------------------------------------------------------
# planted receptive fields, the balanced selection, and sentences chosen from their numbers

#: Median r between kernel and best possible kernel above which the data path counts as lossless.
LOSSLESS_R = 0.95
#: Median r with the planted RF and share of right polarity for "the kernels resemble the planted RFs".
RESEMBLE_R, RESEMBLE_POLARITY = 0.2, 0.8
#: Largest ratio between the two classes' counts that still counts as balanced.
BALANCED_RATIO = 1.25


def rf_recovery(
    kernels: xr.DataArray, planted_cells: pd.DataFrame, amplitudes: np.ndarray, scenes: xr.DataArray
) -> pd.DataFrame:
    """Each kernel against its cell's planted RF and against the best kernel the scenes allow.

    Parameters
    ----------
    kernels : xarray.DataArray
        ``(kernel, y, x)`` from :func:`neural_kernels` (coords ``cell_specimen_id``, ``area``, ``cre``,
        ``cell_class``).
    planted_cells : pandas.DataFrame
        The synthetic cache's ``planted_truth/cells.parquet``, rows in the order of ``amplitudes``.
    amplitudes : numpy.ndarray
        ``planted_truth/scene_amplitudes.npy``, (planted cell, scene).
    scenes : xarray.DataArray
        The scene templates the kernels were computed from.

    Returns
    -------
    pandas.DataFrame
        One row per kernel: ``cell_specimen_id, area, cre, cell_class, responsive, rf_shape, rf_sigma,
        r_planted_rf, r_best_kernel``. The best kernel is N = Tᵀ·FS computed from the planted,
        noise-free amplitudes.
    """
    from ..allen.synthetic import planted_rf_maps

    size = kernels.shape[1:]
    ids = kernels["cell_specimen_id"].values
    planted = planted_cells.set_index("cell_specimen_id").loc[ids]
    r_rf = planted_rf_correlation(kernels, planted_rf_maps(planted, size))
    rows = pd.Series(np.arange(len(planted_cells)), index=planted_cells["cell_specimen_id"].to_numpy())
    a = amplitudes[rows.loc[ids].to_numpy()]
    fs = flattened_scenes(scenes, size).values.reshape(scenes.sizes["scene"], -1)
    best = ((a - a.mean(axis=1, keepdims=True)) @ fs / scenes.sizes["scene"]).reshape(kernels.shape)
    return pd.DataFrame(
        {
            "cell_specimen_id": ids,
            "area": kernels["area"].values,
            "cre": kernels["cre"].values,
            "cell_class": kernels["cell_class"].values,
            "responsive": planted["responsive"].to_numpy(),
            "rf_shape": planted["rf_shape"].to_numpy(),
            "rf_sigma": planted["rf_sigma"].to_numpy(),
            "r_planted_rf": r_rf,
            "r_best_kernel": planted_rf_correlation(kernels, best),
        }
    )


def typical_recoveries(recovery: pd.DataFrame, order) -> pd.Series:
    """Per group of ``order`` (areas), the responsive cell whose r with its planted RF is nearest the
    group's median: an example of typical recovery, not the best one.

    Returns
    -------
    pandas.Series
        Group → row position in ``recovery`` (and in the kernels it was computed from).
    """
    responsive = recovery[recovery["responsive"]].reset_index().rename(columns={"index": "position"})
    picks = {}
    for group in order:
        part = responsive[responsive["area"] == group]
        if len(part):
            gap = (part["r_planted_rf"] - part["r_planted_rf"].median()).abs()
            picks[group] = int(part.loc[gap.idxmin(), "position"])
    return pd.Series(picks, dtype=int)


def centroid_kernels(selection: pd.DataFrame) -> pd.Series:
    """For each class and K-means cluster, the kernel nearest the centroid (the first one the selection keeps).

    Returns
    -------
    pandas.Series
        ``"<class> <cluster + 1>"`` → row position in ``selection``, classes in order, clusters by size
        (largest first).
    """
    picks = {}
    clustered = selection[selection["cluster"] >= 0]
    for cell_class, part in clustered.groupby("cell_class", sort=True):
        for rank, cluster in enumerate(part["cluster"].value_counts().index):
            members = part[part["cluster"] == cluster]
            picks[f"{cell_class[:3]}. {rank + 1}"] = int(
                selection.index.get_loc(members["distance_to_centroid"].idxmin())
            )
    return pd.Series(picks, dtype=int)


def describe_rf_recovery(recovery: pd.DataFrame | None) -> str:
    """Whether the kernels resemble the planted RFs, and whether the data path loses anything.

    Thresholds: the data path is lossless when the responsive cells' median r with the best
    possible kernel is at least :data:`LOSSLESS_R`; the kernels resemble the planted fields when the
    median r with them is at least :data:`RESEMBLE_R` with the right polarity for at least
    :data:`RESEMBLE_POLARITY` of the responsive cells.
    """
    from .. import report

    if recovery is None or recovery.empty:
        return "These are the reader's cells: no receptive field was planted, so none can be recovered."
    responsive = recovery[recovery["responsive"]]
    if responsive.empty:
        return "No cell of this run was planted as responsive, so no receptive field can be recovered."
    median_rf = float(responsive["r_planted_rf"].median())
    median_best = float(responsive["r_best_kernel"].median())
    polarity = float((responsive["r_planted_rf"] > 0).mean())
    unresponsive = recovery.loc[~recovery["responsive"], "r_planted_rf"]
    resemble = median_rf >= RESEMBLE_R and polarity >= RESEMBLE_POLARITY
    text = (
        f"The kernels of the {report.plural(len(responsive), 'responsive cell')} "
        f"{'resemble' if resemble else 'do not resemble'} their planted receptive fields: median r "
        f"{report.format_number(median_rf)}, with the right polarity for {report.format_percent(polarity)}"
    )
    if len(unresponsive):
        text += f" (unresponsive cells: median r {report.format_number(float(unresponsive.median()))})"
    text += ". "
    if median_best >= LOSSLESS_R:
        text += (
            f"Against the best kernel the scenes allow, the median r is {report.format_number(median_best, 3)}: "
            "the data path (files, allensdk, alignment, averaging) loses nothing, and the gap to the planted "
            "fields is the stimulus's, not the estimator's."
        )
    else:
        text += (
            f"Against the best kernel the scenes allow, the median r is only {report.format_number(median_best, 3)}: "
            "the data path loses signal before the product."
        )
    by_area = responsive.groupby("area")["r_planted_rf"].median()
    if len(by_area) > 1:
        worst = str(by_area.idxmin())
        sigma = responsive.groupby("area")["rf_sigma"].median()
        text += f" Recovery is weakest in {worst} (median r {report.format_number(float(by_area[worst]))})"
        text += (
            ", the area with the smallest planted fields, which the scenes' spatial correlations blur most."
            if worst == str(sigma.idxmin())
            else "."
        )
    return text


def selection_summary(selection: pd.DataFrame, *, n_clusters: int, per_cluster: int) -> pd.DataFrame:
    """Per class: kernels available, asked for, selected, and clusters that fell short.

    Parameters
    ----------
    selection : pandas.DataFrame
        :func:`select_balanced_kernels` output.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``cell_class``: ``kernels``, ``asked``, ``selected``, ``short_clusters`` (clusters
        with fewer than ``per_cluster`` members; −1 for a class kept whole without clustering).
    """
    rows = {}
    for cell_class, part in selection.groupby("cell_class", sort=True):
        clustered = part[part["cluster"] >= 0]
        sizes = clustered.groupby("cluster").size()
        rows[cell_class] = {
            "kernels": int(len(part)),
            "asked": int(n_clusters * per_cluster),
            "selected": int(part["selected"].sum()),
            "short_clusters": int((sizes < per_cluster).sum()) if len(clustered) else -1,
            "clusters": int(sizes.size),
            "per_cluster": int(per_cluster),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("cell_class")


def describe_selection(summary: pd.DataFrame, *, paper_per_class: int = 500) -> str:
    """How far the selection is from the paper's balanced ``paper_per_class`` + ``paper_per_class``."""
    from .. import report

    selected = summary["selected"]
    total = int(selected.sum())
    parts = []
    for cell_class, row in summary.iterrows():
        kept = "all" if row["selected"] == row["kernels"] else f"{row['selected']:,} of"
        parts.append(f"{kept} {row['kernels']:,} {cell_class}")
    text = (
        f"The selection keeps {report.join_words(parts)} kernels: {total:,} in all, against the paper's "
        f"{2 * paper_per_class:,} ({paper_per_class} + {paper_per_class})."
    )
    for cell_class, row in summary.iterrows():
        if row["selected"] >= row["asked"]:
            continue
        share = report.format_percent(row["selected"] / row["asked"])
        if row["short_clusters"] < 0:
            text += (
                f" The {cell_class} class has only {row['kernels']:,} kernels, too few to cluster: all are kept, "
                f"{share} of the {row['asked']:,} asked."
            )
        else:
            clusters = "All" if row["short_clusters"] == row["clusters"] else f"{row['short_clusters']} of the"
            text += (
                f" {clusters} {row['clusters']} {cell_class} clusters had fewer than {row['per_cluster']} "
                f"members, so that class gives {share} of the {row['asked']:,} asked."
            )
    if len(selected) == 2 and selected.min() > 0:
        ratio = float(selected.max() / selected.min())
        more, fewer = str(selected.idxmax()), str(selected.idxmin())
        if ratio <= BALANCED_RATIO:
            text += f" The two classes are balanced ({selected[more]:,} and {selected[fewer]:,}), as in the paper."
        else:
            text += (
                f" The selection is not balanced: {more} kernels outnumber {fewer} ones "
                f"{report.format_number(ratio)} to 1, where the paper has 1 to 1, so averages over all "
                f"selected kernels weigh the {more} class {report.format_number(ratio)} times as much."
            )
    elif len(selected) < 2:
        text += " Only one class is present, so no balance between classes is possible."
    return text


#: Two-sided level at which the selection's mean |r| counts as below (or above) random selections'.
DIVERSITY_ALPHA = 0.05


def _against_random(value: float, random) -> tuple[str, float, str]:
    """Where ``value`` falls among random picks' values: ("lower" | "higher" | "within", one-sided p, 95 % range)."""
    from .. import report

    random = np.asarray(random, dtype=np.float64)
    p_lower = (1 + int((random <= value).sum())) / (1 + random.size)
    p_higher = (1 + int((random >= value).sum())) / (1 + random.size)
    low, high = np.quantile(random, [DIVERSITY_ALPHA / 2, 1 - DIVERSITY_ALPHA / 2])
    span = report.format_interval(low, high, digits=3)
    if p_lower < DIVERSITY_ALPHA / 2:
        return "lower", p_lower, span
    if p_higher < DIVERSITY_ALPHA / 2:
        return "higher", p_higher, span
    return "within", min(p_lower, p_higher), span


def describe_diversity(diversity: dict, *, strata_name: str = "class") -> str:
    """Whether the selected kernels are more diverse than the population, from :func:`~.selection.selection_diversity`.

    The selection is **more diverse** when its mean pairwise |r| is lower than all but
    ``DIVERSITY_ALPHA / 2`` of the random picks of the same size per ``strata_name`` (a one-sided
    permutation p below ``DIVERSITY_ALPHA / 2``), **less diverse** when it is higher than all but that
    share, and otherwise **as diverse as** a blind pick. With picks drawn at random within each
    cluster (``random_within_clusters``), a second sentence says, by the same rule, whether keeping
    the kernels nearest each centroid makes the selection more alike, less alike or neither than the
    balance over clusters alone.
    """
    from .. import report

    chosen, everyone = float(diversity["selected"]), float(diversity["all"])
    place, p, span = _against_random(chosen, diversity["random"])
    numbers = (
        f"mean pairwise |r| {report.format_number(chosen, 3)} among the {diversity['n_selected']:,} selected "
        f"kernels against {report.format_number(everyone, 3)} among all {diversity['n_all']:,}"
    )
    blind = f"{len(diversity['random']):,} random picks of the same size per {strata_name} (95 % of them from {span})"
    if place == "lower":
        text = (
            f"The selected kernels are more diverse than the population they were picked from: {numbers}, "
            f"lower than {blind}; {report.format_p(p)}."
        )
    elif place == "higher":
        text = (
            f"The selected kernels are less diverse than the population they were picked from: {numbers}, "
            f"higher than {blind}; {report.format_p(p)}."
        )
    else:
        text = f"The selected kernels are no more diverse than a blind pick: {numbers}, within the range of {blind}."
    within = diversity.get("random_within_clusters")
    if within is not None:
        place, p, span = _against_random(chosen, within)
        picks = f"Random picks of the same number from each cluster have mean |r| from {span} (95 % of {len(within):,})"
        if place == "higher":
            text += (
                f" {picks}: keeping the kernels nearest each centroid, the paper's rule, picks kernels close to "
                f"each cluster's typical one, which makes the selection more alike than its balance over "
                f"clusters alone would ({report.format_p(p)})."
            )
        elif place == "lower":
            text += (
                f" {picks}: keeping the kernels nearest each centroid makes the selection more diverse than "
                f"its balance over clusters alone ({report.format_p(p)})."
            )
        else:
            text += f" {picks}: keeping the kernels nearest each centroid changes nothing against them."
    return text


def describe_setting(*, synthetic: bool, n_cells: int, counts: pd.Series) -> dict:
    """Why this run's numbers may differ from the paper's, per key of the paper-vs-run table."""
    population = ", ".join(f"{int(v):,} {k}" for k, v in counts.items())
    source = (
        f"synthetic cache of {n_cells:,} cells ({population})" if synthetic else f"{n_cells:,} cells ({population})"
    )
    selection = f"{source}, fewer than the paper's population"
    return {
        "n_selected": selection,
        "n_selected_excitatory": selection,
        "n_selected_inhibitory": selection,
        "umap_n_neighbors": "this chapter's parameter",
        "umap_min_dist": "this chapter's parameter",
        "n_clusters": "this chapter's parameter",
        "per_cluster": "this chapter's parameter",
        "kernel_size": "chosen here: the scenes' aspect ratio",
        "response_window": "chosen here: the 250 ms scene plus the calcium transient's rise",
    }
