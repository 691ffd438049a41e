"""Per-trial responses and per-cell summaries of natural-scenes dF/F, and allensdk's own metrics.

Definitions (the same as allensdk's ``NaturalScenes``, so the two agree on the same files):

* **Trial dF/F** (percent): each presentation's trace relative to its own pre-stimulus baseline,
  ``100 · ((1 + dff) / (1 + mean(dff over the 4 presentation lengths before onset)) − 1)``. allensdk
  computes ``100 · (F / mean(F_baseline) − 1)`` from corrected fluorescence ``F = F0 · (1 + dff)``;
  with a constant ``F0`` (true in the synthetic files) both are identical. On real data the release's
  dF/F uses a sliding baseline, so expect small differences.
* **Trial response**: mean trial dF/F over the response window, from onset to 2 presentation lengths
  after it (0–467 ms at 30 Hz).
* **Preferred scene**: the scene with the largest response averaged over trials; **peak dF/F** is that
  average. **Time to peak**: the time of the maximum of the trial-averaged trace of the preferred scene
  over the whole window (−4 … +5 presentation lengths), relative to onset.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import xarray as xr

from .loading import cell_table

#: Response window, in presentation lengths after onset.
RESPONSE_PRESENTATIONS = 2


def trial_dff(dff: xr.DataArray) -> xr.DataArray:
    """dF/F of each presentation relative to its pre-stimulus baseline, in percent, float64 (lazy if dask)."""
    return xr.apply_ufunc(
        _trial_dff_values,
        dff,
        input_core_dims=[["time"]],
        output_core_dims=[["time"]],
        kwargs={"before_onset": dff["frame_offset"].values < 0},
        dask="parallelized",
        output_dtypes=[np.float64],
    )


def _trial_dff_values(values: np.ndarray, before_onset: np.ndarray) -> np.ndarray:
    """Trial dF/F (%) of an array ``(..., time)``: a float64 copy, transformed in place."""
    import warnings

    out = np.array(values, dtype=np.float64)
    with warnings.catch_warnings():  # a presentation an experiment lacks is all NaN: its baseline stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        baseline = np.nanmean(out[..., before_onset], axis=-1, keepdims=True)
    out += 1.0
    out /= 1.0 + baseline
    out -= 1.0
    out *= 100.0
    return out


def trial_responses(dff: xr.DataArray) -> xr.DataArray:
    """Mean trial dF/F (percent) in the response window: ``(cell, presentation)``, computed (NumPy-backed)."""
    return scene_traces_and_trial_responses(dff, progress=False)[1]


def scene_traces(dff: xr.DataArray) -> xr.DataArray:
    """Trial-averaged trial dF/F per scene: ``(cell, scene, time)``, computed (NumPy-backed)."""
    return scene_traces_and_trial_responses(dff, progress=False)[0]


#: Experiments (dask chunks) reduced at a time on dask's local schedulers, and cells at a time within
#: one, by :func:`scene_traces_and_trial_responses`: what bounds its memory. Four cells of a release-sized
#: experiment are about 12 MB of float64 temporaries, which the allocator reuses instead of asking the
#: system for fresh pages each time (16 cells' 47 MB cost a third more CPU time, measured on paper-size
#: experiments).
EXPERIMENTS_AT_A_TIME, CELLS_AT_A_TIME = 2, 4


def scene_traces_and_trial_responses(
    dff: xr.DataArray, *, scheduler="threads", progress: bool = True
) -> tuple[xr.DataArray, xr.DataArray]:
    """:func:`scene_traces` and :func:`trial_responses` together, from one pass over the data.

    A dask-backed ``dff`` (one chunk per experiment) is reduced by one task per experiment
    (:func:`map_experiments`), each file read once for both results, and within an experiment
    :data:`CELLS_AT_A_TIME` cells at a time: memory stays that of a few experiments' dF/F however
    many are loaded.

    Parameters
    ----------
    dff : xarray.DataArray
        From :func:`neuroalign_utils.allen.loading.load_responses` (NumPy- or dask-backed).
    scheduler : str or distributed.Client, default="threads"
        As in :func:`~neuroalign_utils.allen.loading.load_responses`: on a ``distributed`` cluster each
        experiment is read, cut and reduced on one worker, and only its reductions come back.
    progress : bool, default=True
        A bar over the experiments (see :mod:`neuroalign_utils.progress`).

    Returns
    -------
    (xarray.DataArray, xarray.DataArray)
        ``scene_trace`` ``(cell, scene, time)`` and ``response`` ``(cell, presentation)``, float64, with
        the cells' coordinates.
    """
    offsets = dff["frame_offset"].values
    sweep = int(dff.attrs["frames_per_presentation"])
    scenes = np.unique(dff["scene"].values)
    parts = map_experiments(dff, block_reducer(dff), scheduler=scheduler, progress=progress, desc="scene traces")
    trace_values = np.concatenate([part[0] for part in parts])
    response_values = np.concatenate([part[1] for part in parts])
    cells = {name: coord for name, coord in dff.coords.items() if coord.dims == ("cell",)}
    traces = xr.DataArray(
        trace_values,
        dims=("cell", "scene", "time"),
        name="scene_trace",
        coords={**cells, "scene": scenes, "time": dff["time"].values, "frame_offset": ("time", offsets)},
        attrs={**dff.attrs, "units": "trial dF/F (%)"},
    )
    responses = xr.DataArray(
        response_values,
        dims=("cell", "presentation"),
        name="response",
        coords={**cells, **{n: c for n, c in dff.coords.items() if c.dims == ("presentation",)}},
        attrs={"units": "trial dF/F (%)", "window_frames": [0, RESPONSE_PRESENTATIONS * sweep]},
    )
    return traces, responses


def block_reducer(dff: xr.DataArray):
    """The function taking one ``(cell, presentation, time)`` block of ``dff`` to its scene traces
    ``(cell, scene, time)`` and trial responses ``(cell, presentation)`` (picklable, for workers)."""
    offsets = dff["frame_offset"].values
    window = (offsets >= 0) & (offsets < RESPONSE_PRESENTATIONS * int(dff.attrs["frames_per_presentation"]))
    scene_of = dff["scene"].values
    return functools.partial(
        _reduce_block, before_onset=offsets < 0, window=window, scene_of=scene_of, scenes=np.unique(scene_of)
    )


def map_experiments(dff: xr.DataArray, func, *, scheduler="threads", progress: bool = True, desc: str = "experiments"):
    """``func(values)`` of each experiment's block of ``dff`` (its dask chunk along ``cell``), one task each.

    For a dask-backed ``dff`` from :func:`~neuroalign_utils.allen.loading.load_responses`, each task reads
    its experiment's file, cuts it and applies ``func`` on the same worker, so only ``func``'s (small)
    result travels. On dask's local schedulers :data:`EXPERIMENTS_AT_A_TIME` experiments run at a time
    (left to itself, dask reads files ahead of the reductions); on a ``distributed`` cluster all are
    submitted and each worker runs one at a time. A NumPy-backed ``dff`` is one block.

    Parameters
    ----------
    dff : xarray.DataArray
        ``(cell, …)``, chunked along ``cell`` only (or not at all).
    func : callable
        Of one ``(cell, …)`` NumPy block; picklable (a module-level function or a ``functools.partial``
        of one) where tasks run in other processes.
    scheduler : str or distributed.Client, default="threads"
        See :mod:`neuroalign_utils.parallel`.

    Returns
    -------
    list
        ``func``'s results, in cell order.
    """
    import dask

    from .. import parallel

    parallel.check_scheduler(scheduler)
    if not dff.chunks:
        return [func(dff.values)]
    tasks = [dask.delayed(func)(block) for block in dff.data.to_delayed().ravel()]
    with parallel.dask_scheduler(scheduler) as where:
        return parallel.compute(
            tasks, where, progress=progress, desc=desc, batch=EXPERIMENTS_AT_A_TIME, sizes=dff.chunks[0]
        )


def _reduce_block(block, *, before_onset, window, scene_of, scenes) -> tuple[np.ndarray, np.ndarray]:
    """One experiment's ``(cell, presentation, time)`` dF/F → scene traces and trial responses (NaN-skipping means)."""
    import warnings

    block = np.asarray(block)
    order = np.argsort(scene_of, kind="stable")
    starts = np.searchsorted(scene_of[order], scenes)
    traces = np.empty((block.shape[0], len(scenes), block.shape[2]))
    responses = np.empty(block.shape[:2])
    with warnings.catch_warnings():  # all-NaN presentations or scenes (missing trials) give NaN, as they should
        warnings.simplefilter("ignore", RuntimeWarning)
        for first in range(0, block.shape[0], CELLS_AT_A_TIME):
            rows = slice(first, first + CELLS_AT_A_TIME)
            trial = _trial_dff_values(block[rows], before_onset)[:, order]
            responses[rows][:, order] = np.nanmean(trial[..., window], axis=-1)
            present = ~np.isnan(trial)
            sums = np.add.reduceat(np.where(present, trial, 0.0), starts, axis=1)
            traces[rows] = sums / np.add.reduceat(present, starts, axis=1)
    return traces, responses


