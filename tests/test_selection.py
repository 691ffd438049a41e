"""Representative kernel selection: UMAP + K-means recover planted groups and keep centroid-nearest members."""

from __future__ import annotations

import numpy as np
import pytest

from neuroalign_utils.kernels.selection import select_representative_kernels

N_GROUPS = 3
PER_GROUP = 40


@pytest.fixture(scope="module")
def planted_kernels():
    """Three groups of 8x8 kernels: a distinct template per group plus small noise."""
    rng = np.random.default_rng(1)
    templates = rng.normal(size=(N_GROUPS, 8, 8)) * 3
    groups = np.repeat(np.arange(N_GROUPS), PER_GROUP)
    kernels = templates[groups] + 0.1 * rng.normal(size=(groups.size, 8, 8))
    return kernels, groups


@pytest.fixture(scope="module")
def selection(planted_kernels):
    kernels, _ = planted_kernels
    return select_representative_kernels(kernels, n_clusters=N_GROUPS, per_cluster=10, n_neighbors=10)


def test_clusters_recover_planted_groups(planted_kernels, selection):
    _, groups = planted_kernels
    assert list(selection.columns) == ["umap_x", "umap_y", "cluster", "distance_to_centroid", "selected"]
    assert len(selection) == groups.size
    # every planted group maps onto exactly one cluster and vice versa
    pairs = set(zip(groups, selection["cluster"]))
    assert len(pairs) == N_GROUPS
    assert selection["cluster"].nunique() == N_GROUPS


def test_selected_are_nearest_to_centroid(selection):
    assert selection["selected"].sum() == N_GROUPS * 10
    for _, members in selection.groupby("cluster"):
        chosen = members.loc[members["selected"], "distance_to_centroid"]
        rest = members.loc[~members["selected"], "distance_to_centroid"]
        assert len(chosen) == 10
        assert chosen.max() <= rest.min()
    # distances are recomputed from the embedding and the cluster means
    centroids = selection.groupby("cluster")[["umap_x", "umap_y"]].transform("mean")
    recomputed = np.hypot(selection["umap_x"] - centroids["umap_x"], selection["umap_y"] - centroids["umap_y"])
    np.testing.assert_allclose(recomputed, selection["distance_to_centroid"], atol=1e-4)


def test_same_seed_same_selection(planted_kernels, selection):
    kernels, _ = planted_kernels
    again = select_representative_kernels(kernels, n_clusters=N_GROUPS, per_cluster=10, n_neighbors=10)
    np.testing.assert_array_equal(again["selected"], selection["selected"])
    np.testing.assert_allclose(again[["umap_x", "umap_y"]], selection[["umap_x", "umap_y"]])


def test_fewer_members_than_asked_takes_all_and_warns(planted_kernels):
    kernels, _ = planted_kernels
    flat = kernels.reshape(len(kernels), -1)  # (n, d) input accepted too
    with pytest.warns(UserWarning, match="fewer than per_cluster=50"):
        result = select_representative_kernels(flat, n_clusters=N_GROUPS, per_cluster=50, n_neighbors=10)
    assert result["selected"].all()  # every kernel once: nothing padded or duplicated
    assert len(result) == len(kernels)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(n_clusters=0), ValueError, "n_clusters"),
        (dict(per_cluster=1.5), TypeError, "per_cluster"),
        (dict(min_dist=2.0, spread=1.0), ValueError, "min_dist"),
        (dict(n_neighbors=1), ValueError, "n_neighbors"),
    ],
)
def test_invalid_arguments(planted_kernels, kwargs, error, match):
    kernels, _ = planted_kernels
    with pytest.raises(error, match=match):
        select_representative_kernels(kernels, **kwargs)


def test_rejects_bad_shapes_and_nan():
    with pytest.raises(ValueError, match="kernels"):
        select_representative_kernels(np.zeros(5))
    bad = np.ones((10, 3, 3))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        select_representative_kernels(bad)
