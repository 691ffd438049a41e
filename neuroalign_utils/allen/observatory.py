"""The package's own reader of a Brain Observatory cache folder, for stacks where allensdk does not install.

allensdk 2.16.2 (its newest release) pins numpy < 1.24, pandas 1.5.3 and scipy < 1.11, which have no
wheels for Python 3.12 and newer. :func:`neuroalign_utils.allen.loading.open_cache` therefore falls back
to this module when allensdk cannot be imported. It reads the same folder allensdk writes and reads
(``manifest.json``, the metadata JSON files, one NWB v1 HDF5 file per experiment; layout in the module
docstring of :mod:`.synthetic`) with h5py, and offers the part of allensdk's interface the chapters use:

* :class:`ObservatoryCache` — ``get_ophys_experiments``, ``get_experiment_containers``,
  ``get_cell_specimens``, ``get_cache_path``, ``get_ophys_experiment_data``;
* :class:`ExperimentData` — ``get_stimulus_table``, ``get_stimulus_template``,
  ``get_cell_specimen_ids``, ``get_dff_traces``, ``get_fluorescence_timestamps``,
  ``get_corrected_fluorescence_traces``, ``get_running_speed``, ``get_pupil_size``,
  ``get_pupil_location``, ``get_metadata``.

Both return what allensdk returns for the same files (``tests/test_allen_reader.py`` checks it on the
synthetic cache where allensdk is installed).

Online, missing files are downloaded over HTTP from the Allen Brain Observatory's public API
(:data:`API_URL`): metadata by the RMA queries that list experiments, containers and cell metrics, an
experiment's NWB file by its ``NWBOphys`` well-known-file download link. Each download goes to a
temporary name beside its target and is renamed when complete, so an interrupted download leaves
nothing behind.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from .. import storage

logger = logging.getLogger(__name__)

#: The Allen Institute's public API; metadata queries and NWB downloads both go there.
API_HOST = "api.brain-map.org"
API_URL = f"http://{API_HOST}"
#: Rows per RMA page when listing cell metrics (the whole release has about 63,000 cells).
PAGE_ROWS = 2000

PIPELINE = "processing/brain_observatory_pipeline"
#: Stimuli shown in each session type of Visual Coding 2P.
SESSION_STIMULI = {
    "three_session_A": ("drifting_gratings", "natural_movie_one", "natural_movie_three", "spontaneous"),
    "three_session_B": ("static_gratings", "natural_scenes", "natural_movie_one", "spontaneous"),
    "three_session_C": ("locally_sparse_noise", "natural_movie_one", "natural_movie_two", "spontaneous"),
    "three_session_C2": (
        "locally_sparse_noise_4deg",
        "locally_sparse_noise_8deg",
        "natural_movie_one",
        "natural_movie_two",
        "spontaneous",
    ),
}
#: Manifest keys this reader resolves, with the file name the release uses for each.
MANIFEST_FILES = {
    "EXPERIMENT_CONTAINERS": "experiment_containers.json",
    "EXPERIMENTS": "ophys_experiments.json",
    "CELL_SPECIMENS": "cell_specimens.json",
    "STIMULUS_MAPPINGS": "stimulus_mappings.json",
    "EXPERIMENT_DATA": "ophys_experiment_data/%d.nwb",
}
#: The RMA query behind each metadata file: model, included associations, the column ordering the pages.
_METADATA_QUERIES = {
    "EXPERIMENTS": (
        "OphysExperiment",
        "experiment_container,well_known_files(well_known_file_type),"
        "targeted_structure,specimen(donor(age,transgenic_lines))",
        "id",
    ),
    "EXPERIMENT_CONTAINERS": (
        "ExperimentContainer",
        "ophys_experiments,isi_experiment,specimen(donor(conditions,age,transgenic_lines)),targeted_structure",
        "id",
    ),
    "CELL_SPECIMENS": ("ApiCamCellMetric", None, "cell_specimen_id"),
    "STIMULUS_MAPPINGS": ("ApiCamStimulusMapping", None, "id"),
}


class AllenOfflineError(RuntimeError):
    """A query or download that needs the network was attempted on an offline cache."""


class NoEyeTrackingError(KeyError):
    """The experiment's NWB file holds no eye tracking (pupil size and location)."""


