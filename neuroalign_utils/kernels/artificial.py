"""Artificial kernels from zoo models, in the book's shared kernel format.

Two readings of the paper's "artificial kernels", kept apart by the ``kind`` coordinate:

1. ``kind="weight"`` (the paper's text): every convolution weight ``[F, C, H, W]`` gives ``F·C``
   kernels of ``H×W`` (layers with 1×1 or 2×2 filters are excluded, as in the paper), and every 2-D
   weight matrix of an attention layer (q/k/v/qkv/output projections, relative-position tables) is
   one kernel. Constant kernels (zero-initialised filters or matrices) have no spatial structure and
   are left out. Convolution layers are then thinned to a representative subset by UMAP + K-means
   (:func:`~neuroalign_utils.kernels.selection.select_representative_kernels`), as for the neural
   kernels; attention weight matrices are few and are all kept.
2. ``kind="attention_map"`` (stimulus-driven): for each attention layer, head and scene, the mean over
   query tokens of the attention each image token receives — a distribution over the key tokens,
   laid out on the token grid. Global attention (ViT) and windowed attention (SAM's local windows,
   Swin's regular and shifted windows) are both mapped back to the full token grid: each window's
   map is placed at its position (Swin's cyclic shift undone), padding tokens are removed and the map
   is renormalised to sum to 1.

All kernels are resized to ``kernel_size`` (anti-aliased bilinear, as in the similarity engine) so
that they share one ``(kernel, y, x)`` array; the original size is kept in ``original_height`` /
``original_width``.
"""

from __future__ import annotations

import gc
import logging
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import xarray as xr

from .._validation import check_in_allowed, check_int, check_shape2d, check_subset
from ..zoo import registry
from ..zoo.build import BUILDABLE_MODELS, build_model, count_parameters
from ..zoo.inputs import input_image_size, input_normalisation, pixel_values
from .selection import SelectionSettings, checked_settings, select_representative_kernels
from .similarity import resize_kernels, zscore_kernels

logger = logging.getLogger(__name__)

KINDS = ("weight", "attention_map")


@dataclass
class KernelLayer:
    """A layer that yields kernels: a convolution (filters larger than 2×2) or an attention module."""

    name: str
    module: object
    layer_type: str  # "convolution" or "attention"
    layer_index: int
    n_parameters: int


# --------------------------------------------------------------------------- layers
def kernel_layers(model) -> list[KernelLayer]:
    """Convolution layers with filters larger than 2×2 and innermost attention modules, in module order.

    An attention module is an ``nn.MultiheadAttention`` or a module whose class name ends in
    ``"Attention"`` and that contains no other such module.
    """
    import torch.nn as nn

    layers = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            if max(module.kernel_size) <= 2:
                continue
            layer_type = "convolution"
        elif _is_innermost_attention(module):
            layer_type = "attention"
        else:
            continue
        n_parameters = int(sum(p.numel() for p in module.parameters()))
        layers.append(KernelLayer(name, module, layer_type, len(layers), n_parameters))
    return layers


def convolution_filters(model) -> dict[str, np.ndarray]:
    """The raw filters of every convolution layer that yields kernels (filters larger than 2×2).

    For a ViT that is its patch embedding (``dinov2_s14_saliency``: 384 × 3 × 14 × 14); for a CNN every
    spatial convolution, depthwise ones included (``efficientnet_lite0``: the 3×3 stem and the 3×3 and
    5×5 depthwise filters); 1×1 and 2×2 convolutions are left out, as in :func:`weight_kernels`, which
    turns these same filters into the shared kernel format.

    Returns
    -------
    dict
        ``{layer name: float32 array (out_channels, in_channels per group, height, width)}`` in module order.
    """
    return {
        layer.name: layer.module.weight.detach().cpu().numpy().astype(np.float32)
        for layer in kernel_layers(model)
        if layer.layer_type == "convolution"
    }


def _is_attention(module) -> bool:
    import torch.nn as nn

    return isinstance(module, nn.MultiheadAttention) or type(module).__name__.endswith("Attention")


def _is_innermost_attention(module) -> bool:
    return _is_attention(module) and not any(_is_attention(m) for m in list(module.modules())[1:])


