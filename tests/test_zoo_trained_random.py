"""Trained against random: the filter measures separate planted Gabor filters from white noise, the
bootstrap intervals cover planted differences, and the sentences flip with the numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuroalign_utils.kernels import artificial
from neuroalign_utils.kernels import trained_random as tr


def gabors(rng, n, size, *, channels=None, frequency=0.25):
    """Oriented, band-limited filters: random orientation, phase and small offsets, one spatial frequency."""
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    out = []
    for _ in range(n):
        theta, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        cy, cx = rng.uniform(-0.5, 0.5, 2)
        u = (x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)
        g = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (size / 4) ** 2)) * np.cos(2 * np.pi * frequency * u + phase)
        out.append(g if channels is None else g[None] * rng.uniform(0.5, 1.5, size=(channels, 1, 1)))
    return np.array(out)


@pytest.mark.parametrize("size", [14, 5])
def test_measures_separate_planted_gabors_from_white_noise(size):
    rng = np.random.default_rng(0)
    oriented = tr.filter_spectrum_measures(gabors(rng, 200, size, channels=3))
    noise = tr.filter_spectrum_measures(rng.normal(size=(200, 3, size, size)))
    for measure in tr.MEASURES:
        assert oriented[measure].between(0, 1).all() and noise[measure].between(0, 1).all()
        # the planted filters are separated from noise filter by filter, not just on average
        assert oriented[measure].quantile(0.1) > noise[measure].quantile(0.9), measure
    if size == 14:
        assert oriented["orientation_selectivity"].mean() > 0.8 > 0.2 > noise["orientation_selectivity"].mean()
        np.testing.assert_allclose(oriented["peak_frequency"].median(), 0.25, atol=0.05)  # the planted frequency
    assert oriented["dc_share"].mean() < 0.05  # a Gabor of this size is nearly zero-mean: band-pass, not low-pass


def test_measures_ignore_phase_sign_and_scale_and_skip_flat_filters():
    rng = np.random.default_rng(1)
    filters = gabors(rng, 20, 14)
    base = tr.filter_spectrum_measures(filters)
    shifted = np.roll(filters, (3, -2), axis=(1, 2))  # a circular shift changes only the phases
    for variant in (-filters, 7.5 * filters, shifted):
        pd.testing.assert_frame_equal(tr.filter_spectrum_measures(variant), base, atol=1e-9)
    grating = np.cos(2 * np.pi * np.arange(8) / 4)[None, None, :].repeat(8, axis=1)  # one orientation, one frequency
    measured = tr.filter_spectrum_measures(grating).iloc[0]
    assert measured["orientation_selectivity"] == pytest.approx(1.0)
    assert measured["spectral_concentration"] == pytest.approx(1 - np.log(2) / np.log(63))
    flat = tr.filter_spectrum_measures(np.stack([np.ones((5, 5)), np.zeros((5, 5))]))
    assert flat.isna().all().all()
    with pytest.raises(ValueError, match="'filters' must have shape"):
        tr.filter_spectrum_measures(np.zeros((4, 1)))


def test_bootstrap_difference_covers_a_planted_difference():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.3, 1, 400), rng.normal(0.0, 1, 500)
    found = tr.bootstrap_difference(a, b, random_state=0)
    assert found["ci_low"] < 0.3 < found["ci_high"] and found["ci_low"] > 0
    assert found["a_ci_low"] < found["a"] < found["a_ci_high"] and (found["n_a"], found["n_b"]) == (400, 500)
    same = tr.bootstrap_difference(rng.normal(size=300), rng.normal(size=300), random_state=0)
    assert same["ci_low"] < 0 < same["ci_high"]
    # paired: a shared per-unit offset cancels, so a small shift is resolved
    units = rng.normal(0, 5, 200)
    paired = tr.bootstrap_difference(units + 0.1 + rng.normal(0, 0.05, 200), units, paired=True, random_state=0)
    assert paired["ci_low"] > 0.05 and paired["ci_high"] < 0.15
    with pytest.raises(ValueError, match="same length"):
        tr.bootstrap_difference([1.0, 2.0], [1.0], paired=True)
    with pytest.raises(ValueError, match="finite value"):
        tr.bootstrap_difference([np.nan], [1.0])


def _filters(rng, trained, random):
    return {
        artificial.model_label("dinov2_s14_saliency", "pretrained"): {
            "embeddings.patch_embeddings.projection": trained
        },
        artificial.model_label("dinov2_s14_saliency", "random"): {"embeddings.patch_embeddings.projection": random},
    }


def test_filter_margins_and_their_sentence_flip():
    rng = np.random.default_rng(3)
    structured, noise = gabors(rng, 60, 14, channels=3), rng.normal(size=(60, 3, 14, 14))
    measures = tr.filter_measures(_filters(rng, structured, noise))
    assert set(measures["group"]) == {"patch embedding 14×14"} and set(measures["weights"]) == {"pretrained", "random"}
    good = tr.filter_margins(measures, n_bootstrap=200)
    assert list(good["measure"]) == list(tr.MEASURES) and (good["ci_low"] > 0).all()
    sentence = tr.describe_filter_margins(good)
    assert "patch embedding 14×14 filters are more oriented" in sentence
    assert "and more concentrated in spatial frequency" in sentence
    assert sentence.endswith("In every group, training made the filters both more oriented and more band-limited.")
    assert tr.describe_filter_margins(good, detail=False) == (
        "In every group, training made the filters both more oriented and more band-limited."
    )
    # a broken run: training made them noise and the random twin got the Gabors
    broken = tr.filter_margins(tr.filter_measures(_filters(rng, noise, structured)), n_bootstrap=200)
    sentence = tr.describe_filter_margins(broken)
    assert "are less oriented" in sentence and "In no group did training" in sentence
    assert tr.describe_filter_margins(broken, detail=False).startswith("In no group did training")
    unclear = tr.filter_margins(
        tr.filter_measures(_filters(rng, noise, rng.normal(size=(60, 3, 14, 14)))), n_bootstrap=200
    )
    assert "neither more nor less oriented" in tr.describe_filter_margins(unclear)
    assert "No packaged trained model" in tr.describe_filter_margins(good.iloc[:0])


def test_coverage_margins_pair_maps_and_their_sentence_flips():
    keys = pd.DataFrame(
        [(layer, head, image) for layer in range(1, 4) for head in (-1, 0, 1) for image in range(2)],
        columns=["layer_index", "attention_head", "image"],
    )
    rng = np.random.default_rng(4)

    def coverage(trained_value, random_value):
        rows = [
            keys.assign(
                model=artificial.model_label("dinov2_s14_saliency", w), coverage=v + 0.01 * rng.normal(size=len(keys))
            )
            for w, v in (("pretrained", trained_value), ("random", random_value))
        ]
        return pd.concat(rows + [keys.assign(model="SAM-B", coverage=0.99)], ignore_index=True)

    concentrated = tr.coverage_margins(coverage(0.6, 0.99), n_bootstrap=200)
    assert list(concentrated["architecture"]) == ["dinov2_s14_saliency"]
    assert concentrated["n_maps"].iloc[0] == len(keys)  # rollout maps (head −1) pair with each other too
    assert concentrated["ci_high"].iloc[0] < 0 and concentrated["margin"].iloc[0] == pytest.approx(-0.39, abs=0.01)
    assert "more concentrated than its random twin's" in tr.describe_coverage_margins(concentrated)
    flatter = tr.coverage_margins(coverage(0.99, 0.6), n_bootstrap=200)
    assert "more uniform than its random twin's" in tr.describe_coverage_margins(flatter)
    same = tr.coverage_margins(coverage(0.9, 0.9), n_bootstrap=200)
    assert "no less uniform than its random twin's" in tr.describe_coverage_margins(same)
    assert tr.describe_coverage_margins(same.iloc[:0]).startswith("No trained model with attention")


def test_labels_pairs_and_reference_measures():
    assert artificial.model_label("efficientnet_lite0", "pretrained") == "efficientnet_lite0 (trained)"
    assert artificial.model_label("efficientnet_lite0", "random") == "efficientnet_lite0 (random)"
    labels = ["SAM-B", "efficientnet_lite0 (trained)", "efficientnet_lite0 (random)", "dinov2_s14_saliency (trained)"]
    assert artificial.twin_pairs(labels) == {
        "efficientnet_lite0 (trained)": "efficientnet_lite0 (random)"
    }  # no dinov2 twin
    with pytest.raises(ValueError, match="'weights' must be one of"):
        artificial.model_label("efficientnet_lite0", "trained")
    with pytest.raises(ValueError, match="not a packaged model's"):
        tr.filter_measures({"SAM-B": {"layer": np.ones((2, 3, 3))}})
    rng = np.random.default_rng(5)
    reference = tr.reference_measures(gabors(rng, 50, 16), n_bootstrap=200).set_index("measure")
    assert list(reference.index) == list(tr.MEASURES) and (reference["size"] == "16×16").all()
    assert (reference["ci_low"] < reference["value"]).all() and (reference["value"] < reference["ci_high"]).all()
    assert reference.loc["orientation_selectivity", "value"] > 0.8


def test_filter_figures_fit_the_book():
    import matplotlib

    matplotlib.use("Agg")
    from neuroalign_utils import style
    from neuroalign_utils.kernels import figures

    rng = np.random.default_rng(6)
    filters = _filters(rng, gabors(rng, 30, 14, channels=3), rng.normal(size=(30, 3, 14, 14)))
    fig = figures.plot_twin_filters(filters, neural=gabors(rng, 10, 16))
    assert fig.get_size_inches()[0] <= style.BOOK_WIDTH and len(fig.axes) == 3 * 10 + 1  # panels and a colour bar
    margins = tr.filter_margins(tr.filter_measures(filters), n_bootstrap=50)
    fig = figures.plot_filter_measures(margins, tr.reference_measures(gabors(rng, 10, 16), n_bootstrap=50))
    assert fig.get_size_inches()[0] <= style.BOOK_WIDTH
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][-1] == "neural kernels\n16×16"
