"""Model zoo: registry, seeded random builds, local pretrained loading, kernel extraction on small configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroalign_utils import zoo
from neuroalign_utils.kernels import artificial
from neuroalign_utils.kernels.selection import SelectionSettings
from neuroalign_utils.zoo import inputs as zoo_inputs


def _tiny_sam():
    """A SAM with the real structure at toy size: 6×6 token grid, window 4 (padded to 8), one global layer."""
    from transformers import SamConfig, SamModel

    config = SamConfig(
        vision_config=dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=96,
            patch_size=16,
            window_size=4,
            global_attn_indexes=[1],
            output_channels=8,
            mlp_dim=64,
            initializer_range=0.02,
        ),
        prompt_encoder_config=dict(hidden_size=8, image_size=96, patch_size=16),
        mask_decoder_config=dict(hidden_size=8, mlp_dim=16, num_attention_heads=2, iou_head_hidden_dim=8),
    )
    config._attn_implementation = "eager"
    for sub in (config.vision_config, config.prompt_encoder_config, config.mask_decoder_config):
        sub._attn_implementation = "eager"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SamModel(config).eval()


@pytest.fixture(scope="module")
def tiny_sam():
    return _tiny_sam()


def test_registry_lists_the_papers_15_models_with_reasons():
    table = zoo.zoo_table(n_parameters=False)
    assert len(table) == 15 and table.index.is_unique
    unavailable = table[~table["available"]]
    assert set(unavailable.index) == {"HQ-SAM-T", "MobileSAM", "Semantic-SAM-L", "Semantic-SAM-T", "Mask DINO"}
    assert unavailable["unavailable_reason"].str.len().gt(20).all()
    assert table.loc[table["available"], "hub_id"].notna().all()
    with pytest.raises(ValueError, match="cannot be built here"):
        zoo.build_model("MobileSAM")
    with pytest.raises(ValueError, match="'name' must be one of"):
        zoo.build_model("SAM-XL")


def test_every_buildable_family_has_one_registered_builder():
    from neuroalign_utils.zoo import registry

    assert {spec.builder for spec in zoo.MODELS if spec.available} == set(registry.BUILDERS)
    with pytest.raises(ValueError, match="already registered"):
        zoo.register_builder("sam")(lambda spec, image_size: None)
    with pytest.raises(ValueError, match="'builder' must be one of"):
        registry.get_builder("detectron2")
    model_class, config = registry.get_builder("mask2former")(zoo.get_spec("Mask2Former-T"), 64)
    assert model_class.__name__ == "Mask2FormerForUniversalSegmentation"
    assert config.backbone_config.image_size == 64


def test_parameter_counts_grow_with_variant():
    counts = {name: zoo.count_parameters(name) for name in ("SAM-B", "SAM-L", "Mask2Former-T", "Mask2Former-S")}
    assert counts["SAM-B"] < counts["SAM-L"]
    assert counts["Mask2Former-T"] < counts["Mask2Former-S"]


def test_random_weights_are_seeded_and_leave_global_rng_alone():
    state = torch.random.get_rng_state()
    a = zoo.build_model("Mask2Former-T", random_state=1)
    b = zoo.build_model("Mask2Former-T", random_state=1)
    c = zoo.build_model("Mask2Former-T", random_state=2)
    assert torch.equal(torch.random.get_rng_state(), state)
    wa, wb, wc = (
        m.model.pixel_level_module.encoder.swin.embeddings.patch_embeddings.projection.weight for m in (a, b, c)
    )
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert a.zoo_info["weights"] == "random" and a.zoo_info["random_state"] == 1


def test_pretrained_from_local_checkpoint_gives_identical_weights(tmp_path, tiny_sam):
    tiny_sam.save_pretrained(tmp_path / "sam")
    loaded = zoo.build_model("SAM-B", weights="pretrained", checkpoint=str(tmp_path / "sam"))
    original = tiny_sam.state_dict()
    restored = loaded.state_dict()
    assert set(original) == set(restored)
    for key, value in original.items():
        torch.testing.assert_close(restored[key], value, rtol=0, atol=0)
    assert loaded.zoo_info["checkpoint"] == str(tmp_path / "sam")
    with pytest.raises(ValueError, match="checkpoint"):
        zoo.build_model("SAM-B", checkpoint="x")


def test_kernel_layers_exclude_small_convolutions(tiny_sam):
    layers = artificial.kernel_layers(tiny_sam)
    convs = {layer.name: layer for layer in layers if layer.layer_type == "convolution"}
    assert set(convs) == {"vision_encoder.patch_embed.projection", "vision_encoder.neck.conv2"}
    all_convs = [m for m in tiny_sam.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert any(max(m.kernel_size) <= 2 for m in all_convs)  # 1×1 and 2×2 exist and were left out
    attention = [layer.name for layer in layers if layer.layer_type == "attention"]
    assert "vision_encoder.layers.0.attn" in attention and "vision_encoder.layers.1.attn" in attention
    assert [layer.layer_index for layer in layers] == list(range(len(layers)))


def test_weight_kernel_counts_and_shapes(tiny_sam):
    kernels = artificial.weight_kernels(
        tiny_sam, model_name="tiny", kernel_size=8, select=False, max_kernels_per_layer=10_000
    )
    assert kernels.dims == ("kernel", "y", "x") and kernels.shape[1:] == (8, 8)
    per_layer = kernels.to_dataframe("v").reset_index().drop_duplicates("kernel").groupby("layer").size()
    assert per_layer["vision_encoder.patch_embed.projection"] == 32 * 3  # F·C kernels of 16×16
    assert per_layer["vision_encoder.neck.conv2"] == 8 * 8  # F·C kernels of 3×3
    patch = kernels.where(kernels.layer == "vision_encoder.patch_embed.projection", drop=True)
    assert set(patch.original_height.values) == {16}
    attention = kernels.where(kernels.layer == "vision_encoder.layers.0.attn", drop=True)
    # the relative-position tables are 2-D too, but zero at initialisation: constant, so left out
    assert (tiny_sam.vision_encoder.layers[0].attn.rel_pos_h == 0).all()
    assert set(attention.source.values) == {"qkv.weight", "proj.weight"}
    assert set(kernels.layer_type.values) == {"attention", "convolution"}
    assert (kernels.kind == "weight").all()
    neck = kernels.where(kernels.layer == "vision_encoder.neck.conv2", drop=True)
    assert (neck.n_parameters == 8 * 8 * 9).all()


def test_weight_kernel_selection_keeps_per_cluster(tiny_sam):
    kernels = artificial.weight_kernels(
        tiny_sam, model_name="tiny", kernel_size=8, selection=SelectionSettings(n_clusters=3, per_cluster=5)
    )
    per_layer = kernels.to_dataframe("v").reset_index().drop_duplicates("kernel").groupby("layer").size()
    assert per_layer["vision_encoder.patch_embed.projection"] == 15
    assert per_layer["vision_encoder.neck.conv2"] == 15


def _expected_key_map(truth, window, shift):
    """Independent reference: per window (in the shifted frame), received attention ∝ truth / window sum."""
    height, width = truth.shape
    pad_h, pad_w = -(-height // window) * window, -(-width // window) * window
    padded = np.zeros((pad_h, pad_w))
    padded[:height, :width] = truth
    rolled = np.roll(padded, (-shift, -shift), axis=(0, 1))
    out = np.zeros_like(rolled)
    for i in range(0, pad_h, window):
        for j in range(0, pad_w, window):
            block = rolled[i : i + window, j : j + window]
            out[i : i + window, j : j + window] = block / block.sum()
    out = np.roll(out, (shift, shift), axis=(0, 1))[:height, :width]
    return out / out.sum()


@pytest.mark.parametrize("grid, window, shift", [((6, 6), 4, 0), ((14, 10), 7, 3), ((8, 8), 4, 2)])
def test_windowed_attention_reshaped_to_grid(grid, window, shift):
    """Windows built with transformers' own Swin partition (after its cyclic shift) map back exactly."""
    from transformers.models.swin.modeling_swin import window_partition

    rng = np.random.default_rng(0)
    truth = rng.uniform(0.5, 1.5, size=grid)
    pad_h, pad_w = -(-grid[0] // window) * window, -(-grid[1] // window) * window
    padded = torch.full((1, pad_h, pad_w, 1), 1.0, dtype=torch.float64)  # padding gets attention too
    padded[0, : grid[0], : grid[1], 0] = torch.from_numpy(truth)
    shifted = torch.roll(padded, (-shift, -shift), dims=(1, 2))
    windows = window_partition(shifted, window).reshape(-1, window * window)  # (n_windows, w²)
    rows = windows / windows.sum(dim=1, keepdim=True)
    heads = 2
    weights = rows[:, None, None, :].expand(-1, heads, window * window, -1)  # every query: same row
    maps = artificial.attention_key_maps(weights, batch_size=1, grid=grid, window_size=window, shift_size=shift)
    # the reference treats padding as in the model (attended, then removed and renormalised)
    full = np.ones((pad_h, pad_w))
    full[: grid[0], : grid[1]] = truth
    expected = _expected_key_map(full, window, shift)[: grid[0], : grid[1]]
    expected = expected / expected.sum()
    assert maps.shape == (1, heads, *grid)
    np.testing.assert_allclose(maps[0, 0], expected, atol=1e-12)


def test_global_attention_maps_are_key_distributions():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 3, 12, 12))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    maps = artificial.attention_key_maps(probs, batch_size=2, grid=(3, 4))
    np.testing.assert_allclose(maps.sum(axis=(2, 3)), 1.0)
    np.testing.assert_allclose(maps[1, 2].ravel(), probs[1, 2].mean(axis=0))


