"""How a zoo model takes images: its input size, its normalisation, and images prepared for it."""

from __future__ import annotations

import numpy as np

from .registry import IMAGENET_MEAN, IMAGENET_STD


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


def pixel_values(images, size: int, *, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """Images in [0, 1] as a model input: RGB, resized to ``size`` × ``size``, normalised by ``mean``/``std``.

    Parameters
    ----------
    images : array-like or xarray.DataArray
        ``(image, y, x)`` grayscale (replicated to RGB) or ``(image, y, x, 3)``.
    size : int
    mean, std : sequence of 3 floats
        Per-channel normalisation (default: ImageNet's).

    Returns
    -------
    numpy.ndarray, shape (image, 3, size, size), float32
    """
    from ..kernels.similarity import resize_kernels

    values = np.asarray(getattr(images, "values", images), dtype=np.float64)
    if values.ndim == 3:
        values = np.repeat(values[..., None], 3, axis=-1)
    if values.ndim != 4 or values.shape[-1] != 3:
        raise ValueError(f"'images' must be (image, y, x) or (image, y, x, 3); shape {values.shape} was provided.")
    if values.shape[1:3] != (size, size):
        channels_first = values.transpose(0, 3, 1, 2).reshape(-1, *values.shape[1:3])
        values = resize_kernels(channels_first, size).reshape(values.shape[0], 3, size, size).transpose(0, 2, 3, 1)
    values = (values - np.asarray(mean, dtype=np.float64)) / np.asarray(std, dtype=np.float64)
    return np.ascontiguousarray(values.transpose(0, 3, 1, 2), dtype=np.float32)


def model_pixels(images, model):
    """Images as the model takes them: resized to its input size and normalised as it was trained.

    Parameters
    ----------
    images : array-like or xarray.DataArray
        ``(image, y, x)`` grayscale (replicated to RGB) or ``(image, y, x, 3)``, values in [0, 1].
    model : torch.nn.Module
        A zoo model (its ``zoo_info`` gives the input size and normalisation; ImageNet statistics otherwise).

    Returns
    -------
    torch.Tensor, shape (image, 3, size, size), float32, on the model's device
    """
    import torch

    from ..devices import module_device

    mean, std = input_normalisation(model)
    pixels = pixel_values(images, input_image_size(model), mean=mean, std=std)
    return torch.from_numpy(pixels).to(module_device(model))
