"""V1T: layout writer and loader, model parts, metrics, training resume (fast tests)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from neuroalign_utils.v1t import loading, metrics, models, synthetic, training
from neuroalign_utils.v1t.cores import CNNCore, V1TCore, patch_grid
from neuroalign_utils.v1t.readouts import GaussianReadout

TINY = dict(mice=("A",), n_neurons=8, n_trials=60, n_test_images=4, n_repeats=3)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    return synthetic.write_synthetic_sensorium(tmp_path_factory.mktemp("tiny"), **TINY)


@pytest.fixture(scope="session")
def tiny_data(tiny_root):
    return loading.load_sensorium(tiny_root)


# ----------------------------------------------------------------------------------- layout
def test_writer_produces_the_release_layout(tiny_root):
    assert tiny_root.name == "sensorium"
    mouse = tiny_root / "static21067-10-18-GrayImageNet-94c6ff995dac583098847cfecd43e7b6"
    assert mouse.is_dir()
    assert np.load(mouse / "data/images/0.npy").shape == (1, 144, 256)
    assert np.load(mouse / "data/responses/59.npy").shape == (8,)
    assert np.load(mouse / "data/behavior/0.npy").shape == (3,)
    assert np.load(mouse / "data/pupil_center/0.npy").shape == (2,)
    tiers = np.load(mouse / "meta/trials/tiers.npy")
    assert tiers.dtype.kind == "U" and set(tiers) == {"train", "validation", "test"}
    ids = np.load(mouse / "meta/trials/frame_image_id.npy")
    test_ids, counts = np.unique(ids[tiers == "test"], return_counts=True)
    assert len(test_ids) == 4 and (counts == 3).all()
    assert np.load(mouse / "meta/neurons/cell_motor_coordinates.npy").shape == (8, 3)
    assert len(np.unique(np.load(mouse / "meta/neurons/animal_ids.npy"))) == 1
    for kind, shape in [("images", ()), ("responses", (8,)), ("behavior", (3,)), ("pupil_center", (2,))]:
        for stat in loading.STAT_NAMES:
            value = np.load(mouse / f"meta/statistics/{kind}/all/{stat}.npy")
            assert value.dtype == np.float32 and value.shape == shape
    # statistics are those of the training tier
    train = np.flatnonzero(tiers == "train")
    responses = np.stack([np.load(mouse / f"data/responses/{t}.npy") for t in train])
    np.testing.assert_allclose(np.load(mouse / "meta/statistics/responses/all/mean.npy"), responses.mean(0), rtol=1e-5)


def test_writer_is_deterministic(tiny_root, tmp_path):
    again = synthetic.write_synthetic_sensorium(tmp_path, **TINY)
    name = loading.mouse_folder_name("A")
    for rel in [
        "data/images/7.npy",
        "data/responses/7.npy",
        "meta/trials/tiers.npy",
        "ground_truth/expected_responses.npy",
    ]:
        np.testing.assert_array_equal(np.load(tiny_root / name / rel), np.load(again / name / rel))


def test_loader_standardises_with_the_release_statistics(tiny_data, tiny_root):
    (mouse,) = tiny_data.values()
    assert mouse.images.shape == (60, 1, 36, 64) and mouse.images.dtype == np.float32
    raw = np.load(tiny_root / mouse.name / "data/responses/3.npy")
    np.testing.assert_allclose(mouse.responses[3], raw / mouse.response_scale, rtol=1e-6)
    train = mouse.tier("train")
    assert abs(mouse.pupil_center[train].mean()) < 1e-4
    assert mouse.tiers.dtype.kind == "U" and len(mouse.tier("test")) == 12


@pytest.mark.parametrize(
    "missing", ["meta/trials/tiers.npy", "meta/statistics/behavior/all/std.npy", "data/responses/5.npy"]
)
def test_loader_names_the_missing_file(tiny_root, tmp_path, missing):
    name = loading.mouse_folder_name("A")
    broken = tmp_path / "sensorium" / name
    shutil.copytree(tiny_root / name, broken)
    (broken / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing.replace(".", r"\.")):
        loading.load_mouse(broken)


def test_loader_rejects_byte_tiers_and_float64_statistics(tiny_root, tmp_path):
    name = loading.mouse_folder_name("A")
    broken = tmp_path / name
    shutil.copytree(tiny_root / name, broken)
    tiers = broken / "meta/trials/tiers.npy"
    np.save(tiers, np.load(tiers).astype("S"))
    with pytest.raises(ValueError, match="unicode"):
        loading.load_mouse(broken)
    shutil.copy2(tiny_root / name / "meta/trials/tiers.npy", tiers)
    std = broken / "meta/statistics/images/all/std.npy"
    np.save(std, np.load(std).astype(np.float64))
    with pytest.raises(ValueError, match="float32"):
        loading.load_mouse(broken)


# ----------------------------------------------------------------------------------- model parts
@pytest.mark.parametrize(
    "size, patch, stride, grid",
    [((36, 64), 8, 1, (29, 57)), ((36, 64), 8, 4, (8, 15)), ((36, 64), 8, 8, (4, 8)), ((20, 30), 5, 3, (6, 9))],
)
def test_patch_grid_from_geometry_and_token_positions(size, patch, stride, grid):
    assert patch_grid(size, patch, stride) == grid
    core = V1TCore(
        size, patch_size=patch, stride=stride, emb_dim=8, n_blocks=1, n_heads=2, mlp_dim=8, behaviour_dim=0
    ).eval()
    images = torch.randn(2, 1, *size)
    assert core(images).shape == (2, 8, *grid) == (2, *core.output_shape)
    # perturbing one pixel changes exactly the tokens whose patch covers it, at their grid places
    y, x = size[0] - 3, 2
    delta = (
        (
            core.tokens(
                images.clone().index_put_(
                    (torch.tensor([0]), torch.tensor([0]), torch.tensor([y]), torch.tensor([x])), torch.tensor(5.0)
                )
            )
            - core.tokens(images)
        )[0, 1:]
        .abs()
        .sum(-1)
        .reshape(grid)
    )
    rows = [i for i in range(grid[0]) if i * stride <= y < i * stride + patch]
    cols = [j for j in range(grid[1]) if j * stride <= x < j * stride + patch]
    expected = np.zeros(grid, bool)
    expected[np.ix_(rows, cols)] = True
    np.testing.assert_array_equal(delta.detach().numpy() > 1e-6, expected)


def test_cnn_core_has_the_sensorium_baseline_geometry():
    # the baseline: unpadded 9×9 input (h − k + 1), three depth-separable 7×7 hidden layers of 64
    core = CNNCore((36, 64), pad_input=False, behaviour_dim=0).eval()
    assert core.output_shape == (64, 28, 56) and core(torch.randn(2, 1, 36, 64)).shape == (2, 64, 28, 56)
    assert sum(p.numel() for p in core.parameters()) == 9 * 9 * 64 + 3 * (64 * 64 + 7 * 7 * 64 + 64 * 64) + 4 * 2 * 64
    dense = CNNCore((36, 64), depth_separable=False, behaviour_dim=0)
    assert dense.output_shape == (64, 36, 64)
    assert sum(p.numel() for p in dense.parameters()) == 9 * 9 * 64 + 3 * 7 * 7 * 64 * 64 + 4 * 2 * 64
    with pytest.raises(ValueError, match="'input_kernel' must be <= 36"):
        CNNCore((36, 64), input_kernel=40)


def test_laplace_smoothness_of_known_kernels():
    from neuroalign_utils.v1t.cores import laplace_smoothness

    delta = torch.zeros(1, 1, 9, 9)
    delta[0, 0, 4, 4] = 1.0
    assert float(laplace_smoothness(delta)) == pytest.approx(4**2 + 4 * 1**2)  # centre 4, four neighbours −1
    assert float(laplace_smoothness(3 * delta)) == pytest.approx(20.0)  # scale-free
    yy, xx = torch.meshgrid(torch.arange(9.0), torch.arange(9.0), indexing="ij")
    smooth = torch.exp(-((yy - 4) ** 2 + (xx - 4) ** 2) / 8)[None, None]
    noise = torch.randn(8, 1, 9, 9, generator=torch.Generator().manual_seed(0))
    assert laplace_smoothness(smooth) < 0.2 < 10 < laplace_smoothness(noise)


def test_attention_fast_path_equals_explicit_path():
    torch.manual_seed(0)
    core = V1TCore(
        (20, 30), patch_size=5, stride=3, emb_dim=12, n_blocks=2, n_heads=3, mlp_dim=16, behaviour_dim=5
    ).eval()
    images, behaviour = torch.randn(3, 1, 20, 30), torch.randn(3, 5)
    fast = core(images, behaviour)
    explicit, attention = core(images, behaviour, return_attention=True)
    torch.testing.assert_close(fast, explicit, atol=1e-5, rtol=1e-5)
    assert len(attention) == 2 and attention[0].shape == (3, 3, 55, 55)
    torch.testing.assert_close(attention[1].sum(-1), torch.ones(3, 3, 55))


def _tiny_model(core, use_behaviour, data):
    config = dict(
        core=core,
        core_options=dict(emb_dim=8, n_blocks=2, n_heads=2, mlp_dim=8) if core == "v1t" else dict(channels=4),
        readout_options={},
        use_behaviour=use_behaviour,
        image_size=(36, 64),
        mice={k: m.n_neurons for k, m in data.items()},
    )
    return models.build_encoder(config, {k: m.coordinates for k, m in data.items()})


@pytest.mark.parametrize("core", ["v1t", "cnn"])
def test_behaviour_acts_only_through_bmlp_and_shifter(core, tiny_data):
    torch.manual_seed(0)
    ((name, mouse),) = tiny_data.items()
    images, behaviour, pupil = (torch.from_numpy(a[:4]) for a in (mouse.images, mouse.behaviour, mouse.pupil_center))
    model = _tiny_model(core, True, tiny_data).eval()
    base = model(images, name, behaviour, pupil)
    assert not torch.allclose(base, model(images, name, behaviour + 1, pupil))
    assert not torch.allclose(base, model(images, name, behaviour, pupil + 1))
    # silence the behaviour paths: B-MLPs / behaviour channels and the shifter → outputs ignore behaviour
    with torch.no_grad():
        if core == "v1t":
            for block in model.core.blocks:
                block.behaviour_mlp.net[2].weight.zero_()
                block.behaviour_mlp.net[2].bias.zero_()
        else:
            model.core.layers[0].weight[:, 1:] = 0
        model.shifters[name].net[4].weight.zero_()
        model.shifters[name].net[4].bias.zero_()
    silenced = model(images, name, behaviour, pupil)
    torch.testing.assert_close(silenced, model(images, name, behaviour * 3 - 1, pupil + 2))
    # without behaviour the model has no B-MLP or shifter at all
    plain = _tiny_model(core, False, tiny_data).eval()
    assert not plain.shifters and plain.core.behaviour_dim == 0
    torch.testing.assert_close(plain(images, name, behaviour, pupil), plain(images, name, behaviour + 5, pupil - 5))


def test_gaussian_readout_samples_in_training_and_reads_the_mean_in_eval():
    torch.manual_seed(0)
    coords = np.random.default_rng(0).uniform(-300, 300, (6, 3))
    readout = GaussianReadout((2, 9, 17), coords)
    # a feature grid whose channel 0 is the grid x coordinate (−1 … 1), channel 1 the y coordinate
    xs, ys = torch.linspace(-1, 1, 17), torch.linspace(-1, 1, 9)
    grid = torch.stack([xs.expand(9, 17), ys[:, None].expand(9, 17)])[None].repeat(2, 1, 1, 1)
    with torch.no_grad():
        readout.features.copy_(torch.tensor([[1.0, 0.0]] * 6))
    readout.eval()
    out = readout(grid)
    torch.testing.assert_close(out[0], readout.positions()[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out, readout(grid))
    shifted = readout(grid, shift=torch.tensor([[0.1, 0.0], [0.0, 0.0]]))
    torch.testing.assert_close(
        shifted[0] - out[0], torch.full((6,), 0.1), atol=1e-4, rtol=0
    )  # mean positions are inside
    readout.train()
    assert not torch.allclose(readout(grid), readout(grid))


# ----------------------------------------------------------------------------------- metrics
def test_metrics_match_their_definitions(rng):
    r, o = rng.normal(size=(40, 5)), rng.normal(size=(40, 5))
    expected = [np.corrcoef(r[:, i], o[:, i])[0, 1] for i in range(5)]
    np.testing.assert_allclose(metrics.single_trial_correlation(r, o), expected, atol=1e-6)
    ids = np.repeat(np.arange(8), 5)
    avg_r = r.reshape(8, 5, 5).mean(1)
    avg_o = o.reshape(8, 5, 5).mean(1)
    np.testing.assert_allclose(metrics.correlation_to_average(r, o, ids), metrics.correlation(avg_r, avg_o), atol=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        metrics.correlation(r, o[:3])


# ----------------------------------------------------------------------------------- training
def test_resume_after_interruption_reproduces_the_run(tiny_data, tmp_path):
    settings = dict(max_epochs=4, patience=1, n_reductions=1, batch_size=8, seed=3, progress=False)

    torch.manual_seed(0)
    full = _tiny_model("v1t", True, tiny_data)
    history = training.train(full, tiny_data, checkpoint_dir=tmp_path / "a", **settings)

    class Killed(Exception):
        pass

    def kill_at_2(epoch, record):
        if epoch == 2:
            raise Killed

    torch.manual_seed(0)
    first = _tiny_model("v1t", True, tiny_data)
    with pytest.raises(Killed):
        training.train(first, tiny_data, checkpoint_dir=tmp_path / "b", callback=kill_at_2, **settings)
    resumed = _tiny_model("v1t", True, tiny_data)  # fresh weights: everything comes from the checkpoint
    history_resumed = training.train(resumed, tiny_data, checkpoint_dir=tmp_path / "b", **settings)
    assert len(history) >= 3
    np.testing.assert_allclose(history_resumed["validation_correlation"], history["validation_correlation"], rtol=1e-6)
    np.testing.assert_allclose(history_resumed["learning_rate"], history["learning_rate"])
    for key, value in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value)
    # the saved model reloads to the same predictions
    path = training.save_model(full, tmp_path / "model.pt")
    (mouse,) = tiny_data.values()
    np.testing.assert_allclose(
        training.predict(training.load_model(path), mouse), training.predict(full, mouse), rtol=1e-6
    )


def test_writer_plants_the_gaze_contingent_gain_exactly(tiny_root, tmp_path):
    # Same seed with and without the gaze term: every unit's log-gain differs by gaze_gain × the
    # z-scored brightness at the gaze point (up to one constant per unit), and nothing else changes.
    gazing = synthetic.write_synthetic_sensorium(tmp_path, gaze_gain=0.5, **TINY)
    name = loading.mouse_folder_name("A")
    plain, with_gaze = (loading.load_planted_truth(root / name) for root in (tiny_root, gazing))
    assert plain["gaze_gain"] == 0.0 and with_gaze["gaze_gain"] == 0.5 and with_gaze["gaze_shift_px"] == 6.0
    np.testing.assert_array_equal(
        np.load(tiny_root / name / "data/images/5.npy"), np.load(gazing / name / "data/images/5.npy")
    )
    log_ratio = np.log(with_gaze["expected_responses"] / plain["expected_responses"])
    log_ratio -= log_ratio.mean(0)
    np.testing.assert_allclose(
        log_ratio, log_ratio[:, :1].repeat(log_ratio.shape[1], 1), atol=1e-5
    )  # shared by all units
    images = np.stack([np.load(gazing / name / f"data/images/{t}.npy")[0] for t in range(TINY["n_trials"])])
    pupil = np.stack([np.load(gazing / name / f"data/pupil_center/{t}.npy") for t in range(TINY["n_trials"])])
    brightness = synthetic.gaze_brightness(loading.block_average(images), (pupil - pupil.mean(0)) / pupil.std(0), 6.0)
    np.testing.assert_allclose(log_ratio[:, 0], 0.5 * brightness, atol=1e-4)
    with pytest.raises(ValueError, match="'gaze_gain' must be <= 2.0"):
        synthetic.write_synthetic_sensorium(tmp_path / "bad", gaze_gain=3.0, **TINY)


@pytest.mark.parametrize("std", [1.0, 0.02])
def test_v1t_position_embedding_starts_at_the_asked_scale(std):
    torch.manual_seed(0)
    core = V1TCore(emb_dim=155, stride=8, position_init_std=std)  # 33 tokens × 155 channels
    assert abs(core.position_embedding.std().item() / std - 1) < 0.05
    bound = 1 / 8  # patch embedding ~ U(±1/√64), weights and bias
    for values in (core.tokenizer.weight, core.tokenizer.bias):
        assert values.abs().max().item() <= bound and values.abs().max().item() > 0.8 * bound
    with pytest.raises(ValueError, match="'position_init_std' must be >= 0.0"):
        V1TCore(position_init_std=-1.0)


def test_noise_images_survive_any_resize_to_the_planted_size(tmp_path):
    # 'noise' images are 36×64 noise enlarged 4×: area averaging (ours) and bilinear resizing without
    # antialiasing (the reference's) both return exactly the image the planted units saw.
    import torch.nn.functional as F

    root = synthetic.write_synthetic_sensorium(tmp_path, images="noise", **TINY)
    folder = root / loading.mouse_folder_name("A")
    images = np.stack([np.load(folder / f"data/images/{t}.npy") for t in range(TINY["n_trials"])]).astype(np.float32)
    small = loading.block_average(images)
    bilinear = F.interpolate(torch.from_numpy(images), size=loading.PLANTED_SHAPE, mode="bilinear", align_corners=False)
    np.testing.assert_array_equal(small, bilinear.numpy())
    assert len(np.unique(small.round(), axis=None)) > 200  # every grey level: noise, not photographs
    assert np.abs(np.corrcoef(small[:, 0, :, :-1].ravel(), small[:, 0, :, 1:].ravel())[0, 1]) < 0.05  # white
    with pytest.raises(ValueError, match="'images' must be one of \\['natural', 'noise'\\]"):
        synthetic.write_synthetic_sensorium(tmp_path / "bad", images="pink", **TINY)


def test_a_mouse_does_not_depend_on_which_other_mice_are_written(tiny_root, tmp_path):
    settings = dict(TINY, mice=("B", "A"))
    both = synthetic.write_synthetic_sensorium(tmp_path, **settings)
    name = loading.mouse_folder_name("A")
    np.testing.assert_array_equal(
        np.load(tiny_root / name / "data/responses/4.npy"), np.load(both / name / "data/responses/4.npy")
    )
    animal_b = np.load(both / loading.mouse_folder_name("B") / "meta/neurons/animal_ids.npy")
    assert set(animal_b) == {22846}


@pytest.mark.parametrize("grid_shape", [(4, 8), (7, 11)])  # the projection route, the embedding-bag route
def test_bilinear_readout_equals_grid_sample_then_features(rng, grid_shape):
    from neuroalign_utils.v1t.readouts import PROJECTION_MAX_POSITIONS, bilinear_readout

    assert (grid_shape[0] * grid_shape[1] <= PROJECTION_MAX_POSITIONS) == (grid_shape == (4, 8))
    grid = torch.randn(3, 5, *grid_shape, requires_grad=True)
    features = torch.randn(50, 5, requires_grad=True)
    positions = torch.tensor(rng.uniform(-1.2, 1.2, (3, 50, 2)), dtype=torch.float32)
    positions[0, :4] = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0], [0.0, 1.0]])  # the borders
    positions.requires_grad_(True)
    sampled = torch.nn.functional.grid_sample(grid, positions[:, :, None], align_corners=True)[..., 0]
    expected = torch.einsum("bcn,nc->bn", sampled, features)
    got = bilinear_readout(grid, positions, features)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(got)
    g1 = torch.autograd.grad((got * weights).sum(), (grid, features, positions))
    g2 = torch.autograd.grad((expected * weights).sum(), (grid, features, positions))
    torch.testing.assert_close(g1[0], g2[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g1[1], g2[1], atol=1e-5, rtol=1e-5)
    inner = (positions.detach().abs() < 0.99).all(-1)  # position gradients agree away from the borders
    torch.testing.assert_close(g1[2][inner], g2[2][inner], atol=1e-4, rtol=1e-4)


def test_core_penalty_scales_with_the_size_of_the_data_term():
    # 1 at the paper's mice (Table A.1, A–E); linear in neurons, √ in training trials.
    assert training.core_penalty_scale(7851, 4485) == pytest.approx(1.0)
    assert training.core_penalty_scale(785, 4485) == pytest.approx(0.1, rel=1e-3)
    assert training.core_penalty_scale(7851, 4485 // 4) == pytest.approx(0.5, rel=1e-3)
    with pytest.raises(ValueError, match="n_neurons"):
        training.core_penalty_scale(0, 100)
    torch.manual_seed(0)
    config = dict(
        core="v1t",
        core_options=dict(emb_dim=8, n_blocks=1, n_heads=1, mlp_dim=8),
        readout_options={},
        use_behaviour=False,
        image_size=(36, 64),
        mice={"A": 5},
    )
    model = models.build_encoder(config)
    core, readout = model.core.regularizer(), model.readouts["A"].regularizer()
    assert core > 0
    scale = training.core_penalty_scale(150, 700)
    assert model.regularizer("A", scale).item() == pytest.approx((scale * core + readout).item(), rel=1e-6)
    assert model.regularizer("A").item() == pytest.approx((core + readout).item(), rel=1e-6)


def test_every_core_keeps_the_core_contract():
    from neuroalign_utils.v1t.cores import CORES, Core

    with pytest.raises(TypeError):
        Core()  # abstract: output shape, pixel geometry, forward and regulariser are the subclass's
    for name, core_class in CORES.items():
        assert issubclass(core_class, Core), name
        core = core_class((20, 30), behaviour_dim=core_class.behaviour_width)
        behaviour = torch.zeros(2, core.behaviour_dim)
        grid = core(torch.zeros(2, 1, 20, 30), behaviour)
        assert tuple(grid.shape[1:]) == core.output_shape, name
        assert core.regularizer().ndim == 0, name
        assert len(core.grid_stride) == len(core.grid_offset) == 2, name
        assert bool(core.attention_modules()) == core.has_attention, name
        if core.has_attention:
            _, weights = core(torch.zeros(2, 1, 20, 30), behaviour, return_attention=True)
            assert len(weights) == len(core.attention_modules()), name
    assert CORES["v1t"].behaviour_width == 5 and CORES["cnn"].behaviour_width == 3  # V1T also sees the pupil centre


@pytest.mark.parametrize("block_elements", [2**20, 300, 40])  # one block; groups of heads; row chunks
def test_blockwise_dropout_attention_equals_the_explicit_maths(monkeypatch, block_elements):
    from neuroalign_utils.v1t import attention as attention_module

    monkeypatch.setattr(attention_module, "ATTENTION_BLOCK_ELEMENTS", block_elements)
    torch.manual_seed(0)
    # head width 5: padded to 16 inside, sliced back
    q, k, v = (torch.randn(2, 3, 9, 5, dtype=torch.float64, requires_grad=True) for _ in range(3))
    scale, p, seed = 5**-0.5, 0.3, 1234
    # the reference rebuilds the same masks: same bit stream, same blocks, same order
    bits = attention_module.dropout_bits(seed)
    mask = torch.zeros(6, 9, 9)
    for g, r in attention_module._attention_blocks(6, 9, 9):
        keep, factor = attention_module.dropout_mask(mask[g, r].shape, p, bits)
        mask[g, r] = keep * factor
    expected = (torch.softmax(q @ k.transpose(-2, -1) * scale, -1) * mask.view(2, 3, 9, 9)) @ v
    got = attention_module.DropoutAttention.apply(q, k, v, scale, p, seed)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected)
    weights = torch.randn_like(got)
    torch.testing.assert_close(
        torch.autograd.grad((got * weights).sum(), (q, k, v)),
        torch.autograd.grad((expected * weights).sum(), (q, k, v)),
    )
    assert 0.5 < (mask > 0).float().mean() < 0.9  # the masks really drop


def test_dropout_keeps_the_expectation_and_the_rate():
    from neuroalign_utils.v1t.attention import Dropout

    layer = Dropout(0.2544).train()
    torch.manual_seed(0)
    out = layer(torch.ones(1_000_000))
    assert abs((out == 0).float().mean().item() - 0.2544) < 0.002
    assert abs(out.mean().item() - 1.0) < 0.005
    assert torch.equal(layer.eval()(torch.ones(5)), torch.ones(5))
    with pytest.raises(ValueError, match="p"):
        Dropout(1.5)


def test_bfloat16_training_follows_the_float32_run(tiny_data):
    (mouse,) = tiny_data.values()
    predictions = {}
    for precision in ("float32", "bfloat16"):
        torch.manual_seed(0)
        model = _tiny_model("v1t", True, tiny_data)
        history = training.train(
            model, tiny_data, max_epochs=2, batch_size=8, seed=3, progress=False, precision=precision
        )
        predictions[precision] = training.predict(model, mouse).ravel()
        assert set(history["precision"]) == {precision}
    assert not np.allclose(predictions["float32"], predictions["bfloat16"], rtol=1e-6)  # bfloat16 was used
    assert np.corrcoef(predictions["float32"], predictions["bfloat16"])[0, 1] > 0.99
    assert training.resolve_precision("bfloat16", model.core) == "bfloat16"
    assert training.resolve_precision("auto", model.core) == "float32"  # 33 tokens × 8 channels: too small to gain
    assert training.resolve_precision("auto", CNNCore()) == "float32"
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    paper_sized = V1TCore(emb_dim=155, stride=8)  # 33 tokens × 155 channels
    assert training.resolve_precision("auto", paper_sized) == ("bfloat16" if native else "float32")
    with pytest.raises(ValueError, match="precision"):
        training.train(model, tiny_data, precision="float16")


_REFAULTS = """
import resource, sys, torch
from neuroalign_utils.v1t import training
applied = training.retain_freed_memory() if sys.argv[1] == "retain" else True
# a 256 MiB activation allocated and freed step after step; faults counted in the last step (with
# retain_freed_memory, the heap settles after the first two: the block has to fit its aligned size)
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(2**26)
    del x
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_retained_memory_is_reused_without_page_faults():
    # each case in a fresh process: the setting is process-wide
    counts = {}
    for case in ("default", "retain"):
        out = subprocess.run(
            [sys.executable, "-c", _REFAULTS, case], capture_output=True, text=True, check=True
        ).stdout.split()
        if out[0] != "True":
            pytest.skip("not glibc: retain_freed_memory does nothing here")
        counts[case] = int(out[1])
    pages = 2**28 // 4096
    assert counts["default"] > 0.9 * pages, counts  # glibc hands the block back; every page faults again
    assert counts["retain"] < 0.01 * pages, counts


