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
    config = dict(
        core="v1t",
        core_options=dict(emb_dim=8, n_blocks=2, n_heads=2, mlp_dim=8, stride=4),
        readout_options={},
        use_behaviour=True,
        image_size=(36, 64),
        mice={"m": 5},
    )
    model = models.build_encoder(config, {"m": np.random.default_rng(0).normal(size=(5, 3))})
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
    for (_amplitude, x0, y0, sx, sy, _, _), (_, fit) in zip(truth, fits.iterrows()):
        assert abs(fit.x0 - x0) < 0.1 and abs(fit.y0 - y0) < 0.1
        assert abs(fit.sigma_x - max(sx, sy)) < 0.1 and abs(fit.sigma_y - min(sx, sy)) < 0.1
        assert fit.r2 > 0.99
    np.testing.assert_allclose(np.mod(fits.theta[0], np.pi), 0.3, atol=0.05)


def test_rollout_maps_reject_a_cnn():
    config = dict(
        core="cnn",
        core_options=dict(channels=4),
        readout_options={},
        use_behaviour=False,
        image_size=(36, 64),
        mice={"m": 3},
    )
    model = models.build_encoder(config, {"m": np.zeros((3, 3))})
    with pytest.raises(ValueError, match="needs a core with attention"):
        analysis.rollout_maps(model, torch.zeros(1, 1, 36, 64))
    with pytest.raises(ValueError, match="needs a core with attention"):
        analysis.attention_map_kernels(model, torch.zeros(1, 1, 36, 64))
    with pytest.raises(ValueError, match="'attention_weights' needs a core with attention"):
        model(torch.zeros(1, 1, 36, 64), "m", attention_weights=[torch.ones(1, 1, 5, 5)])


def test_readout_grid_maps_to_patch_centres():
    from neuroalign_utils.v1t.cores import CNNCore, LinearCore, V1TCore

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
    x, y = analysis.grid_to_pixels(LinearCore((36, 64)), np.array([-1.0, 1.0]), np.array([-1.0, 1.0]))
    np.testing.assert_allclose(x, [0, 63])  # 'same' padding: the feature grid is the image grid
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
    config = dict(
        core="v1t",
        readout_options={},
        use_behaviour=True,
        image_size=(36, 64),
        mice={"m": 3},
        core_options=dict(
            emb_dim=8,
            n_blocks=1,
            n_heads=1,
            head_dim=2,
            mlp_dim=4,
            stride=8,
            patch_dropout=0.0,
            attention_dropout=0.0,
            mlp_dropout=0.0,
        ),
    )
    model = models.build_encoder(config, {"m": np.zeros((3, 3))})
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
        core.tokenizer.bias.zero_()
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
    config = dict(
        core="v1t",
        core_options=dict(emb_dim=8, n_blocks=2, n_heads=2, mlp_dim=8, stride=8),
        readout_options={},
        use_behaviour=True,
        image_size=(36, 64),
        mice={"m": 5},
    )
    model = models.build_encoder(config, {"m": np.random.default_rng(0).normal(size=(5, 3))}).eval()
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
        _pupil_only_through_attention(_v1t_attending_along_the_pupil(1.0)), "m", images, behaviour
    )
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


# ----------------------------------------------------------------------------------- findings (06)

import pandas as pd  # noqa: E402

from neuroalign_utils.v1t import findings  # noqa: E402


def test_pupil_sweep_moves_attention_with_a_pupil_following_v1t_and_the_sentence_says_so():
    # A "broken" run for the chapter's finding: a V1T whose attention follows the pupil by
    # construction. The sweep must see the centre of mass move, and the sentence must say it follows.
    rng = np.random.default_rng(0)
    images = rng.normal(size=(16, 1, 36, 64)).astype(np.float32)
    behaviour = rng.normal(size=(16, 3)).astype(np.float32)
    following = _v1t_attending_along_the_pupil(1.0)
    sweep = analysis.pupil_sweep(following, "m", images, behaviour)
    assert list(sweep["offset"].unique()) == [-2.0, -1.0, 0.0, 1.0, 2.0]
    moves = analysis.sweep_moves(sweep).set_index("axis")
    along = analysis.centre_of_mass_shift_with_pupil(following, images, behaviour).set_index("axis")["along"]
    np.testing.assert_allclose(moves["attention"], along, atol=1e-4)  # one quantity, one value
    planted = 6.0
    sentence = findings.describe_attention_and_pupil(moves["attention"].to_dict(), {"x": 5.0, "y": 5.0}, planted)
    assert (
        "Attention follows the pupil, by" in sentence
        and "the shifter moves with the planted shift along both axes" in sentence
    ), sentence
    # the same pipeline on a V1T whose attention ignores the pupil (no queries, keys: uniform weights)
    blind = _v1t_attending_along_the_pupil(1.0)
    with torch.no_grad():
        blind.core.blocks[0].attention.qkv.weight[:4] = 0
    still = analysis.sweep_moves(analysis.pupil_sweep(blind, "m", images, behaviour)).set_index("axis")
    sentence = findings.describe_attention_and_pupil(still["attention"].to_dict(), {"x": 5.0, "y": 5.0}, planted)
    assert "Attention does not move with the pupil" in sentence, sentence
    verdict = findings.describe_attention_and_pupil(
        still["attention"].to_dict(), {"x": 5.0, "y": 5.0}, planted, part="verdict"
    )
    assert verdict.startswith("Attention does not move") and sentence.endswith(verdict)
    with pytest.raises(ValueError, match="'part' must be one of"):
        findings.describe_attention_and_pupil({"x": 0.0}, {"x": 0.0}, None, part="first")
    assert "the shifter barely moves along either axis" in findings.describe_attention_and_pupil(
        still["attention"].to_dict(), {"x": 0.1, "y": 0.0}, planted
    )
    # the whole model's aRFs: taken up or not, and a shifter moving against the planted shift
    taken = findings.describe_attention_and_pupil(
        still["attention"].to_dict(), {"x": -3.0, "y": 3.0}, planted, {"x": 2.0, "y": 2.5}
    )
    assert "the model as a whole moves with the planted shift along both axes (x: 33 %, y: 42 % of it)" in taken, taken
    assert "the shifter moves against it along x (−50 %) and with it along y (50 %)" in taken, taken
    assert "the model as a whole barely moves along either axis" in findings.describe_attention_and_pupil(
        still["attention"].to_dict(), {"x": 0.0, "y": 0.0}, planted, {"x": 0.1, "y": 0.2}
    )
    # recorded mice: the shifter's move is the reference
    assert "of the shifter's move" in findings.describe_attention_and_pupil(
        {"x": 3.0, "y": 3.0}, {"x": 4.0, "y": 4.0}, None
    )