# --------------------------------------------------------------------------------------------------
# HTTP


def rma_query(model: str, include: str | None = None, criteria: str | None = None, order: str = "id") -> list[dict]:
    """All rows of an RMA query to the Allen API, page by page.

    Parameters
    ----------
    model : str
        RMA model, e.g. ``"OphysExperiment"``.
    include : str, optional
        Associations to include, RMA syntax.
    criteria : str, optional
        Filter, RMA syntax, e.g. ``"[attachable_id$eq501940850]"``.
    order : str, default="id"
        Column that orders the rows, so that pages neither overlap nor skip rows.

    Returns
    -------
    list of dict
        The rows (the response's ``msg``).
    """
    rows: list[dict] = []
    while True:
        parts = [f"model::{model}"]
        if criteria:
            parts[0] += f",rma::criteria,{criteria}"
        if include:
            parts[0] += f",rma::include,{include}"
        parts[0] += f",rma::options[num_rows$eq{PAGE_ROWS}][start_row$eq{len(rows)}][order$eq'{order}']"
        url = f"{API_URL}/api/v2/data/query.json?q=" + urllib.parse.quote(parts[0], safe=":,[]$'()=")
        with urllib.request.urlopen(url, timeout=120) as response:
            answer = json.loads(response.read().decode())
        if not answer.get("success", False):
            raise ConnectionError(f"The Allen API refused the query {url}: {answer.get('msg')}")
        page = answer["msg"]
        rows.extend(page)
        if len(page) < PAGE_ROWS or len(rows) >= int(answer.get("total_rows", len(rows))):
            return rows