# ----------------------------------------------------------------------------------- findings (05)

from neuroalign_utils.v1t import findings  # noqa: E402


def _neurons(mean, n=200, seed=0, spread=0.05):
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 0.1, n)  # shared per-neuron level: pairs are compared on the same neurons
    return lambda shift: {"A": mean + base + shift + rng.normal(0, spread, n)}


def test_relative_gain_is_paired_and_its_interval_covers_the_gain():
    neurons = _neurons(0.3)
    a, b = neurons(0.03), neurons(0.0)
    gain = findings.relative_gain(a, b)
    assert gain["gain"] == pytest.approx(100 * (a["A"].mean() / b["A"].mean() - 1))
    assert gain["low"] < gain["gain"] < gain["high"] and gain["low"] > 0
    with pytest.raises(ValueError, match="share no mouse"):
        findings.relative_gain({"A": a["A"]}, {"B": b["A"]})


def test_v1t_vs_cnn_sentence_flips_with_the_run():
    neurons = _neurons(0.3)
    good = findings.relative_gain(neurons(0.04), neurons(0.0))  # V1T clearly above the CNN
    broken = findings.relative_gain(neurons(-0.04), neurons(0.0))  # V1T clearly below
    tie = findings.relative_gain(neurons(0.0), neurons(0.0))
    assert findings.describe_v1t_vs_cnn(good).startswith("V1T beats the CNN")
    assert findings.describe_v1t_vs_cnn(broken).startswith("V1T does not beat the CNN")
    assert re.search(r"correlation is \d[\d.]* % lower", findings.describe_v1t_vs_cnn(broken))
    assert findings.describe_v1t_vs_cnn(tie).startswith("V1T and the CNN are indistinguishable")
    assert "not compared" in findings.describe_v1t_vs_cnn(None)