def summarize_cells(data: xr.DataArray) -> pd.DataFrame:
    """Preferred scene, peak dF/F and time to peak of every cell (definitions in the module docstring).

    Parameters
    ----------
    data : xarray.DataArray
        Either the tidy ``(cell, presentation, time)`` dF/F from
        :func:`neuroalign_utils.allen.loading.load_responses` (NumPy- or dask-backed), or its
        :func:`scene_traces` ``(cell, scene, time)`` when already computed.

    Returns
    -------
    pandas.DataFrame
        One row per cell: the cell coordinates plus ``preferred_scene``, ``peak_dff`` (percent),
        ``time_to_peak`` (s), ``image_selectivity`` (peak minus mean over scenes, over their std).
    """
    traces = scene_traces(data) if "presentation" in data.dims else data
    sweep = int(data.attrs["frames_per_presentation"])
    offsets = traces["frame_offset"].values
    window = (offsets >= 0) & (offsets < RESPONSE_PRESENTATIONS * sweep)
    response = traces.values[:, :, window].mean(axis=2)  # (cell, scene)
    preferred = np.nanargmax(response, axis=1)
    rows = np.arange(len(preferred))
    best_trace = traces.values[rows, preferred]  # (cell, time)
    peak_frame = offsets[np.nanargmax(best_trace, axis=1)]
    cells = cell_table(traces)
    cells["preferred_scene"] = traces["scene"].values[preferred]
    cells["peak_dff"] = response[rows, preferred]
    cells["time_to_peak"] = peak_frame / cells["frame_rate"].to_numpy()
    cells["image_selectivity"] = (cells["peak_dff"] - response.mean(axis=1)) / (response.std(axis=1) + 1e-12)
    return cells


