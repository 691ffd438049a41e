"""The package's own Brain Observatory reader (h5py) returns what allensdk returns, on the synthetic cache.

Tests comparing with allensdk skip where allensdk does not install (the current-stack leg of
``make test``); the rest run on both stacks.
"""

from __future__ import annotations

import io
import json
import urllib.request

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from neuroalign_utils.allen import loading, observatory, responses, synthetic

needs_allensdk = pytest.mark.skipif(not loading.allensdk_available(), reason="allensdk does not import here")


@pytest.fixture(scope="module", params=["book", "paper"])
def manifest(request, tmp_path_factory):
    """A small cache of each size: the paper's full-length sessions, with few cells and repeats."""
    root = tmp_path_factory.mktemp(f"allen_reader_{request.param}") / "cache"
    return synthetic.make_synthetic_cache(
        root, size=request.param, n_experiments=4, cells_per_experiment=6, n_repeats=4, seed=5
    )


@pytest.fixture(scope="module")
def own(manifest):
    return loading.open_cache(manifest, reader="own")


@pytest.fixture(scope="module")
def sdk(manifest):
    if not loading.allensdk_available():
        pytest.skip("allensdk does not import here")
    return loading.open_cache(manifest, reader="allensdk")


def _ids(cache):
    return loading.select_experiments(cache)["experiment_id"].tolist()


@needs_allensdk
def test_metadata_equal_allensdk(own, sdk):
    assert own.get_ophys_experiments(stimuli=["natural_scenes"]) == sdk.get_ophys_experiments(
        stimuli=["natural_scenes"]
    )
    assert own.get_experiment_containers() == sdk.get_experiment_containers()
    assert own.get_cell_specimens() == sdk.get_cell_specimens()
    pd.testing.assert_frame_equal(loading.select_experiments(own), loading.select_experiments(sdk))


@needs_allensdk
def test_every_nwb_accessor_equals_allensdk(own, sdk):
    for experiment_id in _ids(own):
        mine, theirs = loading._data_set(own, experiment_id), loading._data_set(sdk, experiment_id)
        assert isinstance(mine, observatory.ExperimentData)
        assert type(theirs).__name__ == "BrainObservatoryNwbDataSet"
        pd.testing.assert_frame_equal(
            mine.get_stimulus_table("natural_scenes"), theirs.get_stimulus_table("natural_scenes")
        )
        assert mine.get_metadata() == theirs.get_metadata()
        for name in ("get_dff_traces", "get_corrected_fluorescence_traces", "get_running_speed"):
            for a, b in zip(getattr(mine, name)(), getattr(theirs, name)(), strict=True):
                np.testing.assert_array_equal(a, b)
                assert a.dtype == b.dtype, name
        for name in ("get_cell_specimen_ids", "get_fluorescence_timestamps"):
            a, b = getattr(mine, name)(), getattr(theirs, name)()
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(
            mine.get_stimulus_template("natural_scenes"), theirs.get_stimulus_template("natural_scenes")
        )


@needs_allensdk
def test_eye_tracking_and_its_absence_match_allensdk(own, sdk):
    from allensdk.brain_observatory.brain_observatory_exceptions import NoEyeTrackingException

    seen = set()
    for experiment_id in _ids(own):
        mine, theirs = loading._data_set(own, experiment_id), loading._data_set(sdk, experiment_id)
        try:
            expected = theirs.get_pupil_size(), theirs.get_pupil_location()
        except NoEyeTrackingException:
            with pytest.raises(observatory.NoEyeTrackingError, match="holds no eye tracking"):
                mine.get_pupil_size()
            seen.add(False)
            continue
        for a, b in zip((mine.get_pupil_size(), mine.get_pupil_location()), expected):
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
        seen.add(True)
    assert seen == {True, False}  # the synthetic cache has both kinds of session


