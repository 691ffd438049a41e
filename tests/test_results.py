"""Typed chapter headlines: what a chapter saves is what the next one loads, and a headline off its schema is
refused with the field named."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from neuroalign_utils import results, synthesis
from neuroalign_utils.factortopy.results import FactorTopyHeadline
from neuroalign_utils.kernels.results import (
    AllenHeadline,
    ArtificialKernelsHeadline,
    KernelAlignmentHeadline,
    NeuralKernelsHeadline,
)
from neuroalign_utils.v1t.results import V1TAnalysisHeadline, V1TTrainingHeadline, kernel_files, kernels_file

LENS = synthesis.LENS_CHAPTERS["kernel_alignment"]
ENTRY = dict(
    lens=LENS,
    model="efficientnet_lite0",
    quantity="mean 1 − RMSE",
    trained=-0.38,
    random=-0.40,
    margin=0.02,
    ci_low=0.01,
    ci_high=0.03,
)
GAIN = {"a": 0.28, "b": 0.11, "gain": 148.9, "high": 237.4, "low": 94.7}

# one headline per chapter, with the kinds of values the notebooks put there (numpy scalars, int keys, None)
EXAMPLES = {
    AllenHeadline: dict(
        manifest="/data/brain_observatory/manifest.json",
        synthetic=True,
        n_experiments=np.int64(60),
        n_cells=2374,
        n_strong_cells=1704,
        peak_threshold_percent=10.0,
        mean_time_to_peak_s_by_area={"VISp": np.float64(0.3669)},
        allensdk_scene_agreement=1.0,
        allensdk_max_peak_difference=0.003,
        planted_preferred_scene_exact=None,
        planted_preferred_scene_near=0.99,
    ),
    NeuralKernelsHeadline: dict(
        n_kernels=2374,
        kernel_size=[24, 32],
        response_window_s=[0.0, 0.5],
        n_selected={"excitatory": 500},
        mean_abs_r_selected=0.33,
        mean_abs_r_all=0.32,
        median_r_planted_rf_responsive=0.36,
        median_r_best_kernel_responsive=0.99,
        polarity_correct_fraction=None,
    ),
    ArtificialKernelsHeadline: dict(
        models=["SAM-B"],
        weights="random",
        trained_models=["efficientnet_lite0"],
        trained_vs_random=[results.TrainedVsRandom(**ENTRY)],
        n_available_models=10,
        n_kernels=16174,
        n_attention_maps=1716,
        n_weight_kernels=14458,
        mean_attention_coverage=0.95,
        seconds=89.4,
    ),
    KernelAlignmentHeadline: dict(
        n_neural_kernels=1000,
        n_artificial_kernels=16230,
        artificial_weights="random",
        best_model="SAM-B",
        best_model_margin_over_null=0.0066,
        best_model_p_vs_null=0.0005,
        verdict_by_model={"SAM-B": "negligible"},
        mean_one_minus_rmse_by_model={"SAM-B": -0.40},
        mean_null_by_model={"SAM-B": -0.41},
        margin_by_model={"SAM-B": 0.004},
        median_pearson_r=-0.0005,
        trained_vs_random=[ENTRY],
    ),
    V1TTrainingHeadline: dict(
        average_single_trial_correlation={"v1t_with_behaviour": 0.28},
        best_model=["v1t", True],
        v1t_gain_over_cnn=GAIN,
        behaviour_gain={"v1t": GAIN, "cnn": None},
        noise_ceiling_single_trial=0.67,
        v1t_grid=[4, 8],
        models=["models/v1t_with_behaviour.pt"],
    ),
    V1TAnalysisHeadline: dict(
        source="the 'v1t_training' run abc (synthetic data)",
        com_pupil_r_x=0.1,
        com_pupil_r_y=-0.1,
        com_moved_with_pupil_px={"x": 0.0, "y": -0.03},
        shifter_moved_with_pupil_px={"x": 2.4, "y": 4.9},
        arf_moved_with_pupil_px={"x": 2.2, "y": 4.7},
        planted_move_px=6.0,
        pupil_effect_through_attention={"x": 1e-5, "y": 0.002},
        arf_mean_sigma_horizontal_vertical={"V1T": (3.8, 4.0)},
        arf_dropped={"V1T": 0},
        arf_position_error_px=None,
        bmlp_spread_by_block={1: 0.012, 2: 0.017},
        readout_retinotopy_r={"x": 0.01, "y": -0.4},
        n_kernels=56,
    ),
    FactorTopyHeadline: dict(
        backbone="vit",
        weights="random",
        image_size=224,
        n_layers=4,
        r2_mean=0.19,
        r2_per_roi={"V1v": 0.05},
        hierarchy_slope={"slope": 1.0, "slope_low": 0.9, "slope_high": 1.1, "n_vertices": 261},
        planted_ceiling_r2=0.67,
        layer_within_one_fraction=0.71,
        layer_exact_fraction=0.21,
        median_position_error=0.35,
        scale_correlation=0.29,
        best_backbone="vit",
        trained_vs_random=[ENTRY],
    ),
}


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda cls: cls.__name__)
def test_a_headline_saved_is_the_headline_loaded(cls, tmp_path):
    headline = cls(**EXAMPLES[cls])
    path = headline.save(tmp_path)
    assert path == tmp_path / "headline.json"
    loaded = cls.load(tmp_path)
    assert loaded == headline
    written = json.loads(path.read_text())
    assert list(written) == sorted(cls.field_names())  # the same keys as the chapters wrote by hand
    assert written == json.loads(json.dumps(headline.to_dict()))


def test_values_are_written_as_plain_json(tmp_path):
    headline = V1TAnalysisHeadline(**EXAMPLES[V1TAnalysisHeadline])
    written = json.loads(headline.save(tmp_path).read_text())
    assert written["bmlp_spread_by_block"] == {"1": 0.012, "2": 0.017}  # keys as JSON has them
    assert written["arf_mean_sigma_horizontal_vertical"] == {"V1T": [3.8, 4.0]}
    allen = AllenHeadline(**EXAMPLES[AllenHeadline])
    assert type(allen.n_experiments) is int and type(allen.mean_time_to_peak_s_by_area["VISp"]) is float
    kernels = json.loads(KernelAlignmentHeadline(**EXAMPLES[KernelAlignmentHeadline]).save(tmp_path).read_text())
    assert kernels["trained_vs_random"] == [ENTRY]


def test_not_a_number_comes_back_as_not_a_number(tmp_path):
    fields = dict(EXAMPLES[FactorTopyHeadline], layer_within_one_fraction=math.nan, hierarchy_slope=None)
    FactorTopyHeadline(**fields).save(tmp_path)
    assert json.loads((tmp_path / "headline.json").read_text())["layer_within_one_fraction"] is None
    loaded = FactorTopyHeadline.load(tmp_path)
    assert math.isnan(loaded.layer_within_one_fraction) and loaded.hierarchy_slope is None


def _saved(tmp_path, cls, **changes):
    data = json.loads(json.dumps(cls(**EXAMPLES[cls]).to_dict()))
    data.update(changes)
    (tmp_path / "headline.json").write_text(json.dumps(data))
    return data


def test_a_missing_field_is_named(tmp_path):
    data = _saved(tmp_path, KernelAlignmentHeadline)
    del data["best_model_p_vs_null"]
    (tmp_path / "headline.json").write_text(json.dumps(data))
    with pytest.raises(
        results.ResultsError,
        match=r"KernelAlignmentHeadline \(.*headline.json\) lacks the "
        r"field\(s\) \['best_model_p_vs_null'\]",
    ):
        KernelAlignmentHeadline.load(tmp_path)


def test_an_unknown_field_is_named_with_the_accepted_ones(tmp_path):
    _saved(tmp_path, NeuralKernelsHeadline, n_kernel=3)
    with pytest.raises(results.ResultsError, match=r"unknown field\(s\) \['n_kernel'\]; accepted: \['n_kernels'"):
        NeuralKernelsHeadline.load(tmp_path)


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("n_layers", 4.5, "n_layers: expected int, got float"),
        ("n_layers", True, "n_layers: expected int, got bool"),
        ("r2_mean", "0.19", "r2_mean: expected float, got str"),
        ("r2_per_roi", {"V1v": [0.1]}, r"r2_per_roi\['V1v'\]: expected float, got list"),
        ("hierarchy_slope", [1.0], "hierarchy_slope: expected dict.* | None, got list"),
    ],
)
def test_a_value_of_the_wrong_type_is_named(tmp_path, field, value, expected):
    _saved(tmp_path, FactorTopyHeadline, **{field: value})
    with pytest.raises(results.ResultsError, match=expected):
        FactorTopyHeadline.load(tmp_path)
    with pytest.raises(results.ResultsError, match=expected):  # and when a chapter builds it
        FactorTopyHeadline(**dict(EXAMPLES[FactorTopyHeadline], **{field: value}))


def test_a_malformed_trained_vs_random_entry_is_named(tmp_path):
    bad = dict(ENTRY, margin="large")
    _saved(tmp_path, ArtificialKernelsHeadline, trained_vs_random=[ENTRY, bad])
    with pytest.raises(results.ResultsError, match=r"trained_vs_random\[1\]\.margin: expected float, got str"):
        ArtificialKernelsHeadline.load(tmp_path)
    partial = {k: v for k, v in ENTRY.items() if k != "ci_high"}
    with pytest.raises(results.ResultsError, match=r"trained_vs_random\[0\] lacks the field\(s\) \['ci_high'\]"):
        ArtificialKernelsHeadline(**dict(EXAMPLES[ArtificialKernelsHeadline], trained_vs_random=[partial]))


def test_a_missing_or_unreadable_headline_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"headline.json is missing; the 'v1t_training' run"):
        V1TTrainingHeadline.load(tmp_path)
    (tmp_path / "headline.json").write_text("{not json")
    with pytest.raises(results.ResultsError, match="is not valid JSON"):
        V1TTrainingHeadline.load(tmp_path)


def test_every_chapter_with_a_headline_is_known_to_the_synthesis():
    assert set(synthesis.HEADLINES) == {cls.CHAPTER for cls in EXAMPLES}
    assert all(synthesis.HEADLINES[cls.CHAPTER] is cls for cls in EXAMPLES)


def test_v1t_kernel_files_are_named_in_one_place(tmp_path):
    for label in ("patch_embedding", "attention"):
        kernels_file(tmp_path, label).write_bytes(b"")
    (tmp_path / "other.nc").write_bytes(b"")
    assert [p.name for p in kernel_files(tmp_path)] == ["kernels_attention.nc", "kernels_patch_embedding.nc"]