def allensdk_peak(cache, experiment_id: int) -> pd.DataFrame:
    """allensdk's ``NaturalScenes(data_set).peak`` for one experiment (slow: minutes for big ones).

    Returns
    -------
    pandas.DataFrame
        ``cell_specimen_id, scene_ns, peak_dff_ns, time_to_peak_ns`` as numbers.
    """
    import warnings

    from allensdk.brain_observatory.natural_scenes import NaturalScenes

    from .loading import _data_set, _open_nwb

    # allensdk's own accessor of the file, whichever reader opened the cache
    data_set = _open_nwb(_data_set(cache, experiment_id).nwb_file, "allensdk")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peak = NaturalScenes(data_set).peak
    out = peak[["cell_specimen_id", "scene_ns", "peak_dff_ns", "time_to_peak_ns"]].copy()
    return out.astype(
        {"cell_specimen_id": np.int64, "scene_ns": np.int64, "peak_dff_ns": float, "time_to_peak_ns": float}
    )


def compare_with_allensdk(summary: pd.DataFrame, cache, experiment_id: int) -> pd.DataFrame:
    """Our summary beside allensdk's for one experiment, one row per cell."""
    ours = summary[summary["experiment_id"] == int(experiment_id)]
    theirs = allensdk_peak(cache, experiment_id)
    return ours[["cell_specimen_id", "preferred_scene", "peak_dff", "time_to_peak"]].merge(
        theirs, on="cell_specimen_id", validate="one_to_one"
    )


# --------------------------------------------------------------------------------------------------
# numbers and sentences for the chapter

#: A peak dF/F difference below this fraction of the largest peak counts as agreement with allensdk.
PEAK_AGREEMENT = 1e-3
#: Time-to-peak differences below this (s) are floating-point rounding, not a different frame.
ROUNDING_S = 1e-6
#: Share of responsive cells whose recovered scene must drive them near-optimally for "recovered".
NEAR_MATCH_RECOVERED = 0.9
#: Largest median time-to-peak error (in imaging frames) for "recovered".
TTP_FRAMES_RECOVERED = 1.0