def test_behaviour_ranking_ceiling_and_agreement_sentences_flip_with_the_run():
    neurons = _neurons(0.3)
    helps, hurts = (
        findings.relative_gain(neurons(0.05), neurons(0.0)),
        findings.relative_gain(neurons(-0.05), neurons(0.0)),
    )
    assert findings.describe_behaviour_gain("v1t", helps).startswith("Behaviour helps V1T")
    assert findings.describe_behaviour_gain("v1t", hurts).startswith("Behaviour makes V1T worse")
    assert "not measured" in findings.describe_behaviour_gain("v1t", None)
    good = {("v1t", True): 0.42, ("cnn", True): 0.38, ("linear", True): 0.27}
    broken = {("v1t", True): 0.30, ("cnn", True): 0.38, ("linear", True): 0.27}
    assert findings.describe_ranking(good).startswith(
        "V1T with behaviour predicts best (single-trial correlation 0.420)"
    )
    assert findings.describe_ranking(broken).startswith("The CNN with behaviour predicts best")
    assert "close to it" in findings.describe_ceiling({("v1t", True): 0.95, ("linear", True): 0.6}, 0.5)
    assert "less than half" in findings.describe_ceiling({("v1t", True): 0.3}, 0.5)
    assert "not known" in findings.describe_ceiling(None, None)
    assert findings.describe_paper_agreement(helps, helps, helps, synthetic=True).startswith(
        "All 3 of the paper's orderings"
    )
    mixed = findings.describe_paper_agreement(hurts, helps, None, synthetic=False)
    assert "behaviour helps V1T holds" in mixed and "not V1T beats the CNN" in mixed and "synthetic" not in mixed
    assert findings.describe_paper_agreement(hurts, hurts, hurts, synthetic=False).startswith("None of the paper's 3")
    assert findings.describe_paper_agreement(hurts, None, None, synthetic=False) == (
        "The one ordering of the paper that this run can test, V1T beats the CNN, does not hold clearly."
    )
    assert findings.describe_paper_agreement(helps, None, None, synthetic=False).startswith(
        "The one ordering of the paper that this run can test holds"
    )


