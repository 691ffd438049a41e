"""V1T learning on planted data: V1T and CNN beat the LN model; behaviour helps; aRFs find planted RFs
and move with the pupil; a planted gaze-contingent gain is learned without the attention weights; the
writer's RF field confines the planted RF centres."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from neuroalign_utils.v1t import analysis, loading, models, synthetic, training

DATA = dict(mice=("A",), n_neurons=80, n_trials=700, n_test_images=10, n_repeats=10, behaviour_gain=0.6, seed=1)
CORE_OPTIONS = {
    # the chapter's small V1T with its small initial positions (which learned more at this size)
    "v1t": dict(
        emb_dim=32,
        n_blocks=2,
        n_heads=2,
        head_dim=16,
        mlp_dim=64,
        stride=8,
        attention_dropout=0.1,
        mlp_dropout=0.1,
        position_init_std=0.02,
    ),
    "cnn": dict(channels=16, n_layers=3),
    "linear": dict(),
}
#: Training on more trials, where the aRFs of the test's models are localised (see ``v1t_on_more_trials``)
MORE_TRIALS = dict(max_epochs=30, patience=5, n_trials=1500)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = synthetic.write_synthetic_sensorium(tmp_path_factory.mktemp("learning"), **DATA)
    data = loading.load_sensorium(root)
    expected = {
        k: loading.load_planted_truth(m.folder)["expected_responses"] / m.response_scale for k, m in data.items()
    }
    return data, expected


@pytest.mark.parametrize("rf_field", [0.3, (0.5, 0.2)])
def test_rf_field_confines_the_planted_rf_centres(tmp_path, rf_field):
    settings = dict(mice=("A",), n_neurons=300, n_trials=60, n_test_images=4, n_repeats=3)
    root = synthetic.write_synthetic_sensorium(tmp_path, rf_field=rf_field, **settings)
    truth = loading.load_planted_truth(root / loading.mouse_folder_name("A"))
    (h, w), (share_y, share_x) = loading.PLANTED_SHAPE, np.broadcast_to(rf_field, 2)
    for centre, size, share in [(truth["centre_x"], w, share_x), (truth["centre_y"], h, share_y)]:
        # uniform over the field's span around the image centre, plus the 1-px retinotopic scatter
        assert abs(np.median(centre) - size / 2) < 1.0
        span = np.percentile(centre, 95) - np.percentile(centre, 5)
        assert abs(span - 0.9 * share * size) < 2.0, (span, share * size)
    with pytest.raises(ValueError, match="'rf_field' must be <= 1.0"):
        synthetic.write_synthetic_sensorium(tmp_path / "bad", rf_field=1.5, **settings)
    with pytest.raises(ValueError, match="'rf_field' must be a number or a pair"):
        synthetic.write_synthetic_sensorium(tmp_path / "bad", rf_field=(0.2, 0.3, 0.4), **settings)


@pytest.fixture(scope="module")
def results(planted):
    data, expected = planted
    out = {}
    for core, behaviour in [("v1t", True), ("cnn", True), ("linear", True), ("v1t", False)]:
        torch.manual_seed(0)
        config = dict(
            core=core,
            core_options=CORE_OPTIONS[core],
            readout_options={},
            use_behaviour=behaviour,
            image_size=(36, 64),
            mice={k: m.n_neurons for k, m in data.items()},
        )
        model = models.build_encoder(config, {k: m.coordinates for k, m in data.items()})
        training.train(model, data, max_epochs=8, patience=3, seed=0, progress=False)
        out[core, behaviour] = training.evaluate(model, data, expected=expected).iloc[0], model
    return out


def test_v1t_and_cnn_beat_the_linear_model(results):
    linear = results["linear", True][0]["single_trial_correlation"]
    for core in ("v1t", "cnn"):
        assert results[core, True][0]["single_trial_correlation"] > linear + 0.1, (core, results[core, True][0], linear)


def test_models_reach_a_fraction_of_the_planted_ceiling(results):
    assert 0.5 < results["v1t", True][0]["single_trial_ceiling"] < 0.9
    for core in ("v1t", "cnn"):
        assert results[core, True][0]["fraction_of_single_trial_ceiling"] > 0.4, results[core, True][0]


def test_behaviour_helps_where_it_was_planted(results):
    assert (
        results["v1t", True][0]["single_trial_correlation"]
        > results["v1t", False][0]["single_trial_correlation"] + 0.02
    )


def _arf_fits(model, mouse, pupil_center=(0.0, 0.0)):
    """Gaussian fits to the smoothed |aRF| of every unit, at the average behaviour and a given pupil centre."""
    behaviour = torch.from_numpy(mouse.behaviour[mouse.tier("train")].mean(0))  # average state
    pupil = torch.as_tensor(np.asarray(pupil_center, dtype=np.float32))[None]

    def respond(noise):
        n = len(noise)
        return model(noise, mouse.name, behaviour.expand(n, 3), pupil.expand(n, 2))

    arf = analysis.artificial_receptive_fields(respond, (36, 64), n_images=1500, batch_size=500)
    return analysis.fit_gaussian_2d(ndimage.gaussian_filter(np.abs(arf), (0, 1, 1)))


def _arf_position_errors(model, mouse):
    """Median distance (pixels) of the aRF Gaussian centres from the planted RF centres (well-fitted units),
    the same against shuffled planted centres (chance), and the fraction of units kept."""
    truth = loading.load_planted_truth(mouse.folder)
    fits = _arf_fits(model, mouse)
    good = (fits["r2"] > 0.3).to_numpy()  # drop the worst fits
    error = np.hypot(fits["x0"] - truth["centre_x"], fits["y0"] - truth["centre_y"]).to_numpy()
    # chance: each fit against another neuron's planted centre
    shuffled = np.hypot(
        fits["x0"] - np.roll(truth["centre_x"], 7), fits["y0"] - np.roll(truth["centre_y"], 7)
    ).to_numpy()
    return np.median(error[good]), np.median(shuffled[good]), good.mean()


def test_cnn_arf_positions_match_planted_rf_centres(cnn_on_more_trials):
    error, chance, kept = _arf_position_errors(*cnn_on_more_trials)
    # Fewer of the CNN's aRFs are Gaussian enough to fit than of the V1T's (measured, seeds 0/1/2: 30 /
    # 44 / 40 % kept, those within 1.3 / 4.1 / 1.1 px of their planted centres, chance 12–15 px)
    assert kept > 0.2, kept
    assert error < 7.0, error  # pixels of the 36×64 image (10 % of its width)
    assert error < 0.5 * chance, (error, chance)


def _trained(core, folder, *, max_epochs: int, patience: int, seed: int = 0, **data_settings):
    """The test ``core`` with behaviour trained on the one mouse of ``DATA`` updated by ``data_settings``:
    (model, mouse)."""
    data = loading.load_sensorium(synthetic.write_synthetic_sensorium(folder, **{**DATA, **data_settings}))
    torch.manual_seed(seed)
    config = dict(
        core=core,
        core_options=CORE_OPTIONS[core],
        readout_options={},
        use_behaviour=True,
        image_size=(36, 64),
        mice={k: m.n_neurons for k, m in data.items()},
    )
    model = models.build_encoder(config, {k: m.coordinates for k, m in data.items()})
    training.train(model, data, max_epochs=max_epochs, patience=patience, seed=seed, progress=False)
    return model, next(iter(data.values()))


@pytest.fixture(scope="module")
def v1t_on_more_trials(tmp_path_factory):
    """The same V1T trained for up to 30 epochs on 1,500 trials.

    On the 700 trials above this V1T stops at about half of the planted ceiling and its aRFs are not
    localised (median error ~11 px, chance ~14 px); here its aRFs land on the planted centres
    (measured, torch seeds 0/1/2: median 1.9/2.2/2.1 px, chance 15–17 px).
    """
    return _trained("v1t", tmp_path_factory.mktemp("more_trials"), **MORE_TRIALS)


@pytest.fixture(scope="module")
def cnn_on_more_trials(tmp_path_factory):
    """The test CNN trained as ``v1t_on_more_trials``. On the 700 trials of ``results`` its aRFs were
    localised on some initialisations and not on others (median error 4–16 px, chance ~15 px)."""
    return _trained("cnn", tmp_path_factory.mktemp("cnn_more_trials"), **MORE_TRIALS)


def test_v1t_arf_positions_match_planted_rf_centres(v1t_on_more_trials):
    model, mouse = v1t_on_more_trials
    error, chance, kept = _arf_position_errors(model, mouse)
    assert kept > 0.5, kept
    # bound: half the V1T's 8-px patch (its tokens are 8×8 px at stride 8), i.e. the aRF centre lies
    # within the planted RF's own token; chance (another neuron's centre) is ~15 px
    assert error < 4.0, error
    assert error < 0.5 * chance, (error, chance)


@pytest.mark.parametrize("axis", [0, 1])
def test_v1t_arf_shift_with_the_pupil_centre_has_the_planted_sign(v1t_on_more_trials, axis):
    # The planted RF moves by +pupil_shift_px per SD of the pupil centre (x, then y). Whole encoder
    # (core + shifter): the aRF centres at pupil +2 SD minus those at −2 SD. Measured: 2.9 px along the
    # moved axis, ~0.1 px across, for a planted 6 px; with the shifter removed
    # a V1T moves its aRFs by 0.0003 px (scratch run: no path through the B-MLP was learned).
    model, mouse = v1t_on_more_trials
    planted = 2 * 2.0 * loading.load_planted_truth(mouse.folder)["pupil_shift_px"]
    offset = np.eye(2)[axis] * 2.0
    plus, minus = _arf_fits(model, mouse, offset), _arf_fits(model, mouse, -offset)
    kept = ((plus["r2"] > 0.3) & (minus["r2"] > 0.3)).to_numpy()
    along, across = [np.median((plus[c] - minus[c]).to_numpy()[kept]) for c in (("x0", "y0")[axis], ("y0", "x0")[axis])]
    assert kept.mean() > 0.5, kept.mean()
    assert 0.25 * planted < along < 1.5 * planted, (along, planted)  # sign and at least a quarter of the size
    assert abs(across) < 0.25 * along, (across, along)


@pytest.fixture(scope="module")
def v1t_on_gaze_data(tmp_path_factory):
    """The same V1T on mice whose shared gain also follows the image's brightness at a gaze point that
    moves with the pupil centre (``gaze_gain=1``: log-gain 1 per SD of that brightness; the gaze point
    moves 6 px per SD of the pupil centre). Only a pupil-dependent choice of image place predicts it."""
    model, mouse = _trained(
        "v1t", tmp_path_factory.mktemp("gaze"), max_epochs=40, patience=10, n_trials=1500, gaze_gain=1.0
    )
    test = mouse.tier("test")
    behaviour = np.repeat(mouse.behaviour[mouse.tier("train")].mean(0, keepdims=True), len(test), 0)
    return model.eval(), mouse, mouse.images[test], behaviour


@pytest.mark.parametrize("axis", [0, 1])
def test_v1t_learns_the_planted_gaze_contingent_gain(v1t_on_gaze_data, axis):
    # Fixed images, pupil at +2 vs −2 SD along one axis: the change of the model's log mean response
    # against the planted change of the gaze point's brightness. Measured: r 0.96 / 0.96 (x / y),
    # slope 0.71 / 0.63 for a planted 1.0.
    model, mouse, images, behaviour = v1t_on_gaze_data
    truth = loading.load_planted_truth(mouse.folder)
    pupil = np.zeros((len(images), 2), np.float32)
    pupil[:, axis] = 2.0
    with torch.no_grad():
        log_mean = [
            model(torch.as_tensor(images), mouse.name, torch.as_tensor(behaviour), torch.as_tensor(p))
            .mean(1)
            .log()
            .numpy()
            for p in (pupil, -pupil)
        ]
    brightness = synthetic.gaze_brightness(
        np.concatenate([images[:, 0]] * 2), np.concatenate([pupil, -pupil]), truth["gaze_shift_px"]
    )
    planted, learned = brightness[: len(images)] - brightness[len(images) :], log_mean[0] - log_mean[1]
    r, slope = np.corrcoef(planted, learned)[0, 1], np.polyfit(planted, learned, 1)[0]
    assert r > 0.7, r
    assert 0.3 * truth["gaze_gain"] < slope < 1.5 * truth["gaze_gain"], slope


def test_v1t_carries_the_gaze_gain_outside_its_attention_weights(v1t_on_gaze_data):
    # The finding the analysis chapter reports: a V1T that has learned the gaze-contingent gain (test
    # above) neither moves its rollout with the pupil nor needs its attention weights for it. Measured:
    # centre of mass moved −0.07 / −0.37 px (x / y, pupil −2 → +2 SD) while the gaze point moved
    # 24 px; 0.03 % / 0.26 % of the pupil's effect through the weights; across test trials r −0.01 /
    # −0.12 (p 0.91 / 0.24). A V1T whose attention does carry it fails here, and then the chapter's
    # prose is wrong.
    model, mouse, images, behaviour = v1t_on_gaze_data
    planted_move = 2 * 2.0 * loading.load_planted_truth(mouse.folder)["gaze_shift_px"]
    moved = analysis.centre_of_mass_shift_with_pupil(model, images, behaviour).set_index("axis")
    assert (moved["along"].abs() < 8.0).all(), (moved, planted_move)  # less than one 8-px token
    share = analysis.pupil_effect_through_attention(model, mouse.name, images, behaviour)
    assert (share["pupil_effect"] > 0.2).all(), share  # the pupil matters (log units)
    assert (share["through_attention"] < 0.1).all(), share