def test_shifter_shift_is_zero_at_a_centred_pupil_only_when_the_shifter_is_zeroed():
    model = _v1t_attending_along_the_pupil(1.0)
    pupil = np.array([[0.0, 0.0], [2.0, 0.0]], np.float32)
    with torch.no_grad():
        for layer in model.shifters["m"].net:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.zero_()
                layer.bias.zero_()
    np.testing.assert_allclose(analysis.shifter_shift_px(model, "m", pupil), 0.0)
    with torch.no_grad():
        model.shifters["m"].net[-2].bias.copy_(torch.tensor([0.5, 0.0]))  # tanh(0.5) grid units along x
    gh, gw = model.core.grid
    expected = np.tanh(0.5) * (gw - 1) / 2 * model.core.tokenizer.stride[1]
    np.testing.assert_allclose(analysis.shifter_shift_px(model, "m", pupil)[:, 0], expected, rtol=1e-6)


def test_com_pupil_sentence_follows_the_p_values():
    null = pd.DataFrame(
        {
            "mouse": ["A", "A", "B", "B"],
            "axis": ["x", "y", "x", "y"],
            "r": [0.05, -0.02, 0.03, 0.01],
            "p": [0.48, 0.75, 0.6, 0.7],
        }
    )
    assert "at r = 0.04 (x) and −0.01 (y)" in findings.describe_com_pupil_correlation(null)
    strong = null.assign(r=[0.5, 0.4, 0.6, 0.45], p=[1e-6, 1e-5, 1e-7, 1e-4])
    assert "no mouse and axis reaches p < 0.05 (p from 0.48 to 0.75)" in findings.describe_com_pupil_correlation(null)
    assert "too small" not in findings.describe_com_pupil_correlation(null)
    sentence = findings.describe_com_pupil_correlation(strong)
    assert "4 of 4 mouse-axis pairs reach p < 0.05" in sentence and "weaker evidence" in sentence
    one = null.iloc[:2].assign(p=[0.01, 0.3])
    assert "1 of 2 axes reach" in findings.describe_com_pupil_correlation(one)


