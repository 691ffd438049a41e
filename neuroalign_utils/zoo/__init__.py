"""Model zoo: the paper's 15 segmentation models as data, built from ``transformers`` configs, and
their artificial kernels (weight kernels and attention maps) in the shared kernel format."""

from .build import build_model, count_parameters, model_config
from .kernels import (
    artificial_kernels,
    attention_key_maps,
    attention_maps,
    kernel_counts,
    kernel_layers,
    weight_kernels,
)
from .registry import AVAILABLE_MODELS, MODEL_NAMES, MODELS, ModelSpec, get_spec, zoo_table

__all__ = [
    "AVAILABLE_MODELS", "MODEL_NAMES", "MODELS", "ModelSpec", "artificial_kernels", "attention_key_maps",
    "attention_maps", "build_model", "count_parameters", "get_spec", "kernel_counts", "kernel_layers",
    "model_config", "weight_kernels", "zoo_table",
]