def test_attention_maps_from_a_real_model(tiny_sam):
    from neuroalign_utils import images

    scenes = images.natural_image_set(3, (96, 96))
    maps = artificial.attention_maps(tiny_sam, scenes, model_name="tiny", kernel_size=6)
    # 2 vision layers (one windowed, one global) × 2 heads × 3 images, plus one rollout per image
    assert maps.sizes["kernel"] == 2 * 2 * 3 + 3
    assert (maps.where(maps.attention_head == -1, drop=True).source.str.startswith("rollout")).all()
    assert (maps.kind == "attention_map").all() and (maps.layer_type == "attention").all()
    np.testing.assert_allclose(maps.sum(("y", "x")).values, 1.0, rtol=1e-5)
    assert (maps.values >= 0).all()
    assert sorted(set(maps.image.values)) == [0, 1, 2] and sorted(set(maps.attention_head.values)) == [-1, 0, 1]
    # the global layer's maps match transformers' own attention output
    with torch.no_grad():
        pixels = torch.from_numpy(zoo_inputs.pixel_values(scenes, 96))
        reference = tiny_sam.vision_encoder(pixels, output_attentions=True).attentions[1]
    expected = reference.reshape(3, 2, 36, 36).mean(dim=2).reshape(3, 2, 6, 6).numpy()
    global_maps = maps.where(maps.layer == "vision_encoder.layers.1.attn", drop=True)
    got = np.stack([global_maps.where((global_maps.image == i), drop=True).values for i in range(3)])
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_artificial_kernels_shared_format(tmp_path):
    from neuroalign_utils import images

    scenes = images.natural_image_set(1, (64, 64), grayscale=False)
    kernels = artificial.artificial_kernels(
        ["Mask2Former-T"],
        images=scenes,
        image_size=64,
        kernel_size=8,
        max_kernels_per_layer=60,
        selection=SelectionSettings(n_clusters=2, per_cluster=5),
    )
    for coord in ("model", "layer", "layer_index", "layer_type", "kind", "n_parameters"):
        assert coord in kernels.coords
    assert kernels.name == "kernels" and kernels.dims == ("kernel", "y", "x")
    assert set(kernels.kind.values) == {"weight", "attention_map"}
    counts = artificial.kernel_counts(kernels)
    assert counts.loc["Mask2Former-T", ("weight", "convolution")] == 2 * 10  # two 3×3/4×4 conv layers × 2 × 5
    # Swin-T at 64 px: stages 16², 8², 4², 2² tokens; 12 blocks with 3,3,6,6,12×6,24,24 heads
    assert counts.loc["Mask2Former-T", ("attention_map", "attention")] == 3 * 2 + 6 * 2 + 12 * 6 + 24 * 2
    kernels.to_netcdf(tmp_path / "k.nc", engine="h5netcdf")


