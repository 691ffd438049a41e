"""Synthesis: the lens table is read from saved results (planted numbers come back), missing chapters
are named, and the trained V1T joins the kernel-alignment lens through the existing functions."""

from __future__ import annotations

import typing

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from neuroalign_utils import results, storage, synthesis
from neuroalign_utils.factortopy import analysis

# value, null, p per model; the v1t row (trained, as when chapter 04 re-runs after the V1T chapters) is below its null
KA = {"Mask2Former-T": (-0.39, -0.41, 0.002), "SAM-B": (-0.40, -0.405, 0.3), "v1t": (-0.42, -0.41, 0.9)}
V1T = {
    ("v1t", True): (0.40, 0.6),
    ("cnn", True): (0.35, 0.5),
    ("linear", True): (0.10, 0.15),
    ("v1t", False): (0.30, 0.45),
}
FT = dict(r2_mean=0.42, planted_ceiling_r2=0.66, slope=1.04, within_one=0.75, exact=0.5, n_layers=4)
PLANTED_LAYERS = {"V1v": 0, "hV4": 1, "OPA": 2, "EBA": 3, "Unknown": 2}


def headline(chapter, **fields):
    """``chapter``'s headline with ``fields`` and every other field empty (0, "", [], {}, None)."""
    cls = synthesis.HEADLINES[chapter]
    empty = {float: 0.0, int: 0, str: "", bool: False}
    for name, hint in typing.get_type_hints(cls).items():
        if name in fields or name not in cls.field_names():
            continue
        origin = typing.get_origin(hint)
        fields[name] = (
            None
            if type(None) in typing.get_args(hint)
            else []
            if origin is list
            else {}
            if origin is dict
            else empty[hint]
        )
    return cls(**fields)


def write_kernel_alignment(data_dir):
    folder = storage.chapter_results_dir("kernel_alignment", {"seed": 0}, data_dir=data_dir)
    pd.DataFrame(
        [{"model": m, "real_minus_null": v - n, "p_real_vs_null": p} for m, (v, n, p) in KA.items()]
    ).to_parquet(folder / "tests.parquet")
    headline(
        "kernel_alignment",
        artificial_weights="random",
        mean_one_minus_rmse_by_model={m: v for m, (v, _, _) in KA.items()},
        mean_null_by_model={m: n for m, (_, n, _) in KA.items()},
    ).save(folder)
    storage.finish_run(folder, synthetic=True)


def write_v1t_training(data_dir):
    folder = storage.chapter_results_dir("v1t_training", {"seed": 0}, data_dir=data_dir)
    rows = [
        dict(
            core=c,
            behaviour=b,
            mouse=mouse,
            single_trial_correlation=r + offset,
            fraction_of_single_trial_ceiling=f - offset,
        )
        for (c, b), (r, f) in V1T.items()
        for mouse, offset in (("A", 0.01), ("B", -0.01))
    ]
    pd.DataFrame(rows).to_parquet(folder / "results.parquet")
    headline("v1t_training", best_model=["v1t", True]).save(folder)
    storage.finish_run(folder, synthetic=True)


def write_factortopy(data_dir):
    folder = storage.chapter_results_dir("factortopy_encoding", {"seed": 0}, data_dir=data_dir)
    pd.DataFrame({"planted_layer": list(PLANTED_LAYERS.values())}, index=list(PLANTED_LAYERS)).rename_axis(
        "roi"
    ).to_parquet(folder / "recovery.parquet")
    headline(
        "factortopy_encoding",
        backbone="vit",
        weights="random",
        n_layers=FT["n_layers"],
        r2_mean=FT["r2_mean"],
        planted_ceiling_r2=FT["planted_ceiling_r2"],
        layer_within_one_fraction=FT["within_one"],
        layer_exact_fraction=FT["exact"],
        hierarchy_slope={"slope": FT["slope"], "slope_low": 0.9, "slope_high": 1.1},
    ).save(folder)
    storage.finish_run(folder, synthetic=True)


def row(table, chapter, measure, control):
    rows = table[(table["chapter"] == chapter) & (table["measure"] == measure) & (table["control"] == control)]
    assert len(rows) == 1, (chapter, measure, control, table)
    return rows.iloc[0]