def test_share_arf_bmlp_pupil_and_retinotopy_sentences_flip():
    assert findings.describe_share_through_attention({"x": 0.001, "y": 0.004}).startswith("Little of")
    assert findings.describe_share_through_attention({"x": 0.2, "y": 0.05}).startswith("Part of")
    assert findings.describe_share_through_attention({"x": 0.9, "y": 0.8}).startswith("Most of")
    assert "find the planted RFs" in findings.describe_arf_positions({"V1T": 2.0}, {"V1T": 20.0})
    assert "do not find" in findings.describe_arf_positions({"V1T": 15.0}, {"V1T": 20.0})
    assert "narrower than the CNN's" in findings.describe_arf_sizes({"V1T": (2.0, 2.0), "CNN": (5.0, 3.0)})
    assert "wider than the CNN's" in findings.describe_arf_sizes({"V1T": (5.0, 4.0), "CNN": (3.0, 3.0)})
    assert "similar size" in findings.describe_arf_sizes({"V1T": (3.0, 3.0), "CNN": (3.1, 2.9)})
    assert "not compared" in findings.describe_arf_sizes({"V1T": (2.0, 2.0)})
    assert "rises with depth" in findings.describe_bmlp_spread({1: 0.1, 2: 0.2})
    assert "falls with depth" in findings.describe_bmlp_spread({1: 0.2, 2: 0.1})
    by_pupil = pd.DataFrame(
        {"model": "v1t_with_behaviour", "pupil_group": [1, 2, 3], "single_trial_correlation": [0.2, 0.25, 0.3]}
    )
    assert "predicts large-pupil trials better" in findings.describe_pupil_dilation(by_pupil)
    assert "worse" in findings.describe_pupil_dilation(by_pupil.assign(single_trial_correlation=[0.3, 0.25, 0.2]))
    assert "has learned the retinotopy" in findings.describe_retinotopy(0.9, 0.8)
    assert "do not follow" in findings.describe_retinotopy(0.05, -0.1)
    good = findings.describe_analysis_vs_paper(
        {"x": 0.5, "y": 0.4}, 1e-6, {"V1T": (2.0, 2.0), "CNN": (3.0, 3.0)}, "rises"
    )
    assert good.startswith("This run agrees with the paper on") and "but not" not in good
    broken = findings.describe_analysis_vs_paper(
        {"x": 0.02, "y": 0.01}, 0.6, {"V1T": (4.0, 4.0), "CNN": (3.0, 3.0)}, "falls"
    )
    assert broken.startswith("This run reproduces none")
    assert findings.describe_source(
        "the 'v1t_training' run abc", ["v1t_with_behaviour", "cnn_with_behaviour"], ["A"]
    ) == (
        "This chapter analyses the 'v1t_training' run abc: V1T with behaviour and the CNN with behaviour, "
        "on 1 mouse (A)."
    )


def test_axis_sigmas_turn_with_the_fit_and_chance_error_uses_other_units():
    fits = pd.DataFrame({"sigma_x": [4.0, 4.0], "sigma_y": [1.0, 1.0], "theta": [0.0, np.pi / 2]})
    sigmas = analysis.axis_sigmas(fits)
    np.testing.assert_allclose(sigmas.to_numpy(), [[4.0, 1.0], [1.0, 4.0]], atol=1e-12)
    # fits exactly on their own units: chance is the distance to the others' centres
    x, y = np.array([0.0, 3.0, 0.0]), np.array([0.0, 0.0, 4.0])
    assert analysis.chance_position_error(x, y, x, y) == pytest.approx(np.median([3, 4, 3, 5, 4, 5]))
    with pytest.raises(ValueError, match="at least two units"):
        analysis.chance_position_error([0.0], [0.0], [0.0], [0.0])


def test_arf_sweep_of_a_linear_encoder_moves_with_its_shifter():
    # A linear core whose only filter is a Gaussian blob, read in the linear range of ELU: each unit's
    # aRF is the blob at its read position, so when only the pupil moves the whole model's aRF centres
    # must move exactly as far as the shifter moves the read positions.
    torch.manual_seed(0)
    config = dict(
        core="linear",
        core_options=dict(channels=1, kernel=9),
        readout_options={},
        use_behaviour=True,
        image_size=(36, 64),
        mice={"m": 3},
    )
    model = models.build_encoder(config, {"m": np.zeros((3, 2))})
    yy, xx = np.mgrid[:9, :9]
    with torch.no_grad():
        model.core.conv.weight.zero_()
        model.core.conv.weight[0, 0] = torch.tensor(np.exp(-((xx - 4) ** 2 + (yy - 4) ** 2) / (2 * 1.5**2)))
        model.core.conv.bias.zero_()
        model.readouts["m"].bias.fill_(5.0)
        model.readouts["m"].features.fill_(1.0)
        for layer in [m for m in model.shifters["m"].net if isinstance(m, torch.nn.Linear)]:
            layer.weight.copy_(torch.eye(*layer.weight.shape) * (0.05 if layer.in_features == 2 else 1.0))
            layer.bias.zero_()
    sweep = analysis.arf_sweep(model, "m", np.zeros(3), n_images=2000).set_index(["axis", "offset"])
    assert (sweep["kept"] == 3).all(), sweep
    shifter = analysis.shifter_shift_px(model, "m", np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]]))
    for i, axis in enumerate(("x", "y")):
        moved = sweep.loc[(axis, 2.0), f"{axis}0"] - sweep.loc[(axis, -2.0), f"{axis}0"]
        expected = shifter[2 * i, i] - shifter[2 * i + 1, i]
        assert expected > 2.0 and moved == pytest.approx(expected, abs=0.5), (axis, moved, expected)


def test_analysis_conditions_name_paper_keys_and_the_run():
    from neuroalign_utils.paper_values import paper_values

    params = dict(mice="A", n_neurons=60, n_trials=500, stride=8, emb_dim=48, n_blocks=2, max_epochs=4)
    why = findings.analysis_conditions(params, synthetic=True, n_noise_images=1000)
    assert set(why) <= set(paper_values("v1t_analysis")["key"])
    assert "synthetic mice" in why["com_pupil_r_x"] and "1,000 noise images" in why["arf_sigma_x_cnn"]
    assert (
        "synthetic" not in findings.analysis_conditions(params, synthetic=False, n_noise_images=1000)["com_pupil_r_x"]
    )
