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
    x, y = analysis.grid_to_pixels(CNNCore((36, 64), pad_input=False), np.array([-1.0, 1.0]), np.array([-1.0, 1.0]))
    np.testing.assert_allclose(x, [4, 59])  # unpadded 9×9 input convolution: 28×56 cells from pixel 4
    np.testing.assert_allclose(y, [4, 31])
    x, y = analysis.grid_to_pixels(CNNCore((36, 64)), np.array([-1.0, 1.0]), np.array([-1.0, 1.0]))
    np.testing.assert_allclose(x, [0, 63])
    np.testing.assert_allclose(y, [0, 35])


def _v1t_attending_along_the_pupil(sign: float):
    """A one-block V1T whose attention moves towards ``sign`` × the pupil centre, by construction.

    Patch embeddings are zero, so the images do not matter. Each patch token's position embedding
    holds its grid position ``(u_x, u_y)`` in channels 0–1 (negated in 2–3, so LayerNorm's mean is 0);
    the B-MLP writes ``tanh``-squashed ``(pupil_x, pupil_y)`` into channels 4–5 (negated in 6–7) of
    every token. Queries read channels 4–5 and keys channels 0–1, so the score of key token ``j`` is
    ``sign · (pupil_x · u_x(j) + pupil_y · u_y(j))`` up to positive factors.
    """
    torch.manual_seed(0)
    config = dict(core="v1t", readout_options={}, use_behaviour=True, image_size=(36, 64), mice={"m": 3},
                  core_options=dict(emb_dim=8, n_blocks=1, n_heads=1, head_dim=2, mlp_dim=4, stride=8,
                                    patch_dropout=0.0, attention_dropout=0.0, mlp_dropout=0.0))
    model = models.build_model(config, {"m": np.zeros((3, 3))})
    core = model.core
    gh, gw = core.grid
    uy, ux = np.meshgrid(np.linspace(-1, 1, gh), np.linspace(-1, 1, gw), indexing="ij")
    position = np.zeros((1, 1 + gh * gw, 8), np.float32)
    position[0, 1:, :4] = np.stack([ux.ravel(), uy.ravel(), -ux.ravel(), -uy.ravel()], 1)
    bmlp = core.blocks[0].behaviour_mlp.net
    first = np.zeros((4, 5), np.float32)
    first[0, 3] = first[1, 4] = 0.5  # pupil centre: inputs 3 and 4 of [behaviour (3), pupil (2)]
    second = np.zeros((8, 4), np.float32)
    second[4:8, :2] = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]])
    qkv = np.zeros((3 * 2, 8), np.float32)
    qkv[0:2, 4:6] = 8.0 * sign * np.eye(2)  # queries: the pupil channels (gain sharpens the softmax)
    qkv[2:4, 0:2] = np.eye(2)  # keys: the position channels
    with torch.no_grad():
        core.tokenizer.weight.zero_()
        core.position_embedding.copy_(torch.from_numpy(position))
        core.class_token.zero_()
        bmlp[0].weight.copy_(torch.from_numpy(first))
        bmlp[2].weight.copy_(torch.from_numpy(second))
        for layer in (bmlp[0], bmlp[2]):
            layer.bias.zero_()
        core.blocks[0].attention.qkv.weight.copy_(torch.from_numpy(qkv))
    return model