def allensdk_agreement(check: pd.DataFrame, frame_rate: float, *, peak_threshold: float | None = None) -> dict:
    """How far our per-cell summaries are from allensdk's on the cells of :func:`compare_with_allensdk`.

    Parameters
    ----------
    check : pandas.DataFrame
        From :func:`compare_with_allensdk`.
    frame_rate : float
        Imaging frames per second.
    peak_threshold : float, optional
        Peak dF/F (%) below which a cell's time to peak is not compared: a cell that does not respond
        has a trace of noise, whose maximum can sit on either of two near-equal frames, and the two
        implementations' last-digit differences pick one or the other. Default: compare every cell.

    Returns
    -------
    dict
        ``n_cells``, ``scene_agreement`` (fraction of cells with the same preferred scene),
        ``max_peak_difference`` (percentage points), ``largest_peak`` (%), ``max_time_difference``
        (s) and ``max_time_difference_frames`` over the ``n_timed`` cells at or above
        ``peak_threshold``, and ``n_weak_other_frame``: how many cells below it peak on another frame.
    """
    if check.empty:
        return {
            "n_cells": 0,
            "scene_agreement": np.nan,
            "max_peak_difference": np.nan,
            "largest_peak": np.nan,
            "max_time_difference": np.nan,
            "max_time_difference_frames": np.nan,
            "n_timed": 0,
            "n_weak_other_frame": 0,
            "peak_threshold": peak_threshold,
        }
    time_difference = np.abs(check["time_to_peak"] - check["time_to_peak_ns"]).to_numpy()
    timed = (
        (check["peak_dff_ns"] >= peak_threshold).to_numpy() if peak_threshold is not None else np.ones(len(check), bool)
    )
    largest_time = float(time_difference[timed].max()) if timed.any() else np.nan
    return {
        "n_cells": int(len(check)),
        "scene_agreement": float((check["preferred_scene"] == check["scene_ns"]).mean()),
        "max_peak_difference": float(np.abs(check["peak_dff"] - check["peak_dff_ns"]).max()),
        "largest_peak": float(np.abs(check["peak_dff_ns"]).max()),
        "max_time_difference": largest_time,
        "max_time_difference_frames": largest_time * float(frame_rate),
        "n_timed": int(timed.sum()),
        "n_weak_other_frame": int((time_difference[~timed] * float(frame_rate) >= 0.5).sum()),
        "peak_threshold": peak_threshold,
    }