def test_training_conditions_and_precision_follow_the_settings():
    small = dict(mice="A,B", n_neurons=100, n_trials=800, stride=8, emb_dim=48, n_blocks=2, max_epochs=8)
    why = findings.training_conditions(small, synthetic=True)
    assert (
        "synthetic mice (2 × 100 neurons" in why and "stride 8 (paper 1)" in why and "≤ 8 epochs (paper ≤ 400)" in why
    )
    assert (
        findings.training_conditions(small, synthetic=True, short=True)
        == "synthetic mice; stride 8, 2 blocks × 48, ≤ 8 epochs"
    )
    paper = dict(mice="A,B,C,D,E", n_neurons=0, n_trials=0, stride=1, emb_dim=155, n_blocks=4, max_epochs=400)
    assert findings.training_conditions(paper, synthetic=False).startswith("the paper's data and settings")
    assert (
        findings.describe_precision({"v1t": "float32", "cnn": "float32"}) == "This run trained every model in float32."
    )
    assert findings.describe_precision({"v1t": "bfloat16", "cnn": "float32"}).startswith(
        "This run trained V1T in bfloat16"
    )


# ----------------------------------------------------------------------------------- damaged files
def test_a_damaged_checkpoint_is_named_and_training_starts_afresh(tiny_data, tmp_path, caplog):
    settings = dict(max_epochs=2, patience=1, n_reductions=1, batch_size=8, seed=3, progress=False)
    torch.manual_seed(0)
    model = _tiny_model("v1t", True, tiny_data)
    first = training.train(model, tiny_data, checkpoint_dir=tmp_path, **settings)
    checkpoint = tmp_path / training.CHECKPOINT
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])  # truncated
    torch.manual_seed(0)
    again = _tiny_model("v1t", True, tiny_data)
    with caplog.at_level("WARNING"):
        history = training.train(again, tiny_data, checkpoint_dir=tmp_path, **settings)
    assert f"ignoring {checkpoint}: it cannot be read" in caplog.text
    # the same run as the first, from scratch, and a whole checkpoint again
    np.testing.assert_allclose(history["validation_correlation"], first["validation_correlation"], rtol=1e-6)
    assert checkpoint.stat().st_size > 200
    path = training.save_model(again, tmp_path / "model.pt")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"model.pt cannot be read as a saved model.*neuroalign run v1t_training"):
        training.load_model(path)