@pytest.mark.parametrize("fusion", ["max", "mean"])
def test_rollout_centre_of_mass_vs_pupil_has_the_sign_of_the_attention_shift(fusion):
    # The chapter's check (rollout → centre of mass → Pearson r with the pupil centre, per axis) on
    # V1Ts whose attention follows the pupil by construction: the sign of r must be the sign wired
    # in, on the matching axis (an x/y swap or a sign flip anywhere in the chain fails here).
    rng = np.random.default_rng(0)
    pupil = rng.normal(size=(40, 2)).astype(np.float32)
    behaviour = rng.normal(size=(40, 3)).astype(np.float32)
    images = torch.from_numpy(rng.normal(size=(40, 1, 36, 64)).astype(np.float32))
    for sign in (1.0, -1.0):
        model = _v1t_attending_along_the_pupil(sign)
        maps = analysis.rollout_maps(model, images, behaviour, pupil, fusion=fusion)
        table = analysis.pupil_correlation(analysis.centre_of_mass(maps), pupil).set_index("axis")
        assert (np.sign(table["r"]) == sign).all() and (table["r"].abs() > 0.8).all(), (sign, table)  # measured: 0.90
        assert (table["p"] < 1e-6).all(), table
        crossed = analysis.pupil_correlation(analysis.centre_of_mass(maps), pupil[:, ::-1]).set_index("axis")
        assert (crossed["r"].abs() < 0.5).all(), crossed  # measured: 0.14, 0.17
        # the same wiring seen with the images held fixed: the centre of mass moves along the pupil
        moved = analysis.centre_of_mass_shift_with_pupil(model, images, behaviour, fusion=fusion).set_index("axis")
        assert (sign * moved["along"] > 10).all() and (moved["across"].abs() < 2).all(), moved


def test_attention_weights_passed_in_replace_the_computed_ones():
    torch.manual_seed(0)
    config = dict(core="v1t", core_options=dict(emb_dim=8, n_blocks=2, n_heads=2, mlp_dim=8, stride=8),
                  readout_options={}, use_behaviour=True, image_size=(36, 64), mice={"m": 5})
    model = models.build_model(config, {"m": np.random.default_rng(0).normal(size=(5, 3))}).eval()
    images, inputs = torch.randn(3, 1, 36, 64), torch.randn(3, 5)
    with torch.no_grad():
        grid, weights = model.core(images, inputs, return_attention=True)
        torch.testing.assert_close(model.core(images, inputs, attention_weights=weights), grid, rtol=0, atol=1e-6)
        own = [torch.eye(w.shape[-1]).expand_as(w) for w in weights]  # every token attends to itself only
        assert not torch.allclose(model.core(images, inputs, attention_weights=own), grid, atol=1e-4)
    with pytest.raises(ValueError, match="one tensor per block"):
        model.core(images, inputs, attention_weights=weights[:1])


def _pupil_only_through_attention(model):
    """The hand-built V1T above with every other route of the pupil cut.

    Values read the key tokens' grid position, so each token's attention output is its attention's
    centre of mass; the projection writes it into the position channels 0–1, the MLP and the shifter
    write nothing, and the readout reads channels 0–3 only (the B-MLP's pupil channels 4–7 are not read).
    """
    block = model.core.blocks[0]
    with torch.no_grad():
        qkv = block.attention.qkv.weight
        qkv[4:6] = 0
        qkv[4:6, 0:2] = torch.eye(2)
        projection = block.attention.proj[0]
        projection.weight.zero_()
        projection.weight[0:2] = torch.eye(2)
        for layer in (block.mlp[4], model.shifters["m"].net[-2]):
            layer.weight.zero_()
            layer.bias.zero_()
        model.readouts["m"].features[:, 4:] = 0
    return model


def test_pupil_effect_through_attention_separates_the_two_routes():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(24, 1, 36, 64)).astype(np.float32)
    behaviour = rng.normal(size=(24, 3)).astype(np.float32)
    # all of the pupil's effect through the weights: fixing them leaves nothing
    only_attention = analysis.pupil_effect_through_attention(
        _pupil_only_through_attention(_v1t_attending_along_the_pupil(1.0)), "m", images, behaviour)
    assert (only_attention["pupil_effect"] > 0.01).all(), only_attention
    np.testing.assert_allclose(only_attention["through_attention"], 1.0, atol=1e-9)
    # attention blind to the pupil (no queries or keys: uniform weights), the pupil acting elsewhere
    blind = _v1t_attending_along_the_pupil(1.0)
    with torch.no_grad():
        blind.core.blocks[0].attention.qkv.weight[:4] = 0
    table = analysis.pupil_effect_through_attention(blind, "m", images, behaviour)
    assert (table["pupil_effect"] > 1e-4).all(), table  # B-MLP → residual → readout, and the shifter
    np.testing.assert_allclose(table["through_attention"], 0.0, atol=1e-9)
    with pytest.raises(ValueError, match="'mouse' must be one of"):
        analysis.pupil_effect_through_attention(blind, "n", images, behaviour)
