"""FactorTopy: model pieces, feature cache, NSD loaders, and recovery of the planted truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from neuroalign_utils.factortopy import analysis, features, figures, loading, model, pipeline, synthetic, training

N_IMAGES = 600
N_VERTICES = 300  # per hemisphere


# --- model pieces ---------------------------------------------------------------------------------
def _toy_model(n_vertices=40, n_layers=3, n_channels=16, **options):
    coords = np.random.default_rng(0).standard_normal((n_vertices, 3))
    return model.FactorTopy(coords, n_layers, n_channels, bottleneck=8, **options)


def test_shapes_and_selectors_at_initialisation():
    m = _toy_model()
    sel = m.selectors()
    assert sel["space"].shape == (40, 2) and sel["layer"].shape == (40, 3) and sel["scale"].shape == (40,)
    assert torch.allclose(sel["space"], torch.zeros(40, 2))  # image centre
    assert torch.allclose(sel["layer"], torch.full((40, 3), 1 / 3))  # uniform layers
    assert torch.allclose(sel["scale"], torch.full((40,), 0.5))
    y = m(torch.randn(5, 3, 16, 8, 8), torch.randn(5, 3, 16))
    assert y.shape == (5, 40)
    assert m(torch.randn(2, 3, 16, 8, 8), torch.randn(2, 3, 16), vertices=torch.arange(7)).shape == (2, 7)


def test_sparse_sampling_equals_dense_listing_1():
    """The embedding-bag evaluation equals Listing 1's dense (B, N, D, L) computation."""
    m = _toy_model(n_vertices=30)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mlp in (m.space_mlp, m.layer_mlp, m.scale_mlp):
            mlp.net[-1].weight.normal_(0, 0.3, generator=gen)
    local, global_ = torch.randn(4, 3, 16, 8, 8, generator=gen), torch.randn(4, 3, 16, generator=gen)
    sel = m.selectors()
    tokens = torch.einsum("blchw,lcd->bldhw", local, m.local_bottleneck)
    glob = torch.einsum("blc,lcd->bld", global_, m.global_bottleneck)
    grid = sel["space"][None, None].expand(4, -1, -1, -1)
    v_local = torch.stack(
        [
            torch.nn.functional.grid_sample(tokens[:, layer], grid, align_corners=False)[:, :, 0].permute(0, 2, 1)
            for layer in range(3)
        ],
        -1,
    )  # (B, N, D, L)
    s = sel["scale"][None, :, None, None]
    v = (v_local * (1 - s) + glob.permute(0, 2, 1)[:, None] * s) * sel["layer"][None, :, None, :]
    expected = (v.sum(-1) * m.readout_weight).mean(-1) + m.readout_bias
    torch.testing.assert_close(m(local, global_), expected, rtol=1e-5, atol=1e-5)


def test_entropy_term_values():
    uniform = torch.full((10, 4), 0.25)
    one_hot = torch.nn.functional.one_hot(torch.arange(10) % 4, 4).float()
    assert model.entropy_regulariser(uniform).item() == pytest.approx(-1.0)
    assert model.entropy_regulariser(one_hot).item() == pytest.approx(0.0, abs=1e-6)
    half = torch.tensor([[0.5, 0.5, 0.0, 0.0]])
    assert model.entropy_regulariser(half).item() == pytest.approx(-np.log(2) / np.log(4))


def test_confidence_is_one_for_one_hot_and_zero_for_uniform():
    assert analysis.layer_confidence(np.eye(5)) == pytest.approx(np.ones(5))
    assert analysis.layer_confidence(np.full((3, 5), 0.2)) == pytest.approx(np.zeros(3), abs=1e-12)


def test_coordinate_encoding_is_smooth_and_separates_hemispheres():
    rng = np.random.default_rng(0)
    coords = torch.as_tensor(rng.uniform(-100, 100, (200, 3)))
    enc = model.positional_encoding(coords)
    assert enc.shape == (200, 192)
    nudged = model.positional_encoding(torch.cat([coords, coords[:1] + 0.01]))
    # a 0.01-unit move (of a 200-unit span) changes every feature by at most the top frequency × move
    assert (nudged[-1] - nudged[0]).abs().max() < 0.01
    far = (enc[None] - enc[:, None]).norm(dim=-1)
    assert far[~torch.eye(200, dtype=bool)].min() > 0.01  # distinct points stay distinct
    xyz = np.array([[1.0, 0, 0], [2.0, 0, 0], [-1.0, 0, 0], [-2.0, 0, 0]])
    sep = model.hemisphere_separated_coordinates(xyz, ["lh", "lh", "rh", "rh"])
    assert sep[2:, 0].min() > sep[:2, 0].max()


def test_default_decay_steps_scale_with_run_length():
    assert training.default_decay_steps(40_000) == 6_000
    assert training.default_decay_steps(2_000) == 300


def test_split_has_no_repeated_image_leak():
    ids = np.repeat(np.arange(50), 3)
    split = training.split_images(ids, seed=0)
    seen = [set(ids[split[k]]) for k in ("train", "val", "test")]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert [len(s) for s in seen] == [40, 5, 5]
    assert training.split_images(ids, seed=0)["test"].tolist() == split["test"].tolist()


# --- analyses on constructed inputs -----------------------------------------------------------------
def test_hierarchy_slope_recovers_a_constructed_slope():
    rng = np.random.default_rng(0)
    rois = np.repeat(["V1v", "V2d", "V3v", "OPA", "EBA", "FFA-1"], 200)
    ideal = np.array([analysis.HIERARCHY_LEVELS.get(analysis.roi_family(r), 0.5) for r in rois])
    n_layers = 6
    # construct layer weights whose expected position ι̂ is 0.1 + 0.6 · ideal
    target = 0.1 + 0.6 * ideal + 0.02 * rng.standard_normal(len(rois))
    pos = np.arange(n_layers) / (n_layers - 1)
    weights = np.exp(-((pos[None] - target[:, None]) ** 2) / 0.002)
    weights /= weights.sum(1, keepdims=True)
    iota = analysis.layer_position(weights)
    fit = analysis.hierarchy_slope(iota, rois, n_bootstrap=200)
    assert fit["slope"] == pytest.approx(0.6, abs=0.03)
    assert fit["b0"] == pytest.approx(0.1, abs=0.03)
    assert fit["slope_low"] < fit["slope"] < fit["slope_high"]
    assert fit["n_vertices"] == 1000  # FFA-1 is not one of the four levels