def describe_allensdk_agreement(agreement: dict, *, allensdk_installed: bool = True) -> str:
    """Whether our summaries agree with allensdk's ``NaturalScenes`` (scene, peak dF/F, time to peak).

    Agreement means: the same preferred scene for every cell, peak dF/F within :data:`PEAK_AGREEMENT`
    of the largest peak, and the time to peak on the same imaging frame (within half a frame) for every
    cell at or above the agreement's ``peak_threshold`` (weaker cells that differ are counted apart). An empty
    ``agreement`` says why the check was not run: allensdk is missing, or ``crosscheck=False``.
    """
    from .. import report

    n = agreement.get("n_cells", 0)
    if not n and not allensdk_installed:
        return (
            "The cross-check with allensdk's `NaturalScenes` was not run: allensdk does not install on "
            "this Python stack (it needs Python 3.11 or older and numpy below 1.24)."
        )
    if not n:
        return "The cross-check with allensdk's `NaturalScenes` was not run (`crosscheck=False`)."
    scenes = agreement["scene_agreement"]
    peak, largest = agreement["max_peak_difference"], agreement["largest_peak"]
    seconds, frames = agreement["max_time_difference"], agreement["max_time_difference_frames"]
    same_scene = scenes == 1.0
    same_peak = peak <= PEAK_AGREEMENT * max(largest, 1e-12)
    same_frame = frames < 0.5
    parts = [
        "the same preferred scene for every cell"
        if same_scene
        else f"the same preferred scene for only {report.format_percent(scenes)} of cells",
        (
            f"peak dF/F within {report.format_number(peak)} percentage points "
            f"({report.format_number(100 * peak / max(largest, 1e-12))} % of the largest peak, "
            f"{report.format_number(largest)} %)"
        )
        if same_peak
        else f"peak dF/F differing by up to {report.format_number(peak)} percentage points "
        f"(the largest peak is {report.format_number(largest)} %)",
    ]
    threshold, n_timed = agreement.get("peak_threshold"), agreement.get("n_timed", n)
    timed = (
        "every cell"
        if threshold is None or n_timed == n
        else f"every one of the {report.plural(n_timed, 'cell')} with a peak dF/F of at least "
        f"{report.format_number(threshold)} %"
    )
    if not n_timed:
        same_frame = True
        parts.append(
            f"no cell with a peak dF/F of at least {report.format_number(threshold)} % to compare times to peak on"
        )
    elif seconds < ROUNDING_S:
        parts.append(f"the same time to peak for {timed} (the differences are floating-point rounding)")
    elif same_frame:
        parts.append(f"the time to peak on the same imaging frame for {timed}")
    else:
        parts.append(
            f"times to peak up to {frames:.0f} imaging frames ({report.format_number(seconds)} s) apart "
            f"among the {report.plural(n_timed, 'cell')} with a peak dF/F of at least "
            f"{report.format_number(threshold)} %"
            if threshold is not None and n_timed < n
            else f"times to peak up to {frames:.0f} imaging frames ({report.format_number(seconds)} s) apart"
        )
    verdict = "agree with" if (same_scene and same_peak and same_frame) else "do not agree everywhere with"
    text = (
        f"On the {report.plural(n, 'cell')} of that experiment, our summaries {verdict} allensdk's: "
        f"{report.join_words(parts)}."
    )
    weak = agreement.get("n_weak_other_frame", 0)
    if weak:
        text += (
            f" For {weak} of the {n - n_timed} weaker cells allensdk puts the maximum on another frame: the trace "
            "of a cell that barely responds can have two near-equal maxima, and the two computations' last "
            "digits decide between them."
        )
    return text


def area_latencies(cells: pd.DataFrame, peak_threshold: float, areas) -> pd.DataFrame:
    """Per area: mean and s.e.m. time to peak of the strongly responsive cells, and their count.

    Parameters
    ----------
    cells : pandas.DataFrame
        :func:`summarize_cells` output.
    peak_threshold : float
        Peak dF/F (%) above which a cell counts as strongly responsive.
    areas : sequence of str
        Areas to report, in order (areas without strong cells get NaN times and count 0).

    Returns
    -------
    pandas.DataFrame
        Indexed by area: ``mean``, ``sem`` (s), ``n_strong``, ``n_cells``.
    """
    strong = cells[cells["peak_dff"] > peak_threshold]
    table = strong.groupby("area")["time_to_peak"].agg(["mean", "sem"]).reindex(list(areas))
    table["n_strong"] = strong.groupby("area").size().reindex(list(areas), fill_value=0)
    table["n_cells"] = cells.groupby("area").size().reindex(list(areas), fill_value=0)
    return table


#: The paper's area findings on the real release (Supplementary Fig. S1).
PAPER_SLOWEST_AREA, PAPER_FASTEST_AREA, PAPER_MOST_STRONG_AREA = "VISam", "VISpm", "VISp"


def describe_area_latencies(latencies: pd.DataFrame, *, peak_threshold: float, synthetic: bool) -> str:
    """Which area peaks last and first, which has the most strong cells, and whether that is the paper's order."""
    from .. import report

    timed = latencies.dropna(subset=["mean"])
    n_strong = int(latencies["n_strong"].sum())
    if timed.empty:
        return f"No cell exceeds a peak dF/F of {report.format_number(peak_threshold)} %, so no area can be timed."
    slowest, fastest = str(timed["mean"].idxmax()), str(timed["mean"].idxmin())
    most = str(latencies["n_strong"].idxmax())
    text = (
        f"{report.plural(n_strong, 'cell')} exceed a peak dF/F of {report.format_number(peak_threshold)} %. "
        f"Among them {slowest} peaks last (mean {report.format_number(timed.loc[slowest, 'mean'], 3)} s) and "
        f"{fastest} first ({report.format_number(timed.loc[fastest, 'mean'], 3)} s); {most} has the most "
        f"strongly responsive cells ({int(latencies.loc[most, 'n_strong'])})."
    )
    matches = [slowest == PAPER_SLOWEST_AREA, fastest == PAPER_FASTEST_AREA, most == PAPER_MOST_STRONG_AREA]
    paper = (
        f"the paper's order on the real release ({PAPER_SLOWEST_AREA} slowest, {PAPER_FASTEST_AREA} "
        f"fastest, {PAPER_MOST_STRONG_AREA} with the most strong cells)"
    )
    if all(matches):
        text += f" This is {paper}."
    else:
        text += f" This is not {paper}: {sum(matches)} of its 3 findings come back."
    if synthetic:
        text += (
            " The synthetic cells' latencies were planted in that order, so here the figure tests the "
            "pipeline, not the biology."
        )
    return text


