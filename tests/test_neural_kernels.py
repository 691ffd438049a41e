"""Neural kernels N = Tᵀ·FS: equal to a naive loop, and recovering the planted receptive fields."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from neuroalign_utils import report
from neuroalign_utils.allen import loading, synthetic
from neuroalign_utils.kernels import neural
from neuroalign_utils.kernels.selection import SelectionSettings

warnings.filterwarnings("ignore", category=UserWarning, module="allensdk")
SIZE = (12, 16)


@pytest.fixture(scope="module")
def allen(tmp_path_factory):
    root = tmp_path_factory.mktemp("allen_nk") / "cache"
    synthetic.make_synthetic_cache(root, n_experiments=6, cells_per_experiment=10, n_repeats=16, seed=5)
    cache = loading.open_cache(root / "brain_observatory")
    ids = loading.select_experiments(cache)["experiment_id"]
    dff = loading.load_responses(cache, ids, compute=False)
    scenes = loading.load_scene_templates(cache, int(ids.iloc[0]))
    cells = pd.read_parquet(root / "planted_truth" / "cells.parquet")
    amplitudes = np.load(root / "planted_truth" / "scene_amplitudes.npy")
    return dff, scenes, cells, amplitudes


@pytest.fixture(scope="module")
def kernels(allen):
    dff, scenes, _, _ = allen
    return neural.neural_kernels(dff, scenes, size=SIZE)


def _naive_kernel(dff_values, scene_of, offsets, fs, window_mask):
    """One cell, loops over presentations and scenes, as the definition reads."""
    baseline = offsets < 0
    sums, counts = np.zeros(fs.shape[0]), np.zeros(fs.shape[0])
    for p in range(dff_values.shape[0]):
        trace = dff_values[p].astype(np.float64)
        if np.isnan(trace).all():
            continue
        local = 100 * ((1 + trace) / (1 + trace[baseline].mean()) - 1)
        sums[scene_of[p]] += local[window_mask].mean()
        counts[scene_of[p]] += 1
    t = sums / counts
    t = t - t.mean()
    flat = fs.reshape(fs.shape[0], -1)
    flat = flat - flat.mean(axis=0)
    kernel = np.zeros(flat.shape[1])
    for s in range(len(t)):
        kernel += t[s] * flat[s]
    return kernel / len(t)


def test_kernels_equal_a_naive_per_cell_loop(allen, kernels):
    from skimage.transform import resize

    dff, scenes, _, _ = allen
    values = dff.isel(cell=[0, 7, len(dff.cell) - 1]).compute()
    fs = np.stack([resize(s.astype(np.float64), SIZE, anti_aliasing=True, mode="reflect") for s in scenes.values])
    window = (dff["time"].values >= -1e-9) & (dff["time"].values < 0.5 - 1e-9)
    for i, cell in enumerate([0, 7, len(dff.cell) - 1]):
        naive = _naive_kernel(values.values[i], dff["scene"].values, dff["frame_offset"].values, fs, window)
        np.testing.assert_allclose(kernels.isel(kernel=cell).values.ravel(), naive, rtol=1e-6, atol=1e-9)
    assert kernels.dims == ("kernel", "y", "x") and kernels.shape[1:] == SIZE
    assert (kernels["cell_specimen_id"].values == dff["cell_specimen_id"].values).all()
    for coord in ("area", "cre", "genotype_abbreviation", "cell_class", "depth"):
        assert coord in kernels.coords


def test_kernels_from_scene_traces_equal_kernels_from_the_tidy_array(allen, kernels):
    from neuroalign_utils.allen import responses

    dff, scenes, _, _ = allen
    traces = responses.scene_traces(dff)
    np.testing.assert_allclose(neural.neural_kernels(traces, scenes, size=SIZE).values, kernels.values, rtol=1e-10)
    resolved = neural.neural_kernels(traces, scenes, size=SIZE, time_resolved=True, bins_end=0.5)
    np.testing.assert_allclose(
        resolved.values,
        neural.neural_kernels(dff, scenes, size=SIZE, time_resolved=True, bins_end=0.5).values,
        rtol=1e-10,
    )


def test_time_resolved_bins_equal_single_windows(allen, kernels):
    dff, scenes, _, _ = allen
    resolved = neural.neural_kernels(dff, scenes, size=SIZE, time_resolved=True, bin_width=0.25, bins_end=0.5)
    assert resolved.dims == ("kernel", "time_bin", "y", "x")
    np.testing.assert_allclose(resolved["time_bin"].values, [0.0, 0.25])
    for start in (0.0, 0.25):
        single = neural.neural_kernels(dff, scenes, size=SIZE, window=(start, start + 0.25))
        np.testing.assert_allclose(resolved.sel(time_bin=start).values, single.values, rtol=1e-10)


def test_raw_product_without_centring(allen):
    dff, scenes, _, _ = allen
    raw = neural.neural_kernels(dff, scenes, size=SIZE, center=False)
    t = neural.scene_responses(dff).values
    fs = neural.flattened_scenes(scenes, SIZE, center=False).values.reshape(118, -1)
    np.testing.assert_allclose(raw.values.reshape(len(t), -1), t @ fs / 118, rtol=1e-10)


def test_kernels_recover_the_planted_receptive_fields(allen, kernels):
    _, scenes, cells, amplitudes = allen
    planted = cells.set_index("cell_specimen_id").loc[kernels["cell_specimen_id"].values]
    responsive = planted["responsive"].to_numpy()
    r_rf = neural.planted_rf_correlation(kernels, synthetic.planted_rf_maps(planted, SIZE))
    # What a response-weighted average can recover at best: the planted responses (noise-free) times
    # the same scenes, N* = (A - mean A) . FS / n. Our kernels must match it closely: this tests the data path.
    rows = pd.Series(np.arange(len(cells)), index=cells["cell_specimen_id"]).loc[kernels["cell_specimen_id"].values]
    a = amplitudes[rows.to_numpy()]
    expected = (a - a.mean(axis=1, keepdims=True)) @ neural.flattened_scenes(scenes, SIZE).values.reshape(118, -1) / 118
    r_expected = neural.planted_rf_correlation(kernels, expected.reshape(kernels.shape))
    assert np.median(r_expected[responsive]) >= 0.9, np.median(r_expected[responsive])
    # Against the Gaussian RF itself the match is weaker (natural scenes are spatially correlated, so the
    # kernel is the RF blurred by the scenes' covariance), but clearly above the unresponsive cells', and
    # with the planted polarity (ON / OFF) for nearly every responsive cell.
    assert np.median(r_rf[responsive]) >= 0.2, np.median(r_rf[responsive])
    assert np.median(r_rf[responsive]) >= np.median(r_rf[~responsive]) + 0.15
    assert np.mean(r_rf[responsive] > 0) >= 0.9


def test_bad_windows_and_scenes_are_reported(allen):
    dff, scenes, _, _ = allen
    with pytest.raises(ValueError, match="start < end"):
        neural.neural_kernels(dff, scenes, window=(0.5, 0.1))
    with pytest.raises(ValueError, match="hold no sample"):
        neural.neural_kernels(dff, scenes, window=(5.0, 6.0))
    with pytest.raises(ValueError, match="lacks scenes"):
        neural.neural_kernels(dff, scenes.isel(scene=slice(0, 10)))
    with pytest.raises(ValueError, match="'size'"):
        neural.neural_kernels(dff, scenes, size=(1, 2, 3))


def test_balanced_selection_per_class_keeps_small_classes_whole():
    import xarray as xr

    rng = np.random.default_rng(0)
    values = rng.normal(size=(34, *SIZE))
    classes = np.array(["excitatory"] * 30 + ["inhibitory"] * 4)
    fake = xr.DataArray(values, dims=("kernel", "y", "x"), coords={"cell_class": ("kernel", classes)})
    with pytest.warns(UserWarning, match="Only 4 inhibitory kernels"):
        chosen = neural.select_balanced_kernels(fake, SelectionSettings(n_clusters=3, per_cluster=4, n_neighbors=5))
    assert chosen["selected"][classes == "inhibitory"].all()
    assert (chosen["cluster"][classes == "inhibitory"] == -1).all()
    excitatory = chosen[classes == "excitatory"]
    assert excitatory["selected"].sum() == 12 and excitatory["cluster"].nunique() == 3
    for _, group in excitatory.groupby("cluster"):  # the selected are the centroid-nearest of their cluster
        assert (
            group.loc[group["selected"], "distance_to_centroid"].max()
            <= group.loc[~group["selected"], "distance_to_centroid"].min()
        )
    again = neural.select_balanced_kernels(fake, SelectionSettings(n_clusters=3, per_cluster=4, n_neighbors=5))
    pd.testing.assert_frame_equal(chosen, again)


# --------------------------------------------------------------------------------------------------
def test_rf_recovery_numbers_and_sentence(allen, kernels):
    dff, scenes, cells, amplitudes = allen
    recovery = neural.rf_recovery(kernels, cells, amplitudes, scenes)
    assert len(recovery) == kernels.sizes["kernel"]
    assert recovery.loc[recovery["responsive"], "r_best_kernel"].median() > 0.9
    sentence = neural.describe_rf_recovery(recovery)
    assert "resemble their planted" in sentence and "loses nothing" in sentence


def test_rf_recovery_sentence_flips():
    good = pd.DataFrame(
        {
            "area": ["VISp", "VISp", "VISam", "VISam", "VISl"],
            "responsive": [True] * 4 + [False],
            "rf_sigma": [0.05, 0.05, 0.12, 0.12, 0.07],
            "r_planted_rf": [0.25, 0.3, 0.5, 0.45, 0.01],
            "r_best_kernel": [0.99, 0.98, 0.99, 0.97, 0.2],
        }
    )
    sentence = neural.describe_rf_recovery(good)
    assert "resemble their planted receptive fields" in sentence and "loses nothing" in sentence
    assert "weakest in VISp" in sentence and "smallest planted fields" in sentence
    broken = good.assign(r_planted_rf=[0.6, 0.5, -0.2, 0.05, 0.0], r_best_kernel=[0.5, 0.4, 0.6, 0.3, 0.1])
    sentence = neural.describe_rf_recovery(broken)
    assert "do not resemble" in sentence and "loses signal" in sentence
    assert "smallest planted fields" not in sentence  # VISam is weakest here, and its fields are the largest
    assert "no receptive field was planted" in neural.describe_rf_recovery(None)


def test_selection_sentence_says_how_far_from_the_papers_balance():
    def selection(n_excitatory, n_inhibitory, selected_excitatory, cluster_sizes):
        clusters = np.repeat(np.arange(len(cluster_sizes)), cluster_sizes)
        return pd.DataFrame(
            {
                "cell_class": ["excitatory"] * n_excitatory + ["inhibitory"] * n_inhibitory,
                "cluster": np.concatenate([clusters, clusters[:n_inhibitory]]),
                "selected": [True] * selected_excitatory
                + [False] * (n_excitatory - selected_excitatory)
                + [True] * n_inhibitory,
            }
        )

    broken = neural.selection_summary(
        selection(394, 42, 374, [27, 36, 60, 60, 60, 26, 34, 33, 44, 14]), n_clusters=10, per_cluster=50
    )
    sentence = neural.describe_selection(broken)
    assert "374 of 394 excitatory and all 42 inhibitory" in sentence and "416 in all" in sentence
    assert "not balanced" in sentence and f"{report.format_number(374 / 42)} to 1" in sentence
    good = neural.selection_summary(selection(1000, 1000, 500, [100] * 10), n_clusters=10, per_cluster=50)
    good.loc["inhibitory", "selected"] = 500
    sentence = neural.describe_selection(good)
    assert "1,000 in all" in sentence and "balanced (500 and 500), as in the paper" in sentence
    assert "fewer than" not in sentence


def test_diversity_sentence_flips():
    random = np.random.default_rng(0).normal(0.30, 0.005, size=200)
    good = {"selected": 0.22, "all": 0.30, "random": random, "n_selected": 1000, "n_all": 2400}
    sentence = neural.describe_diversity(good)
    assert sentence.startswith("The selected kernels are more diverse than the population")
    assert (
        "0.220 among the 1,000 selected kernels against 0.300 among all 2,400" in sentence and "p = 0.005" in sentence
    )
    assert "200 random picks of the same size per class (95 % of them from 0.29" in sentence
    broken = dict(good, selected=0.40)
    sentence = neural.describe_diversity(broken)
    assert sentence.startswith("The selected kernels are less diverse") and "higher than 200 random picks" in sentence
    blind = dict(good, selected=0.301)
    sentence = neural.describe_diversity(blind)
    assert sentence.startswith("The selected kernels are no more diverse than a blind pick")
    assert "more diverse than the population" not in sentence and "cluster" not in sentence
    # the second sentence: the centroid rule against picks balanced over clusters
    alike = neural.describe_diversity(dict(broken, random_within_clusters=random))
    assert "picks kernels close to each cluster's typical one" in alike and "(p = 0.0050)" in alike
    assert "Random picks of the same number from each cluster have mean |r| from 0.29" in alike
    spread = neural.describe_diversity(dict(good, random_within_clusters=random))
    assert "more diverse than its balance over clusters alone" in spread and "typical one" not in spread
    same = neural.describe_diversity(dict(good, random_within_clusters=random - 0.08))
    assert "changes nothing against them" in same


def test_example_pickers_take_the_median_cell_and_the_centroid_nearest_kernel():
    recovery = pd.DataFrame(
        {
            "area": ["VISp"] * 4 + ["VISl"] * 3,
            "responsive": [True, True, True, False] + [True] * 3,
            "r_planted_rf": [0.1, 0.3, 0.8, 0.31, 0.9, 0.5, 0.6],
        }
    )
    examples = neural.typical_recoveries(recovery, ["VISp", "VISam", "VISl"])
    assert examples.to_dict() == {"VISp": 1, "VISl": 6}  # the responsive cell at its area's median r
    selection = pd.DataFrame(
        {
            "cell_class": ["excitatory"] * 5 + ["inhibitory"] * 3,
            "cluster": [0, 1, 1, 1, 0, -1, -1, -1],
            "distance_to_centroid": [0.5, 0.9, 0.2, 0.4, 0.1, np.nan, np.nan, np.nan],
        }
    )
    assert neural.centroid_kernels(selection).to_dict() == {"exc. 1": 2, "exc. 2": 4}  # largest cluster first
