"""Open a Brain Observatory cache and load natural-scenes dF/F into a tidy xarray.

The reader's path is the same for the real release and the synthetic cache:

1. :func:`open_cache` returns allensdk's ``BrainObservatoryCache`` where allensdk installs (Python ≤ 3.11
   with numpy < 1.24), else the package's own reader of the same folder,
   :class:`~neuroalign_utils.allen.observatory.ObservatoryCache` (h5py; it downloads from the Allen
   Brain Observatory over HTTP when online). ``reader=`` picks one explicitly. With allensdk, offline
   (the default when the cache folder already holds the metadata files), it is given an
   :class:`OfflineBrainObservatoryApi`: the one RMA query ``get_ophys_experiments()`` always makes
   (``all_eye_mapping_files``) is answered with "no eye-mapping files", and every download is refused
   with a message naming the missing experiment and the cache folder. Online, the stock
   ``BrainObservatoryApi`` is used.
2. :func:`select_experiments` lists the ``three_session_B`` experiments by area and Cre line.
3. :func:`load_responses` cuts each cell's dF/F around every natural-scene presentation and returns a
   ``(cell, presentation, time)`` DataArray, one dask task per experiment: on dask's threads, or on a
   ``distributed`` cluster (``scheduler="local:N"`` or a scheduler address; :mod:`neuroalign_utils.parallel`).
   Tasks are given the experiment's id and the cache's manifest path, never the cache object or any
   array: each opens its own file.

Presentations are put on a common grid, sorted by scene then by repeat (``trial``), so cells of
different experiments (each with its own random order) share one ``presentation`` axis; a trial an
experiment lacks is NaN. Blank presentations (scene −1) are left out. The time window runs from
4 presentation lengths before onset to 5 after (−28 … +34 frames at 30 Hz), the window allensdk's
``NaturalScenes`` uses, so the per-cell summaries in :mod:`.responses` can be checked against it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .. import parallel
from .._validation import check_in_allowed, check_int, check_subset
from . import metadata, observatory
from .observatory import AllenOfflineError  # noqa: F401  (raised by both readers; part of this API)

logger = logging.getLogger(__name__)

NATURAL_SCENES = "natural_scenes"
SESSION_TYPE = "three_session_B"
#: frames before onset / after onset, in units of the presentation length (allensdk's convention)
BASELINE_PRESENTATIONS = 4
AFTER_PRESENTATIONS = 5


@contextlib.contextmanager
def quiet_allensdk_imports():
    """Import allensdk without the deprecation notices it raises about its own code.

    allensdk 2.16 imports ``pkg_resources`` (setuptools' "pkg_resources is deprecated" UserWarning),
    declares its marshmallow schemas in the style marshmallow 4 drops, and imports
    ``scipy.ndimage.filters``. These notices are raised once, when allensdk is first imported; they
    concern allensdk's own code and nothing this package reads from it, so they are silenced for
    that import only (every other warning still shows).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(allensdk|marshmallow)(\.|$)")
        warnings.filterwarnings("ignore", message=".*scipy.ndimage.filters", category=DeprecationWarning)
        yield


class CorruptExperimentError(OSError):
    """An experiment's NWB file cannot be read; the message names the file."""


def _offline_api_class():
    with quiet_allensdk_imports():
        from allensdk.api.queries.brain_observatory_api import BrainObservatoryApi

    class OfflineBrainObservatoryApi(BrainObservatoryApi):
        """``BrainObservatoryApi`` that answers the eye-mapping query locally and refuses downloads."""

        def __init__(self, cache_dir):
            super().__init__()
            self.cache_dir = str(cache_dir)

        def template_query(self, template_name, entry_name, **kwargs):
            if (template_name, entry_name) == ("brain_observatory_queries", "all_eye_mapping_files"):
                return []  # no eye-mapping files are known offline: fail_eye_tracking is True
            what = kwargs.get("ophys_experiment_id")
            subject = f"experiment {what}" if what is not None else f"the query '{entry_name}'"
            raise AllenOfflineError(
                f"{subject} is not in the cache at {self.cache_dir}; run online or download it first "
                "(open_cache(..., offline=False) uses allensdk's stock API)."
            )

        def retrieve_file_over_http(self, url, file_path, zipped=False):
            raise AllenOfflineError(
                f"{Path(file_path).name} is not in the cache at {self.cache_dir}; run online or download it "
                "first (open_cache(..., offline=False) uses allensdk's stock API)."
            )

    return OfflineBrainObservatoryApi


def offline_api(cache_dir):
    """An offline ``BrainObservatoryApi`` for the cache in ``cache_dir`` (see module docstring)."""
    return _offline_api_class()(cache_dir)


#: Where both readers download the Brain Observatory's metadata and NWB files from.
ALLEN_API_HOST = observatory.API_HOST


def allen_api_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to :data:`ALLEN_API_HOST` (port 80) opens within ``timeout`` seconds."""
    import socket

    try:
        with socket.create_connection((ALLEN_API_HOST, 80), timeout=timeout):
            return True
    except OSError:
        return False


#: Readers of a Brain Observatory cache accepted by :func:`open_cache`.
READERS = ("auto", "allensdk", "own")


@functools.lru_cache(maxsize=1)
def allensdk_available() -> bool:
    """Whether allensdk imports here (it does not install beside numpy 2 or on Python 3.12+)."""
    try:
        with quiet_allensdk_imports():
            import allensdk.core.brain_observatory_cache  # noqa: F401
    except ImportError:
        return False
    return True


def reader_name(cache) -> str:
    """``"own"`` for :class:`~.observatory.ObservatoryCache`, else ``"allensdk"``."""
    return "own" if isinstance(cache, observatory.ObservatoryCache) else "allensdk"


def describe_reader(cache) -> str:
    """One sentence saying which reader opened the cache (for the chapter's prose)."""
    if reader_name(cache) == "allensdk":
        return "The cache was opened with allensdk's BrainObservatoryCache."
    return (
        "The cache was opened with this package's own reader of the release's files (h5py), because "
        "allensdk does not install on this Python stack; a test checks that it returns what allensdk "
        "returns."
    )


def open_cache(manifest, *, offline: bool | None = None, reader: str = "auto"):
    """Open a Brain Observatory cache with allensdk, or with the package's own reader where it is missing.

    Parameters
    ----------
    manifest : path
        The cache's ``manifest.json`` or the folder holding it.
    offline : bool, optional
        No network: allensdk gets :func:`offline_api`, the own reader refuses downloads. Default:
        offline when the folder already holds ``ophys_experiments.json``, else online (metadata and
        NWB files are downloaded on demand). A folder that does not exist raises
        ``FileNotFoundError`` unless ``offline=False``; a folder without metadata raises
        ``ConnectionError`` when the Allen server cannot be reached, before anything is written into it.
    reader : {"auto", "allensdk", "own"}, default="auto"
        ``"auto"``: allensdk when it imports, else :class:`~.observatory.ObservatoryCache`.

    Returns
    -------
    allensdk.core.brain_observatory_cache.BrainObservatoryCache or observatory.ObservatoryCache
    """
    check_in_allowed(reader, "reader", READERS)
    if reader == "allensdk" and not allensdk_available():
        raise ImportError(
            "reader='allensdk' but allensdk does not import here (it needs Python <= 3.11 and "
            "numpy < 1.24); use reader='own' or 'auto'."
        )
    use_allensdk = reader == "allensdk" or (reader == "auto" and allensdk_available())
    manifest = Path(manifest)
    if manifest.suffix != ".json":
        manifest = manifest / "manifest.json"
    folder = manifest.parent
    has_metadata = (folder / "ophys_experiments.json").exists()
    if offline is None and not folder.is_dir():
        raise FileNotFoundError(
            f"No Brain Observatory cache at {folder} (the folder does not exist); pass the folder of an "
            "existing cache, or offline=False to create one there and download on demand."
        )
    if offline is None:
        offline = has_metadata
    if offline and not has_metadata:
        raise FileNotFoundError(
            f"No Brain Observatory cache at {folder} (no ophys_experiments.json there); pass the folder "
            "of an existing cache, or offline=False to download the metadata."
        )
    if not offline and not allen_api_reachable():  # before allensdk writes its manifest into the folder
        raise ConnectionError(
            f"{folder} holds no Brain Observatory metadata (ophys_experiments.json) to read offline, and the "
            f"Allen Brain Observatory ({ALLEN_API_HOST}) cannot be reached from this machine; nothing was "
            "written there. Go online to download the metadata, or pass the folder of an existing cache."
        )
    if not use_allensdk:
        return observatory.ObservatoryCache(manifest, offline=offline)
    with quiet_allensdk_imports():
        from allensdk.core.brain_observatory_cache import BrainObservatoryCache

    api = offline_api(folder) if offline else None
    return BrainObservatoryCache(manifest_file=str(manifest), api=api)


def select_experiments(cache, *, areas=None, cre_lines=None, n_experiments: int | None = None) -> pd.DataFrame:
    """The natural-scenes experiments of ``cache`` in the given areas and Cre lines.

    Parameters
    ----------
    cache : BrainObservatoryCache
    areas : list of str, optional
        Targeted structures (``VISp`` …); default all. Unknown names raise, listing the valid ones.
    cre_lines : list of str, optional
        Cre lines, short (``Cux2``) or full (``Cux2-CreERT2``); default all.
    n_experiments : int, optional
        Keep at most this many, spread over areas and Cre lines (round-robin over their groups).

    Returns
    -------
    pandas.DataFrame
        One row per experiment: ``experiment_id, area, cre_line, cre, cell_class, reporter_line,
        imaging_depth, experiment_container_id, donor_name``.
    """
    exps = pd.DataFrame(cache.get_ophys_experiments(stimuli=[NATURAL_SCENES]))
    if exps.empty:
        raise ValueError("The cache holds no natural-scenes (three_session_B) experiments.")
    exps = exps.rename(columns={"id": "experiment_id", "targeted_structure": "area"})
    exps["cre"] = exps["cre_line"].map(metadata.cre_short_name)
    exps["cell_class"] = exps["cre_line"].map(metadata.cell_class)
    valid_areas = sorted(exps["area"].unique())
    if areas is not None:
        areas = check_subset(areas, "areas", valid_areas)
        exps = exps[exps["area"].isin(areas)]
    if cre_lines is not None:
        valid = sorted(set(exps["cre"]) | set(exps["cre_line"]))
        cre_lines = check_subset(cre_lines, "cre_lines", valid)
        exps = exps[exps["cre"].isin(cre_lines) | exps["cre_line"].isin(cre_lines)]
    exps = exps.sort_values("experiment_id").reset_index(drop=True)
    if n_experiments is not None:
        n_experiments = check_int(n_experiments, "n_experiments", minimum=1)
        rank = exps.groupby(["area", "cre"]).cumcount()
        exps = exps.assign(_rank=rank).sort_values(["_rank", "experiment_id"]).head(n_experiments)
        exps = exps.drop(columns="_rank").sort_values("experiment_id").reset_index(drop=True)
    columns = [
        "experiment_id",
        "area",
        "cre_line",
        "cre",
        "cell_class",
        "reporter_line",
        "imaging_depth",
        "experiment_container_id",
        "donor_name",
    ]
    return exps[columns]


# --------------------------------------------------------------------------------------------------
# one experiment


def _open_nwb(path, reader: str):
    """The NWB accessor of ``reader`` (``"allensdk"`` or ``"own"``) for one file."""
    if reader == "own":
        return observatory.ExperimentData(path)
    with quiet_allensdk_imports():
        from allensdk.core.brain_observatory_nwb_data_set import BrainObservatoryNwbDataSet
    return BrainObservatoryNwbDataSet(path)


def _data_set(cache, experiment_id: int):
    """The NWB accessor for one experiment (downloaded first when online), naming corrupt files."""

    path = cache.get_cache_path(None, cache.EXPERIMENT_DATA_KEY, int(experiment_id))
    if not os.path.exists(path):
        cache.get_ophys_experiment_data(int(experiment_id))  # downloads online; offline raises clearly
    return _checked_data_set(path, reader_name(cache), experiment_id)


def _checked_data_set(path, reader: str, experiment_id: int):
    """The NWB accessor of ``reader`` for the file at ``path``, naming it when it cannot be read."""
    import h5py

    try:
        with h5py.File(path, "r"):
            pass
        return _open_nwb(path, reader)
    except (OSError, KeyError) as err:
        raise CorruptExperimentError(f"Cannot read the NWB file of experiment {experiment_id}: {path} ({err})") from err


def experiment_layout(cache, experiment_id: int) -> dict:
    """Cheap facts about one experiment: cells, stimulus table, frame rate, presentation length."""
    return _layout(_data_set(cache, experiment_id), experiment_id, reader_name(cache))


def _layout(ds, experiment_id: int, reader: str) -> dict:
    try:
        table = ds.get_stimulus_table(NATURAL_SCENES)
        cell_ids = ds.get_cell_specimen_ids()
        meta = ds.get_metadata()
        timestamps = ds.get_fluorescence_timestamps()
    except (OSError, KeyError) as err:
        raise CorruptExperimentError(
            f"Cannot read the NWB file of experiment {experiment_id}: {ds.nwb_file} ({err})"
        ) from err
    table = table.reset_index(drop=True)
    shown = table[table["frame"] >= 0].copy()
    shown["trial"] = shown.groupby("frame").cumcount()
    return {
        "experiment_id": int(experiment_id),
        "path": ds.nwb_file,
        "reader": reader,
        "cell_specimen_ids": np.asarray(cell_ids, dtype=np.int64),
        "table": shown,
        "n_scenes": int(table.loc[table["frame"] >= 0, "frame"].max()) + 1,
        "n_trials": int(shown["trial"].max()) + 1,
        "frames_per_presentation": int((table["end"] - table["start"]).mode().iloc[0]),
        "frame_rate": float(1.0 / np.median(np.diff(timestamps))),
        "metadata": meta,
    }


def cache_address(cache) -> tuple[str, str, bool]:
    """``(manifest path, reader, offline)``: what a worker process needs to open the same cache itself."""
    if reader_name(cache) == "own":
        return str(cache.manifest_file), "own", bool(cache.offline)
    offline = type(cache.api).__name__ == "OfflineBrainObservatoryApi"
    return str(cache.manifest_path), "allensdk", offline


@functools.lru_cache(maxsize=4)
def _reopened_cache(manifest: str, reader: str, offline: bool):
    """The cache at ``manifest``, opened once per process (a worker's tasks share it)."""
    return open_cache(manifest, offline=offline, reader=reader)


def _layout_task(address: tuple, experiment_id: int, path: str) -> dict:
    """:func:`experiment_layout` in a worker: it opens the experiment's file at ``path``, or, where the file
    is not there yet, the cache at ``address`` (:func:`cache_address`), which downloads it."""
    reader = address[1]
    if os.path.exists(path):  # the usual case: no need to import the cache's classes in the worker
        return _layout(_checked_data_set(path, reader, experiment_id), experiment_id, reader)
    return experiment_layout(_reopened_cache(*address), experiment_id)


#: Cells cut at a time by :func:`_cut_experiment`.
_CUT_CELLS = 16


def _cut_experiment(layout: dict, n_scenes: int, n_trials: int, offsets: np.ndarray) -> np.ndarray:
    """(cell, scene × trial, time) float32 dF/F of one experiment on the common grid (NaN padded)."""
    try:
        _, dff = _open_nwb(layout["path"], layout["reader"]).get_dff_traces()
    except (OSError, KeyError) as err:
        raise CorruptExperimentError(
            f"Cannot read the NWB file of experiment {layout['experiment_id']}: {layout['path']} ({err})"
        ) from err
    dff = np.asarray(dff, dtype=np.float32)
    table = layout["table"]
    keep = table["trial"].to_numpy() < n_trials
    idx = table["start"].to_numpy()[keep, None] + offsets[None, :]
    valid = (idx >= 0) & (idx < dff.shape[1])
    idx = np.clip(idx, 0, dff.shape[1] - 1)
    slot = (table["frame"].to_numpy() * n_trials + table["trial"].to_numpy())[keep]
    out = np.full((dff.shape[0], n_scenes * n_trials, len(offsets)), np.nan, dtype=np.float32)
    for first in range(0, dff.shape[0], _CUT_CELLS):  # a few cells at a time: no second full-size copy
        cut = dff[first : first + _CUT_CELLS, idx]  # (cell, presentation, time)
        cut[:, ~valid] = np.nan
        out[first : first + _CUT_CELLS, slot] = cut
    return out


def _cell_coords(layout: dict, experiments: pd.DataFrame) -> pd.DataFrame:
    row = experiments.set_index("experiment_id").loc[layout["experiment_id"]]
    genotype = layout["metadata"].get("genotype") or ""
    n = len(layout["cell_specimen_ids"])
    return pd.DataFrame(
        {
            "cell_specimen_id": layout["cell_specimen_ids"],
            "experiment_id": np.full(n, layout["experiment_id"], dtype=np.int64),
            "area": row["area"],
            "cre_line": row["cre_line"],
            "cre": row["cre"],
            "genotype": genotype,
            "genotype_abbreviation": metadata.genotype_abbreviation(genotype) if genotype else row["cre"],
            "cell_class": row["cell_class"],
            "depth": np.full(n, int(row["imaging_depth"]), dtype=np.int64),
            "frame_rate": np.full(n, layout["frame_rate"]),
        }
    )


def load_responses(
    cache,
    experiment_ids,
    *,
    scheduler="threads",
    compute: bool = True,
    n_trials: int | None = None,
) -> xr.DataArray:
    """dF/F of every cell around every natural-scene presentation, as a tidy DataArray.

    Parameters
    ----------
    cache : BrainObservatoryCache
        From :func:`open_cache`.
    experiment_ids : sequence of int
        Experiments to load, e.g. ``select_experiments(...)["experiment_id"]``.
    scheduler : str or distributed.Client, default="threads"
        Where the per-experiment tasks run: ``"threads"``, ``"synchronous"`` (serial, for debugging),
        ``"processes"``, ``"local:N"`` (a ``LocalCluster`` of N worker processes, started for this call and
        closed after it), a scheduler address ``"tcp://host:port"`` (its workers must see the cache at
        the same path), or a ``distributed.Client`` (or any dask ``get`` function); see
        :mod:`neuroalign_utils.parallel`. With ``compute=False`` it runs the layout reads only.
    compute : bool, default=True
        Return a NumPy-backed array; ``False`` returns it dask-backed, one chunk per experiment, so
        reductions (:mod:`.responses`) run experiment by experiment in bounded memory.
    n_trials : int, optional
        Repeats per scene kept on the grid; default the largest count in the selected experiments.

    Returns
    -------
    xarray.DataArray
        ``dff`` with dims ``(cell, presentation, time)``, float32. Per-cell coords
        ``cell_specimen_id, experiment_id, area, cre_line, cre, genotype, genotype_abbreviation,
        cell_class, depth, frame_rate``; per-presentation ``scene, trial``; per-time ``time`` (s, at
        the first experiment's frame rate) and ``frame_offset`` (2-photon frames from onset).
        Attrs ``frames_per_presentation`` and ``baseline_frames``.

    Raises
    ------
    CorruptExperimentError
        When an NWB file cannot be read (the message names it).
    """
    import dask

    experiment_ids = [int(e) for e in experiment_ids]
    if not experiment_ids:
        raise ValueError("'experiment_ids' is empty; select at least one experiment.")
    parallel.check_scheduler(scheduler)
    if n_trials is not None:
        n_trials = check_int(n_trials, "n_trials", minimum=1)
    experiments = _experiment_rows(cache, experiment_ids)
    address = cache_address(cache)
    with parallel.dask_scheduler(scheduler) as where:
        layouts = parallel.compute(
            [
                dask.delayed(_layout_task)(address, e, cache.get_cache_path(None, cache.EXPERIMENT_DATA_KEY, e))
                for e in experiment_ids
            ],
            where,
            progress=False,
        )
        dff = _tidy_array(layouts, experiments, n_trials)
        if compute:
            dff = dff.copy(data=dff.data.compute(scheduler=where))
    return dff


def _tidy_array(layouts, experiments: pd.DataFrame, n_trials) -> xr.DataArray:
    """The dask-backed tidy array of these experiments' layouts, one chunk (one task) per experiment."""
    import dask
    import dask.array as da

    sweep = {lay["frames_per_presentation"] for lay in layouts}
    if len(sweep) != 1:
        raise ValueError(f"Experiments differ in frames per presentation {sorted(sweep)}; load them separately.")
    sweep = sweep.pop()
    n_scenes = max(lay["n_scenes"] for lay in layouts)
    if n_trials is None:
        n_trials = max(lay["n_trials"] for lay in layouts)
    offsets = np.arange(-BASELINE_PRESENTATIONS * sweep, AFTER_PRESENTATIONS * sweep)

    blocks = [
        da.from_delayed(
            dask.delayed(_cut_experiment)(lay, n_scenes, n_trials, offsets),
            shape=(len(lay["cell_specimen_ids"]), n_scenes * n_trials, len(offsets)),
            dtype=np.float32,
        )
        for lay in layouts
    ]
    data = da.concatenate(blocks, axis=0)
    cells = pd.concat([_cell_coords(lay, experiments) for lay in layouts], ignore_index=True)
    frame_rate = layouts[0]["frame_rate"]
    dff = xr.DataArray(
        data,
        dims=("cell", "presentation", "time"),
        coords={
            **{c: ("cell", cells[c].to_numpy()) for c in cells},
            "scene": ("presentation", np.repeat(np.arange(n_scenes), n_trials)),
            "trial": ("presentation", np.tile(np.arange(n_trials), n_scenes)),
            "time": ("time", offsets / frame_rate),
            "frame_offset": ("time", offsets),
        },
        name="dff",
        attrs={
            "frames_per_presentation": sweep,
            "baseline_frames": BASELINE_PRESENTATIONS * sweep,
            "units": "dF/F (fraction)",
        },
    )
    return dff


def _experiment_rows(cache, experiment_ids) -> pd.DataFrame:
    exps = select_experiments(cache)
    missing = sorted(set(experiment_ids) - set(exps["experiment_id"]))
    if missing:
        raise ValueError(
            f"'experiment_ids' has unknown value(s) {missing}; the cache's natural-scenes experiments are "
            f"{exps['experiment_id'].tolist()}."
        )
    return exps


def load_scene_templates(cache, experiment_id: int) -> xr.DataArray:
    """The natural-scene template stack of one experiment as ``(scene, y, x)`` floats in [0, 1]."""
    ds = _data_set(cache, experiment_id)
    stack = ds.get_stimulus_template(NATURAL_SCENES)
    return xr.DataArray(
        np.asarray(stack, dtype=np.float32) / 255.0,
        dims=("scene", "y", "x"),
        coords={"scene": np.arange(stack.shape[0])},
        name="natural_scenes",
    )


def cell_table(dff: xr.DataArray) -> pd.DataFrame:
    """The per-cell coordinates of a ``(cell, …)`` DataArray as a DataFrame, one row per cell."""
    names = [c for c in dff.coords if dff.coords[c].dims == ("cell",)]
    return pd.DataFrame({c: dff.coords[c].values for c in names})


def tensor_layout(dff: xr.DataArray) -> pd.DataFrame:
    """What each dimension of the tidy tensor indexes, its length and the coordinates along it.

    Returns
    -------
    pandas.DataFrame
        Indexed by dimension (``cell``, ``presentation``, ``time``), columns ``length``, ``indexes``,
        ``coordinates``; for reading, not for computing.
    """
    n_scenes = int(dff["scene"].max()) + 1
    n_trials = int(dff.sizes["presentation"] // n_scenes)
    time = dff["time"].values
    rate = float(np.median(dff["frame_rate"].values)) if "frame_rate" in dff.coords else np.nan
    what = {
        "cell": f"one neuron, from {int(np.unique(dff['experiment_id'].values).size)} experiments",
        "presentation": f"{n_scenes} scenes × {n_trials} repeats, sorted by scene, then repeat",
        "time": f"imaging frames from {time.min():+.2f} to {time.max():+.2f} s around onset ({rate:.0f} Hz)",
    }
    rows = []
    for dim in dff.dims:
        coords = [name for name, coord in dff.coords.items() if coord.dims == (dim,) and name != dim]
        coords = ([dim] if dim in dff.coords else []) + coords
        rows.append(
            {
                "dimension": dim,
                "length": int(dff.sizes[dim]),
                "indexes": what.get(dim, ""),
                "coordinates": ", ".join(coords),
            }
        )
    return pd.DataFrame(rows).set_index("dimension")


def describe_cache(
    *, synthetic: bool, n_experiments: int, n_cells: int, n_scenes: int, n_trials: int, seed: int | None = None
) -> str:
    """One sentence naming the data the chapter ran on (no local paths)."""
    source = (
        f"the synthetic cache generated here (seed {seed}), whose cells have planted receptive fields"
        if synthetic
        else "the reader's Brain Observatory cache"
    )
    return (
        f"This run reads {source}: {n_cells:,} cells from {n_experiments} natural-scenes experiments, each "
        f"cell seen with {n_scenes} scenes × {n_trials} repeats."
    )


#: Largest ratio between the two classes' cell counts that still counts as balanced.
BALANCED_CLASSES_RATIO = 1.25


def describe_classes(cells: pd.DataFrame, *, synthetic: bool) -> str:
    """How many cells and experiments each class (excitatory, inhibitory Cre lines) has, in one sentence.

    Parameters
    ----------
    cells : pandas.DataFrame
        One row per cell with ``cell_class`` and ``experiment_id`` (e.g. the chapter's cell summary).
    synthetic : bool
        Whether the cells come from the synthetic cache, whose generator balances the classes on purpose.
    """
    from .. import report

    n_cells = cells.groupby("cell_class").size().reindex(["excitatory", "inhibitory"], fill_value=0)
    n_experiments = cells.groupby("cell_class")["experiment_id"].nunique().reindex(n_cells.index, fill_value=0)
    per_experiment = {c: n_cells[c] / n_experiments[c] for c in n_cells.index if n_experiments[c]}
    text = (
        f"Inhibitory cells (Sst, Vip, Pvalb lines) are {n_cells['inhibitory']:,} of the {int(n_cells.sum()):,} "
        f"({report.format_percent(n_cells['inhibitory'] / max(int(n_cells.sum()), 1))}), recorded in "
        f"{n_experiments['inhibitory']} of the {int(n_experiments.sum())} experiments"
    )
    if len(per_experiment) == 2:
        text += (
            f", with {report.format_number(per_experiment['inhibitory'], 2)} cells per experiment on average "
            f"against {report.format_number(per_experiment['excitatory'], 2)} for the excitatory lines"
        )
    text += "."
    balanced = n_cells.min() > 0 and n_cells.max() / n_cells.min() <= BALANCED_CLASSES_RATIO
    if synthetic and balanced:
        text += (
            " Inhibitory experiments hold fewer cells, as in the release, so the synthetic cache has more of them: "
            "the two classes are about equal, as the paper's balanced selection of 500 + 500 kernels needs."
        )
    elif balanced:
        text += " The two classes are about equal in size."
    else:
        more, fewer = str(n_cells.idxmax()), str(n_cells.idxmin())
        text += (
            f" The classes are unequal: {more} cells outnumber {fewer} ones "
            f"{report.format_number(n_cells.max() / max(n_cells.min(), 1), 2)} to 1, which caps a balanced "
            f"selection at the {fewer} class's size."
        )
    return text


def describe_setting(
    *, synthetic: bool, n_experiments: int, n_cells: int, frames_per_presentation: int, frame_rate: float
) -> dict:
    """Why this run's numbers may differ from the paper's, per key of the paper-vs-run table."""
    if synthetic:
        design = "the synthetic cache copies the release's stimulus design"
        cells = f"synthetic cache: {n_experiments} experiments, {n_cells:,} cells"
        timing = "planted latencies plus the indicator's rise, not the mouse"
    else:
        design = "read from the cache's stimulus table"
        cells = f"{n_experiments} experiments, {n_cells:,} cells of the reader's cache"
        timing = cells
    return {
        "n_scenes": design,
        "n_repeats": design,
        "scene_duration": (
            f"{frames_per_presentation} imaging frames at {frame_rate:.0f} Hz, as allensdk's "
            "stimulus table counts a presentation"
        ),
        "slowest_area_time_to_peak": timing,
        "fastest_area": timing,
        "most_strong_cells_area": cells,
        "most_cells_area": cells,
        "n_genotypes": cells,
    }