def test_channel_clustering_count_and_seed():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((6, 16)) * 3
    weights = centres[rng.integers(0, 6, 3000)] + 0.3 * rng.standard_normal((3000, 16))
    labels = analysis.cluster_channels(weights, n_clusters=20, n_kmeans=200, seed=0)
    assert labels.shape == (3000,) and len(np.unique(labels)) == 20
    assert np.array_equal(labels, analysis.cluster_channels(weights, n_clusters=20, n_kmeans=200, seed=0))
    six = analysis.cluster_channels(weights, n_clusters=6, n_kmeans=200, seed=0)
    truth = np.argmax(-((weights[:, None] - centres[None]) ** 2).sum(-1), 1)
    assert pd.crosstab(six, truth).max(1).sum() / len(six) > 0.95  # the planted groups come back


def test_channel_clustering_memory_is_bounded():
    """20,000 vertices: a dense N×N kernel would take 3.2 GB; the clustering stays far below."""
    import tracemalloc

    weights = np.random.default_rng(0).standard_normal((20_000, 16))
    tracemalloc.start()
    labels = analysis.cluster_channels(weights, n_clusters=20, n_kmeans=100, seed=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(np.unique(labels)) == 20
    assert peak < 100e6


# --- feature cache -----------------------------------------------------------------------------------
def test_feature_cache_hit_miss_and_corruption(tmp_path, caplog):
    spec = features.BackboneSpec(name="vit", size="small")
    imgs = np.random.default_rng(0).random((6, 32, 32, 3)).astype(np.float32)
    first = features.cached_features(spec, imgs, data_dir=tmp_path)
    assert not first["hit"] and first["local"].shape == (6, 4, 64, 8, 8)
    assert first["local"].dtype == np.float16 and isinstance(first["local"], np.memmap)
    assert first["bytes_per_image"] == 4 * 65 * 64 * 2
    reference = np.array(first["local"])
    again = features.cached_features(spec, imgs, data_dir=tmp_path)
    assert again["hit"] and again["path"] == first["path"]
    np.testing.assert_array_equal(again["local"], first["local"])
    # any key change misses: pixels, layers, backbone
    changed = imgs.copy()
    changed[0, 0, 0, 0] += 0.1
    assert not features.cached_features(spec, changed, data_dir=tmp_path)["hit"]
    assert not features.cached_features(spec, imgs, layers=[0, 2], data_dir=tmp_path)["hit"]
    assert not features.cached_features(features.BackboneSpec(seed=1), imgs, data_dir=tmp_path)["hit"]
    # a corrupted file is detected and rebuilt
    path = first["path"] / "local.npy"
    blob = bytearray(path.read_bytes())
    blob[-10] ^= 0xFF
    path.write_bytes(bytes(blob))
    rebuilt = features.cached_features(spec, imgs, data_dir=tmp_path)
    assert not rebuilt["hit"] and "corrupt" in caplog.text
    np.testing.assert_array_equal(rebuilt["local"], reference)
    # no temporary folders are left behind by the atomic writes
    assert not list(first["path"].parent.glob(".*tmp"))


@pytest.mark.parametrize("name", sorted(features.BACKBONES))
def test_every_backbone_gives_layer_tokens(name):
    spec = features.BackboneSpec(name=name)
    backbone = features.build_backbone(spec)
    size = features.input_size(backbone)
    local, global_ = features.extract_features(backbone, name, np.random.default_rng(0).random((2, size, size, 3)))
    assert local.shape[:2] == global_.shape[:2] == (2, 4) and local.shape[-2:] == (8, 8)
    assert np.isfinite(local).all() and np.isfinite(global_).all()


def test_pretrained_path_loads_a_locally_saved_checkpoint(tmp_path):
    random_spec = features.BackboneSpec(name="dinov2")
    features.build_backbone(random_spec).save_pretrained(tmp_path / "ckpt")
    loaded = features.BackboneSpec(name="dinov2", weights="pretrained", checkpoint=str(tmp_path / "ckpt"))
    imgs = np.random.default_rng(0).random((2, 32, 32, 3))
    expected = features.extract_features(features.build_backbone(random_spec), "dinov2", imgs)
    got = features.extract_features(features.build_backbone(loaded), "dinov2", imgs)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5, atol=1e-5)


def test_backbone_spec_validates():
    with pytest.raises(ValueError, match="'name' must be one of"):
        features.BackboneSpec(name="resnet")
    with pytest.raises(ValueError, match="'weights' must be one of"):
        features.BackboneSpec(weights="imagenet")


def test_random_layers_of_the_default_init_are_too_alike():
    """Why the synthetic subject plants with init_range=1.0: at 0.02 every layer predicts the others."""
    from neuroalign_utils import images

    imgs = images.natural_image_set(90, (32, 32), grayscale=False).values

    def predictability(init_range):
        spec = features.BackboneSpec(init_range=init_range)
        local, _ = features.extract_features(features.build_backbone(spec), "vit", imgs)
        return features.cross_layer_predictability(local)

    alike, distinct = predictability(0.02), predictability(1.0)
    off = ~np.eye(4, dtype=bool)
    assert alike[off].min() > 0.9
    assert distinct[off].mean() < alike[off].mean() - 0.1
    assert distinct[3, 0] < 0.75  # the last layer is far from the first
    assert np.diag(distinct).min() > 0.95


# --- synthetic subject and recovery --------------------------------------------------------------------
@pytest.fixture(scope="session")
def subject_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsd")
    return synthetic.write_synthetic_subject(root, n_images=N_IMAGES, n_vertices_per_hemisphere=N_VERTICES)