def download(url: str, path: str | os.PathLike) -> Path:
    """Download ``url`` to ``path`` through a temporary file renamed on completion."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with storage.atomic_path(path) as tmp, urllib.request.urlopen(url, timeout=120) as response, open(tmp, "wb") as out:
        while chunk := response.read(1 << 20):
            out.write(chunk)
    return path


# --------------------------------------------------------------------------------------------------
# the cache folder


def _parse_date(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _driver_cre_line(specimen: dict) -> str | None:
    lines = specimen["donor"]["transgenic_lines"]
    return next((t["name"] for t in lines if t["transgenic_line_type_name"] == "driver" and "Cre" in t["name"]), None)


def _reporter_line(specimen: dict) -> str | None:
    lines = specimen["donor"]["transgenic_lines"]
    return next((t["name"] for t in lines if t["transgenic_line_type_name"] == "reporter"), None)


class ObservatoryCache:
    """A Brain Observatory cache folder read without allensdk.

    Parameters
    ----------
    manifest : path
        The cache's ``manifest.json`` or the folder holding it. Without a manifest the release's file
        layout (:data:`MANIFEST_FILES`) is assumed, and online a manifest naming it is written.
    offline : bool, default=True
        Refuse downloads: a missing file raises :class:`AllenOfflineError` naming it. With
        ``offline=False`` missing metadata and NWB files are downloaded from :data:`API_URL`.
    """

    EXPERIMENT_DATA_KEY = "EXPERIMENT_DATA"
    EXPERIMENTS_KEY = "EXPERIMENTS"
    EXPERIMENT_CONTAINERS_KEY = "EXPERIMENT_CONTAINERS"
    CELL_SPECIMENS_KEY = "CELL_SPECIMENS"

    def __init__(self, manifest, *, offline: bool = True):
        manifest = Path(manifest)
        if manifest.suffix != ".json":
            manifest = manifest / "manifest.json"
        self.manifest_file = manifest
        self.folder = manifest.parent
        self.offline = bool(offline)
        if manifest.exists():
            self._files = self._read_manifest(manifest)
        else:
            self._files = dict(MANIFEST_FILES)
            if not self.offline:
                self._write_manifest(manifest)

    @staticmethod
    def _read_manifest(path: Path) -> dict[str, str]:
        """Manifest key -> path pattern relative to the manifest's folder (``BASEDIR`` is that folder)."""
        entries = json.loads(path.read_text())["manifest"]
        by_key = {e["key"]: e for e in entries if "key" in e}

        def relative(key: str) -> str:
            entry = by_key[key]
            parent = entry.get("parent_key")
            if key == "BASEDIR" or entry["spec"] in (".", ""):
                return ""
            base = relative(parent) if parent else ""
            return str(Path(base) / entry["spec"]) if base else entry["spec"]

        files = dict(MANIFEST_FILES)
        files.update({key: relative(key) for key in by_key if by_key[key].get("type") == "file"})
        return files

    def _write_manifest(self, path: Path) -> None:
        entries = [{"type": "manifest_version", "value": "1.3"}, {"key": "BASEDIR", "type": "dir", "spec": "."}]
        entries += [{"key": k, "type": "file", "spec": v, "parent_key": "BASEDIR"} for k, v in self._files.items()]
        path.parent.mkdir(parents=True, exist_ok=True)
        storage.write_json(path, {"manifest": entries})

    # paths and downloads

    def get_cache_path(self, file_name, key: str, *args) -> str:
        """Where the file of manifest ``key`` lies (``args`` fill its pattern, e.g. an experiment id)."""
        if file_name is not None:
            return str(file_name)
        if key not in self._files:
            raise KeyError(f"'key' must be one of {sorted(self._files)}; {key!r} was provided.")
        pattern = self._files[key]
        return str(self.folder / (pattern % args if args else pattern))

    def _metadata(self, key: str) -> list[dict]:
        path = Path(self.get_cache_path(None, key))
        if not path.exists():
            if self.offline:
                raise AllenOfflineError(
                    f"{path.name} is not in the cache at {self.folder}; run online or "
                    "download it first (open_cache(..., offline=False))."
                )
            model, include, order = _METADATA_QUERIES[key]
            logger.info("downloading %s from %s", path.name, API_URL)
            rows = rma_query(model, include, order=order)
            storage.write_json(path, rows)
        return json.loads(path.read_text())

    def get_ophys_experiment_data(self, experiment_id: int) -> ExperimentData:
        """The NWB file of one experiment (downloaded first when missing and online)."""
        experiment_id = int(experiment_id)
        path = Path(self.get_cache_path(None, self.EXPERIMENT_DATA_KEY, experiment_id))
        if not path.exists():
            if self.offline:
                raise AllenOfflineError(
                    f"experiment {experiment_id} is not in the cache at {self.folder}; "
                    "run online or download it first (open_cache(..., offline=False))."
                )
            files = rma_query(
                "WellKnownFile", criteria=f"[attachable_id$eq{experiment_id}],well_known_file_type[name$eqNWBOphys]"
            )
            if not files:
                raise ValueError(f"The Allen API lists no NWB file for experiment {experiment_id}.")
            logger.info("downloading the NWB file of experiment %d", experiment_id)
            download(API_URL + files[0]["download_link"], path)
        return ExperimentData(path)

    # metadata

    def get_experiment_containers(self, include_failed: bool = False) -> list[dict]:
        """Experiment containers, one dict each (the fields allensdk's simple form has)."""
        rows = [
            {
                "id": c["id"],
                "imaging_depth": c["imaging_depth"],
                "targeted_structure": c["targeted_structure"]["acronym"],
                "cre_line": _driver_cre_line(c["specimen"]),
                "reporter_line": _reporter_line(c["specimen"]),
                "donor_name": c["specimen"]["donor"]["external_donor_name"],
                "specimen_name": c["specimen"]["name"],
                "tags": [
                    k["name"]
                    for k in c["specimen"]["donor"].get("conditions", [])
                    if not k["name"].startswith("tissuecyte")
                ],
                "failed": c["failed"],
            }
            for c in self._metadata(self.EXPERIMENT_CONTAINERS_KEY)
        ]
        return rows if include_failed else [c for c in rows if not c["failed"]]

    def get_ophys_experiments(self, stimuli=None, session_types=None, include_failed: bool = False) -> list[dict]:
        """Ophys experiments, one dict each, optionally those showing ``stimuli`` or of ``session_types``.

        ``fail_eye_tracking`` is True for every experiment: which sessions have eye-tracking files is a
        separate query to the Allen server that this reader does not make (allensdk offline answers the
        same).
        """
        if isinstance(stimuli, str) or isinstance(session_types, str):
            raise TypeError("'stimuli' and 'session_types' must be lists of names, not a single string.")
        exps = self._metadata(self.EXPERIMENTS_KEY)
        if not include_failed:
            exps = [e for e in exps if not e.get("experiment_container", {}).get("failed", False)]
        if session_types is not None:
            exps = [e for e in exps if e["stimulus_name"] in session_types]
        if stimuli is not None:
            exps = [e for e in exps if set(stimuli) & set(SESSION_STIMULI.get(e["stimulus_name"], ()))]
        return [
            {
                "id": e["id"],
                "imaging_depth": e["imaging_depth"],
                "targeted_structure": e["targeted_structure"]["acronym"],
                "cre_line": _driver_cre_line(e["specimen"]),
                "reporter_line": _reporter_line(e["specimen"]),
                "acquisition_age_days": (
                    _parse_date(e["date_of_acquisition"]) - _parse_date(e["specimen"]["donor"]["date_of_birth"])
                ).days,
                "experiment_container_id": e["experiment_container_id"],
                "session_type": e["stimulus_name"],
                "donor_name": e["specimen"]["donor"]["external_donor_name"],
                "specimen_name": e["specimen"]["name"],
                "fail_eye_tracking": True,
            }
            for e in exps
        ]

    def get_cell_specimens(self, include_failed: bool = False) -> list[dict]:
        """Cell metric rows as stored (``cell_specimen_id``, ``area``, ``tld1_name``, metrics …)."""
        cells = self._metadata(self.CELL_SPECIMENS_KEY)
        return cells if include_failed else [c for c in cells if not c.get("failed_experiment_container", False)]