@needs_allensdk
def test_tidy_tensor_is_identical_through_either_reader(own, sdk):
    mine = loading.load_responses(own, _ids(own), scheduler="synchronous")
    theirs = loading.load_responses(sdk, _ids(sdk), scheduler="synchronous")
    xr.testing.assert_identical(mine, theirs)
    pd.testing.assert_frame_equal(loading.cell_table(mine), loading.cell_table(theirs))
    xr.testing.assert_identical(
        loading.load_scene_templates(own, _ids(own)[0]), loading.load_scene_templates(sdk, _ids(sdk)[0])
    )


def test_own_reader_recovers_the_planted_cells(own, manifest):
    """On every stack: the own reader's tensor holds the planted cells, areas and the file's dF/F."""
    import h5py

    truth = pd.read_parquet(manifest.parent.parent / "planted_truth" / "cells.parquet")
    experiments = pd.read_parquet(manifest.parent.parent / "planted_truth" / "experiments.parquet")
    dff = loading.load_responses(own, _ids(own))
    assert sorted(dff["cell_specimen_id"].values) == sorted(truth["cell_specimen_id"])
    planted_area = truth.merge(experiments, on="experiment_id").set_index("cell_specimen_id")["area"]
    assert (planted_area.loc[dff["cell_specimen_id"].values].to_numpy() == dff["area"].values).all()
    first = _ids(own)[0]
    table = loading._data_set(own, first).get_stimulus_table("natural_scenes")
    onset = table[table["frame"] == 0]["start"].min()  # scene 0, first repeat
    with h5py.File(own.get_cache_path(None, own.EXPERIMENT_DATA_KEY, first)) as f:
        trace = f["processing/brain_observatory_pipeline/DfOverF/imaging_plane_1/data"][0]
    cell = dff.sel(cell=dff["experiment_id"] == first).isel(cell=0)
    np.testing.assert_array_equal(
        cell.sel(presentation=(cell["scene"] == 0) & (cell["trial"] == 0)).values[0], trace[onset - 28 : onset + 35]
    )


def test_own_reader_refuses_downloads_offline_and_names_bad_arguments(own, tmp_path):
    with pytest.raises(observatory.AllenOfflineError, match=r"experiment 123 is not in the cache at .*run online"):
        own.get_ophys_experiment_data(123)
    with pytest.raises(ValueError, match=r"'reader' must be one of \['auto', 'allensdk', 'own'\]"):
        loading.open_cache(own.folder, reader="h5py")
    data = loading._data_set(own, _ids(own)[0])
    with pytest.raises(ValueError, match=r"'stimulus_name' must be one of \['natural_scenes'\]; 'gratings'"):
        data.get_stimulus_table("gratings")
    with pytest.raises(KeyError, match="'key' must be one of"):
        own.get_cache_path(None, "MOVIES")
    empty = observatory.ObservatoryCache(tmp_path / "empty")
    with pytest.raises(observatory.AllenOfflineError, match="ophys_experiments.json is not in the cache"):
        empty.get_ophys_experiments()
    assert not (tmp_path / "empty").exists()  # offline, nothing is written


class _FakeAllenServer:
    """Answers ``urlopen`` like the Allen API, from local files: RMA pages and NWB downloads."""

    def __init__(self, cache_folder, page_rows):
        self.folder = cache_folder
        self.page_rows = page_rows
        self.urls = []

    def __call__(self, url, timeout=None):
        self.urls.append(url)
        assert url.startswith(observatory.API_URL)
        if "well_known_file_download/" in url:
            experiment_id = int(url.rsplit("/", 1)[1])
            return io.BytesIO((self.folder / "ophys_experiment_data" / f"{experiment_id}.nwb").read_bytes())
        query = urllib.parse.unquote(url.split("q=", 1)[1])
        start = int(query.split("[start_row$eq", 1)[1].split("]", 1)[0])
        if query.startswith("model::WellKnownFile"):
            experiment_id = int(query.split("[attachable_id$eq", 1)[1].split("]", 1)[0])
            rows = [{"download_link": f"/api/v2/well_known_file_download/{experiment_id}"}]
        else:
            name = {
                "OphysExperiment": "ophys_experiments.json",
                "ExperimentContainer": "experiment_containers.json",
                "ApiCamCellMetric": "cell_specimens.json",
            }[query.split(",", 1)[0].removeprefix("model::")]
            rows = json.loads((self.folder / name).read_text())
        page = rows[start : start + self.page_rows]
        return io.BytesIO(json.dumps({"success": True, "msg": page, "total_rows": len(rows)}).encode())


