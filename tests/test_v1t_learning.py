"""V1T learning on planted data: V1T and CNN beat the linear-nonlinear model; behaviour helps."""

from __future__ import annotations

import pytest
import torch

from neuroalign_utils.v1t import models, sensorium, training

DATA = dict(mice=("A",), n_neurons=80, n_trials=700, n_test_images=10, n_repeats=10, behaviour_gain=0.6, seed=1)
CORE_OPTIONS = {
    "v1t": dict(emb_dim=32, n_blocks=2, n_heads=2, head_dim=16, mlp_dim=64, stride=4, attention_dropout=0.1, mlp_dropout=0.1),
    "cnn": dict(channels=16, n_layers=3),
    "linear": dict(),
}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = sensorium.write_synthetic_sensorium(tmp_path_factory.mktemp("learning"), **DATA)
    data = sensorium.load_sensorium(root)
    expected = {k: sensorium.load_planted_truth(m.folder)["expected_responses"] / m.response_scale for k, m in data.items()}
    return data, expected


@pytest.fixture(scope="module")
def results(planted):
    data, expected = planted
    out = {}
    for core, behaviour in [("v1t", True), ("cnn", True), ("linear", True), ("v1t", False)]:
        torch.manual_seed(0)
        config = dict(core=core, core_options=CORE_OPTIONS[core], readout_options={}, use_behaviour=behaviour,
                      image_size=(36, 64), mice={k: m.n_neurons for k, m in data.items()})
        model = models.build_model(config, {k: m.coordinates for k, m in data.items()})
        training.train(model, data, max_epochs=8, patience=3, seed=0, progress=False)
        out[core, behaviour] = training.evaluate(model, data, expected=expected).iloc[0]
    return out


def test_v1t_and_cnn_beat_the_linear_model(results):
    linear = results["linear", True]["single_trial_correlation"]
    for core in ("v1t", "cnn"):
        assert results[core, True]["single_trial_correlation"] > linear + 0.1, (core, results[core, True], linear)


def test_models_reach_a_fraction_of_the_planted_ceiling(results):
    assert 0.5 < results["v1t", True]["single_trial_ceiling"] < 0.9
    for core in ("v1t", "cnn"):
        assert results[core, True]["fraction_of_single_trial_ceiling"] > 0.4, results[core, True]


def test_behaviour_helps_where_it_was_planted(results):
    assert results["v1t", True]["single_trial_correlation"] > results["v1t", False]["single_trial_correlation"] + 0.02