def test_damaged_or_non_numeric_trial_files_are_named(tiny_root, tmp_path):
    import shutil

    copy = tmp_path / "sensorium"
    shutil.copytree(tiny_root, copy)
    mouse = copy / loading.mouse_folder_name("A")
    trial = mouse / "data" / "responses" / "7.npy"
    trial.write_bytes(trial.read_bytes()[:40])
    with pytest.raises(ValueError, match=r"responses/7.npy cannot be read as a .npy array"):
        loading.load_mouse(mouse)
    np.save(trial, np.array(["a"] * 8))
    with pytest.raises(ValueError, match=r"responses/7.npy holds <U1 values; numbers are needed"):
        loading.load_mouse(mouse)
    trial.unlink()
    with pytest.raises(FileNotFoundError, match=r"missing .*responses/7.npy"):
        loading.load_mouse(mouse)


def test_a_damaged_synthetic_dataset_is_rewritten(tmp_path):
    root = synthetic.write_synthetic_sensorium(tmp_path, **TINY)
    trial = root / loading.mouse_folder_name("A") / "data" / "images" / "3.npy"
    good = trial.read_bytes()
    trial.write_bytes(good[:64])
    again = synthetic.write_synthetic_sensorium(tmp_path, **TINY)
    assert again == root and trial.read_bytes() == good