def test_full_attention_matrix_and_rollout():
    rng = np.random.default_rng(2)
    window, grid, heads = 4, (8, 8), 3
    logits = rng.normal(size=(4, heads, window**2, window**2))  # 4 windows, batch 1
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    full = artificial.full_attention_matrix(probs, batch_size=1, grid=grid, window_size=window)
    assert full.shape == (1, 64, 64)
    np.testing.assert_allclose(full.sum(axis=2), 1.0)
    # a token only attends inside its own window
    window_id = ((np.arange(8)[:, None] // 4) * 2 + (np.arange(8)[None, :] // 4)).ravel()
    assert (full[0][window_id[:, None] != window_id[None, :]] == 0).all()
    # averaged over queries it is the key map of the same layer
    np.testing.assert_allclose(
        full[0].mean(axis=0).reshape(grid),
        artificial.attention_key_maps(probs, batch_size=1, grid=grid, window_size=window)[0].mean(axis=0),
        atol=1e-12,
    )
    a1, a2 = (
        full,
        artificial.full_attention_matrix(
            np.exp(rng.normal(size=(1, heads, 64, 64)))
            / np.exp(rng.normal(size=(1, heads, 64, 64))).sum(-1, keepdims=True),
            batch_size=1,
            grid=grid,
        ),
    )
    a2 = a2 / a2.sum(axis=2, keepdims=True)
    rolled = artificial.attention_rollout([a1, a2])
    eye = np.eye(64)
    np.testing.assert_allclose(rolled[0], 0.25 * (a2[0] + eye) @ (a1[0] + eye), atol=1e-12)
    np.testing.assert_allclose(rolled.sum(axis=2), 1.0)


# --------------------------------------------------------------------------------------------------
# sentences chosen from the numbers: each flips between a good and a broken (or other) run


def test_attention_coverage_and_its_sentence_flip():
    import pandas as pd
    import xarray as xr

    uniform = np.full((2, 4, 4), 1 / 16)
    peaked = np.zeros((2, 4, 4))
    peaked[:, 1, 2] = 1.0
    coords = {
        "model": ("kernel", ["m", "m"]),
        "layer_index": ("kernel", [1, 2]),
        "kind": ("kernel", ["attention_map"] * 2),
        "attention_head": ("kernel", [0, 0]),
        "image": ("kernel", [0, 0]),
    }
    flat = artificial.attention_coverage(xr.DataArray(uniform, dims=("kernel", "y", "x"), coords=coords))
    np.testing.assert_allclose(flat["coverage"], 1.0)
    sharp = artificial.attention_coverage(xr.DataArray(peaked, dims=("kernel", "y", "x"), coords=coords))
    np.testing.assert_allclose(sharp["coverage"], 1 / 16, rtol=1e-6)
    sentence = artificial.describe_attention_coverage(flat, weights="random")
    assert "almost uniform" in sentence and "random weights" in sentence
    sentence = artificial.describe_attention_coverage(sharp, weights="pretrained")
    assert "concentrated on part of the grid" in sentence and "random" not in sentence
    assert artificial.describe_attention_coverage(pd.DataFrame(columns=flat.columns), weights="random").startswith(
        "This run"
    )


def test_weight_and_resize_sentences_follow_the_weights():
    import pandas as pd

    assert "a control" in artificial.describe_weights("random", ["SAM-B"])
    assert "control" not in artificial.describe_weights("pretrained", ["SAM-B"])
    table = pd.DataFrame(
        {
            "model": ["a", "a"],
            "layer": ["x.conv", "x.proj"],
            "filter": ["3×3", "16×16"],
            "candidates": [2000, 288],
            "selected": [500, 288],
        }
    )
    sentence = artificial.describe_conv_resize(table, weights="random", kernel_size=16)
    assert "3×3 pixels to 16×16" in sentence and "all resizing" in sentence
    assert "all resizing" not in artificial.describe_conv_resize(table, weights="pretrained", kernel_size=16)
    assert "only shrinks" in artificial.describe_conv_resize(table.iloc[[1]], weights="random", kernel_size=16)
    sentence = artificial.describe_conv_selection(table, n_clusters=10, per_cluster=50)
    assert "2 convolution layers keep 788" in sentence and "288 kernels of 16×16" in sentence
    full = table.assign(candidates=[2000, 2000], selected=[500, 500])
    assert "fewer" not in artificial.describe_conv_selection(full, n_clusters=10, per_cluster=50)


def test_weight_kernels_record_their_candidates(tiny_sam):
    kernels = artificial.weight_kernels(
        tiny_sam,
        model_name="tiny",
        kernel_size=8,
        max_kernels_per_layer=30,
        selection=SelectionSettings(n_clusters=2, per_cluster=4),
    )
    conv = artificial.conv_selection(kernels)
    assert (conv["candidates"] > 0).all() and (conv["selected"] <= conv["candidates"]).all()
    assert (kernels["candidates"].values[kernels["layer_type"].values == "attention"] == -1).all()
