"""Planted alignment: kernels built from planted RFs rank above random-weight kernels and above the nulls."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from neuroalign_utils import zoo
from neuroalign_utils.kernels import similarity as sim

SIZE = 16


def _gaussian_rfs(rng, n):
    yy, xx = np.mgrid[:SIZE, :SIZE]
    centres = rng.uniform(4, SIZE - 4, size=(n, 2))
    widths = rng.uniform(1.5, 3.5, size=n)
    return np.exp(-((yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2) / (2 * widths[:, None, None] ** 2))


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(7)
    rfs = _gaussian_rfs(rng, 40)
    neural = xr.DataArray(rfs + 0.05 * rng.normal(size=rfs.shape), dims=("kernel", "y", "x"))
    planted_kernels = rfs + 0.15 * rng.normal(size=rfs.shape)
    model = zoo.build_model("Mask2Former-T", random_state=0)
    random_kernels = zoo.weight_kernels(model, model_name="random", kernel_size=SIZE, select=False, max_kernels_per_layer=100)
    del model
    artificial = xr.concat(
        [
            xr.DataArray(planted_kernels, dims=("kernel", "y", "x"), coords={"model": ("kernel", ["planted"] * 40)}),
            xr.DataArray(random_kernels.values, dims=("kernel", "y", "x"), coords={"model": ("kernel", random_kernels["model"].values)}),
        ],
        dim="kernel",
    )
    return neural, artificial


def test_planted_kernels_rank_above_random_weights(planted):
    neural, artificial = planted
    table = sim.kernel_similarity(neural, artificial)
    summary = sim.aggregate_similarity(table, ["model"], n_bootstrap=300).set_index("model")
    assert summary.loc["planted", "ci_low"] > summary.loc["random", "ci_high"]
    # each neural kernel's best match is its own planted kernel
    planted_only = table.where(table["model"] == "planted", drop=True)
    best = planted_only["one_minus_rmse"].argmax("artificial").values
    assert (best == np.arange(40)).mean() > 0.9


def test_planted_kernels_beat_phase_randomised_null(planted):
    neural, artificial = planted
    planted_kernels = artificial.where(artificial["model"] == "planted", drop=True)
    real = sim.kernel_similarity(neural, planted_kernels)["one_minus_rmse"].max("artificial").values
    null_neural = sim.phase_randomize(neural, n_surrogates=2, random_state=0)
    null = sim.kernel_similarity(null_neural, planted_kernels)["one_minus_rmse"].max("artificial").values
    test = sim.permutation_test(real, null, n_permutations=2000)
    assert test["difference"] > 0 and test["p_value"] < 0.01


def test_alignment_summary_margins_and_tables(planted):
    from neuroalign_utils.zoo import alignment

    neural, artificial = planted
    neural = neural.assign_coords(area=("kernel", np.repeat(["VISp", "VISl"], 20)))
    layer_type = np.where(artificial["model"].values == "planted", "attention", "convolution")
    artificial = artificial.assign_coords(layer_type=("kernel", layer_type))
    result = alignment.alignment_summary(
        neural, artificial, {"area": ["model", "area"]}, n_bootstrap=100, n_permutations=500
    )
    table = result["tables"]["area"].set_index(["model", "area"])
    assert {"null_value", "null_ci_low", "null_ci_high"} <= set(table.columns)
    assert (table.loc["planted", "value"] > table.loc["planted", "null_value"]).all()
    tests = result["tests"].set_index("model")
    assert tests.loc["planted", "real_minus_null"] > 0 and tests.loc["planted", "p_real_vs_null"] < 0.01


def test_combine_kernel_sets_resizes_and_fills_coordinates():
    from neuroalign_utils.zoo import alignment

    rng = np.random.default_rng(0)
    a = xr.DataArray(rng.normal(size=(3, 8, 8)), dims=("kernel", "y", "x"),
                     coords={"model": ("kernel", ["a"] * 3), "attention_head": ("kernel", [0, 1, 2])})
    b = xr.DataArray(rng.normal(size=(2, 5, 7)), dims=("kernel", "y", "x"), coords={"model": ("kernel", ["b"] * 2)})
    combined = alignment.combine_kernel_sets([a, b], 8)
    assert combined.shape == (5, 8, 8) and combined.name == "kernels"
    assert list(combined["model"].values) == ["a", "a", "a", "b", "b"]
    assert list(combined["attention_head"].values) == [0, 1, 2, -1, -1]
    assert list(combined["original_height"].values) == [8, 8, 8, 5, 5]
    np.testing.assert_allclose(combined.values[3:], sim.resize_kernels(b.values, 8), atol=1e-6)
    np.testing.assert_allclose(combined.values[:3], a.values, atol=1e-6)
