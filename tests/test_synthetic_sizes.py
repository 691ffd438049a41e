"""Sizes of the synthetic Sensorium and NSD writers: validation, scaled layouts read back by the loaders, the
chunked (paper-size) path planting the same truth, and the book size unchanged."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neuroalign_utils.factortopy import features
from neuroalign_utils.factortopy import loading as nsd_loading
from neuroalign_utils.factortopy import synthetic as nsd_synthetic
from neuroalign_utils.v1t import loading, synthetic

REPO = Path(__file__).resolve().parents[1]
ONE_MOUSE = dict(mice=("A",), n_neurons=12)


def _digest(root: Path, skip=()) -> str:
    digest = hashlib.sha1()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not any(part in rel for part in skip):
            digest.update(rel.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("size", ["huge", "Book", -1, 0, True, None, [2]])
def test_a_bad_size_is_named_with_the_accepted_values_before_any_write(tmp_path, size):
    for write in (synthetic.write_synthetic_sensorium, nsd_synthetic.write_synthetic_subject):
        with pytest.raises(ValueError, match=r"'size' must be one of \['book', 'paper'\] or a positive number"):
            write(tmp_path / "out", size=size)
    assert not (tmp_path / "out").exists()


def test_paper_size_refuses_arguments_it_sets(tmp_path):
    with pytest.raises(ValueError, match="'size'='paper' sets \\['n_neurons'\\]"):
        synthetic.write_synthetic_sensorium(tmp_path / "out", size="paper", n_neurons=10)
    with pytest.raises(ValueError, match="'size'='paper' sets \\['n_images'\\]"):
        nsd_synthetic.write_synthetic_subject(tmp_path / "out", size="paper", n_images=50)
    assert not (tmp_path / "out").exists()


def test_paper_sizes_follow_the_papers():
    paper = synthetic.SIZES["paper"]
    assert len(paper["mice"]) == 5 and 7000 < paper["n_neurons"] < 8000 and paper["n_trials"] == 6000
    assert paper["n_test_images"] * paper["n_repeats"] == 1000  # the 1,000 repeated test trials
    assert nsd_synthetic.SIZES["paper"]["n_images"] == 9841  # Algonauts 2023 subject 1's training images


def test_a_sensorium_factor_scales_the_trials_in_the_release_layout(tmp_path):
    root = synthetic.write_synthetic_sensorium(tmp_path, size=0.1, **ONE_MOUSE)  # 100 trials, 2 test images
    mouse = root / loading.mouse_folder_name("A")
    assert len(list((mouse / "data" / "images").glob("*.npy"))) == 100
    assert np.load(mouse / "data/images/99.npy").shape == (1, 144, 256)
    assert np.load(mouse / "data/responses/99.npy").shape == (12,)
    tiers = np.load(mouse / "meta/trials/tiers.npy")
    ids = np.load(mouse / "meta/trials/frame_image_id.npy")
    assert tiers.dtype.kind == "U" and (tiers == "test").sum() == 20 and len(np.unique(ids[tiers == "test"])) == 2
    (data,) = loading.load_sensorium(root).values()
    assert data.images.shape == (100, 1, 36, 64) and data.responses.shape == (100, 12)
    truth = loading.load_planted_truth(mouse)
    assert truth["expected_responses"].shape == (100, 12)


def test_the_chunked_path_plants_the_same_mice(tmp_path, monkeypatch):
    """Paper-size mice go through trial and neuron chunks and histogram statistics; forced on a small set,
    that path writes what the one-block path writes (images and statistics exactly, responses to rounding)."""
    settings = dict(mice=("A",), n_neurons=30, n_trials=120, n_test_images=4, n_repeats=5)
    whole = synthetic.write_synthetic_sensorium(tmp_path / "whole", **settings)
    monkeypatch.setattr(synthetic, "TRIAL_CHUNK", 7)
    monkeypatch.setattr(synthetic, "NEURON_CHUNK", 4)
    monkeypatch.setattr(synthetic, "EXACT_IMAGE_STATISTICS_MAX", 0)
    chunked = synthetic.write_synthetic_sensorium(tmp_path / "chunked", **settings)
    a, b = whole / loading.mouse_folder_name("A"), chunked / loading.mouse_folder_name("A")
    assert _digest(a / "data" / "images") == _digest(b / "data" / "images")
    for stat in loading.STAT_NAMES:
        np.testing.assert_allclose(
            np.load(b / f"meta/statistics/images/all/{stat}.npy"),
            np.load(a / f"meta/statistics/images/all/{stat}.npy"),
            rtol=1e-6,
        )
    np.testing.assert_allclose(
        np.load(b / "ground_truth/expected_responses.npy"),
        np.load(a / "ground_truth/expected_responses.npy"),
        rtol=1e-5,
    )
    # the recorded responses are the planted ones: per neuron they follow the noise-free truth
    (data,) = loading.load_sensorium(chunked).values()
    expected = loading.load_planted_truth(b)["expected_responses"]
    r = [np.corrcoef(data.responses[:, n], expected[:, n])[0, 1] for n in range(30)]
    shuffled = [np.corrcoef(data.responses[:, n], expected[:, (n + 1) % 30])[0, 1] for n in range(30)]
    assert np.median(r) > 0.4 and np.median(r) > np.median(shuffled) + 0.3


def test_an_nsd_factor_scales_the_images_and_plants_a_recoverable_signal(tmp_path):
    subject_dir = nsd_synthetic.write_synthetic_subject(tmp_path, size=0.2, n_vertices_per_hemisphere=80)
    names = sorted((subject_dir / "training_split" / "training_images").glob("*.png"))
    assert len(names) == 120 and names[0].name.startswith("train-0001_nsd-")
    for hemi in ("lh", "rh"):
        fmri = np.load(subject_dir / "training_split" / "training_fmri" / f"{hemi}_training_fmri.npy", mmap_mode="r")
        assert fmri.dtype == np.float32 and fmri.shape == (120, 80)
    subject = nsd_loading.load_algonauts_subject(subject_dir)
    assert subject.responses.shape == (120, 160)
    np.testing.assert_allclose(subject.responses.mean(0), 0, atol=1e-5)  # z-scored per vertex
    # recovery: each vertex is a linear read-out of its planted layer's global token plus local tokens; a ridge
    # fit of the global tokens of that layer predicts held-out images far better than with shuffled rows
    truth = nsd_synthetic.load_ground_truth(subject_dir)
    feats = features.cached_features(features.BackboneSpec(), subject.images.values, device="cpu")
    train, test = np.arange(90), np.arange(90, 120)

    def held_out_r(responses):
        scores = []
        for layer in np.unique(truth["layer"]):
            cols = np.flatnonzero(truth["layer"].to_numpy() == layer)
            x = np.asarray(feats["local"][:, layer], np.float32).mean((-1, -2))
            weights = np.linalg.solve(
                x[train].T @ x[train] + 10 * np.eye(x.shape[1]), x[train].T @ responses[train][:, cols]
            )
            prediction = x[test] @ weights
            scores += [np.corrcoef(prediction[:, i], responses[test, c])[0, 1] for i, c in enumerate(cols)]
        return np.nanmean(scores)

    shuffled = subject.responses[np.random.default_rng(0).permutation(120)]
    assert held_out_r(subject.responses) > 0.3
    assert held_out_r(subject.responses) > held_out_r(shuffled) + 0.25


def test_the_book_size_writes_the_same_files_as_before_sizes_existed(tmp_path):
    """Digests of the files a tiny Sensorium set and a tiny NSD subject wrote before ``size`` existed (commit
    480f507), over the files whose bytes do not depend on the BLAS or torch kernels (responses, planted
    expectations and fMRI do; their equality with the chunked path is checked above). Measured on the
    pinned stack (requirements/constraints.txt)."""
    sensorium = synthetic.write_synthetic_sensorium(
        tmp_path / "s", mice=("A",), n_neurons=8, n_trials=60, n_test_images=4, n_repeats=3
    )
    subject = nsd_synthetic.write_synthetic_subject(tmp_path / "n", n_images=20, n_vertices_per_hemisphere=60)
    assert sensorium.parent.name == "s" and subject.parent.name == "n"
    assert _digest(tmp_path / "s", ("responses", "ground_truth", "synthetic_settings")) == (
        "a88d9bc855ccdd3d15b7c4bb976d56d24939f2f2"
    )
    assert _digest(tmp_path / "n", ("training_fmri",)) == "55a4b75a5038abecaec7ef8931aa7f105dcf3cb6"


def test_scaling_benchmark_runs_quick(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "scaling.py"), "--quick", "--lenses", "v1t", "--factors", "1,2"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
    for name in ("v1t_time_1x", "v1t_peak_rss_2x", "v1t_time_exponent", "v1t_memory_exponent", "v1t_max_units_12gib"):
        assert name in lines, out.stdout
    assert float(lines["v1t_peak_rss_1x"].split()[0]) > 0


def test_scaling_fits_recover_known_exponents_and_limits():
    import importlib.util

    spec = importlib.util.spec_from_file_location("scaling_benchmark", REPO / "benchmarks" / "scaling.py")
    scaling = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scaling)
    units = [1000, 2000, 4000]
    assert scaling.loglog_slope(units, [3 * u**1.5 for u in units]) == pytest.approx(1.5)
    intercept, slope = scaling.linear_fit(units, [400 + 0.25 * u for u in units])
    assert (intercept, slope) == (pytest.approx(400), pytest.approx(0.25))
    assert scaling.largest_fitting(400, 0.25, 1400) == pytest.approx(4000)
    assert scaling.largest_fitting(400, 0.0, 1400) == float("inf")
