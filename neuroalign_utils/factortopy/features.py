"""Backbone features for FactorTopy: per-layer local tokens on an 8×8 grid and a global token.

A backbone is named by an architecture from ``transformers`` (:data:`BACKBONES`), a size preset
(``"small"``: a few narrow layers at a small input, the offline default; ``"base"``: the paper's 12-layer,
768-wide, 224-pixel scale) and ``weights`` (``"random"``, offline, or ``"pretrained"``, the hub
checkpoint). The output of every transformer block is read; local tokens are bilinearly downsampled to
8×8 (as in the paper) and the global token is the class token, or the spatial mean where the model has
none (SAM).

Features are computed once and cached on disk (:func:`cached_features`): float16 ``.npy`` files opened
memory-mapped, in a folder keyed by everything that changes them (backbone, weights, configuration,
layers, a hash of the image pixels, resolution, grid), written atomically and checked against the
SHA-1 digests recorded beside them, so a truncated or corrupted file is detected and rebuilt.

Features are computed on the backbone's device (``cached_features(device='auto')``: a CUDA GPU, else
MPS, else the CPU) in float32 (TF32 off, see :mod:`neuroalign_utils.devices`): the cache does not record
the device, since features from any of them agree to float32 rounding, well below the float16 of the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import devices, storage
from .._validation import check_in_allowed, check_int

logger = logging.getLogger(__name__)

#: architecture → (config class, model class, hub checkpoint for ``weights="pretrained"``, has class token)
BACKBONES = {
    "vit": ("ViTConfig", "ViTModel", "google/vit-base-patch16-224-in21k", True),
    "clip": ("CLIPVisionConfig", "CLIPVisionModel", "openai/clip-vit-base-patch16", True),
    "dinov2": ("Dinov2Config", "Dinov2Model", "facebook/dinov2-base", True),
    "sam": ("SamVisionConfig", "SamVisionModel", "facebook/sam-vit-base", False),
    "mae": ("ViTMAEConfig", "ViTMAEModel", "facebook/vit-mae-base", True),
}
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
#: input normalisation (mean, std per RGB channel) of each architecture's hub checkpoints
NORMALISATION = {
    "vit": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "clip": ((0.4815, 0.4578, 0.4082), (0.2686, 0.2613, 0.2758)),
    "dinov2": _IMAGENET,
    "sam": _IMAGENET,
    "mae": _IMAGENET,
}
SIZES = {
    # a few narrow layers on 32-pixel images: 8×8 patch tokens, seconds on a CPU
    "small": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, image_size=32, patch_size=4),
    # the paper's ViT-B/16 scale
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, image_size=224, patch_size=16),
}
GRID = 8
CACHE_VERSION = 2


@dataclass(frozen=True)
class BackboneSpec:
    """What determines a backbone's features.

    Parameters
    ----------
    name : {"vit", "clip", "dinov2", "sam", "mae"}
    size : {"small", "base"}
        Architecture preset for ``weights="random"``; pretrained checkpoints bring their own.
    weights : {"random", "pretrained"}
    init_range : float or None
        Standard deviation of the random initialisation (``initializer_range``); ``None`` keeps the
        architecture's default. The default 0.02 of ViTs leaves random layers almost identical (every
        layer linearly predicts every other with R² ≈ 0.98); 1.0 makes them differ, which the
        synthetic subject needs to plant a layer hierarchy.
    seed : int
        Seed of the random initialisation.
    checkpoint : str or None
        ``weights="pretrained"`` only: a hub id or a local folder written by ``save_pretrained``;
        ``None`` = the architecture's hub checkpoint in :data:`BACKBONES`.
    config : dict
        ``weights="random"`` only: configuration overrides on top of the size preset.
    """

    name: str = "vit"
    size: str = "small"
    weights: str = "random"
    init_range: float | None = 1.0
    seed: int = 0
    checkpoint: str | None = None
    config: dict = field(default_factory=dict)

    def __post_init__(self):
        check_in_allowed(self.name, "name", BACKBONES)
        check_in_allowed(self.size, "size", SIZES)
        check_in_allowed(self.weights, "weights", ("random", "pretrained"))
        check_int(self.seed, "seed", minimum=0)

    def to_dict(self) -> dict:
        return asdict(self)


def build_backbone(spec: BackboneSpec, *, device="cpu") -> torch.nn.Module:
    """Build the backbone in eval mode (random weights from ``spec.seed``, or the hub checkpoint) on ``device``.

    The weights are made on the CPU from the seed, so they are the same on every device; ``device``
    accepts what :func:`neuroalign_utils.devices.resolve_device` accepts.
    """
    import transformers

    device = devices.resolve_device(device)
    config_name, model_name, hub_id, _ = BACKBONES[spec.name]
    model_cls = getattr(transformers, model_name)
    if spec.weights == "pretrained":
        return model_cls.from_pretrained(spec.checkpoint or hub_id).to(device).eval()
    kwargs = dict(SIZES[spec.size])
    kwargs["intermediate_size" if spec.name != "sam" else "mlp_dim"] = 4 * kwargs["hidden_size"]
    if spec.name == "sam":
        n = kwargs["num_hidden_layers"]
        kwargs.update(window_size=max(2, kwargs["image_size"] // kwargs["patch_size"] // 2),
                      global_attn_indexes=tuple(range(n // 4 - 1 if n >= 4 else 0, n, max(1, n // 4))),
                      output_channels=kwargs["hidden_size"])
    if spec.name == "mae":
        kwargs["mask_ratio"] = 0.0
    if spec.init_range is not None:
        kwargs["initializer_range"] = float(spec.init_range)
    kwargs.update(spec.config)
    config = getattr(transformers, config_name)(**kwargs)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(spec.seed)  # transformers initialises from the global generator; restored below
    try:
        model = model_cls(config) if spec.name not in ("vit",) else model_cls(config, add_pooling_layer=False)
    finally:
        torch.random.set_rng_state(generator_state)
    return model.to(device).eval()


def input_size(model: torch.nn.Module) -> int:
    """Square input size (pixels) the backbone expects."""
    size = model.config.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def _block_outputs(model, name: str, pixels: torch.Tensor):
    """Outputs of every block as (local (B, C, h, w), global (B, C)) pairs."""
    kwargs = {}
    if name == "mae":
        # identity token order: MAE shuffles tokens by argsort(noise) even at mask ratio 0
        n_tokens = (input_size(model) // model.config.patch_size) ** 2
        kwargs["noise"] = torch.arange(n_tokens, dtype=torch.float32, device=pixels.device).expand(len(pixels), -1)
    if name == "dinov2":
        kwargs["bool_masked_pos"] = None
    out = model(pixel_values=pixels, output_hidden_states=True, **kwargs)
    hidden = out.hidden_states[1:]
    pairs = []
    for h in hidden:
        if name == "sam":  # (B, h, w, C), no class token
            local = h.permute(0, 3, 1, 2)
            pairs.append((local, local.mean(dim=(2, 3))))
            continue
        n_registers = getattr(model.config, "num_register_tokens", 0) or 0
        patches = h[:, 1 + n_registers :]
        side = int(round(patches.shape[1] ** 0.5))
        local = patches.transpose(1, 2).reshape(len(h), h.shape[-1], side, side)
        pairs.append((local, h[:, 0]))
    return pairs


def extract_features(
    model: torch.nn.Module, name: str, images: np.ndarray, *, layers=None, batch_size: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Local and global tokens of every (or the chosen) block for a stack of images.

    Parameters
    ----------
    model : torch.nn.Module
        From :func:`build_backbone`; the features are computed on its device.
    name : str
        Architecture name (a key of :data:`BACKBONES`).
    images : ndarray, (n_images, size, size, 3) or (n_images, size, size), values in [0, 1]; normalised
        with the architecture's checkpoint statistics (:data:`NORMALISATION`)
    layers : sequence of int, optional
        0-based block indices; all blocks by default.
    batch_size : int

    Returns
    -------
    local : ndarray, float32, (n_images, n_layers, C, 8, 8)
    global_ : ndarray, float32, (n_images, n_layers, C)
    """
    check_in_allowed(name, "name", BACKBONES)
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    size = input_size(model)
    if images.ndim != 4 or images.shape[1:3] != (size, size):
        raise ValueError(f"'images' must be (n_images, {size}, {size}[, 3]); {images.shape} was provided.")
    locals_, globals_ = [], []
    device = devices.module_device(model)
    mean, std = (torch.tensor(v, dtype=torch.float32, device=device)[None, :, None, None] for v in NORMALISATION[name])
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            pixels = torch.from_numpy(images[start : start + batch_size]).to(device).permute(0, 3, 1, 2)
            pairs = _block_outputs(model, name, (pixels - mean) / std)
            chosen = range(len(pairs)) if layers is None else layers
            local = torch.stack(
                [F.interpolate(pairs[i][0], size=(GRID, GRID), mode="bilinear", align_corners=False,
                               antialias=pairs[i][0].shape[-1] > GRID) for i in chosen], 1)
            locals_.append(local.float().cpu().numpy())
            globals_.append(torch.stack([pairs[i][1] for i in chosen], 1).float().cpu().numpy())
    return np.concatenate(locals_), np.concatenate(globals_)