@pytest.fixture(scope="session")
def fitted(subject_dir):
    subject = loading.load_algonauts_subject(subject_dir)
    feats = features.cached_features(features.BackboneSpec(), subject.images.values)
    coords = model.hemisphere_separated_coordinates(
        subject.vertices[["x", "y", "z"]].to_numpy(), subject.vertices["hemisphere"]
    )
    result = training.train_factortopy(feats, subject.responses, coords, n_steps=1000, lr=2e-3, progress=False)
    shuffled = subject.responses[np.random.default_rng(1).permutation(len(subject.responses))]
    control = training.train_factortopy(feats, shuffled, coords, n_steps=300, lr=2e-3, progress=False)
    return subject, result, control


def test_synthetic_subject_matches_the_algonauts_layout(subject_dir):
    roi_dir = subject_dir / "roi_masks"
    names = sorted(p.name for p in (subject_dir / "training_split" / "training_images").glob("*.png"))
    assert len(names) == N_IMAGES and names[0].startswith("train-0001_nsd-")
    for hemi in ("lh", "rh"):
        fmri = np.load(subject_dir / "training_split" / "training_fmri" / f"{hemi}_training_fmri.npy")
        assert fmri.dtype == np.float32 and fmri.shape == (N_IMAGES, N_VERTICES)
        used = np.load(roi_dir / f"{hemi}.all-vertices_fsaverage_space.npy")
        assert used.shape == (163_842,) and used.sum() == N_VERTICES
        assert np.flatnonzero(used).max() < 10_242  # valid in fsaverage5 too
        prf = np.load(roi_dir / f"{hemi}.prf-visualrois_challenge_space.npy")
        assert prf.shape == (N_VERTICES,)
    mapping = np.load(roi_dir / "mapping_prf-visualrois.npy", allow_pickle=True).item()
    assert mapping[1] == "V1v" and mapping[7] == "hV4"
    subject = loading.load_algonauts_subject(subject_dir)
    assert {"V1v", "V1d", "V2v", "V3d", "hV4", "OPA", "PPA", "EBA", "FFA-1", "OFA"} <= set(subject.vertices["roi"])
    truth = synthetic.load_ground_truth(subject_dir)
    assert (truth["roi"].to_numpy() == subject.vertices["roi"].to_numpy()).all()
    # the planted hierarchy: V1 reads layer 0, EBA the last layer, with a larger global share
    by_roi = truth.groupby("roi")[["layer", "scale"]].mean()
    assert by_roi.loc["V1v", "layer"] == 0 and by_roi.loc["EBA", "layer"] == truth["n_layers"].iloc[0] - 1
    assert by_roi.loc["EBA", "scale"] > by_roi.loc["V1v", "scale"]


def test_writer_is_deterministic(tmp_path):
    small = dict(n_images=30, n_vertices_per_hemisphere=80, seed=3)
    first = synthetic.write_synthetic_subject(tmp_path / "a", **small)
    second = synthetic.write_synthetic_subject(tmp_path / "b", **small)
    for rel in ("training_split/training_fmri/lh_training_fmri.npy", "roi_masks/rh.floc-faces_fsaverage_space.npy"):
        np.testing.assert_array_equal(np.load(first / rel), np.load(second / rel))
    assert sorted(p.name for p in (first / "training_split/training_images").iterdir()) == sorted(
        p.name for p in (second / "training_split/training_images").iterdir()
    )


def test_r2_well_above_the_shuffled_control(fitted):
    _, result, control = fitted
    assert result.test_r2.mean() > 0.25  # best reachable: snr / (1 + snr) = 0.67
    assert control.test_r2.mean() < 0.02
    assert result.test_r2.mean() > control.test_r2.mean() + 0.2


def test_layer_selector_recovers_the_planted_ordering(fitted, subject_dir):
    subject, result, _ = fitted
    truth = synthetic.load_ground_truth(subject_dir)
    table = analysis.selector_table(result.model, subject.vertices).assign(true_layer=truth["layer"])
    fit = analysis.hierarchy_slope(table["iota"], table["roi"], n_bootstrap=200)
    assert fit["slope"] > 0.3 and fit["slope_low"] > 0.2
    named = table[table["roi"] != "Unknown"]
    per_roi = named.groupby("roi").agg(
        true=("true_layer", "first"), found=("layer_argmax", lambda a: np.bincount(a).argmax())
    )
    within_one = (per_roi["true"] - per_roi["found"]).abs() <= 1
    assert within_one.mean() >= 0.7, per_roi


def test_space_and_scale_selectors_recover_planted_values(fitted, subject_dir):
    subject, result, _ = fitted
    truth = synthetic.load_ground_truth(subject_dir)
    table = analysis.selector_table(result.model, subject.vertices)
    local = truth["scale"].to_numpy() < 0.3  # mostly-local vertices: their position is identifiable
    error = np.hypot(table["space_x"] - truth["pos_x"], table["space_y"] - truth["pos_y"])[local]
    assert np.median(error) < 0.15  # image half-width = 1; one 8×8 token cell = 0.25
    assert np.corrcoef(table["scale"], truth["scale"])[0, 1] > 0.5


def test_r2_per_roi_table(fitted):
    subject, result, _ = fitted
    table = analysis.r2_per_roi(result.test_r2, subject.vertices["roi"], order=["V1v", "EBA"])
    assert list(table.index) == ["V1v", "EBA", "all"]
    assert table.loc["all", "n_vertices"] == 2 * N_VERTICES
    assert table.loc["all", "r2_mean"] == pytest.approx(result.test_r2.mean())


def test_top_channel_image(fitted, subject_dir):
    subject, result, _ = fitted
    feats = features.cached_features(features.BackboneSpec(), subject.images.values)
    mask = (subject.vertices["roi"] == "V1v").to_numpy()
    rgb = analysis.top_channel_image(result.model, np.asarray(feats["local"][0], np.float32), mask)
    assert rgb.shape == (8, 8, 3) and rgb.min() >= 0 and rgb.max() <= 1
    with pytest.raises(ValueError, match="'roi_mask' must have 600 entries"):
        analysis.top_channel_image(result.model, np.asarray(feats["local"][0]), mask[:10])