def test_within_one_chance_counts_neighbouring_layers():
    assert analysis.within_one_chance([0], 4) == pytest.approx(2 / 4)
    assert analysis.within_one_chance([1, 2], 4) == pytest.approx(3 / 4)
    assert analysis.within_one_chance([0, 3], 4) == pytest.approx(2 / 4)
    assert analysis.within_one_chance([0], 1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n_layers"):
        analysis.within_one_chance([0], 0)


def test_lens_table_reads_every_planted_number(tmp_path):
    write_kernel_alignment(tmp_path)
    write_v1t_training(tmp_path)
    write_factortopy(tmp_path)
    table = synthesis.lens_table(data_dir=tmp_path)
    assert synthesis.missing_chapters(table) == []
    assert list(table.columns) == synthesis.TABLE_COLUMNS
    for model, (value, null, p) in KA.items():
        r = table[(table["chapter"] == "kernel_alignment") & table["result"].str.startswith(model)].iloc[0]
        assert (r["value"], r["control_value"]) == pytest.approx((value, null))
        assert r["difference"] == pytest.approx(value - null)
        assert f"{p:.3g}" in r["note"]
        assert ("trained on V1" if model == "v1t" else "random weights") in r["result"]
    r = row(table, "v1t_training", "single-trial correlation", "CNN core")
    assert (r["value"], r["control_value"]) == pytest.approx((V1T["v1t", True][0], V1T["cnn", True][0]))
    r = row(table, "v1t_training", "single-trial correlation", "V1T without behaviour")
    assert r["control_value"] == pytest.approx(V1T["v1t", False][0])
    r = row(table, "v1t_training", "fraction of the planted noise ceiling", "linear core")
    assert (r["value"], r["control_value"]) == pytest.approx((V1T["v1t", True][1], V1T["linear", True][1]))
    r = row(table, "factortopy_encoding", "mean test R²", "planted ceiling R²")
    assert (r["value"], r["control_value"]) == pytest.approx((FT["r2_mean"], FT["planted_ceiling_r2"]))
    slope = row(table, "factortopy_encoding", "hierarchy slope β", "no hierarchy")
    assert (slope["value"], slope["control_value"]) == pytest.approx((FT["slope"], 0.0))
    r = row(table, "factortopy_encoding", "planted layer recovered within one", "random layer choice")
    named = [layer for roi, layer in PLANTED_LAYERS.items() if roi != "Unknown"]
    assert r["control_value"] == pytest.approx(analysis.within_one_chance(named, FT["n_layers"]))
    assert row(table, "factortopy_encoding", "planted layer recovered exactly", "random layer choice")[
        "control_value"
    ] == pytest.approx(1 / FT["n_layers"])

    numbers = synthesis.headline_numbers(table)
    assert numbers["ka_best"].startswith("Mask2Former-T")
    assert numbers["chance_cleared"] == "4 of 6"  # not the v1t row below its null, nor SAM-B (p = 0.3)
    assert numbers["v1t_vs_cnn"] == "0.050"
    assert "neuroalign run v1t_analysis" in numbers["v1t_kernel_margin"]
    fig = synthesis.plot_lens_table(table)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == table.groupby(["lens", "measure"]).ngroups == 7


def test_a_headline_off_its_schema_is_an_error_naming_the_field(tmp_path):
    write_v1t_training(tmp_path)
    folder = storage.chapter_results_dir("kernel_alignment", {"seed": 0}, data_dir=tmp_path)
    pd.DataFrame({"model": ["m"], "p_real_vs_null": [0.5]}).to_parquet(folder / "tests.parquet")
    broken = headline("kernel_alignment", mean_one_minus_rmse_by_model={"m": -0.4}).to_dict()
    broken["mean_null_by_model"] = {"m": "low"}
    storage.write_json(folder / results.HEADLINE_FILE, broken)
    storage.finish_run(folder, synthetic=True)
    with pytest.raises(
        results.ResultsError,
        match=r"mean_null_by_model\['m'\]: expected float, got str.*"
        r"`neuroalign run kernel_alignment` again",
    ):
        synthesis.lens_table(data_dir=tmp_path)


def test_missing_chapters_are_named_not_raised(tmp_path):
    write_kernel_alignment(tmp_path)
    write_factortopy(tmp_path)
    table = synthesis.lens_table(data_dir=tmp_path)
    assert synthesis.missing_chapters(table) == ["v1t_training"]
    missing = table[table["chapter"] == "v1t_training"]
    assert len(missing) == 1 and missing["value"].isna().all()
    assert "`neuroalign run v1t_training`" in missing["note"].iloc[0]
    assert table.loc[table["chapter"] == "kernel_alignment", "value"].notna().all()
    numbers = synthesis.headline_numbers(table)
    assert "neuroalign run v1t_training" in numbers["v1t_fraction"]
    assert numbers["ft_slope"] == f"{FT['slope']:.2f}"

    empty = synthesis.lens_table(data_dir=tmp_path / "nothing")
    assert synthesis.missing_chapters(empty) == sorted(synthesis.LENS_CHAPTERS)
    assert synthesis.plot_lens_table(empty) is None
    inputs = synthesis.load_alignment_inputs(data_dir=tmp_path / "nothing")
    assert inputs["neural"] is None and {"neural_kernels", "artificial_kernels"} <= set(inputs["missing"])


def kernel_array(values, model, kind, layer_type, n_parameters):
    n = len(values)
    return xr.DataArray(
        np.asarray(values, np.float32),
        dims=("kernel", "y", "x"),
        name="kernels",
        coords=dict(
            model=("kernel", [model] * n),
            layer=("kernel", [f"{kind}_0"] * n),
            layer_index=("kernel", [0] * n),
            layer_type=("kernel", [layer_type] * n),
            kind=("kernel", [kind] * n),
            n_parameters=("kernel", [n_parameters] * n),
        ),
    )


def gabors(rng, n, size):
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    out = []
    for _ in range(n):
        cy, cx = rng.uniform(-2, 2, 2)
        theta, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        u = (x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)
        out.append(np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 8) * np.cos(2 * np.pi * u / 6 + phase))
    return np.array(out)