def image_digest(images: np.ndarray) -> str:
    """SHA-1 of the image pixels and shape (the cache's image-set key; not a sum of values)."""
    images = np.ascontiguousarray(images, dtype=np.float32)
    return hashlib.sha1(images.tobytes() + str(images.shape).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_features(
    spec: BackboneSpec,
    images: np.ndarray,
    *,
    layers=None,
    data_dir=None,
    dtype: str = "float16",
    device="auto",
) -> dict:
    """Features of ``images`` for ``spec``, from the on-disk cache when valid, else computed and cached.

    Each layer is divided by its root-mean-square over the image set (one scalar per layer, recorded),
    so every layer has unit scale and fits float16.

    Parameters
    ----------
    spec : BackboneSpec
    images : ndarray, (n_images, size, size[, 3]) in [0, 1], at the backbone's input size
    layers : sequence of int, optional
    data_dir : path-like, optional
        Root of the cache (``storage.get_data_dir``).
    dtype : {"float16", "float32"}
    device : {'auto', 'cpu', 'cuda', 'cuda:N', 'mps'} or torch.device
        Where the backbone runs on a cache miss (see :func:`neuroalign_utils.devices.resolve_device`).

    Returns
    -------
    dict
        ``local`` (memory-mapped, (n_images, n_layers, C, 8, 8)), ``global`` (memory-mapped,
        (n_images, n_layers, C)), ``layers`` (list of int), ``path`` (cache folder), ``hit`` (bool),
        ``bytes_per_image`` (int).
    """
    check_in_allowed(dtype, "dtype", ("float16", "float32"))
    device = devices.resolve_device(device)
    layers = None if layers is None else [int(i) for i in layers]
    key = dict(version=CACHE_VERSION, backbone=spec.to_dict(), layers=layers, images=image_digest(images),
               shape=list(np.shape(images)), grid=GRID, dtype=dtype)
    folder = storage.get_data_dir(data_dir) / "cache" / "factortopy_features" / storage.content_key(key, 20)
    hit = _valid_cache(folder, key)
    if not hit:
        logger.info("Computing %s features for %d images into %s", spec.name, len(images), folder)
        model = build_backbone(spec, device=device)
        local, global_ = extract_features(model, spec.name, images, layers=layers)
        scale = np.sqrt((local.astype(np.float64) ** 2).mean(axis=(0, 2, 3, 4))) + 1e-12
        local = local / scale[None, :, None, None, None]
        global_ = global_ / scale[None, :, None]
        with storage.atomic_path(folder, is_dir=True) as tmp:
            np.save(tmp / "local.npy", local.astype(dtype))
            np.save(tmp / "global.npy", global_.astype(dtype))
            meta = dict(key=key, layer_scale=scale.tolist(),
                        layers=list(range(local.shape[1])) if layers is None else layers,
                        sha1={n: _file_digest(tmp / n) for n in ("local.npy", "global.npy")})
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    meta = json.loads((folder / "meta.json").read_text())
    local = np.load(folder / "local.npy", mmap_mode="r")
    global_ = np.load(folder / "global.npy", mmap_mode="r")
    per_image = (local.nbytes + global_.nbytes) // max(1, len(local))
    return {"local": local, "global": global_, "layers": meta["layers"], "path": folder, "hit": hit,
            "bytes_per_image": int(per_image)}


def _valid_cache(folder: Path, key: dict) -> bool:
    """True when the cache folder exists, holds the same key and every file matches its digest."""
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        return False
    try:
        meta = json.loads(meta_path.read_text())
        ok = meta["key"] == json.loads(json.dumps(key)) and all(
            _file_digest(folder / n) == digest for n, digest in meta["sha1"].items()
        )
    except (OSError, ValueError, KeyError) as err:
        logger.warning("Feature cache %s is unreadable (%s); rebuilding it.", folder, err)
        return False
    if not ok:
        logger.warning("Feature cache %s is corrupt or stale; rebuilding it.", folder)
    return ok


def cross_layer_predictability(local: np.ndarray, *, n_readouts: int = 20, ridge: float = 10.0,
                               seed: int = 0) -> np.ndarray:
    """How well each layer's tokens linearly predict random read-outs of every other layer.

    Entry (i, j) is the held-out R² (mean over ``n_readouts`` random read-out directions of layer i)
    of a ridge regression from layer j's tokens at the same grid position, fitted on the first 2/3 of
    the images and tested on the rest. Values near 1 off the diagonal mean the layers cannot be told
    apart by a linear read-out, which is what a per-vertex layer choice relies on.

    Parameters
    ----------
    local : ndarray, (n_images, L, C, g, g)
    n_readouts : int
    ridge : float
    seed : int

    Returns
    -------
    ndarray, (L, L)
    """
    local = np.asarray(local, dtype=np.float64)
    if local.ndim != 5:
        raise ValueError(f"'local' must be (n_images, L, C, g, g); {local.shape} was provided.")
    n_images, n_layers, n_channels = local.shape[:3]
    n_train = (2 * n_images) // 3
    tokens = local.transpose(1, 0, 3, 4, 2).reshape(n_layers, n_images, -1, n_channels)
    tokens = (tokens - tokens[:, :n_train].mean((1, 2), keepdims=True)) / (
        tokens[:, :n_train].std((1, 2), keepdims=True) + 1e-8)
    readouts = np.random.default_rng(seed).standard_normal((n_channels, n_readouts))
    out = np.zeros((n_layers, n_layers))
    for i in range(n_layers):
        y = tokens[i] @ readouts
        for j in range(n_layers):
            x_tr = tokens[j, :n_train].reshape(-1, n_channels)
            beta = np.linalg.solve(x_tr.T @ x_tr + ridge * np.eye(n_channels),
                                   x_tr.T @ y[:n_train].reshape(-1, n_readouts))
            y_te = y[n_train:].reshape(-1, n_readouts)
            resid = y_te - tokens[j, n_train:].reshape(-1, n_channels) @ beta
            out[i, j] = np.mean(1 - (resid**2).sum(0) / ((y_te - y_te.mean(0)) ** 2).sum(0))
    return out