def test_checkpoint_is_written_and_reloads(subject_dir, tmp_path):
    subject = loading.load_algonauts_subject(subject_dir)
    feats = features.cached_features(features.BackboneSpec(), subject.images.values)
    coords = model.hemisphere_separated_coordinates(
        subject.vertices[["x", "y", "z"]].to_numpy(), subject.vertices["hemisphere"]
    )
    ckpt = tmp_path / "model.pt"
    result = training.train_factortopy(
        feats,
        subject.responses,
        coords,
        n_steps=20,
        eval_every=10,
        progress=False,
        checkpoint=ckpt,
        space_selection=False,
        tokens="patch",
    )
    saved = torch.load(ckpt)
    assert saved["options"]["space_selection"] is False and saved["step"] == result.best_step
    assert (result.model.selectors()["scale"] == 0).all()


# --- surface maps -----------------------------------------------------------------------------------------
def test_flat_maps_draw_both_hemispheres_and_check_length(tmp_path):
    vertices = pd.concat([synthetic.cap_vertices(h, 150) for h in ("lh", "rh")], ignore_index=True)
    vertices["roi"] = np.where(vertices["rho"] < 0.5, "V1v", "EBA")
    fig = figures.plot_surface_maps(vertices["rho"].to_numpy(), vertices, title="rho", colorbar_label="ρ")
    fig.set_dpi(100)
    path = tmp_path / "map.png"
    fig.savefig(path, dpi=100)
    from PIL import Image

    from neuroalign_utils import style

    assert Image.open(path).size == (round(100 * style.BOOK_WIDTH), 340)  # the book's width
    assert sum(a.get_title().endswith("hemisphere") for a in fig.axes) == 2
    with pytest.raises(ValueError, match="expected 300"):
        figures.plot_surface_maps(np.zeros(299), vertices)
    layer = np.stack([np.arange(300) % 4, np.linspace(0, 1, 300)], 1)
    figures.plot_surface_maps(layer, vertices, kind="layer", n_layers=4)
    figures.plot_surface_maps(np.zeros((300, 2)), vertices, kind="position")


def test_inflated_view_paints_the_roi_on_visible_faces(tmp_path):
    vertices = pd.concat([synthetic.cap_vertices(h, 150) for h in ("lh", "rh")], ignore_index=True)
    fig = figures.plot_surface_maps(
        np.ones(300), vertices, surface="inflated", vmin=0, vmax=1, cmap="Reds", roi_outline=False
    )
    # the occipital cap faces the viewer, so saturated red (the ROI) must be visible in both panels
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
    red = rgb[..., 0] - rgb[..., 1] > 80
    half = rgb.shape[1] // 2
    assert red[:, :half].sum() > 200 and red[:, half:].sum() > 200
    with pytest.raises(ValueError, match="'surface' must be one of"):
        figures.plot_surface_maps(np.ones(300), vertices, surface="pial")


def _plot_calls():
    """Every figures.plot_* with small inputs: name → (call with ``axes``, shape of the axes it draws into)."""
    rng = np.random.default_rng(0)
    roi = np.array(["V1v", "V2d", "OPA", "EBA"] * 10)
    table = pd.DataFrame(
        {
            "roi": roi,
            "iota": rng.uniform(size=40),
            "space_x": rng.uniform(-1, 1, 40),
            "space_y": rng.uniform(-1, 1, 40),
            "scale": rng.uniform(size=40),
        }
    )
    truth = pd.DataFrame(
        {"pos_x": rng.uniform(-1, 1, 40), "pos_y": rng.uniform(-1, 1, 40), "scale": rng.uniform(size=40)}
    )
    recovery = pd.DataFrame({"planted_layer": [0, 1, 3], "recovered_layer": [0, 2, 3]}, index=["V1v", "hV4", "EBA"])
    matrices = {"random": rng.uniform(size=(4, 4)), "trained": rng.uniform(size=(4, 4))}
    by_distance = pd.DataFrame(
        {
            "model": ["random"] * 3 + ["trained"] * 3,
            "layers_apart": [1, 2, 3] * 2,
            "r2": rng.uniform(size=6),
            "ci_low": 0.0,
            "ci_high": 1.0,
        }
    )
    vertices = pd.concat([synthetic.cap_vertices(h, 60) for h in ("lh", "rh")], ignore_index=True)
    images = rng.uniform(size=(2, 16, 16, 3))
    return {
        "plot_stimuli": (lambda axes: figures.plot_stimuli(images, ["a", "b"], axes=axes), (2,)),
        "plot_training_history": (
            lambda axes: figures.plot_training_history(
                pd.DataFrame({"step": [10, 20], "val_r2": [0.1, 0.2]}), decay_steps=5, ceiling=0.5, axes=axes
            ),
            (),
        ),
        "plot_hierarchy_slope": (
            lambda axes: figures.plot_hierarchy_slope(table, {"b0": 0.1, "slope": 0.8}, axes=axes),
            (),
        ),
        "plot_layer_recovery": (lambda axes: figures.plot_layer_recovery(recovery, 4, axes=axes), ()),
        "plot_position_scale_recovery": (
            lambda axes: figures.plot_position_scale_recovery(table, truth, axes=axes),
            (2,),
        ),
        "plot_top_channels": (
            lambda axes: figures.plot_top_channels(images, {"V1v": list(rng.uniform(size=(2, 8, 8, 3)))}, axes=axes),
            (2, 2),
        ),
        "plot_layer_predictability": (lambda axes: figures.plot_layer_predictability(matrices, axes=axes), (2,)),
        "plot_layer_distinctness": (
            lambda axes: figures.plot_layer_distinctness(matrices, by_distance, axes=axes),
            (3,),
        ),
        "plot_surface_maps": (
            lambda axes: figures.plot_surface_maps(vertices["rho"].to_numpy(), vertices, axes=axes),
            (2,),
        ),
        "plot_selector_map": (
            lambda axes: figures.plot_selector_map(vertices.assign(scale=vertices["rho"]), "scale", axes=axes),
            (2,),
        ),
    }


