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

import numpy as np
import pandas as pd
import xarray as xr

from .loading import cell_table

#: Response window, in presentation lengths after onset.
RESPONSE_PRESENTATIONS = 2


def trial_dff(dff: xr.DataArray) -> xr.DataArray:
    """dF/F of each presentation relative to its pre-stimulus baseline, in percent, float64 (lazy if dask)."""
    dff = dff.astype(np.float64)
    baseline = dff.where(dff["frame_offset"] < 0).mean("time")
    return 100.0 * ((1.0 + dff) / (1.0 + baseline) - 1.0)


def trial_responses(dff: xr.DataArray) -> xr.DataArray:
    """Mean trial dF/F (percent) in the response window: ``(cell, presentation)``."""
    sweep = int(dff.attrs["frames_per_presentation"])
    window = (dff["frame_offset"] >= 0) & (dff["frame_offset"] < RESPONSE_PRESENTATIONS * sweep)
    return trial_dff(dff).where(window).mean("time").rename("response")


def scene_traces(dff: xr.DataArray) -> xr.DataArray:
    """Trial-averaged trial dF/F per scene: ``(cell, scene, time)``, computed (NumPy-backed)."""
    per_trial = trial_dff(dff)
    out = per_trial.groupby("scene").mean("presentation")
    return out.compute().rename("scene_trace")


def summarize_cells(dff: xr.DataArray) -> pd.DataFrame:
    """Preferred scene, peak dF/F and time to peak of every cell (definitions in the module docstring).

    Parameters
    ----------
    dff : xarray.DataArray
        From :func:`neuroalign_utils.allen.loading.load_responses` (NumPy- or dask-backed).

    Returns
    -------
    pandas.DataFrame
        One row per cell: the cell coordinates plus ``preferred_scene``, ``peak_dff`` (percent),
        ``time_to_peak`` (s), ``image_selectivity`` (peak minus mean over scenes, over their std).
    """
    traces = scene_traces(dff)
    sweep = int(dff.attrs["frames_per_presentation"])
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

    from .loading import _data_set

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peak = NaturalScenes(_data_set(cache, experiment_id)).peak
    out = peak[["cell_specimen_id", "scene_ns", "peak_dff_ns", "time_to_peak_ns"]].copy()
    return out.astype({"cell_specimen_id": np.int64, "scene_ns": np.int64, "peak_dff_ns": float,
                       "time_to_peak_ns": float})


def compare_with_allensdk(summary: pd.DataFrame, cache, experiment_id: int) -> pd.DataFrame:
    """Our summary beside allensdk's for one experiment, one row per cell."""
    ours = summary[summary["experiment_id"] == int(experiment_id)]
    theirs = allensdk_peak(cache, experiment_id)
    return ours[["cell_specimen_id", "preferred_scene", "peak_dff", "time_to_peak"]].merge(
        theirs, on="cell_specimen_id", validate="one_to_one"
    )