# --------------------------------------------------------------------------- weight kernels
def weight_kernels(
    model,
    *,
    model_name: str,
    kernel_size=16,
    select: bool = True,
    max_kernels_per_layer: int = 2000,
    selection: SelectionSettings | None = None,
    random_state: int = 0,
) -> xr.DataArray:
    """Weight kernels of every convolution and attention layer (kind ``"weight"``).

    Parameters
    ----------
    model : torch.nn.Module
    model_name : str
        Stored in the ``model`` coordinate.
    kernel_size : int or (int, int), default=16
        Output kernel size.
    select : bool, default=True
        Thin each convolution layer to its representative kernels (UMAP + K-means on the z-scored
        kernels, the ``per_cluster`` nearest each of ``n_clusters`` centroids). With ``False`` all
        (subsampled) kernels are kept.
    max_kernels_per_layer : int, default=2000
        A convolution layer with more ``F·C`` kernels is first subsampled at random (seeded) to this
        many, to bound UMAP's cost (a 256×256×3×3 layer has 65,536 kernels).
    selection : SelectionSettings, optional
        Settings of the selection (default: ``SelectionSettings()``, the paper's 10 clusters × 50); a layer
        with fewer kernels uses at most as many clusters, and UMAP neighbours, as it has kernels.
    random_state : int
        Seed of the subsampling and of the selection.

    Returns
    -------
    xarray.DataArray
        The shared kernel format (see :func:`artificial_kernels`).
    """
    kernel_size = check_shape2d(kernel_size, "kernel_size")
    max_kernels_per_layer = check_int(max_kernels_per_layer, "max_kernels_per_layer", minimum=3)
    selection = checked_settings(selection)
    rng = np.random.default_rng(random_state)
    blocks, candidates = [], {}
    for layer in kernel_layers(model):
        if layer.layer_type == "convolution":
            weight = layer.module.weight.detach().cpu().numpy().astype(np.float64)
            raw = weight.reshape(-1, *weight.shape[2:])
            sources = [f"weight[{f},{c}]" for f, c in np.ndindex(weight.shape[:2])]
            keep = np.arange(raw.shape[0])
            if keep.size > max_kernels_per_layer:
                keep = np.sort(rng.choice(keep, max_kernels_per_layer, replace=False))
            keep = keep[raw[keep].reshape(keep.size, -1).std(axis=1) > 0]  # zero-initialised filters have no shape
            candidates[layer.name] = int(keep.size)
            if select and keep.size >= 3:
                with warnings.catch_warnings():
                    # a layer with fewer F·C kernels than n_clusters × per_cluster gives what it has; the
                    # shortfall is recorded in the ``candidates`` coordinate (see kernel_counts), not warned
                    warnings.filterwarnings(
                        "ignore", message=r"(Only \d+ kernels|\d+ cluster\(s\) had fewer)", category=UserWarning
                    )
                    layer_selection = replace(
                        selection,
                        n_clusters=min(selection.n_clusters, keep.size),
                        n_neighbors=min(selection.n_neighbors, keep.size - 1),
                    )
                    chosen = select_representative_kernels(
                        zscore_kernels(raw[keep]), layer_selection, random_state=random_state
                    )
                keep = keep[chosen["selected"].to_numpy()]
            for i in keep:
                blocks.append((layer, raw[i], sources[i], -1, -1))
        else:
            for pname, param in layer.module.named_parameters():
                matrix = param.detach().cpu().numpy()  # a view, not a copy: resizing converts to float64
                if matrix.ndim == 2 and min(matrix.shape) > 2 and matrix.std() > 0:
                    blocks.append((layer, matrix, pname, -1, -1))
    return _to_kernel_array(blocks, model_name, "weight", kernel_size, candidates=candidates)