def test_every_plot_function_draws_into_given_axes_and_returns_the_figure():
    import matplotlib.pyplot as plt

    calls = _plot_calls()
    assert sorted(calls) == sorted(n for n in dir(figures) if n.startswith("plot_"))  # none left unchecked
    for name, (call, shape) in calls.items():
        own = call(None)
        assert isinstance(own, plt.Figure) and own.axes, name
        plt.close(own)
        fig, axes = plt.subplots(*shape) if shape else plt.subplots()
        open_figures = plt.get_fignums()
        assert call(axes) is fig, name
        assert plt.get_fignums() == open_figures, name  # no figure of its own when given axes
        assert all(a.has_data() for a in np.ravel(axes)), name
        plt.close(fig)
    fig, axes = plt.subplots(1, 3)
    with pytest.raises(ValueError, match="'axes' must hold 2 matplotlib Axes"):
        calls["plot_position_scale_recovery"][0](axes)
    plt.close(fig)


# --- raw NSD loader on tiny files in the release format -------------------------------------------------------
def test_raw_nsd_loader_reads_tiny_release_files(tmp_path):
    import h5py
    import nibabel as nib
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    n_vertices, n_trials, n_stim = 12, 10, 6
    order = rng.integers(1, n_stim + 1, size=2 * n_trials)  # 1-based into subjectim
    subjectim = np.tile(np.arange(n_stim) * 3 + 5, (8, 1))  # 1-based 73k ids of each subject's images
    design_dir = tmp_path / "nsddata" / "experiments" / "nsd"
    design_dir.mkdir(parents=True)
    savemat(
        design_dir / "nsd_expdesign.mat",
        {"masterordering": order[None], "subjectim": subjectim, "sharedix": np.arange(1, 4)[None]},
    )
    beta_dir = tmp_path / "nsddata_betas/ppdata/subj01/fsaverage/betas_fithrf_GLMdenoise_RR"
    beta_dir.mkdir(parents=True)
    signal = rng.standard_normal((2 * n_vertices, n_stim))  # per vertex (lh then rh) and image
    zscored = []
    for session in (1, 2):
        trials = order[(session - 1) * n_trials : session * n_trials] - 1
        for h, hemi in enumerate(("lh", "rh")):
            data = signal[h * n_vertices : (h + 1) * n_vertices][:, trials] * 3 + 10 * session
            zscored.append((session, h, trials, (data - data.mean(1, keepdims=True)) / data.std(1, keepdims=True)))
            nib.save(
                nib.MGHImage(data.reshape(n_vertices, 1, 1, n_trials).astype(np.float32), np.eye(4)),
                beta_dir / f"{hemi}.betas_session{session:02d}.mgh",
            )
    stim_dir = tmp_path / "nsddata_stimuli" / "stimuli" / "nsd"
    stim_dir.mkdir(parents=True)
    brick = rng.integers(0, 255, size=(40, 9, 9, 3), dtype=np.uint8)
    with h5py.File(stim_dir / "nsd_stimuli.hdf5", "w") as fh:
        fh["imgBrick"] = brick
    subject = loading.load_raw_nsd(tmp_path, subject=1, sessions=(1, 2))
    seen = np.unique(order) - 1
    expected_ids = subjectim[0, seen] - 1
    assert subject.images["nsd_id"].values.tolist() == expected_ids.tolist()
    np.testing.assert_array_equal((subject.images.values * 255).round().astype(np.uint8), brick[expected_ids])
    assert subject.responses.shape == (len(seen), 2 * n_vertices)
    # per-session z-scoring, then the mean over each image's repeats, in the design's trial order
    expected = np.zeros((n_stim, 2 * n_vertices))
    counts = np.zeros(n_stim)
    for _session, h, trials, z in zscored:
        np.add.at(expected[:, h * n_vertices : (h + 1) * n_vertices], trials, z.T)
        counts += np.bincount(trials, minlength=n_stim) * (h == 0)
    np.testing.assert_allclose(subject.responses, expected[seen] / counts[seen, None], atol=1e-5)
    assert list(subject.vertices["hemisphere"].value_counts()) == [n_vertices, n_vertices]


# --------------------------------------------------------------------------------------------------
# the chapter's sentences follow the numbers


def _recovery(planted, recovered):
    rois = [f"roi{i}" for i in range(len(planted))]
    frame = pd.DataFrame({"planted_layer": planted, "recovered_layer": recovered}, index=rois)
    frame["layer_within_one"] = (frame["planted_layer"] - frame["recovered_layer"]).abs() <= 1
    return frame


GOOD_SLOPE = {"slope": 0.95, "slope_low": 0.9, "slope_high": 1.0}
FLAT_SLOPE = {"slope": 0.02, "slope_low": -0.1, "slope_high": 0.12}


def test_recovery_sentence_flips_when_the_run_is_broken():
    planted = [0, 0, 1, 1, 2, 2, 3, 3]
    good = analysis.describe_recovery(
        _recovery(planted, planted), 4, slope=GOOD_SLOPE, position_error=0.04, scale_correlation=0.9
    )
    assert good.startswith("The layer selector recovered the planted hierarchy:") and "Missed" not in good
    partial = analysis.describe_recovery(
        _recovery(planted, [0, 0, 0, 0, 2, 2, 2, 1]), 4, slope=GOOD_SLOPE, position_error=0.04, scale_correlation=0.9
    )
    assert "only in part" in partial
    assert "roi2 (planted 1, chosen 0)" in partial and "roi7 (planted 3, chosen 1)" in partial
    broken = analysis.describe_recovery(
        _recovery(planted, [0] * 8), 4, slope=FLAT_SLOPE, position_error=0.6, scale_correlation=0.0
    )
    assert broken.startswith("The layer selector did not recover the planted hierarchy:")
    assert "2 of 8 named ROIs" in broken


