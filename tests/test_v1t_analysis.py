"""V1T analysis: rollout closed form, aRF of a linear unit, Gaussian fits, kernel export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroalign_utils.v1t import analysis, models


def test_rollout_of_a_hand_built_stack_equals_the_closed_form():
    rng = np.random.default_rng(0)
    blocks = []
    for _ in range(3):
        a = rng.random((2, 2, 5, 5))
        blocks.append(a / a.sum(-1, keepdims=True))
    for fusion, fuse in [("max", lambda a: a.max(1)), ("mean", lambda a: a.mean(1))]:
        expected = None
        for a in blocks:
            m = fuse(a) + np.eye(5)
            m = m / m.sum(-1, keepdims=True)
            expected = m if expected is None else m @ expected
        row = expected[:, 0, 1:] / expected[:, 0, 1:].sum(-1, keepdims=True)
        got = analysis.attention_rollout([torch.tensor(a) for a in blocks], fusion=fusion)
        np.testing.assert_allclose(got.numpy(), row, rtol=1e-10)
        np.testing.assert_allclose(got.sum(-1).numpy(), 1.0)
    no_cls = analysis.attention_rollout([torch.tensor(a) for a in blocks], class_token=False)
    assert no_cls.shape == (2, 5)
    with pytest.raises(ValueError, match="fusion"):
        analysis.attention_rollout(blocks, fusion="min")


def test_rollout_maps_and_kernels_of_a_v1t_encoder():
    torch.manual_seed(0)
    config = dict(core="v1t", core_options=dict(emb_dim=8, n_blocks=2, n_heads=2, mlp_dim=8, stride=4),
                  readout_options={}, use_behaviour=True, image_size=(36, 64), mice={"m": 5})
    model = models.build_model(config, {"m": np.random.default_rng(0).normal(size=(5, 3))})
    images, behaviour, pupil = torch.randn(4, 1, 36, 64), torch.randn(4, 3), torch.randn(4, 2)
    maps = analysis.rollout_maps(model, images, behaviour, pupil)
    assert maps.dims == ("trial", "y", "x") and maps.shape == (4, 36, 64)
    np.testing.assert_allclose(maps.sum(("y", "x")).values, 1.0, rtol=1e-5)
    com = analysis.centre_of_mass(maps)
    assert ((com["x"] > 0) & (com["x"] < 63) & (com["y"] > 0) & (com["y"] < 35)).all()
    attention = analysis.attention_map_kernels(model, images, behaviour, pupil)
    patches = analysis.patch_embedding_kernels(model.core)
    assert attention.dims == ("kernel", "y", "x") and attention.shape == (4, 8, 15)
    assert set(attention["kind"].values) == {"attention_map"} and set(attention["layer_type"].values) == {"attention"}
    assert list(np.unique(attention["layer_index"])) == [1, 2]
    assert patches.shape == (8, 8, 8) and set(patches["kind"].values) == {"weight"}
    assert int(patches["n_parameters"][0]) == 8 * 64 + 8


def test_centre_of_mass_of_a_point_map():
    maps = np.zeros((2, 10, 20))
    maps[0, 3, 7] = 1
    maps[1, 8, 2] = maps[1, 8, 4] = 0.5
    com = analysis.centre_of_mass(maps)
    np.testing.assert_allclose(com[["x", "y"]].values, [[7, 3], [3, 8]])


def test_arf_of_a_linear_unit_recovers_its_filter():
    rng = np.random.default_rng(1)
    filters = torch.tensor(rng.normal(size=(3, 12, 20)))

    def respond(noise):
        return noise[:, 0].double().flatten(1) @ filters.flatten(1).T + 2.0

    arf = analysis.artificial_receptive_fields(respond, (12, 20), n_images=6000, batch_size=1000)
    for a, f in zip(arf, filters.numpy()):
        assert np.corrcoef(a.ravel(), f.ravel())[0, 1] > 0.9


def test_gaussian_fit_recovers_known_parameters():
    h, w = 30, 50
    yy, xx = np.mgrid[:h, :w]
    truth = [(1.0, 20.0, 12.0, 4.0, 2.0, 0.3, 0.1), (2.0, 35.0, 20.0, 3.0, 3.0, 0.0, 0.0)]
    maps = np.stack([analysis._gaussian((xx, yy), *p) for p in truth])
    maps += np.random.default_rng(0).normal(0, 0.01, maps.shape)
    fits = analysis.fit_gaussian_2d(maps)
    for (a, x0, y0, sx, sy, _, _), (_, fit) in zip(truth, fits.iterrows()):
        assert abs(fit.x0 - x0) < 0.1 and abs(fit.y0 - y0) < 0.1
        assert abs(fit.sigma_x - max(sx, sy)) < 0.1 and abs(fit.sigma_y - min(sx, sy)) < 0.1
        assert fit.r2 > 0.99
    np.testing.assert_allclose(np.mod(fits.theta[0], np.pi), 0.3, atol=0.05)


def test_rollout_maps_reject_a_cnn():
    config = dict(core="cnn", core_options=dict(channels=4), readout_options={}, use_behaviour=False,
                  image_size=(36, 64), mice={"m": 3})
    model = models.build_model(config, {"m": np.zeros((3, 3))})
    with pytest.raises(ValueError, match="V1T core"):
        analysis.rollout_maps(model, torch.zeros(1, 1, 36, 64))


def test_readout_grid_maps_to_patch_centres():
    from neuroalign_utils.v1t.cores import CNNCore, V1TCore

    v1t = V1TCore((36, 64), patch_size=8, stride=8)
    x, y = analysis.grid_to_pixels(v1t, np.array([-1.0, 1.0]), np.array([-1.0, 1.0]))
    np.testing.assert_allclose(x, [3.5, 59.5])  # first and last patch centres, 8 tokens across
    np.testing.assert_allclose(y, [3.5, 27.5])  # 4 tokens down
    x, y = analysis.grid_to_pixels(CNNCore((36, 64)), np.array([-1.0, 1.0]), np.array([-1.0, 1.0]))
    np.testing.assert_allclose(x, [0, 63])
    np.testing.assert_allclose(y, [0, 35])
