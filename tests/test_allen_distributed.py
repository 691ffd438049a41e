"""Per-experiment Allen tasks on a real dask.distributed cluster (worker processes on loopback) equal serial ones."""

from __future__ import annotations

import os
import time

import numpy as np
import psutil
import pytest
import xarray as xr

from neuroalign_utils import parallel
from neuroalign_utils.allen import loading, responses, synthetic
from neuroalign_utils.kernels import neural

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("allen_distributed") / "cache"
    return loading.open_cache(
        synthetic.make_synthetic_cache(root, n_experiments=4, cells_per_experiment=6, n_repeats=6, seed=11)
    )


@pytest.fixture(scope="module")
def ids(cache):
    return loading.select_experiments(cache)["experiment_id"].tolist()


@pytest.fixture(scope="module")
def serial(cache, ids):
    dff = loading.load_responses(cache, ids, scheduler="synchronous")
    traces, trial = responses.scene_traces_and_trial_responses(dff, progress=False)
    scenes = loading.load_scene_templates(cache, ids[0])
    kernels = neural.neural_kernels(dff, scenes)
    return {"dff": dff, "traces": traces, "trial": trial, "scenes": scenes, "kernels": kernels}


@pytest.fixture(scope="module")
def cluster():
    """A running cluster of two worker processes on loopback, as a lab cluster would be."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    ) as running:
        yield running


def _children() -> set[int]:
    """Child processes, less multiprocessing's resource tracker (one per process, kept for its lifetime)."""
    return {
        p.pid
        for p in psutil.Process().children(recursive=True)
        if not any("resource_tracker" in part for part in p.cmdline())
    }


def test_local_cluster_equals_serial_and_is_closed_after(cache, ids, serial):
    before = _children()
    dff = loading.load_responses(cache, ids, scheduler="local:2")  # layouts and the tidy blocks on the cluster
    xr.testing.assert_identical(dff, serial["dff"])
    lazy = loading.load_responses(cache, ids, scheduler="synchronous", compute=False)
    kernels = neural.neural_kernels(lazy, serial["scenes"], scheduler="local:2")  # one task per experiment
    xr.testing.assert_identical(kernels, serial["kernels"])
    # every worker process the calls started is gone
    deadline = time.monotonic() + 30
    while _children() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _children() - before


def test_a_running_cluster_is_joined_by_its_address_and_left_running(cache, ids, serial, cluster):
    address = cluster.scheduler_address
    assert isinstance(address, str) and address.startswith("tcp://127.0.0.1:")
    lazy = loading.load_responses(cache, ids, scheduler=address, compute=False)
    kernels = neural.neural_kernels(lazy, serial["scenes"], scheduler=address)
    xr.testing.assert_identical(kernels, serial["kernels"])
    assert cluster.status.name == "running" and len(cluster.scheduler_info["workers"]) == 2
    with distributed.Client(cluster) as client:  # a Client is used as given, and not closed
        traces, trial = responses.scene_traces_and_trial_responses(lazy, scheduler=client, progress=False)
        assert client.status == "running"
    xr.testing.assert_identical(traces, serial["traces"])
    xr.testing.assert_identical(trial, serial["trial"])


def test_tasks_get_the_manifest_path_not_the_cache(cache):
    manifest, reader, offline = loading.cache_address(cache)
    assert manifest.endswith("manifest.json") and reader == loading.reader_name(cache) and offline


@pytest.mark.parametrize("bad", ["gpu", "local", "local:two", "local:0", "tcp://", "http://127.0.0.1:8786", 3, None])
def test_bad_scheduler_is_refused_before_any_work(cache, ids, bad):
    accepted = r"'scheduler'.*(must be one of .*local:N.*tcp://host:port|asks for no worker)"
    with pytest.raises(ValueError, match=accepted):
        loading.load_responses(cache, ids, scheduler=bad)
    with pytest.raises(ValueError, match="'scheduler'"):
        neural.scene_responses(xr.DataArray(np.zeros((1, 1, 1)), dims=("cell", "scene", "time")), scheduler=bad)


def test_dashboard_link_is_printed_only_where_progress_shows(monkeypatch, capsys):
    monkeypatch.setenv("NEUROALIGN_PROGRESS", "0")  # as in the built book
    with parallel.dask_scheduler("local:1") as client:
        link = client.dashboard_link
    assert "Dask dashboard" not in capsys.readouterr().out
    monkeypatch.setenv("NEUROALIGN_PROGRESS", "1")  # a terminal or a live notebook
    with parallel.dask_scheduler("local:1") as client:
        link = client.dashboard_link
        # the workers keep glibc's malloc defaults (see parallel.dask_scheduler)
        assert set(client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()) == {None}
    assert capsys.readouterr().out.strip() == f"Dask dashboard: {link}"