def test_slope_sentence_follows_the_interval():
    assert "later ROIs choose later layers" in analysis.describe_hierarchy_slope(GOOD_SLOPE, median_confidence=0.5)
    flat = analysis.describe_hierarchy_slope(FLAT_SLOPE, median_confidence=0.5)
    assert "no layer hierarchy was found" in flat and "narrow" not in flat
    reversed_ = analysis.describe_hierarchy_slope(
        {"slope": -0.5, "slope_low": -0.6, "slope_high": -0.4}, median_confidence=0.5
    )
    assert "reversed" in reversed_
    hard = analysis.describe_hierarchy_slope(
        {"slope": 1.0410, "slope_low": 1.0409, "slope_high": 1.0411}, median_confidence=1.0, planted_slope=1.0
    )
    assert "1.0409 to 1.0411" in hard and "planted: 1.0" in hard and "hard" in hard


def test_backbone_sentence_names_whether_the_planting_backbone_wins():
    table = pd.DataFrame({"r2_mean": [0.42, 0.31, 0.29]}, index=pd.Index(["vit", "dinov2", "mae"], name="backbone"))
    assert "as it should" in analysis.describe_backbones(table, planting_backbone="vit")
    lost = analysis.describe_backbones(table, planting_backbone="mae")
    assert lost.startswith("vit has the highest") and "cannot single out" in lost
    assert analysis.describe_backbones(table, planting_backbone=None).endswith("mae 0.29).")


def test_layer_distinctness_sentence_follows_the_r2():
    text = analysis.describe_layer_distinctness(0.97, 0.76, 1.0)
    assert "0.97: they are nearly interchangeable" in text and "0.76: they are distinct" in text
    assert "0.95: they are nearly" in analysis.describe_layer_distinctness(0.95, 0.95, 1.0).split("At std")[1]


def test_a_flat_or_constant_run_reads_as_no_hierarchy():
    flat = analysis.describe_hierarchy_slope(
        {"slope": -3.7e-9, "slope_low": -5.8e-9, "slope_high": -2.2e-9}, median_confidence=1.0
    )
    assert "flat" in flat and "reversed" not in flat
    planted = [0, 1, 2, 3]
    truth = pd.DataFrame({"scale": [0.1, 0.2, 0.5, 0.6], "pos_x": 0.0, "pos_y": 0.0})
    table = pd.DataFrame({"scale": 0.5, "space_x": 0.1, "space_y": 0.0}, index=range(4))
    scores = analysis.recovery_scores(table, truth, _recovery(planted, [2, 2, 2, 2]))
    assert np.isnan(scores["scale_correlation"]) and scores["position_error"] == pytest.approx(0.1)
    text = analysis.describe_recovery(
        _recovery(planted, [2, 2, 2, 2]),
        4,
        slope={"slope": 0.0, "slope_low": 0.0, "slope_high": 0.0},
        position_error=0.1,
        scale_correlation=np.nan,
    )
    assert "did not recover" in text and "is the same for every vertex" in text


def test_subject_files_are_checked_from_their_headers_before_images_are_read(tmp_path):
    folder = synthetic.write_synthetic_subject(tmp_path / "subject", n_images=12, n_vertices_per_hemisphere=50)
    fmri = folder / "training_split" / "training_fmri" / "lh_training_fmri.npy"
    good = np.load(fmri)
    np.save(fmri, good[:, :-1])
    with pytest.raises(ValueError, match=r"lh_training_fmri.npy has shape \(12, 49\)"):
        loading.load_algonauts_subject(folder)
    fmri.write_bytes(fmri.read_bytes()[:100])  # truncated
    with pytest.raises(ValueError, match="lh_training_fmri.npy cannot be read"):
        loading.load_algonauts_subject(folder)
    np.save(fmri, good.astype(str))
    with pytest.raises(ValueError, match="lh_training_fmri.npy holds <U.* values; numbers are needed"):
        loading.load_algonauts_subject(folder)
    np.save(fmri, good)
    for mapping in (folder / "roi_masks").glob("mapping_*.npy"):
        mapping.unlink()
    subject = loading.load_algonauts_subject(folder)
    assert set(subject.vertices["roi"]) == {"Unknown"}
    assert not analysis.can_fit_hierarchy(subject.vertices["roi"])
    assert "not computed" in analysis.describe_hierarchy_slope(None, median_confidence=1.0)


def test_a_damaged_synthetic_subject_is_rebuilt(tmp_path):
    folder = synthetic.write_synthetic_subject(tmp_path / "subject", n_images=12, n_vertices_per_hemisphere=50)
    fmri = folder / "training_split" / "training_fmri" / "rh_training_fmri.npy"
    good = fmri.read_bytes()
    fmri.write_bytes(good[:64])
    again = synthetic.write_synthetic_subject(tmp_path / "subject", n_images=12, n_vertices_per_hemisphere=50)
    assert again == folder and fmri.read_bytes() == good


# --------------------------------------------------------------------------------------------------
# a trained backbone: the packaged DINOv2-S/14 backbone of a saliency model, and its random control
TRAINED = "dinov2_s14_saliency"
TRAINED_IMAGES, TRAINED_VERTICES, TRAINED_STEPS = 300, 150, 800  # a small planted subject: 12 layers at 112 px