def test_online_reader_downloads_metadata_page_by_page_and_nwb_files(manifest, tmp_path, monkeypatch):
    server = _FakeAllenServer(manifest.parent, page_rows=5)
    monkeypatch.setattr(observatory, "PAGE_ROWS", 5)
    monkeypatch.setattr(urllib.request, "urlopen", server)
    online = observatory.ObservatoryCache(tmp_path / "new_cache", offline=False)
    local = observatory.ObservatoryCache(manifest)
    assert online.get_ophys_experiments(stimuli=["natural_scenes"]) == local.get_ophys_experiments(
        stimuli=["natural_scenes"]
    )
    assert online.get_cell_specimens() == local.get_cell_specimens()
    n_cells = len(local.get_cell_specimens())
    assert sum("ApiCamCellMetric" in u for u in server.urls) == n_cells // 5 + 1  # paged
    assert all(
        "[order$eq'cell_specimen_id']" in urllib.parse.unquote(u) for u in server.urls if "ApiCamCellMetric" in u
    )
    experiment_id = _ids(local)[0]
    data = online.get_ophys_experiment_data(experiment_id)
    np.testing.assert_array_equal(
        data.get_dff_traces()[1], local.get_ophys_experiment_data(experiment_id).get_dff_traces()[1]
    )
    assert (tmp_path / "new_cache" / "manifest.json").exists()
    assert not list((tmp_path / "new_cache").rglob("*.tmp*"))  # downloads were renamed into place
    # the second call reads the cached file: no new request
    before = len(server.urls)
    online.get_ophys_experiment_data(experiment_id)
    online.get_ophys_experiments()
    assert len(server.urls) == before


def test_crosscheck_sentence_says_when_allensdk_is_missing():
    empty = responses.allensdk_agreement(pd.DataFrame(), 30.0)
    assert "does not install on this Python stack" in responses.describe_allensdk_agreement(
        empty, allensdk_installed=False
    )
    assert "crosscheck=False" in responses.describe_allensdk_agreement(empty, allensdk_installed=True)


def test_reader_sentence_names_the_reader(own, manifest):
    assert "own reader" in loading.describe_reader(own)
    if loading.allensdk_available():
        assert "allensdk's" in loading.describe_reader(loading.open_cache(manifest, reader="allensdk"))


def test_paper_size_sessions_are_full_length_with_three_natural_scenes_epochs(own, manifest):
    """size="paper": 115,000-frame sessions whose presentations fall in the three epochs of three_session_B."""
    settings = json.loads((manifest.parent.parent / "COMPLETE.json").read_text())
    if "session_frames" not in settings:
        pytest.skip("a book-size cache: its session holds only the natural-scenes presentations")
    data = loading._data_set(own, _ids(own)[0])
    n_frames = len(data.get_fluorescence_timestamps())
    assert n_frames == settings["session_frames"] == synthetic.SIZES["paper"]["session_frames"]
    starts = data.get_stimulus_table("natural_scenes")["start"].to_numpy()
    gaps = np.flatnonzero(np.diff(starts) > 100)  # presentations follow each other every 7-8 frames in an epoch
    epochs = np.split(starts, gaps + 1)
    assert len(epochs) == len(synthetic.SESSION_B_EPOCHS)
    assert [e[0] for e in epochs] == [int(f * n_frames) for f in synthetic.SESSION_B_EPOCHS]
    assert starts[-1] < n_frames - 4 * synthetic.FRAME_RATE


def test_synthetic_size_is_validated(tmp_path):
    with pytest.raises(ValueError, match=r"'size' must be one of \['book', 'paper'\]; 'huge'"):
        synthetic.make_synthetic_cache(tmp_path / "c", size="huge")
    assert not (tmp_path / "c").exists()