def test_trained_v1t_joins_the_alignment_lens(tmp_path, rng):
    size = 12
    neural = gabors(rng, 40, size)
    folder = storage.chapter_results_dir("neural_kernels", {"seed": 0}, data_dir=tmp_path)
    n = len(neural)
    xr.DataArray(
        neural,
        dims=("kernel", "y", "x"),
        name="kernels",
        coords=dict(selected=("kernel", np.r_[np.ones(n - 5), np.zeros(5)].astype(int)), area=("kernel", ["VISp"] * n)),
    ).to_netcdf(folder / "neural_kernels.nc", engine="h5netcdf")
    headline("neural_kernels").save(folder)
    storage.finish_run(folder, synthetic=True)
    folder = storage.chapter_results_dir("artificial_kernels", {"seed": 0}, data_dir=tmp_path)
    zoo = kernel_array(rng.normal(size=(30, 7, 7)), "ZooNet", "weight", "convolution", 1000)
    zoo.attrs["weights"] = "random"
    zoo.to_netcdf(folder / "kernels.nc", engine="h5netcdf")
    pd.DataFrame({"n_parameters": [5000.0]}, index=pd.Index(["ZooNet"], name="model")).to_parquet(
        folder / "model_parameters.parquet"
    )
    headline("artificial_kernels").save(folder)
    storage.finish_run(folder, synthetic=True)

    before = synthesis.load_alignment_inputs(data_dir=tmp_path)
    assert before["missing"] == ["v1t_analysis"] and before["v1t_models"] == []
    assert before["neural"].sizes["kernel"] == n - 5

    folder = storage.chapter_results_dir("v1t_analysis", {"seed": 0}, data_dir=tmp_path)
    # planted: the "trained" patch kernels are noisy half-size copies of neural kernels; attention maps are uniform
    copies = neural[:20, ::2, ::2] + 0.05 * rng.normal(size=(20, size // 2, size // 2))
    kernel_array(copies, "v1t", "weight", "convolution", 300).to_netcdf(
        folder / "kernels_patch_embedding.nc", engine="h5netcdf"
    )
    kernel_array(np.full((4, 3, 6), 1 / 18), "v1t", "attention_map", "attention", 200).to_netcdf(
        folder / "kernels_attention.nc", engine="h5netcdf"
    )
    headline("v1t_analysis").save(folder)
    storage.finish_run(folder, synthetic=True)

    inputs = synthesis.load_alignment_inputs(data_dir=tmp_path)
    assert inputs["missing"] == [] and inputs["v1t_models"] == ["v1t"]
    assert inputs["artificial"].sizes == {"kernel": 30 + 20 + 4, "y": size, "x": size}
    assert inputs["artificial"].attrs["weights"] == "random"
    assert inputs["model_parameters"].to_dict() == {"ZooNet": 5000.0, "v1t": 500.0}

    with pytest.warns(UserWarning, match="Dropped 4 of 54"):  # the uniform attention maps have no z-score
        result = synthesis.v1t_alignment(inputs["neural"], inputs["artificial"], n_bootstrap=20, n_permutations=50)
    ranking = result["ranking"].set_index("model")
    assert ranking.loc["v1t", "rank_by_margin"] == 1
    assert ranking.loc["v1t", "real_minus_null"] > 0.01 > abs(ranking.loc["ZooNet", "real_minus_null"])
    assert ranking.loc["v1t", "p_real_vs_null"] < 0.05
    counts = result["kernel_counts"].set_index(["model", "kind"])["compared"].to_dict()
    assert counts == {("ZooNet", "weight"): 30, ("v1t", "attention_map"): 0, ("v1t", "weight"): 20}

    numbers = synthesis.headline_numbers(
        synthesis.lens_table(data_dir=tmp_path), result["ranking"], inputs["v1t_models"], result["kernel_counts"]
    )
    assert numbers["v1t_kernel_rank"] == "1 of 2"
    assert numbers["v1t_kernels_compared"] == "0 of 4 attention map kernels, 20 of 20 weight kernels"
    fig = synthesis.plot_margins(result["ranking"], inputs["v1t_models"])
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][-1] == "v1t"


def test_synthesis_sentences_flip_with_the_numbers(tmp_path):
    write_kernel_alignment(tmp_path)
    write_v1t_training(tmp_path)
    write_factortopy(tmp_path)
    table = synthesis.lens_table(data_dir=tmp_path)
    ka = synthesis.describe_kernel_alignment(table)
    assert ka.startswith("The zoo model with the largest margin over its phase-randomised null is Mask2Former-T")
    # significant, but a margin of 0.02 is worth r ≈ 0.014: negligible, as the kernel-alignment chapter says
    assert "above the null statistically, but by less than the 0.073" in ka and "not from learning on images" in ka
    strong = table.copy()
    strong.loc[strong["result"].str.startswith("Mask2Former-T"), "difference"] = 0.1
    assert "so it clears the null" in synthesis.describe_kernel_alignment(strong)
    # the same margin with a permutation p above 0.05 does not clear the null
    weak = table.copy()
    weak.loc[weak["chapter"] == "kernel_alignment", "p_value"] = 0.3
    assert "does not clear the null" in synthesis.describe_kernel_alignment(weak)

    v1t = synthesis.describe_v1t_lens(table)
    assert v1t.startswith("In single-trial correlation, V1T beats the CNN by")
    worse = table.copy()
    cnn = (worse["chapter"] == "v1t_training") & (worse["control"] == "CNN core")
    worse.loc[cnn, "difference"] = -0.02
    assert "V1T does not beat the CNN (−0.020)" in synthesis.describe_v1t_lens(worse)

    ft = synthesis.describe_factortopy_lens(table)
    assert "more than the" in ft
    chance = table.copy()
    within = (chance["chapter"] == "factortopy_encoding") & (chance["measure"] == "planted layer recovered within one")
    chance.loc[within, "value"] = 0.2
    assert "no more than the" in synthesis.describe_factortopy_lens(chance)

    assert synthesis.describe_chance(table).startswith("4 of 6 results")  # SAM-B: margin > 0 but p = 0.3
    assert synthesis.describe_chance(weak).startswith("3 of 6 results")


def test_paper_comparisons_gather_the_chapters_tables_while_the_synthesis_runs(tmp_path):
    from neuroalign_utils import report

    folder = storage.chapter_results_dir("factortopy_encoding", {"seed": 0}, data_dir=tmp_path)
    report.paper_comparison("factortopy_encoding", {"n_clusters": 20}, why="", results_dir=folder)
    headline("factortopy_encoding").save(folder)
    storage.finish_run(folder, synthetic=True)
    storage.chapter_results_dir("synthesis", {"seed": 0}, data_dir=tmp_path)  # this chapter, running
    table = synthesis.paper_comparisons(data_dir=tmp_path)
    assert list(table["chapter"]) == ["factortopy_encoding"] and table["reading"].iloc[0] == "same"


def _write_trained_vs_random(data_dir, chapter, entries):
    folder = storage.chapter_results_dir(chapter, {"seed": 0}, data_dir=data_dir)
    if all(isinstance(entry, results.TrainedVsRandom) for entry in entries):
        headline(chapter, trained_vs_random=entries).save(folder)
    else:  # a malformed headline, as an older or broken chapter may have left it
        storage.write_json(folder / results.HEADLINE_FILE, dict(headline(chapter).to_dict(), trained_vs_random=entries))
    storage.finish_run(folder, synthetic=True)


def test_trained_vs_random_table_gathers_every_lens_and_its_sentence_flips(tmp_path):
    lens_ka, lens_ft = synthesis.LENS_CHAPTERS["kernel_alignment"], synthesis.LENS_CHAPTERS["factortopy_encoding"]
    # written in the reverse of book order: the table puts the lenses in book order
    _write_trained_vs_random(
        tmp_path,
        "factortopy_encoding",
        [results.TrainedVsRandom(lens_ft, "dinov2_s14_saliency", "cross-layer distinctness", 0.6, 0.2, 0.4, 0.3, 0.5)],
    )
    _write_trained_vs_random(
        tmp_path,
        "kernel_alignment",
        [
            results.TrainedVsRandom(
                lens_ka, "efficientnet_lite0", "mean 1 − RMSE (all kernels)", -0.38, -0.40, 0.02, 0.01, 0.03
            ),
            results.TrainedVsRandom(
                lens_ka, "dinov2_s14_saliency", "mean 1 − RMSE (all kernels)", -0.41, -0.405, -0.005, -0.006, -0.004
            ),
        ],
    )
    _write_trained_vs_random(
        tmp_path,
        "artificial_kernels",
        [results.TrainedVsRandom(lens_ka, "dinov2_s14_saliency", "attention coverage", 0.7, 0.99, -0.29, -0.31, -0.27)],
    )
    storage.chapter_results_dir("synthesis", {"seed": 0}, data_dir=tmp_path)  # this chapter, running
    table = synthesis.trained_vs_random_table(data_dir=tmp_path)
    assert list(table["lens"]) == [lens_ka] * 3 + [synthesis.LENS_CHAPTERS["v1t_training"], lens_ft]
    assert list(table["chapter"][:3]) == ["artificial_kernels", "kernel_alignment", "kernel_alignment"]
    assert list(table["model"][1:3]) == ["dinov2_s14_saliency", "efficientnet_lite0"]  # by model within a chapter
    v1t = table[table["chapter"] == "v1t_training"].iloc[0]
    assert np.isnan(v1t["margin"]) and "no pretrained counterpart" in v1t["note"]
    ft = table[table["chapter"] == "factortopy_encoding"].iloc[0]
    assert (ft["trained"], ft["random"], ft["margin"]) == pytest.approx((0.6, 0.2, 0.4))
    sentence = synthesis.describe_trained_vs_random(table)
    assert "Kernel alignment: 1 of 3 margins lie above 0, 2 of 3 below" in sentence
    assert "V1T: trained from scratch on the data; no pretrained counterpart" in sentence
    assert "FactorTopy: every trained model differs from its random twin upwards" in sentence
    flipped = table.assign(ci_low=-table["ci_high"], ci_high=-table["ci_low"])
    assert "FactorTopy: every trained model sits below its random twin" in synthesis.describe_trained_vs_random(flipped)

    # a lens whose chapter never ran says which command makes it; a malformed entry is an error, not a gap
    only_ka = synthesis.trained_vs_random_table(data_dir=tmp_path / "none")
    ka_note = only_ka.loc[only_ka["chapter"] == "kernel_alignment", "note"].iloc[0]
    assert "run `neuroalign run kernel_alignment`" in ka_note
    _write_trained_vs_random(tmp_path / "bad", "kernel_alignment", [{"lens": lens_ka, "model": "x"}])
    with pytest.raises(
        results.ResultsError,
        match=r"trained_vs_random\[0\] lacks the field\(s\) \['quantity'.*"
        r"neuroalign run kernel_alignment",
    ):
        synthesis.trained_vs_random_table(data_dir=tmp_path / "bad")
    _write_trained_vs_random(
        tmp_path / "lens",
        "factortopy_encoding",
        [results.TrainedVsRandom("FactorTopy", "m", "q", 0.6, 0.2, 0.4, 0.3, 0.5)],
    )
    with pytest.raises(ValueError, match="names the lens 'FactorTopy'; accepted"):
        synthesis.trained_vs_random_table(data_dir=tmp_path / "lens")