def planted_recovery(cells: pd.DataFrame, planted: pd.DataFrame, amplitudes: np.ndarray) -> dict:
    """How well the summaries recover the synthetic cache's planted preferred scene and time to peak.

    Parameters
    ----------
    cells : pandas.DataFrame
        :func:`summarize_cells` output.
    planted : pandas.DataFrame
        ``planted_truth/cells.parquet`` (``cell_specimen_id, responsive, preferred_scene,
        planted_time_to_peak_s`` …), rows in the order of ``amplitudes``.
    amplitudes : numpy.ndarray
        ``planted_truth/scene_amplitudes.npy``: (planted cell, scene) planted response amplitudes.

    Returns
    -------
    dict
        Over responsive cells: ``n_responsive``, ``exact`` (fraction whose recovered preferred scene is
        the planted one), ``near`` (fraction whose recovered scene drives them at ≥ 80 % of their best
        planted amplitude), ``ttp_error`` (median absolute time-to-peak error, s), ``frame_rate``.
    """
    row_of = pd.Series(np.arange(len(planted)), index=planted["cell_specimen_id"].to_numpy())
    recovered = cells.merge(planted, on="cell_specimen_id", suffixes=("", "_planted"))
    recovered = recovered[recovered["responsive"]]
    rows = row_of.loc[recovered["cell_specimen_id"]].to_numpy()
    best = amplitudes[rows].max(axis=1)
    near = amplitudes[rows, recovered["preferred_scene"].to_numpy()] >= 0.8 * best
    return {
        "n_responsive": int(len(recovered)),
        "exact": float((recovered["preferred_scene"] == recovered["preferred_scene_planted"]).mean()),
        "near": float(near.mean()),
        "ttp_error": float(np.median(np.abs(recovered["time_to_peak"] - recovered["planted_time_to_peak_s"]))),
        "frame_rate": float(recovered["frame_rate"].median()),
    }


def describe_planted_recovery(recovery: dict | None, *, n_scenes: int) -> str:
    """Whether the preferred scenes and times to peak planted in the synthetic cache come back.

    "Recovered" needs at least :data:`NEAR_MATCH_RECOVERED` of responsive cells with a near-optimal
    recovered scene and a median time-to-peak error within :data:`TTP_FRAMES_RECOVERED` frames.
    """
    from .. import report

    if recovery is None:
        return "This cache is the reader's, with no planted truth to compare against."
    near, exact = recovery["near"], recovery["exact"]
    error_frames = recovery["ttp_error"] * recovery["frame_rate"]
    recovered = near >= NEAR_MATCH_RECOVERED and error_frames <= TTP_FRAMES_RECOVERED
    lead = "The pipeline recovers what was planted" if recovered else "The pipeline does not recover what was planted"
    if recovery["ttp_error"] < ROUNDING_S:
        timing = "the time to peak is the planted one for the median cell (the error is floating-point rounding)"
    else:
        timing = (
            f"the median error in time to peak is {report.format_number(1000 * recovery['ttp_error'])} ms "
            f"({error_frames:.1f} imaging frames)"
        )
    return (
        f"{lead}: among the {report.plural(recovery['n_responsive'], 'responsive cell')}, the recovered "
        f"preferred scene is the planted one for {report.format_percent(exact)} (chance: 1 in {n_scenes}) and "
        f"drives the cell at ≥ 80 % of its best planted response for {report.format_percent(near)}; "
        f"{timing}."
    )