# --------------------------------------------------------------------------- attention maps
def attention_key_maps(weights, *, batch_size: int, grid, window_size: int = 0, shift_size: int = 0):
    """Mean attention received by each key token, on the token grid.

    Parameters
    ----------
    weights : array-like or torch.Tensor
        Attention probabilities. Global attention: ``(batch, heads, N, N)`` with ``N = H·W``.
        Windowed attention: ``(batch·n_windows, heads, w², w²)`` with windows in row-major order over
        the grid padded to multiples of ``w`` (and cyclically shifted by ``−shift_size`` for Swin's
        shifted windows).
    batch_size : int
    grid : (int, int)
        Token grid (H, W) before padding.
    window_size : int, default=0
        ``w``; 0 for global attention.
    shift_size : int, default=0
        Swin cyclic shift of the windows.

    Returns
    -------
    numpy.ndarray, shape (batch, heads, H, W)
        Each map is non-negative and sums to 1 over the grid (a distribution over key tokens).
    """
    weights = np.asarray(weights.detach().cpu().numpy() if hasattr(weights, "detach") else weights, dtype=np.float64)
    height, width = check_shape2d(grid, "grid")
    received = weights.mean(axis=-2)  # mean over queries → (..., heads, keys)
    if window_size == 0:
        maps = received.reshape(batch_size, received.shape[1], height, width)
    else:
        pad_h, pad_w = -(-height // window_size) * window_size, -(-width // window_size) * window_size
        n_h, n_w = pad_h // window_size, pad_w // window_size
        heads = received.shape[1]
        tiles = received.reshape(batch_size, n_h, n_w, heads, window_size, window_size)
        maps = tiles.transpose(0, 3, 1, 4, 2, 5).reshape(batch_size, heads, pad_h, pad_w)
        if shift_size:
            maps = np.roll(maps, (shift_size, shift_size), axis=(2, 3))
        maps = maps[:, :, :height, :width]
    return maps / maps.sum(axis=(2, 3), keepdims=True)


def attention_maps(
    model, images, *, model_name: str, kernel_size=16, batch_size: int = 1, rollout: bool = True
) -> xr.DataArray:
    """Attention maps (kind ``"attention_map"``) of every image-encoder attention layer, head and image.

    Parameters
    ----------
    model : torch.nn.Module
        A SAM / HQ-SAM model (ViT encoder, windowed and global attention), a Mask2Former model
        (Swin backbone, regular and shifted windows) or a ``Dinov2Model`` (``dinov2_s14_saliency``:
        global attention with a class token, which is left out of the maps). The images run through it
        on its device.
    images : xarray.DataArray
        ``(image, y, x)`` grayscale (replicated to RGB) or ``(image, y, x, channel)`` in [0, 1], resized to
        the model's input size and normalised as it was trained
        (:func:`~neuroalign_utils.zoo.inputs.input_normalisation`: ImageNet's mean and std for every model here).
    model_name : str
    kernel_size : int or (int, int), default=16
    batch_size : int, default=1
        Images per forward pass. Every layer's attention weights of a batch are held at once (SAM-B at
        448 px: about 0.4 GB per image), so 1 keeps the chapter within Binder's 2 GB.
    rollout : bool, default=True
        Also add one attention-rollout map per image (:func:`attention_rollout`, averaged over
        output tokens) where the model allows it: one token grid through all layers and no shifted
        windows (SAM, HQ-SAM, DINOv2; not Swin, whose grid shrinks between stages). With a class token
        the rollout runs over all tokens and the map is what the image tokens draw from the image tokens
        (renormalised). Its ``attention_head`` is −1, its layer index the last attention layer's, its
        parameter count the sum over layers.

    Returns
    -------
    xarray.DataArray
        The shared kernel format with extra coordinates ``attention_head`` and ``image``.
    """
    import torch

    from ..devices import module_device

    kernel_size = check_shape2d(kernel_size, "kernel_size")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    device = module_device(model)
    mean, std = input_normalisation(model)
    pixels = pixel_values(images, input_image_size(model), mean=mean, std=std)
    encoder, sites = _attention_sites(model)
    index_of = {layer.module: layer for layer in kernel_layers(model)}
    attention_layers = [index_of[attention_module] for _, attention_module, _ in sites]
    # rollout needs one token grid through all layers and unshifted windows: SAM's and DINOv2's ViT, not Swin
    can_rollout = rollout and all(layout in ("merged_heads", "prefix_tokens") for _, _, layout in sites)
    rollout_layer = KernelLayer(
        f"attention rollout ({len(attention_layers)} layers)",
        None,
        "attention",
        attention_layers[-1].layer_index,
        sum(layer.n_parameters for layer in attention_layers),
    )
    blocks = []
    for start in range(0, pixels.shape[0], batch_size):
        batch = torch.from_numpy(pixels[start : start + batch_size]).to(device)
        captured = _run_with_capture(encoder, batch, sites)
        rolled, n_prefix = None, 0
        for (layer_module, attention_module, layout), (grid, weights) in zip(sites, captured):
            if layout == "merged_heads":  # SAM: (batch·windows·heads, T, T)
                heads = attention_module.num_attention_heads
                weights = weights.reshape(-1, heads, *weights.shape[-2:])
            window = int(getattr(layer_module, "window_size", 0))
            shift = int(getattr(layer_module, "shift_size", 0))
            if layout == "prefix_tokens":  # DINOv2: class (and register) tokens before the H·W image tokens
                n_prefix = weights.shape[-1] - grid[0] * grid[1]
                if can_rollout:
                    matrix = weights.detach().cpu().numpy().astype(np.float64).mean(axis=1)  # all tokens
                weights = weights[..., n_prefix:, n_prefix:]
            elif can_rollout:
                matrix = full_attention_matrix(weights, batch_size=batch.shape[0], grid=grid, window_size=window)
            maps = attention_key_maps(
                weights, batch_size=batch.shape[0], grid=grid, window_size=window, shift_size=shift
            )
            layer = index_of[attention_module]
            for b, h in np.ndindex(maps.shape[:2]):
                blocks.append((layer, maps[b, h], f"head {h}, image {start + b}", h, start + b))
            if can_rollout:
                rolled = attention_rollout([matrix], initial=rolled)
        if can_rollout:
            drawn = rolled[:, n_prefix:, n_prefix:].mean(axis=1)  # what the image tokens draw from each image token
            drawn /= drawn.sum(axis=1, keepdims=True)
            for b, rollout_map in enumerate(drawn.reshape(-1, *grid)):
                blocks.append((rollout_layer, rollout_map, f"rollout, image {start + b}", -1, start + b))
    return _to_kernel_array(blocks, model_name, "attention_map", kernel_size)


def full_attention_matrix(weights, *, batch_size: int, grid, window_size: int = 0) -> np.ndarray:
    """Head-averaged token-to-token attention on the full grid, shape (batch, H·W, H·W).

    Windowed attention (unshifted windows, as in SAM) is scattered into its block of the matrix; padding
    tokens are removed and each row renormalised to sum to 1.
    """
    weights = np.asarray(weights.detach().cpu().numpy() if hasattr(weights, "detach") else weights, dtype=np.float64)
    height, width = check_shape2d(grid, "grid")
    mean_heads = weights.mean(axis=1)
    if window_size == 0:
        return mean_heads.reshape(batch_size, height * width, height * width)
    pad_h, pad_w = -(-height // window_size) * window_size, -(-width // window_size) * window_size
    wy, wx, py, px = np.meshgrid(
        np.arange(pad_h // window_size),
        np.arange(pad_w // window_size),
        np.arange(window_size),
        np.arange(window_size),
        indexing="ij",
    )
    rows, cols = wy * window_size + py, wx * window_size + px  # padded coordinates per (window, position)
    token = (rows * pad_w + cols).reshape(-1, window_size * window_size)
    full = np.zeros((batch_size, pad_h * pad_w, pad_h * pad_w))
    windows = mean_heads.reshape(batch_size, token.shape[0], window_size**2, window_size**2)
    full[:, token[:, :, None], token[:, None, :]] = windows
    inside = ((np.arange(pad_h)[:, None] < height) & (np.arange(pad_w)[None, :] < width)).ravel()
    full = full[:, inside][:, :, inside]
    return full / full.sum(axis=2, keepdims=True)


def attention_rollout(matrices, *, initial=None) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020): ``Π_l (A_l + I) / 2`` from the first layer to the last.

    Each ``A_l`` is a head-averaged (batch, N, N) row-stochastic matrix; the result is row-stochastic.
    Row ``q`` says how much each input token contributes to output token ``q`` through the residual
    stream; SAM has no class token, so :func:`attention_maps` averages the rows. ``initial`` (the
    rollout of earlier layers) lets the product be accumulated layer by layer.
    """
    result = initial
    for matrix in matrices:
        step = 0.5 * (matrix + np.eye(matrix.shape[-1]))
        result = step if result is None else step @ result
    return result


# --------------------------------------------------------------------------- the zoo
def artificial_kernels(
    models=("SAM-B", "Mask2Former-T"),
    *,
    images,
    weights: str = "random",
    image_size: int | None = 448,
    kernel_size=16,
    kinds=KINDS,
    select: bool = True,
    max_kernels_per_layer: int = 2000,
    selection: SelectionSettings | None = None,
    random_state: int = 0,
    checkpoints: dict | None = None,
    trained_models=(),
    device="auto",
) -> xr.DataArray:
    """Kernels of several zoo models, built one at a time and freed after use.

    Parameters
    ----------
    models : sequence of str
        Buildable zoo models (default: the two small ones; pass
        :data:`~neuroalign_utils.zoo.registry.AVAILABLE_MODELS` for the paper's full zoo). The packaged
        trained models (:data:`~neuroalign_utils.zoo.registry.PACKAGED_MODEL_NAMES`) are accepted too;
        a model without attention (``efficientnet_lite0``) gives weight kernels only.
    images : xarray.DataArray
        Scenes for the attention maps (resized here to each model's input size).
    weights : {"random", "pretrained"}
    image_size : int, optional
        Input size of randomly initialised models (ignored for pretrained ones).
    kernel_size : int or (int, int)
    kinds : sequence of {"weight", "attention_map"}
    select, max_kernels_per_layer, selection, random_state
        See :func:`weight_kernels`.
    checkpoints : dict, optional
        ``{model: local folder or hub id}`` for ``weights="pretrained"``.
    trained_models : sequence of str, default=()
        Packaged trained models (:data:`~neuroalign_utils.zoo.registry.PACKAGED_MODEL_NAMES`), each built
        twice whatever ``weights`` says: with its trained weights and at random initialisation
        (``random_state``), both at the trained model's input size, so that the two differ only in their
        weights. Their kernels are labelled :func:`model_label` (``"efficientnet_lite0 (trained)"``,
        ``"efficientnet_lite0 (random)"``).
    device : {'auto', 'cpu', 'cuda', 'cuda:N', 'mps'} or torch.device
        Where the attention maps are computed (``'auto'``: a GPU when there is one; see
        :func:`neuroalign_utils.devices.resolve_device`). Models are built on the CPU from their seed,
        so random weights are the same on every device.

    Returns
    -------
    xarray.DataArray
        ``kernels`` with dims ``(kernel, y, x)`` and per-kernel coordinates ``model``, ``layer``,
        ``layer_index``, ``layer_type`` (``"attention"``/``"convolution"``), ``kind``
        (``"weight"``/``"attention_map"``), ``n_parameters`` (of the layer), ``source``, ``attention_head``
        and ``image`` (−1 for weights), ``original_height``, ``original_width``, ``candidates`` (for
        convolution kernels, how many of the layer's kernels the selection chose from; else −1),
        ``architecture`` (the zoo name) and ``weights`` (``"random"`` or ``"pretrained"``, per kernel); attrs
        record ``weights`` (that of ``models``), the input size and the ``trained_models``.
    """
    from ..devices import resolve_device

    models = check_subset(models, "models", BUILDABLE_MODELS)
    trained_models = check_subset(trained_models, "trained_models", registry.PACKAGED_MODEL_NAMES)
    if not models and not trained_models:
        raise ValueError("'models' and 'trained_models' are both empty; name at least one model to build.")
    kinds = check_subset(kinds, "kinds", KINDS)
    kernel_size = check_shape2d(kernel_size, "kernel_size")
    selection = checked_settings(selection)
    checkpoints = dict(checkpoints or {})
    device = resolve_device(device)
    builds = [(name, weights, name, image_size if weights == "random" else None) for name in models]
    # a trained model and its random twin share the trained model's input size: only their weights differ
    builds += [(name, w, model_label(name, w), None) for name in trained_models for w in ("pretrained", "random")]
    parts = []
    for name, build_weights, label, size in builds:
        logger.info("Building %s (%s weights)", name, build_weights)
        model = build_model(
            name,
            weights=build_weights,
            random_state=random_state,
            image_size=size,
            checkpoint=checkpoints.get(name) if build_weights == "pretrained" else None,
        ).to(device)
        found = []
        if "weight" in kinds:
            found.append(
                weight_kernels(
                    model,
                    model_name=label,
                    kernel_size=kernel_size,
                    select=select,
                    max_kernels_per_layer=max_kernels_per_layer,
                    selection=selection,
                    random_state=random_state,
                )
            )
        if "attention_map" in kinds and has_attention(model):
            found.append(attention_maps(model, images, model_name=label, kernel_size=kernel_size))
        parts += [
            part.assign_coords(
                architecture=("kernel", np.full(part.sizes["kernel"], name, dtype=object)),
                weights=("kernel", np.full(part.sizes["kernel"], build_weights, dtype=object)),
            )
            for part in found
        ]
        del model
        gc.collect()
    kernels = xr.concat(parts, dim="kernel")
    kernels = kernels.assign_coords(kernel=np.arange(kernels.sizes["kernel"]))
    kernels.attrs.update(
        {
            "weights": weights,
            "image_size": -1 if image_size is None else int(image_size),
            "trained_models": ",".join(trained_models),
        }
    )
    return kernels.rename("kernels")


#: How the two builds of a packaged trained model are labelled in the ``model`` coordinate.
WEIGHT_LABELS = {"pretrained": "trained", "random": "random"}


def model_label(name: str, weights: str) -> str:
    """The ``model`` label of a packaged model built with ``weights``: ``"efficientnet_lite0 (trained)"``."""
    return f"{name} ({WEIGHT_LABELS[check_in_allowed(weights, 'weights', tuple(WEIGHT_LABELS))]})"


def twin_pairs(labels) -> dict[str, str]:
    """``{trained label: random label}`` for every packaged model whose two builds are both in ``labels``."""
    labels = set(map(str, labels))
    pairs = {}
    for name in registry.PACKAGED_MODEL_NAMES:
        trained, random = model_label(name, "pretrained"), model_label(name, "random")
        if trained in labels and random in labels:
            pairs[trained] = random
    return pairs


def model_parameters(kernels: xr.DataArray) -> pd.Series:
    """Parameters of each model of a kernel array (its architecture at full size, counted on the ``meta``
    device), indexed by the ``model`` label."""
    labels = pd.unique(kernels["model"].values)
    architecture = (
        dict(zip(kernels["model"].values, kernels["architecture"].values))
        if "architecture" in kernels.coords
        else {label: label for label in labels}
    )
    return pd.Series(
        {str(label): float(count_parameters(str(architecture[label]))) for label in labels},
        name="n_parameters",
        dtype=float,
    )


def kernel_counts(kernels: xr.DataArray) -> pd.DataFrame:
    """Number of kernels per model, kind and layer type."""
    frame = pd.DataFrame({c: kernels[c].values for c in ("model", "kind", "layer_type")})
    return frame.value_counts().rename("kernels").unstack(["kind", "layer_type"], fill_value=0)


# --------------------------------------------------------------------------- numbers and sentences
#: Mean effective coverage of the attention maps from which attention counts as almost uniform / broad.
UNIFORM_COVERAGE, BROAD_COVERAGE = 0.95, 0.8


def conv_selection(kernels: xr.DataArray) -> pd.DataFrame:
    """Per convolution layer: its filter size, the kernels the selection chose from, and those kept.

    Returns
    -------
    pandas.DataFrame
        ``model, layer, filter, candidates, selected``, in layer order.
    """
    conv = (kernels["kind"].values == "weight") & (kernels["layer_type"].values == "convolution")
    frame = pd.DataFrame(
        {c: kernels[c].values[conv] for c in ("model", "layer", "layer_index", "original_height", "original_width")}
    )
    frame["candidates"] = kernels["candidates"].values[conv] if "candidates" in kernels.coords else -1
    table = (
        frame.groupby(["model", "layer_index", "layer"], sort=False)
        .agg(
            height=("original_height", "first"),
            width=("original_width", "first"),
            candidates=("candidates", "first"),
            selected=("layer", "size"),
        )
        .reset_index()
    )
    table["filter"] = table["height"].astype(str) + "×" + table["width"].astype(str)
    return table[["model", "layer", "filter", "candidates", "selected"]]


def describe_conv_selection(table: pd.DataFrame, *, n_clusters: int, per_cluster: int) -> str:
    """How many kernels each convolution layer kept, and which layers had fewer than the selection asks."""
    from .. import report

    if table.empty:
        return "No convolution layer with filters larger than 2×2 was found, so no convolution kernels were kept."
    asked = n_clusters * per_cluster
    short = table[(table["candidates"] >= 0) & (table["candidates"] < asked)]
    text = (
        f"The {report.plural(len(table), 'convolution layer')} keep "
        f"{report.format_number(int(table['selected'].sum()))} kernels in all; "
        f"the selection asks for {asked:,} per layer ({n_clusters} clusters × {per_cluster})."
    )
    if len(short):
        parts = []
        for model, rows in short.groupby("model", sort=False):
            if len(rows) <= 2:
                parts += [
                    f"{model} {r.layer.split('.')[-1]} ({r.candidates:,} kernels of {r.filter})"
                    for r in rows.itertuples()
                ]
            else:  # many small layers (a CNN's depthwise filters): their number and range, not a list
                parts.append(
                    f"{report.plural(len(rows), 'layer')} of {model} ({rows['candidates'].min():,} to "
                    f"{rows['candidates'].max():,} kernels each)"
                )
        text += (
            f" {report.plural(len(short), 'layer')} {'has' if len(short) == 1 else 'have'} fewer than that "
            f"and {'gives' if len(short) == 1 else 'give'} what {'it has' if len(short) == 1 else 'they have'}: "
            f"{report.join_words(parts)}; nothing is padded."
        )
    return text


def describe_conv_resize(table: pd.DataFrame, *, weights: str, kernel_size) -> str:
    """What resizing small convolution filters to the kernel size does to them, for these weights."""
    if table.empty:
        return ""
    size = check_shape2d(kernel_size, "kernel_size")
    areas = table["filter"].str.split("×", expand=True).astype(int).prod(axis=1)
    smallest = str(table["filter"].iloc[int(areas.argmin())])
    target = f"{size[0]}×{size[1]}"
    if areas.min() >= size[0] * size[1]:
        return f"Every filter has at least the {target} pixels of the kernels, so resizing only shrinks them."
    text = (
        f"Resizing a filter of {smallest} pixels to {target} interpolates between a few values, so the stored "
        "kernel is smooth whatever the filter's weights: its spatial scale is set by the resizing."
    )
    if weights == "random":
        text += " With random weights the filters themselves are noise, so the smooth shapes above are all resizing."
    return text


def attention_coverage(kernels: xr.DataArray) -> pd.DataFrame:
    """The effective share of the grid each attention map covers, ``exp(H) / N``.

    ``H`` is the entropy of the map (normalised to sum to 1) and ``N`` its number of pixels: 1 for
    uniform attention, ``1/N`` for attention on a single token. Measured on the stored (resized) maps.

    Returns
    -------
    pandas.DataFrame
        One row per attention map: ``model, layer_index, attention_head, image, coverage``.
    """
    maps = kernels.where(kernels["kind"] == "attention_map", drop=True)
    p = np.clip(maps.values.reshape(maps.sizes["kernel"], -1).astype(np.float64), 1e-12, None)
    p = p / p.sum(axis=1, keepdims=True)
    coverage = np.exp(-(p * np.log(p)).sum(axis=1)) / p.shape[1]
    return pd.DataFrame(
        {
            "model": maps["model"].values,
            "layer_index": maps["layer_index"].values.astype(int),
            "attention_head": maps["attention_head"].values.astype(int),
            "image": maps["image"].values.astype(int),
            "coverage": coverage,
        }
    )


def describe_attention_coverage(coverage: pd.DataFrame, *, weights) -> str:
    """How spread out the attention maps are, in words chosen from the mean and the lowest layer.

    Parameters
    ----------
    coverage : pandas.DataFrame
        :func:`attention_coverage` output.
    weights : str or mapping
        The weights of every model (``"random"`` or ``"pretrained"``), or ``{model: weights}``: models
        with random and with trained weights are then described apart.
    """
    from .. import report

    if coverage.empty:
        return "This run extracted no attention maps."
    if isinstance(weights, str):
        groups = [(weights, coverage, "Averaged over every map, a")]
    else:
        of = coverage["model"].map(lambda m: weights.get(m, "random"))
        groups = [
            (
                w,
                coverage[of == w],
                f"Over the maps of the models with {'random' if w == 'random' else 'trained'} "
                f"weights, {report.join_words(pd.unique(coverage.loc[of == w, 'model']))}, a",
            )
            for w in ("random", "pretrained")
            if (of == w).any()
        ]
    texts = []
    for group_weights, rows, opening in groups:
        mean = float(rows["coverage"].mean())
        by_layer = rows.groupby(["model", "layer_index"])["coverage"].mean()
        (model, layer), lowest = by_layer.idxmin(), float(by_layer.min())
        if mean >= UNIFORM_COVERAGE:
            shape = "almost uniform"
        elif mean >= BROAD_COVERAGE:
            shape = "broad, with some concentration"
        else:
            shape = "concentrated on part of the grid"
        text = (
            f"{opening}ttention covers {report.format_percent(mean, 1)} of the "
            f"grid (the most concentrated layer, {model} layer {layer}, {report.format_percent(lowest, 1)}): the "
            f"maps are {shape}."
        )
        if group_weights == "random" and mean >= UNIFORM_COVERAGE:
            text += (
                " That is what random weights give: attention logits from freshly initialised weights are "
                "small, so every token receives nearly the same share. Whatever structure such a map keeps "
                "after z-scoring is a tiny deviation from flat, which the next chapter's 1 − RMSE does not show."
            )
        elif mean >= UNIFORM_COVERAGE:
            text += " Even these trained maps spread their attention almost evenly over the grid."
        texts.append(text)
    return " ".join(texts)


def describe_weights(weights: str, models, *, trained_models=()) -> str:
    """What the chosen weights make of this chapter's kernels: a control, the trained models, or both.

    Parameters
    ----------
    weights : {"random", "pretrained"}
        The weights of ``models``.
    models : sequence of str
        Zoo models built with ``weights``.
    trained_models : sequence of str, optional
        Packaged models built both trained and as their random twins (see :func:`artificial_kernels`).
    """
    from .. import report

    sentences = []
    if len(models) and weights == "random":
        sentences.append(
            f"The weights of {report.join_words(list(models))} are random (seeded), not trained: these kernels are a "
            "control. Whatever they share with neural kernels comes from the architecture and, for attention maps, "
            "the scenes passing through it, never from learning on images; the paper did not run this control."
        )
    elif len(models):
        papers = [m for m in models if m not in registry.PACKAGED_MODEL_NAMES]
        packaged = [registry.get_packaged_spec(m) for m in models if m in registry.PACKAGED_MODEL_NAMES]
        if papers:
            sentences.append(
                f"The weights of {report.join_words(papers)} are the pretrained checkpoints the paper used."
            )
        if packaged:
            # what each packaged model is, in its registry's words (the saliency backbone is never called plain DINOv2)
            described = report.join_words(f"{spec.name} is {spec.description}" for spec in packaged)
            sentences.append(
                f"Not in the paper's zoo but trained: {described}, with weights shipped in "
                f"{report.join_words(sorted({spec.weights_package for spec in packaged}))}."
            )
        sentences.append("These kernels are the trained models'.")
    if len(trained_models):
        specs = [registry.get_packaged_spec(m) for m in trained_models]
        described = report.join_words(f"{spec.name} is {spec.description}" for spec in specs)
        sentences.append(
            f"Trained, though not in the paper's zoo: {described}, with weights shipped in "
            f"{report.join_words(dict.fromkeys(spec.weights_package for spec in specs))} respectively. "
            "Each is also built as its random twin (the same architecture and input size, seeded random weights), "
            "so that what training changed can be told from what the architecture gives."
        )
    return " ".join(sentences) or "No model was built."


def describe_setting(*, weights: str, models, image_size: int, n_images: int, trained_models=()) -> str:
    """Why this run's numbers may differ from the paper's (the ``why`` of the paper-vs-run table)."""
    parts = [f"{len(models)} of the paper's models built here"]
    if weights == "random" and len(models):
        parts.append(f"random weights at {image_size} px input")
    if len(trained_models):
        parts.append(f"{len(trained_models)} trained models outside the paper's zoo, each with a random twin")
    parts.append(f"{n_images} scenes")
    return ", ".join(parts)


# --------------------------------------------------------------------------- helpers
def has_attention(model) -> bool:
    """Whether the model has attention layers whose maps :func:`attention_maps` can read."""
    return any(layer.layer_type == "attention" for layer in kernel_layers(model))


def _attention_sites(model):
    """(encoder, [(layer module, attention module, weight layout), ...]) for the image encoder."""
    if hasattr(model, "vision_encoder"):  # SAM and HQ-SAM
        encoder = model.vision_encoder
        return encoder, [(layer, layer.attn, "merged_heads") for layer in encoder.layers]
    if type(model).__name__ == "Dinov2Model":
        # the innermost attention module is Dinov2Attention or, in older transformers, its SelfAttention child
        return model, [
            (layer, next(m for m in layer.modules() if _is_innermost_attention(m)), "prefix_tokens")
            for layer in model.encoder.layer
        ]
    if not hasattr(model, "model") or not hasattr(model.model, "pixel_level_module"):
        raise ValueError(
            f"'model' ({type(model).__name__}) has no attention maps to read: attention maps are read from SAM, "
            "HQ-SAM, Mask2Former and DINOv2 models."
        )
    from transformers.models.swin.modeling_swin import SwinLayer

    encoder = model.model.pixel_level_module.encoder
    return encoder, [(m, m.attention, "split_heads") for m in encoder.modules() if isinstance(m, SwinLayer)]


def _run_with_capture(encoder, pixels, sites):
    """Run the encoder once; return per site (token grid, attention probabilities)."""
    import torch

    if sites and sites[0][2] == "prefix_tokens":  # DINOv2 returns its attention probabilities itself
        patch = encoder.config.patch_size
        grid = (pixels.shape[2] // patch, pixels.shape[3] // patch)
        with torch.no_grad():
            attentions = encoder(pixel_values=pixels, output_attentions=True).attentions
        if attentions is None or len(attentions) != len(sites) or any(a is None for a in attentions):
            raise RuntimeError(
                "The DINOv2 model returned no attention probabilities; build it with "
                "attn_implementation='eager' (zoo.build_model does)."
            )
        return [(grid, a) for a in attentions]

    grids, probs, handles = {}, {}, []
    for i, (layer_module, attention_module, _) in enumerate(sites):

        def grid_hook(module, args, kwargs, i=i):
            if "input_dimensions" in kwargs or len(args) > 1:  # Swin: (hidden_states, input_dimensions)
                grids[i] = tuple(kwargs.get("input_dimensions", args[1] if len(args) > 1 else None))
            else:  # SAM: hidden_states (batch, H, W, C)
                hidden = args[0] if args else kwargs["hidden_states"]
                grids[i] = tuple(hidden.shape[1:3])

        def attention_hook(module, args, output, i=i):
            probs[i] = output[1]

        handles.append(layer_module.register_forward_pre_hook(grid_hook, with_kwargs=True))
        handles.append(attention_module.register_forward_hook(attention_hook))
    try:
        with torch.no_grad():
            encoder(pixels)
    finally:
        for handle in handles:
            handle.remove()
    missing = [i for i in range(len(sites)) if probs.get(i) is None]
    if missing:
        raise RuntimeError(
            f"{len(missing)} attention layers returned no probabilities; build the model with "
            "attn_implementation='eager' (zoo.build_model does)."
        )
    return [(grids[i], probs[i]) for i in range(len(sites))]


def _to_kernel_array(blocks, model_name, kind, kernel_size, *, candidates=None) -> xr.DataArray:
    """Stack ``(layer, 2-D array, source, head, image)`` blocks, resized to ``kernel_size``, in order.

    ``candidates`` maps a convolution layer's name to the number of its ``F·C`` kernels the selection
    chose from (after subsampling); other kernels get −1.
    """
    candidates = dict(candidates or {})
    n = len(blocks)
    values = np.empty((n, *kernel_size), dtype=np.float32)
    for shape in dict.fromkeys(b[1].shape for b in blocks):  # resize kernels of one shape together
        positions = [i for i, b in enumerate(blocks) if b[1].shape == shape]
        values[positions] = resize_kernels(np.stack([blocks[i][1] for i in positions]), kernel_size)
    layers = [b[0] for b in blocks]

    def column(values, dtype):
        return ("kernel", np.array(values, dtype=dtype))

    return xr.DataArray(
        values,
        dims=("kernel", "y", "x"),
        coords={
            "model": column([model_name] * n, object),
            "layer": column([layer.name for layer in layers], object),
            "layer_index": column([layer.layer_index for layer in layers], np.int64),
            "layer_type": column([layer.layer_type for layer in layers], object),
            "kind": column([kind] * n, object),
            "n_parameters": column([layer.n_parameters for layer in layers], np.int64),
            "source": column([b[2] for b in blocks], object),
            "attention_head": column([b[3] for b in blocks], np.int64),
            "image": column([b[4] for b in blocks], np.int64),
            "original_height": column([b[1].shape[0] for b in blocks], np.int64),
            "original_width": column([b[1].shape[1] for b in blocks], np.int64),
            "candidates": column([candidates.get(layer.name, -1) for layer in layers], np.int64),
        },
        name="kernels",
    )
