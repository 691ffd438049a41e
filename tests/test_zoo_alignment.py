"""Planted alignment: kernels built from planted RFs rank above random-weight kernels and above the nulls."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from neuroalign_utils import zoo
from neuroalign_utils.kernels import analysis, figures, pipeline
from neuroalign_utils.kernels import artificial as artificial_kernels
from neuroalign_utils.kernels import similarity as sim

SIZE = 16


def _gaussian_rfs(rng, n):
    yy, xx = np.mgrid[:SIZE, :SIZE]
    centres = rng.uniform(4, SIZE - 4, size=(n, 2))
    widths = rng.uniform(1.5, 3.5, size=n)
    return np.exp(
        -((yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2)
        / (2 * widths[:, None, None] ** 2)
    )


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(7)
    rfs = _gaussian_rfs(rng, 40)
    neural = xr.DataArray(rfs + 0.05 * rng.normal(size=rfs.shape), dims=("kernel", "y", "x"))
    planted_kernels = rfs + 0.15 * rng.normal(size=rfs.shape)
    model = zoo.build_model("Mask2Former-T", random_state=0)
    random_kernels = artificial_kernels.weight_kernels(
        model, model_name="random", kernel_size=SIZE, select=False, max_kernels_per_layer=100
    )
    del model
    artificial = xr.concat(
        [
            xr.DataArray(planted_kernels, dims=("kernel", "y", "x"), coords={"model": ("kernel", ["planted"] * 40)}),
            xr.DataArray(
                random_kernels.values,
                dims=("kernel", "y", "x"),
                coords={"model": ("kernel", random_kernels["model"].values)},
            ),
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

    neural, artificial = planted
    neural = neural.assign_coords(area=("kernel", np.repeat(["VISp", "VISl"], 20)))
    layer_type = np.where(artificial["model"].values == "planted", "attention", "convolution")
    artificial = artificial.assign_coords(layer_type=("kernel", layer_type))
    result = pipeline.alignment_summary(
        neural, artificial, {"area": ["model", "area"]}, n_bootstrap=100, n_permutations=500
    )
    table = result["tables"]["area"].set_index(["model", "area"])
    assert {"null_value", "null_ci_low", "null_ci_high"} <= set(table.columns)
    assert (table.loc["planted", "value"] > table.loc["planted", "null_value"]).all()
    tests = result["tests"].set_index("model")
    assert tests.loc["planted", "real_minus_null"] > 0 and tests.loc["planted", "p_real_vs_null"] < 0.01


def test_combine_kernel_sets_resizes_and_fills_coordinates():

    rng = np.random.default_rng(0)
    a = xr.DataArray(
        rng.normal(size=(3, 8, 8)),
        dims=("kernel", "y", "x"),
        coords={"model": ("kernel", ["a"] * 3), "attention_head": ("kernel", [0, 1, 2])},
    )
    b = xr.DataArray(rng.normal(size=(2, 5, 7)), dims=("kernel", "y", "x"), coords={"model": ("kernel", ["b"] * 2)})
    combined = pipeline.combine_kernel_sets([a, b], 8)
    assert combined.shape == (5, 8, 8) and combined.name == "kernels"
    assert list(combined["model"].values) == ["a", "a", "a", "b", "b"]
    assert list(combined["attention_head"].values) == [0, 1, 2, -1, -1]
    assert list(combined["original_height"].values) == [8, 8, 8, 5, 5]
    np.testing.assert_allclose(combined.values[3:], sim.resize_kernels(b.values, 8), atol=1e-6)
    np.testing.assert_allclose(combined.values[:3], a.values, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# one number, one value; sentences chosen from the numbers flip between a good and a broken run


def test_model_table_margin_is_the_tests_margin(planted):

    neural, artificial = planted
    result = pipeline.alignment_summary(neural, artificial, {"model": ["model"]}, n_bootstrap=50, n_permutations=200)
    models = analysis.model_table(result)
    tests = result["tests"].set_index("model")
    np.testing.assert_allclose(models["margin"], tests.loc[models.index, "real_minus_null"], atol=1e-12)
    np.testing.assert_allclose(models["margin"], models["value"] - models["null_value"], atol=1e-12)
    assert models.loc["planted", "verdict"] == "clears the null"  # planted RFs: r far above the null's
    assert models.loc["random", "verdict"] != "clears the null"
    assert (models["margin_ci_low"] <= models["margin"]).all() and (models["margin"] <= models["margin_ci_high"]).all()


def _models(**columns):
    import pandas as pd

    base = {
        "value": [-0.398, -0.405],
        "null_value": [-0.407, -0.408],
        "margin": [0.0095, 0.0032],
        "r_margin": [0.0062, -0.0004],
        "p_real_vs_null": [0.0005, 0.0005],
        "attention_minus_convolution": [-0.024, 0.0025],
        "p_attention_vs_convolution": [0.0005, 0.5],
    }
    base.update(columns)
    frame = pd.DataFrame(base, index=["Mask2Former-T", "SAM-B"])

    frame["verdict"] = [analysis.margin_verdict(p, r) for p, r in zip(frame["p_real_vs_null"], frame["r_margin"])]
    return frame


def test_null_sentence_flips():
    from neuroalign_utils import report

    sentence = analysis.describe_null(_models(), weights="random")
    assert "This is a null result" in sentence and "negligible in size" in sentence
    assert report.format_p(0.0004997501249375312) in sentence and "0.0004997" not in sentence
    assert "a control" in sentence and "narrower spread" in sentence
    good = _models(value=[-0.30, -0.32], margin=[0.10, 0.09], r_margin=[0.15, 0.12])
    sentence = analysis.describe_null(good, weights="pretrained")
    assert "null result" not in sentence and "clear the null by a meaningful margin" in sentence
    assert "control" not in sentence
    unclear = _models(p_real_vs_null=[0.3, 0.6])
    sentence = analysis.describe_null(unclear, weights="random")
    assert "Mask2Former-T and SAM-B are indistinguishable from the null (margins 0.0032 to 0.0095" in sentence
    assert "permutation p = 0.30 to p = 0.60" in sentence
    mixed = _models(p_real_vs_null=[0.0005, 0.6])
    sentence = analysis.describe_null(mixed, weights="random")
    assert "Mask2Former-T is above the null statistically but negligible in size (margin 0.0095" in sentence
    assert "SAM-B is indistinguishable from the null (margin 0.0032" in sentence


def test_attention_sentence_and_verdict_flip():

    text, verdict, summary = analysis.describe_attention_vs_convolution(_models())
    assert verdict == "does not agree" and "0 of 2" in text and "none is large" in text
    text, verdict, summary = analysis.describe_attention_vs_convolution(
        _models(attention_minus_convolution=[0.12, 0.09], p_attention_vs_convolution=[0.0005, 0.001])
    )
    assert verdict == "agrees" and "higher in every model" in text and "none is large" not in text
    assert summary.startswith("attention higher in 2 of 2")


def test_best_group_and_pairs_sentences_flip():
    import pandas as pd

    overlapping = pd.DataFrame(
        {
            "model": ["a", "a", "b", "b"],
            "area": ["VISp", "VISpm"] * 2,
            "value": [0.1, 0.2, 0.3, 0.25],
            "ci_low": [0.0, 0.05, 0.2, 0.1],
            "ci_high": [0.2, 0.3, 0.4, 0.35],
        }
    )
    best = analysis.best_group(overlapping, "area")
    assert best["name"] is None and not best["separated"]
    assert "cannot single out" in analysis.describe_best_group(best, "area")
    separated = overlapping.assign(
        value=[0.1, 0.5, 0.1, 0.5], ci_low=[0.0, 0.4, 0.0, 0.4], ci_high=[0.2, 0.6, 0.2, 0.6]
    )
    best = analysis.best_group(separated, "area")
    assert best["name"] == "VISpm" and best["separated"]
    assert "VISpm in every model, and its interval lies above" in analysis.describe_best_group(best, "area")
    assert "not evidence" in analysis.describe_best_pairs(0.36, 0.34, 1000)
    assert "stands above" in analysis.describe_best_pairs(0.53, 0.34, 1000)


def test_identity_and_v1t_sentences():

    assert "exactly" in analysis.describe_identity(0.0)
    assert "rounding" in analysis.describe_identity(2e-16)
    assert "not z-scored" in analysis.describe_identity(0.01)
    assert "has not run" in analysis.describe_v1t(include_v1t=True)
    assert "did not finish" in analysis.describe_v1t(include_v1t=True, problem="incomplete")
    assert "include_v1t=False" in analysis.describe_v1t(include_v1t=False)


def test_figures_fit_the_book(planted):
    import matplotlib

    matplotlib.use("Agg")
    from neuroalign_utils import style

    neural, artificial = planted
    neural = neural.assign_coords(genotype=("kernel", [f"g{i % 22}" for i in range(40)]))
    result = pipeline.alignment_summary(
        neural, artificial, {"model": ["model"], "genotype": ["model", "genotype"]}, n_bootstrap=20, n_permutations=50
    )
    models = analysis.model_table(result)
    for fig in (
        figures.plot_model_levels(models),
        figures.plot_group_margins(result["tables"]["genotype"], "genotype", ["planted", "random"]),
    ):
        assert fig.get_size_inches()[0] <= style.BOOK_WIDTH
    styles = figures.category_styles([f"g{i}" for i in range(22)])
    assert len(set(styles.values())) == 22  # 22 genotypes: colour and marker pairs never repeat


@pytest.fixture(scope="module")
def twins():
    """Neural kernels, a 'trained' model whose kernels are noisy copies of them and a 'random' twin of noise,
    with two areas and two kinds of kernel."""
    rng = np.random.default_rng(11)
    rfs = _gaussian_rfs(rng, 40)
    neural = xr.DataArray(
        rfs + 0.05 * rng.normal(size=rfs.shape),
        dims=("kernel", "y", "x"),
        coords={"area": ("kernel", np.repeat(["VISp", "VISl"], 20))},
    )

    def kernels(values, label):
        n = len(values)
        return xr.DataArray(
            values,
            dims=("kernel", "y", "x"),
            coords={
                "model": ("kernel", [label] * n),
                "kind": ("kernel", np.repeat(["attention_map", "weight"], n // 2)),
                "layer_type": ("kernel", np.repeat(["attention", "convolution"], n // 2)),
            },
        )

    trained = kernels(rfs + 0.3 * rng.normal(size=rfs.shape), "efficientnet_lite0 (trained)")
    random = kernels(rng.normal(size=rfs.shape), "efficientnet_lite0 (random)")
    return neural, xr.concat([trained, random], dim="kernel")


def test_trained_random_margins_recover_a_planted_effect_of_training(twins):

    neural, artificial = twins
    similarity = sim.kernel_similarity(neural, artificial)
    pairs = artificial_kernels.twin_pairs(artificial["model"].values)
    table = pipeline.trained_random_margins(similarity, pairs, n_bootstrap=300)
    row = table.iloc[0]
    assert (row["model"], row["twin"]) == ("efficientnet_lite0 (trained)", "efficientnet_lite0 (random)")
    assert row["margin"] == pytest.approx(row["trained"] - row["random"])
    assert (
        row["ci_low"] > 0.05 and row["r_margin"] > analysis.MEANINGFUL_R and row["n_trained"] == row["n_random"] == 40
    )
    assert analysis.twin_verdict(row["ci_low"], row["ci_high"], row["r_margin"]) == "better"
    by = pipeline.trained_random_margins(similarity, pairs, ["area", "kind"], n_bootstrap=50)
    assert len(by) == 4 and set(by["area"]) == {"VISp", "VISl"} and (by["n_neural"] == 20).all()
    # the mean of the per-area margins is the overall margin (equal areas, equal kernel sets)
    by_area = pipeline.trained_random_margins(similarity, pairs, ["area"], n_bootstrap=50)
    assert by_area["margin"].mean() == pytest.approx(row["margin"])
    swapped = pipeline.trained_random_margins(
        similarity, {"efficientnet_lite0 (random)": "efficientnet_lite0 (trained)"}, n_bootstrap=300
    ).iloc[0]
    assert analysis.twin_verdict(swapped["ci_low"], swapped["ci_high"], swapped["r_margin"]) == "worse"
    with pytest.raises(ValueError, match="not in the similarity table"):
        pipeline.trained_random_margins(similarity, {"efficientnet_lite0 (trained)": "SAM-B"})
    with pytest.raises(ValueError, match="unknown column"):
        pipeline.trained_random_margins(similarity, pairs, ["genotype"])


def test_trained_vs_random_sentences_flip():
    import pandas as pd

    good = pd.DataFrame(
        {
            "model": ["a (trained)", "b (trained)"],
            "trained": [-0.30, -0.31],
            "random": [-0.40, -0.41],
            "margin": [0.10, 0.10],
            "ci_low": [0.08, 0.07],
            "ci_high": [0.12, 0.13],
            "r_margin": [0.15, 0.14],
        }
    )
    sentence = analysis.describe_trained_vs_random(good)
    assert "a (trained) aligns better than its random twin by a meaningful margin" in sentence
    assert sentence.endswith("Training moved every model's kernels towards the neural kernels by a meaningful margin.")
    broken = good.assign(
        margin=[-0.01, 0.001], ci_low=[-0.02, -0.002], ci_high=[-0.005, 0.004], r_margin=[-0.01, 0.001]
    )
    sentence = analysis.describe_trained_vs_random(broken)
    assert "a (trained) aligns worse than its random twin" in sentence
    assert "b (trained) is indistinguishable from its random twin" in sentence
    assert "Training did not move any model's kernels" in sentence
    small = good.assign(r_margin=[0.01, 0.2])
    sentence = analysis.describe_trained_vs_random(small, over_null=broken)
    assert "in 2 of 2 models." in sentence and "by less than a meaningful margin" in sentence
    assert "the trained model's margin is below its twin's" in sentence  # a (over the null: −0.02 to −0.005)
    groups = good.assign(area=["VISp", "VISl"], model=["a (trained)"] * 2)
    assert "a (trained) sits above its twin in 2 of 2 areas" in analysis.describe_twin_groups(groups, "area")
    assert "below it in 1 of 2" in analysis.describe_twin_groups(
        groups.assign(ci_low=[0.1, -0.3], ci_high=[0.2, -0.1]), "area"
    )


def test_twin_levels_and_figures(twins):
    import matplotlib

    matplotlib.use("Agg")
    from neuroalign_utils import style

    neural, artificial = twins
    result = pipeline.alignment_summary(
        neural,
        artificial,
        {"model": ["model"], "kind": ["model", "kind", "layer_type"]},
        n_bootstrap=30,
        n_permutations=50,
    )
    pairs = artificial_kernels.twin_pairs(artificial["model"].values)
    levels = analysis.twin_levels(result, pairs)
    assert list(levels["kernels"]) == ["all kernels", "attention maps", "convolution weights"]
    one_kind = artificial.where(artificial["kind"] == "weight", drop=True)
    single = pipeline.alignment_summary(
        neural,
        one_kind,
        {"model": ["model"], "kind": ["model", "kind", "layer_type"]},
        n_bootstrap=10,
        n_permutations=20,
    )
    assert list(analysis.twin_levels(single, pairs)["kernels"]) == ["all kernels"]  # its one kind is all kernels
    overall = pipeline.trained_random_margins(single["similarity"], pairs, n_bootstrap=10)
    by_kind = pipeline.trained_random_margins(single["similarity"], pairs, ["kind", "layer_type"], n_bootstrap=10)
    assert list(analysis.combine_twin_margins(overall, by_kind)["kernels"]) == ["all kernels"]
    by_kind = pipeline.trained_random_margins(result["similarity"], pairs, ["kind", "layer_type"], n_bootstrap=10)
    combined = analysis.combine_twin_margins(
        pipeline.trained_random_margins(result["similarity"], pairs, n_bootstrap=10), by_kind
    )
    assert list(combined["kernels"]) == ["all kernels", "attention maps", "convolution weights"]
    assert "kind" not in combined
    assert (levels["trained"] > levels["trained_null"]).all() and (levels["trained"] > levels["random"]).all()
    fig = figures.plot_twin_levels(levels)
    assert fig.get_size_inches()[0] <= style.BOOK_WIDTH
    margins = {g: pipeline.trained_random_margins(result["similarity"], pairs, [g], n_bootstrap=20) for g in ("area",)}
    fig = figures.plot_twin_group_margins(margins)
    assert fig.get_size_inches()[0] <= style.BOOK_WIDTH
    assert figures.plot_twin_group_margins({"area": margins["area"].iloc[:0]}) is None


def test_null_sentence_names_the_random_models_among_trained_ones():

    models = _models()
    sentence = analysis.describe_null(models, weights={"Mask2Former-T": "random", "SAM-B": "pretrained"})
    assert "The weights of Mask2Former-T are random" in sentence and "SAM-B are random" not in sentence
    assert "a control" not in analysis.describe_null(models, weights={"Mask2Former-T": "pretrained"})


def test_paired_difference_pairs_each_neural_kernel_with_its_own_surrogate(planted):

    neural, artificial = planted
    real = sim.kernel_similarity(neural, artificial)
    surrogates = neural.copy(data=sim.phase_randomize(neural, n_surrogates=1, random_state=0))
    null = sim.kernel_similarity(surrogates, artificial)
    difference = pipeline._paired_difference(real, null)  # the same kernels kept: no copies needed
    np.testing.assert_allclose(
        difference["one_minus_rmse"].values, real["one_minus_rmse"].values - null["one_minus_rmse"].values
    )
    flat = surrogates.copy()
    flat[3] = 1.0  # a constant surrogate has no z-score: the engine drops it, and the pair goes with it
    with pytest.warns(UserWarning, match="Dropped 1 of 40"):
        null_without = sim.kernel_similarity(flat, artificial)
    difference = pipeline._paired_difference(real, null_without)
    assert 3 not in difference["neural_index"].values and difference.sizes["neural"] == 39
    keep = np.flatnonzero(real["neural_index"].values != 3)
    np.testing.assert_allclose(
        difference["pearson_r"].values, real["pearson_r"].values[keep] - null_without["pearson_r"].values
    )


def test_every_lens_figure_takes_axes_and_returns_its_figure():
    import inspect

    import matplotlib.pyplot as plt

    from neuroalign_utils.allen import figures as allen_figures

    for module in (figures, allen_figures):
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("plot_") and function.__module__ == module.__name__:
                parameters = inspect.signature(function).parameters
                assert "axes" in parameters and parameters["axes"].default is None, name
                assert not {"ax", "fig"} & set(parameters), name
    rng = np.random.default_rng(0)
    neural_kernel, others = rng.normal(size=(8, 8)), list(rng.normal(size=(2, 6, 6)))
    fig, axes = plt.subplots(1, 4)
    assert figures.plot_overlay(rng.random((8, 8)), neural_kernel, others, ["a", "b"], axes=axes) is fig
    with pytest.raises(ValueError, match="'axes' must hold 4 Axes"):
        figures.plot_overlay(rng.random((8, 8)), neural_kernel, others, ["a", "b"], axes=axes[:3])
    made = figures.plot_overlay(rng.random((8, 8)), neural_kernel, others, ["a", "b"])
    assert len(made.axes) == 5  # three overlays, the colour bar and the profile