# --------------------------------------------------------------------------------------------------
# one NWB v1 file


def _text(value) -> str:
    value = value[()] if hasattr(value, "shape") else value
    if isinstance(value, np.ndarray):
        value = value.ravel()[0]
    return value.decode() if isinstance(value, bytes) else str(value)


def _leading_number(text: str, kind):
    try:
        return kind(text.split()[0])
    except (ValueError, IndexError):
        return None


class ExperimentData:
    """One experiment's NWB v1 (HDF5) file, read with h5py; each call opens and closes the file."""

    def __init__(self, nwb_file):
        self.nwb_file = str(nwb_file)

    def _read(self, *keys):
        import h5py

        with h5py.File(self.nwb_file, "r") as f:
            return [f[k][()] for k in keys]

    def _series(self, name: str):
        """(timestamps, data) of a time series under the pipeline's processing module."""
        timestamps, data = self._read(f"{PIPELINE}/{name}/timestamps", f"{PIPELINE}/{name}/data")
        return timestamps, data

    def get_cell_specimen_ids(self) -> np.ndarray:
        return self._read(f"{PIPELINE}/ImageSegmentation/cell_specimen_ids")[0]

    def get_fluorescence_timestamps(self) -> np.ndarray:
        return self._read(f"{PIPELINE}/Fluorescence/imaging_plane_1/timestamps")[0]

    def get_dff_traces(self):
        """(timestamps, dF/F of shape (cells, frames))."""
        return self._series("DfOverF/imaging_plane_1")

    def get_corrected_fluorescence_traces(self):
        """(timestamps, demixed signal − r · neuropil) per cell."""
        timestamps, demixed, neuropil, r = self._read(
            f"{PIPELINE}/Fluorescence/imaging_plane_1/timestamps",
            f"{PIPELINE}/Fluorescence/imaging_plane_1_demixed_signal/data",
            f"{PIPELINE}/Fluorescence/imaging_plane_1_neuropil_response/data",
            f"{PIPELINE}/Fluorescence/imaging_plane_1_neuropil_response/r",
        )
        return timestamps, demixed - neuropil * r[:, np.newaxis]

    def get_running_speed(self):
        """(speed in cm/s, timestamps), in allensdk's order."""
        timestamps, speed = self._series("BehavioralTimeSeries/running_speed")
        return speed, timestamps

    def _eye(self, name: str):
        import h5py

        with h5py.File(self.nwb_file, "r") as f:
            if f"{PIPELINE}/{name}" not in f:
                raise NoEyeTrackingError(f"{self.nwb_file} holds no eye tracking ({name}).")
        return self._series(name)

    def get_pupil_size(self):
        """(timestamps, pupil size); :class:`NoEyeTrackingError` when the session has no eye tracking."""
        return self._eye("PupilTracking/pupil_size")

    def get_pupil_location(self):
        """(timestamps, (frames, 2) spherical location); :class:`NoEyeTrackingError` without eye tracking."""
        return self._eye("EyeTracking/pupil_location_spherical")

    def get_stimulus_table(self, stimulus_name: str) -> pd.DataFrame:
        """One row per presentation: ``frame`` (scene index, −1 blank), ``start``, ``end`` (2-photon frames).

        Only the image stimuli stored as an index series plus frame durations are read this way;
        ``natural_scenes`` is the one the chapters use.
        """
        import h5py

        key = f"stimulus/presentation/{stimulus_name}_stimulus"
        with h5py.File(self.nwb_file, "r") as f:
            if key not in f:
                present = sorted(k.removesuffix("_stimulus") for k in f.get("stimulus/presentation", {}))
                raise ValueError(f"'stimulus_name' must be one of {present}; {stimulus_name!r} was provided.")
            frames = f[f"{key}/data"][()]
            durations = f[f"{key}/frame_duration"][()]
        return pd.DataFrame(
            {"frame": frames, "start": durations[:, 0].astype(np.int64), "end": durations[:, 1].astype(np.int64)},
            index=pd.Index(np.arange(len(frames), dtype=np.int64)),
        )

    def get_stimulus_template(self, stimulus_name: str) -> np.ndarray:
        """The stimulus template stack, e.g. ``(118, height, width)`` uint8 for ``natural_scenes``."""
        import h5py

        key = f"stimulus/templates/{stimulus_name}_image_stack/data"
        with h5py.File(self.nwb_file, "r") as f:
            if key not in f:
                present = sorted(k.removesuffix("_image_stack") for k in f.get("stimulus/templates", {}))
                raise ValueError(f"'stimulus_name' must be one of {present}; {stimulus_name!r} was provided.")
            return f[key][()]

    def get_metadata(self) -> dict:
        """The session's metadata from ``general/`` (the fields and parsing allensdk's reader uses)."""
        import h5py

        fields = {
            "device": "general/devices/2-photon microscope",
            "excitation_lambda": "general/optophysiology/imaging_plane_1/excitation_lambda",
            "indicator": "general/optophysiology/imaging_plane_1/indicator",
            "fov": "general/fov",
            "genotype": "general/subject/genotype",
            "session_start_time": "session_start_time",
            "session_type": "general/session_type",
            "specimen_name": "general/specimen_name",
            "generated_by": "general/generated_by",
            "age": "general/subject/age",
            "sex": "general/subject/sex",
            "imaging_depth": "general/optophysiology/imaging_plane_1/imaging depth",
            "location": "general/optophysiology/imaging_plane_1/location",
            "experiment_container_id": "general/experiment_container_id",
            "ophys_experiment_id": "general/session_id",
        }
        meta: dict = {}
        with h5py.File(self.nwb_file, "r") as f:
            for name, key in fields.items():
                if key not in f:
                    continue
                if name == "generated_by":
                    meta[name] = [v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(f[key][()])]
                else:
                    meta[name] = _text(f[key])
        out: dict = {}
        if "device" in meta:  # "<microscope>. <rig name> Please see protocols …"
            parts = meta["device"].split(". ")
            out["device"] = parts[0]
            if len(parts) > 1:
                out["device_name"] = parts[1].split()[0]
        for name in ("excitation_lambda", "indicator", "fov", "session_type", "specimen_name", "sex"):
            if name in meta:
                out[name] = meta[name]
        if "genotype" in meta:
            out["genotype"] = meta["genotype"]
            out["cre_line"] = meta["genotype"].split(";")[0]
        if "session_start_time" in meta:
            out["session_start_time"] = _parse_date(meta["session_start_time"])
        if "age" in meta:
            out["age_days"] = _leading_number(meta["age"], int)
        if "imaging_depth" in meta:
            out["imaging_depth_um"] = _leading_number(meta["imaging_depth"], int)
        if "location" in meta:
            out["targeted_structure"] = meta["location"]  # kept as stored, e.g. "Area: VISp"
        for name in ("experiment_container_id", "ophys_experiment_id"):
            if name in meta:
                out[name] = int(meta[name])
        generated_by = meta.get("generated_by", [])
        if "pipeline version" in generated_by[:-1]:
            out["pipeline_version"] = generated_by[generated_by.index("pipeline version") + 1]
        return out