def _photographs_and_crops(n, size=112):
    """The first ``n`` photographs and crops of the book's image set (no 1/f textures), RGB in [0, 1]."""
    from neuroalign_utils import images

    image_set = images.natural_image_set(n + n // 3 + 2, (size, size), grayscale=False)
    return image_set.values[image_set["kind"].values != "texture"][:n].astype(np.float32)


def test_packaged_backbone_spec_validates():
    spec = features.backbone_spec(f"{TRAINED}:pretrained", image_size=112)
    assert (spec.name, spec.weights, spec.init_range, spec.image_size) == (TRAINED, "pretrained", None, 112)
    assert spec.label == f"{TRAINED} (trained)" and features.spec_input_size(spec) == 112
    assert features.spec_input_size(features.backbone_spec(TRAINED)) == 224  # the size its weights were trained at
    small = features.backbone_spec("vit", weights="pretrained", init_range=1.0, image_size=112)
    assert small.weights == "pretrained" and small.image_size is None and small.label == "vit (trained)"
    assert features.backbone_spec("vit:random", weights="pretrained").label == "vit (random)"
    with pytest.raises(ValueError, match="'init_range' must be None for the packaged backbone"):
        features.BackboneSpec(name=TRAINED)
    with pytest.raises(ValueError, match="'image_size' must be a multiple of the patch size 14"):
        features.BackboneSpec(name=TRAINED, init_range=None, image_size=100)
    with pytest.raises(ValueError, match="'image_size' applies to the packaged backbones"):
        features.BackboneSpec(name="vit", image_size=112)
    with pytest.raises(ValueError, match="In the backbone 'vit:imagenet', the weights after ':' must be one of"):
        features.backbone_spec("vit:imagenet")
    with pytest.raises(ValueError, match="'weights' must be one of"):
        features.backbone_spec("vit", weights="imagenet")
    with pytest.raises(ValueError, match="'backbone' must be one of"):
        features.backbone_spec("resnet:random")


def test_packaged_random_backbone_is_the_zoos_control():
    from neuroalign_utils import zoo

    spec = features.backbone_spec(f"{TRAINED}:random", image_size=112, seed=3)
    built = features.build_backbone(spec)
    control = zoo.build_model(TRAINED, weights="random", random_state=3)
    assert features.input_size(built) == 112
    for key, value in control.state_dict().items():
        assert torch.equal(built.state_dict()[key], value), key


def test_trained_backbone_tokens_and_streamed_cache(tmp_path):
    imgs = _photographs_and_crops(5)
    spec = features.backbone_spec(f"{TRAINED}:pretrained", image_size=112)
    backbone = features.build_backbone(spec)
    # one batch, as the cache computes them: with several threads, the backbone's float32 results depend on the
    # batch's size in the last bits, which float16 rounding can show
    local, global_ = features.extract_features(backbone, TRAINED, imgs)
    assert local.shape == (5, 12, 384, 8, 8) and global_.shape == (5, 12, 384)
    cached = features.cached_features(spec, imgs, data_dir=tmp_path)
    # streamed through a temporary file, it equals scaling the whole set at once
    scale = np.sqrt((local.astype(np.float64) ** 2).mean(axis=(0, 2, 3, 4))) + 1e-12
    np.testing.assert_array_equal(cached["local"], (local / scale[None, :, None, None, None]).astype(np.float16))
    np.testing.assert_array_equal(cached["global"], (global_ / scale[None, :, None]).astype(np.float16))
    assert sorted(p.name for p in cached["path"].iterdir()) == [".sizes.json", "global.npy", "local.npy", "meta.json"]
    assert "weights_sha256" in json.loads((cached["path"] / "meta.json").read_text())["key"]
    # the random control has other features, under another key
    other = features.cached_features(
        features.backbone_spec(f"{TRAINED}:random", image_size=112), imgs, data_dir=tmp_path
    )
    assert (
        other["path"] != cached["path"]
        and np.abs(np.asarray(other["local"], np.float32) - np.asarray(cached["local"], np.float32)).mean() > 0.1
    )


def test_cross_layer_r2_from_held_out_sums():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((30, 1, 16, 8, 8))
    local = np.concatenate([base, base + 0.05 * rng.standard_normal(base.shape), rng.standard_normal(base.shape)], 1)
    parts = features.cross_layer_parts(local)
    r2 = features.cross_layer_r2(parts)
    np.testing.assert_allclose(r2, features.cross_layer_predictability(local))
    assert r2[0, 1] > 0.95 and r2[1, 0] > 0.95  # near copies predict each other
    assert abs(r2[2, 0]) < 0.1 and abs(r2[0, 2]) < 0.1  # an independent layer does not
    # counting one held-out image twice equals giving it twice the weight in the sums
    counts = np.ones(len(parts["held_out"]))
    counts[0] = 2
    doubled = {
        k: (np.concatenate([v, v[:1]]) if isinstance(v, np.ndarray) and v.ndim == 4 else v) for k, v in parts.items()
    } | {"held_out": np.arange(len(counts) + 1)}
    np.testing.assert_allclose(features.cross_layer_r2(parts, counts), features.cross_layer_r2(doubled))
    with pytest.raises(ValueError, match="one entry per held-out image"):
        features.cross_layer_r2(parts, np.ones(3))


def test_distinctness_comparison_follows_constructed_layers():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((45, 1, 16, 8, 8))
    alike = np.concatenate([base + 0.05 * rng.standard_normal(base.shape) for _ in range(4)], 1)
    distinct = rng.standard_normal((45, 4, 16, 8, 8))
    result = analysis.compare_layer_distinctness(distinct, alike, n_bootstrap=200)
    table = result["table"]
    assert table.loc["all_pairs", "trained"] > 0.8 and table.loc["all_pairs", "random"] < 0.05
    assert table.loc["all_pairs", "ci_low"] > 0.5
    assert table.loc["all_pairs", "ci_low"] < table.loc["all_pairs", "margin"] < table.loc["all_pairs", "ci_high"]
    assert set(result["by_distance"]["layers_apart"]) == {1, 2, 3}
    swapped = analysis.compare_layer_distinctness(alike, distinct, n_bootstrap=200)["table"]
    assert swapped.loc["all_pairs", "ci_high"] < 0
    same = analysis.compare_layer_distinctness(alike, alike, n_bootstrap=200)["table"]
    all_pairs = same.loc["all_pairs"]
    assert all_pairs["margin"] == 0 and all_pairs["ci_low"] == 0 == all_pairs["ci_high"]
    with pytest.raises(ValueError, match="must hold the same images"):
        analysis.compare_layer_distinctness(distinct, alike[:30])


def _distinctness_table(trained, random, low, high, adjacent=(0.2, 0.01)):
    return pd.DataFrame(
        {
            "trained": [trained, adjacent[0]],
            "random": [random, adjacent[1]],
            "margin": [trained - random, adjacent[0] - adjacent[1]],
            "ci_low": [low, np.nan],
            "ci_high": [high, np.nan],
        },
        index=pd.Index(["all_pairs", "adjacent"], name="quantity"),
    )


def test_trained_vs_random_sentence_flips_with_the_interval():
    good = analysis.describe_trained_vs_random_layers(_distinctness_table(0.58, 0.03, 0.5, 0.63), model="m")
    assert good.startswith("The trained layers of m are more distinct than those of the same architecture at random")
    assert "0.58 trained against 0.030 random" in good and "0.50 to 0.63" in good
    assert "random: mean cross-layer R² 0.97, nearly interchangeable" in good
    assert "Trained: mean cross-layer R² 0.42, distinct enough to tell apart" in good
    broken = analysis.describe_trained_vs_random_layers(_distinctness_table(0.03, 0.04, -0.02, 0.01), model="m")
    assert "cannot be told apart from those of the same architecture" in broken and "more distinct" not in broken
    reversed_ = analysis.describe_trained_vs_random_layers(_distinctness_table(0.1, 0.5, -0.45, -0.35), model="m")
    assert "less distinct" in reversed_
    no_interval = analysis.describe_trained_vs_random_layers(_distinctness_table(0.58, 0.03, np.nan, np.nan), model="m")
    assert "cannot be told apart" in no_interval and "no interval" in no_interval
    brief = analysis.describe_trained_vs_random_layers(
        _distinctness_table(0.58, 0.03, 0.5, 0.63), model="m", brief=True
    )
    assert brief == good.split(" Trained:")[0]


def test_trained_vs_random_rows_have_the_synthesis_shape():
    rows = analysis.trained_vs_random_rows(_distinctness_table(0.58, 0.03, 0.5, 0.63), lens="L", model="m")
    columns = {"lens", "model", "quantity", "trained", "random", "margin", "ci_low", "ci_high"}
    assert [set(r) for r in rows] == [columns] * 2
    assert rows[0]["lens"] == "L" and rows[0]["margin"] == pytest.approx(0.55)
    assert all(isinstance(r[k], float) for r in rows for k in ("trained", "random", "margin", "ci_low", "ci_high"))
    assert np.isnan(rows[1]["ci_low"]) and json.loads(json.dumps(rows))  # NaN survives the JSON round trip


def test_paper_values_are_matched_by_backbone_name():
    table = pd.DataFrame(
        {
            "name": ["dinov2_s14_saliency", "vit"],
            "r2_mean": [0.4, 0.1],
            "slope": [0.9, 0.2],
            "b0": [0.1, 0.3],
            "b1": [1.0, 0.5],
        },
        index=["dinov2_s14_saliency (trained)", "vit (random)"],
    )
    values = analysis.paper_comparison_values(table, n_clusters=20)
    assert values["r2_all_imagenet"] == 0.1 and values["hierarchy_b1_imagenet"] == 0.5
    assert not any("saliency" in key or key.endswith("_dinov2") for key in values)
    table["weights"] = ["pretrained", "random"]
    setting = analysis.describe_setting(synthetic=True, backbones=table, size="small")
    assert "vit (random): random weights, small size" in setting and "saliency" not in setting
    assert "none of the backbones" in analysis.describe_setting(synthetic=False, backbones=table.iloc[:1], size="base")


def test_trained_layers_are_more_distinct_than_random_ones():
    """Measured on photographs: the trained backbone's layers against the same architecture at random weights."""
    imgs = _photographs_and_crops(45)
    local = {}
    for weights in ("pretrained", "random"):
        spec = features.backbone_spec(f"{TRAINED}:{weights}", image_size=112)
        local[weights], _ = features.extract_features(features.build_backbone(spec), TRAINED, imgs)
    result = analysis.compare_layer_distinctness(local["pretrained"], local["random"], n_bootstrap=300)
    table = result["table"]
    assert table.loc["all_pairs", "ci_low"] > 0, table  # trained layers are measurably more distinct
    assert table.loc["adjacent", "ci_low"] > 0, table
    assert np.diag(result["matrices"]["trained"]).min() > 0.95  # each layer predicts itself: the fits work


@pytest.fixture(scope="module")
def trained_subject(tmp_path_factory):
    spec = features.backbone_spec(f"{TRAINED}:pretrained", image_size=112)
    folder = synthetic.write_synthetic_subject(
        tmp_path_factory.mktemp("trained_nsd"),
        n_images=TRAINED_IMAGES,
        n_vertices_per_hemisphere=TRAINED_VERTICES,
        backbone=spec,
    )
    return spec, folder


def test_trained_subject_records_its_stimuli_and_shares_the_feature_cache(trained_subject):
    spec, folder = trained_subject
    stimuli = synthetic.load_stimuli(folder)
    assert len(stimuli) == TRAINED_IMAGES and set(stimuli["kind"]) == {"photograph", "crop", "texture"}
    assert (stimuli["kind"] == "photograph").sum() == 14
    subject = loading.load_algonauts_subject(folder)
    assert subject.images["nsd_id"].values.tolist() == stimuli["nsd_id"].tolist()
    # the planting features were computed from the stimuli as stored, so the fit reads the same cache entry
    assert features.cached_features(spec, subject.images.values)["hit"]
    truth = synthetic.load_ground_truth(folder)
    assert truth["n_layers"].iloc[0] == 12 and truth["layer"].max() == 11


def test_planted_hierarchy_is_recovered_with_the_trained_backbone(trained_subject):
    spec, folder = trained_subject
    subject, truth = loading.load_algonauts_subject(folder), synthetic.load_ground_truth(folder)
    fit = pipeline.fit_backbone(subject, spec, n_steps=TRAINED_STEPS, lr=2e-3, progress=False, device="cpu")
    slope = analysis.hierarchy_slope(fit.table["iota"], fit.table["roi"], n_bootstrap=200)
    recovery = pipeline.ground_truth_recovery(fit.table, truth)
    named = recovery.drop(index="Unknown", errors="ignore")
    from scipy.stats import spearmanr

    assert slope["slope_low"] > 0.5, slope  # later ROIs choose later layers of the 12
    assert spearmanr(named["planted_layer"], named["recovered_layer"])[0] > 0.6, named  # in the planted order
    assert named["layer_within_one"].mean() > analysis.within_one_chance(named["planted_layer"], 12), named
    assert fit.result.test_r2.mean() > 0.2  # ceiling 0.67
