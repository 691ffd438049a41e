"""Representative kernel selection: UMAP + K-means recover planted groups and keep centroid-nearest members."""

from __future__ import annotations

import numpy as np
import pytest

from neuroalign_utils.kernels.selection import SelectionSettings, select_representative_kernels

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
    return select_representative_kernels(
        kernels, SelectionSettings(n_clusters=N_GROUPS, per_cluster=10, n_neighbors=10)
    )


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
    again = select_representative_kernels(
        kernels, SelectionSettings(n_clusters=N_GROUPS, per_cluster=10, n_neighbors=10)
    )
    np.testing.assert_array_equal(again["selected"], selection["selected"])
    np.testing.assert_allclose(again[["umap_x", "umap_y"]], selection[["umap_x", "umap_y"]])


def test_fewer_members_than_asked_takes_all_and_warns(planted_kernels):
    kernels, _ = planted_kernels
    flat = kernels.reshape(len(kernels), -1)  # (n, d) input accepted too
    with pytest.warns(UserWarning, match="fewer than per_cluster=50"):
        result = select_representative_kernels(
            flat, SelectionSettings(n_clusters=N_GROUPS, per_cluster=50, n_neighbors=10)
        )
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
def test_invalid_settings_are_refused_when_made(kwargs, error, match):
    with pytest.raises(error, match=match):
        SelectionSettings(**kwargs)


def test_settings_must_be_selection_settings(planted_kernels):
    kernels, _ = planted_kernels
    with pytest.raises(TypeError, match="'settings' must be a SelectionSettings"):
        select_representative_kernels(kernels, {"n_clusters": 3})


def test_rejects_bad_shapes_and_nan():
    with pytest.raises(ValueError, match="kernels"):
        select_representative_kernels(np.zeros(5))
    bad = np.ones((10, 3, 3))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        select_representative_kernels(bad)


# --------------------------------------------------------------------------------------------------
# diversity: mean pairwise |r|


def test_mean_abs_correlation_equals_the_pairwise_definition():
    from neuroalign_utils.kernels.selection import abs_correlation_matrix, mean_abs_correlation

    rng = np.random.default_rng(3)
    kernels = rng.normal(size=(40, 6, 7)) + rng.normal(size=(1, 6, 7))  # a shared pattern: |r| well above 0
    flat = kernels.reshape(40, -1)
    members = rng.random(40) < 0.5
    abs_r = abs_correlation_matrix(kernels)
    for subset in (np.ones(40, dtype=bool), members):
        r = np.corrcoef(flat[subset])
        expected = np.abs(r[np.triu_indices(int(subset.sum()), k=1)]).mean()
        assert mean_abs_correlation(abs_r, subset) == pytest.approx(expected, rel=1e-5)
    assert mean_abs_correlation(abs_r, np.flatnonzero(members)) == pytest.approx(mean_abs_correlation(abs_r, members))
    copies = np.stack([flat[0], -2 * flat[0], 3 * flat[0] + 1])  # the same pattern up to sign and scale
    assert mean_abs_correlation(abs_correlation_matrix(copies)) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        mean_abs_correlation(abs_r, [3])


def test_selection_of_a_planted_population_is_more_diverse_than_the_population():
    """Planted receptive fields: most cells share one centred ON blob (jittered), a few form four Gabor
    types. K-means on the embedding gives each type a cluster, and keeping as many per cluster as the
    smallest type has lowers the mean pairwise |r| below the population's and below random picks."""
    import pandas as pd

    from neuroalign_utils.allen.synthetic import planted_rf_maps
    from neuroalign_utils.kernels.selection import selection_diversity

    rng = np.random.default_rng(7)
    sizes = [300, 40, 40, 40, 40]
    rows = []
    for group, n in enumerate(sizes):
        for _ in range(n):
            gabor = group > 0
            rows.append(
                {
                    "rf_shape": "gabor" if gabor else "blob",
                    "rf_x": (0.5 if not gabor else 0.25 + 0.5 * (group % 2)) + rng.normal(0, 0.01),
                    "rf_y": (0.5 if not gabor else 0.3 + 0.4 * (group > 2)) + rng.normal(0, 0.01),
                    "rf_sigma": 0.1 * rng.lognormal(0, 0.05),
                    "polarity": 1,
                    "rf_orientation": group * np.pi / 4 + rng.normal(0, 0.05) if gabor else np.nan,
                    "rf_sf": 4.0 if gabor else np.nan,
                    "rf_phase": 0.0 if gabor else np.nan,
                    "rf_aspect": 1.5 if gabor else np.nan,
                    "rf_surround_scale": np.nan if gabor else 2.5,
                    "rf_surround_strength": np.nan if gabor else 0.3,
                }
            )
    kernels = planted_rf_maps(pd.DataFrame(rows), (12, 16))
    kernels = kernels + 0.05 * kernels.std() * rng.normal(size=kernels.shape)
    chosen = select_representative_kernels(
        kernels, SelectionSettings(n_clusters=len(sizes), per_cluster=30, n_neighbors=10)
    )
    assert chosen["selected"].sum() == 30 * len(sizes)
    diversity = selection_diversity(kernels, chosen["selected"].to_numpy(), n_random=50)
    assert diversity["selected"] < diversity["all"] - 0.1, diversity
    assert diversity["selected"] < diversity["random"].min()
    assert diversity["abs_r_selected"].size == 150 * 149 // 2 and diversity["abs_r_all"].size == 460 * 459 // 2
    # the random picks keep the selection's count per stratum
    strata = np.repeat(["a", "b"], [230, 230])
    again = selection_diversity(kernels, chosen["selected"].to_numpy(), strata=strata, n_random=5)
    assert again["selected"] == diversity["selected"] and again["random"].shape == (5,)
    assert again["random_within_clusters"] is None
    # picks at random within each cluster: the balance over clusters without the centroid rule
    within = selection_diversity(
        kernels, chosen["selected"].to_numpy(), clusters=chosen["cluster"].to_numpy(), n_random=20
    )
    assert within["random_within_clusters"].shape == (20,) and within["selected"] < diversity["random"].min()
    np.testing.assert_array_equal(within["random"], diversity["random"][:20])  # the same stream for the blind picks
    with pytest.raises(ValueError, match="'selected'"):
        selection_diversity(kernels, np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="'clusters'"):
        selection_diversity(kernels, chosen["selected"].to_numpy(), clusters=[0, 1])
