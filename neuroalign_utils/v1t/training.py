"""Training and evaluation of the encoders (the V1T paper's procedure, section 4.2).

- Poisson loss ``Σ (o − r·log o)`` over batch and neurons (``1e-8`` added to both), scaled by
  ``√(training trials of the mouse / batch size)``, plus the L1 regularisers of core and readout.
  The core L1 weight (0.5379) was tuned against the data term of the paper's mice (~7,850 neurons,
  ~4,500 training trials); the data term grows with neurons × √(training trials), so the core L1 is
  multiplied by :func:`core_penalty_scale` (1 at the paper's scale). Without it, on mice of ~100
  neurons the L1 dominates and the attention collapses to uniform. ``scale_core_penalty=False``
  keeps the paper's unscaled weight.
- One AdamW step (betas 0.9 / 0.9999, no weight decay) per round of one batch from *every* mouse:
  gradients are accumulated across mice.
- Plateau schedule on the validation single-trial correlation: after ``patience`` epochs without
  improvement the learning rate is multiplied by ``factor`` and the best weights are reloaded; after
  ``n_reductions`` reductions the next plateau stops training; the best weights are restored.
- Seeded: trial order and dropout / readout sampling are drawn from seeds derived from
  ``(seed, epoch)``, so a run resumed from its checkpoint continues exactly where it stopped.
  The global torch RNG is used inside :func:`torch.random.fork_rng` only, so callers' state is kept.
- After every epoch the whole training state is written atomically to ``checkpoint_dir``.
- Memory: :func:`retain_freed_memory` keeps freed memory in the process for the next step (glibc).
- Mixed precision (``precision='bfloat16'``; ``'auto'`` picks it where it pays, see :func:`resolve_precision`):
  the core's matrix products and convolutions run in bfloat16 under ``torch.autocast``; weights,
  optimiser state, softmax, normalisation, the readout, the loss and evaluation stay float32. On a
  GPU without bfloat16, ``'float16'`` does the same with a gradient scaler (loss scaling).
- Devices: ``device='auto'`` trains on a CUDA GPU, else Apple's MPS, else the CPU
  (:func:`neuroalign_utils.devices.resolve_device`). The model and every mouse's data are moved to the
  device once, before the first step; batches are cut out there.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import devices, storage
from .._validation import check_float, check_in_allowed, check_int
from ..progress import progress_bar
from . import metrics
from .loading import TIERS, MouseData
from .models import Encoder, build_encoder

logger = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
# Paper Table A.1, mice A–E (dataset S): mean neurons; mean training trials = (total − test) × 0.9.
REFERENCE_NEURONS = 7851.0
REFERENCE_TRAIN_TRIALS = 4485.0
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
#: Tokens × embedding width of a V1T from which bfloat16 training is faster (see resolve_precision).
BFLOAT16_MIN_TOKEN_WIDTH = 3000


def core_penalty_scale(n_neurons: int, n_train_trials: int) -> float:
    """Factor on the core L1 so that it keeps the paper's balance with the data term.

    The Poisson data term of one batch sums over ``n_neurons`` and is scaled by ``√(n_train_trials /
    batch)``, so its size is ∝ ``n_neurons · √n_train_trials``. The paper's core L1 weight was tuned
    at :data:`REFERENCE_NEURONS` neurons and :data:`REFERENCE_TRAIN_TRIALS` training trials; the factor
    is the ratio of the data-term sizes, ``(n_neurons / 7851) · √(n_train_trials / 4485)``: 1 at the
    paper's scale, ~0.01 for a synthetic mouse of 150 neurons and 700 training trials.
    """
    n_neurons = check_int(n_neurons, "n_neurons", minimum=1)
    n_train_trials = check_int(n_train_trials, "n_train_trials", minimum=1)
    return (n_neurons / REFERENCE_NEURONS) * math.sqrt(n_train_trials / REFERENCE_TRAIN_TRIALS)


def has_native_bfloat16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX-512 BF16 or AMX); elsewhere it is emulated."""
    return bool(
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )


def resolve_precision(precision: str = "auto", core: torch.nn.Module | None = None, device="cpu") -> str:
    """``'float32'``, ``'bfloat16'`` or ``'float16'`` for training an encoder with this ``core`` on ``device``.

    The core says whether mixed precision may be used at all (``core.mixed_precision``: the V1T core).
    On the CPU, ``'auto'`` is bfloat16 for such a core whose tokens × embedding width reach
    :data:`BFLOAT16_MIN_TOKEN_WIDTH`, on a CPU with native bfloat16 arithmetic (AVX-512 BF16 or AMX:
    e.g. Intel Sapphire Rapids, AMD Zen 4), and float32 otherwise:

    - where it pays, bfloat16 makes V1T training faster at the same accuracy, within the
      seed-to-seed spread (``benchmarks/v1t_train.py --precision-sweep``);
    - below the threshold its casts cost more than its faster products save;
    - the CNN stays float32: in bfloat16 the CNN of ``tests/test_v1t_learning.py`` trained worse
      on one of two seeds;
    - without native support bfloat16 would be emulated.

    The measurements behind these are in ``benchmarks/README.md``.

    On a CUDA GPU, ``'auto'`` is mixed precision for every V1T core (its products are what a GPU's
    tensor cores speed up): bfloat16 where the GPU supports it, else float16 with loss scaling. The
    CNN and the linear core stay float32, for the CNN's reason above. On Apple's MPS ``'auto'`` is
    float32. ``'float16'`` needs a CUDA GPU (for its gradient scaler).
    """
    check_in_allowed(precision, "precision", PRECISIONS)
    device = devices.resolve_device(device)
    if device.type == "cuda":
        if precision == "bfloat16" and not torch.cuda.is_bf16_supported():
            raise ValueError(
                f"'precision'='bfloat16' is not supported by this GPU ({torch.cuda.get_device_name(device)}); "
                f"use 'auto' (float16 with loss scaling here), 'float16' or 'float32'."
            )
        if precision != "auto":
            return precision
        if core is None or not core.mixed_precision:
            return "float32"
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if precision == "float16":
        raise ValueError(
            f"'precision'='float16' needs a CUDA GPU (for its gradient scaler); training runs on "
            f"{device.type} here: use 'auto', 'float32' or 'bfloat16'."
        )
    if precision != "auto":
        return precision
    if device.type != "cpu" or not has_native_bfloat16() or core is None or not core.mixed_precision:
        return "float32"
    channels, h, w = core.output_shape  # h·w patch tokens and the class token
    return "bfloat16" if (h * w + 1) * channels >= BFLOAT16_MIN_TOKEN_WIDTH else "float32"


#: glibc's mallopt parameters and the value both get: above 1 GiB a block is its own mapping.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_RETAIN_BYTES = 2**30


def retain_freed_memory() -> bool:
    """Keep memory freed by one training step in the process for the next (glibc only; process-wide).

    By default glibc gives blocks above its mmap threshold (at most 32 MiB) back to the system when
    they are freed, and trims the heap top, so every step of V1T training at stride 1 page-faults its
    large activations and gradients anew, a large share of the step's wall time
    (``benchmarks/README.md``). This raises the mmap and trim thresholds to 1 GiB
    with ``mallopt``; freed blocks are then reused. The process's resident memory stays near its peak
    afterwards instead of shrinking. Called by :func:`train`; calling it again changes nothing.

    Returns
    -------
    bool
        Whether the setting was applied (False where the C library is not glibc).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _RETAIN_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _RETAIN_BYTES))


def make_optimizer(model: torch.nn.Module, learning_rate: float = 0.0016) -> torch.optim.AdamW:
    """The paper's AdamW (betas 0.9 / 0.9999, no weight decay), as one fused update of all parameters.

    ``fused=True`` is the same algorithm as the default per-parameter loop, faster on CPU for the
    paper-sized V1T core, where the loop's many small operations cost more than the arithmetic
    (``benchmarks/README.md``).
    """
    return torch.optim.AdamW(model.parameters(), lr=learning_rate, betas=(0.9, 0.9999), weight_decay=0.0, fused=True)


def poisson_loss(responses: torch.Tensor, predictions: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``Σ (o − r·log o)`` over every element, with ``eps`` added to ``r`` and ``o`` (paper eq. 4)."""
    return (predictions + eps - (responses + eps) * torch.log(predictions + eps)).sum()


#: The arrays of a mouse that the encoder takes, in the order of its forward.
INPUTS = ("images", "behaviour", "pupil_center")


def _tensors(
    mouse: MouseData, trials: np.ndarray | None, device: torch.device, fields=INPUTS
) -> tuple[torch.Tensor, ...]:
    """``fields`` of ``mouse`` for ``trials`` (all: None) as tensors on ``device``, each moved in one
    copy; all trials on the CPU share the arrays' memory."""
    arrays = (getattr(mouse, field) for field in fields)
    return tuple(torch.as_tensor(a if trials is None else a[trials]).to(device) for a in arrays)


@torch.no_grad()
def predict(model: Encoder, mouse: MouseData, trials: np.ndarray | None = None, *, batch_size: int = 128) -> np.ndarray:
    """Predicted responses ``(len(trials), n_neurons)`` in evaluation mode (all trials by default).

    Runs on the model's device; the trials' inputs are moved there once.
    """
    trials = np.arange(len(mouse.tiers)) if trials is None else np.asarray(trials)
    was_training = model.training
    model.eval()
    images, behaviour, pupil = _tensors(mouse, trials, devices.module_device(model))
    out = []
    for start in range(0, len(trials), batch_size):
        batch = slice(start, start + batch_size)
        out.append(model(images[batch], mouse.name, behaviour[batch], pupil[batch]).cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, mouse.n_neurons), np.float32)


def validation_score(model: Encoder, data: dict[str, MouseData]) -> float:
    """Single-trial correlation on the validation tier, averaged over neurons, then mice."""
    scores = []
    for mouse in data.values():
        trials = mouse.tier("validation")
        scores.append(metrics.single_trial_correlation(mouse.responses[trials], predict(model, mouse, trials)).mean())
    return float(np.mean(scores))


def evaluate(
    model: Encoder, data: dict[str, MouseData], *, tier: str = "test", expected: dict | None = None
) -> pd.DataFrame:
    """Per-mouse single-trial correlation and correlation to average on ``tier``.

    Parameters
    ----------
    expected : dict of mouse name → array (trials, neurons), optional
        Noise-free expected responses (the planted truth of synthetic mice). Adds the true noise
        ceilings (the same metrics computed for the expected responses) and the model's fraction
        of each (mean model correlation / mean ceiling).

    Returns
    -------
    pandas.DataFrame
        One row per mouse: ``mouse``, ``n_neurons``, ``single_trial_correlation``,
        ``correlation_to_average`` (and ``*_ceiling`` / ``fraction_of_*_ceiling`` columns).
    """
    check_in_allowed(tier, "tier", TIERS)
    rows = []
    for name, mouse in data.items():
        trials = mouse.tier(tier)
        r, o, ids = mouse.responses[trials], predict(model, mouse, trials), mouse.image_ids[trials]
        row = {
            "mouse": name,
            "n_neurons": mouse.n_neurons,
            "single_trial_correlation": metrics.single_trial_correlation(r, o).mean(),
            "correlation_to_average": metrics.correlation_to_average(r, o, ids).mean(),
        }
        if expected is not None:
            e = expected[name][trials]
            row["single_trial_ceiling"] = metrics.single_trial_correlation(r, e).mean()
            row["correlation_to_average_ceiling"] = metrics.correlation_to_average(r, e, ids).mean()
            row["fraction_of_single_trial_ceiling"] = row["single_trial_correlation"] / row["single_trial_ceiling"]
            row["fraction_of_average_ceiling"] = row["correlation_to_average"] / row["correlation_to_average_ceiling"]
        rows.append(row)
    return pd.DataFrame(rows)


def _epoch_batches(
    data: dict[str, MouseData], batch_size: int, seed: int, epoch: int
) -> list[list[tuple[str, np.ndarray]]]:
    """Rounds of one batch per mouse; mice with fewer batches cycle through theirs again."""
    per_mouse = {}
    for i, (name, mouse) in enumerate(data.items()):
        order = np.random.default_rng([seed, epoch, i]).permutation(mouse.tier("train"))
        per_mouse[name] = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    n_rounds = max(len(b) for b in per_mouse.values())
    return [[(name, batches[k % len(batches)]) for name, batches in per_mouse.items()] for k in range(n_rounds)]


def train(
    model: Encoder,
    data: dict[str, MouseData],
    *,
    batch_size: int = 16,
    learning_rate: float = 0.0016,
    max_epochs: int = 400,
    patience: int = 10,
    factor: float = 0.3,
    n_reductions: int = 2,
    seed: int = 0,
    scale_core_penalty: bool = True,
    precision: str = "auto",
    device="auto",
    checkpoint_dir: str | os.PathLike | None = None,
    callback: Callable[[int, dict], None] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Train ``model`` on the training tiers of ``data``; return the per-epoch history.

    Parameters
    ----------
    model : Encoder
        Built with :func:`~neuroalign_utils.v1t.models.build_encoder` for the mice in ``data``.
    data : dict of mouse name → MouseData
    batch_size, learning_rate, max_epochs : training settings (paper: 16, 0.0016, ≤ 400).
    patience, factor, n_reductions : plateau schedule on the validation correlation (paper: 10, 0.3, 2).
    seed : int
        Seeds trial order, dropout and readout sampling (per epoch).
    scale_core_penalty : bool
        Multiply the core L1 by :func:`core_penalty_scale` of each mouse (default); ``False`` uses the
        paper's weight unscaled, which is right only for mice of the paper's size.
    precision : {'auto', 'float32', 'bfloat16', 'float16'}
        Arithmetic of the training steps (``'auto'``: see :func:`resolve_precision`; ``'float16'``
        needs a CUDA GPU); evaluation is float32.
        ``benchmarks/v1t_train.py`` measures both; the chapter reports which was used.
    device : {'auto', 'cpu', 'cuda', 'cuda:N', 'mps'} or torch.device
        Where to train (``'auto'``: a CUDA GPU, else MPS, else the CPU; see
        :func:`neuroalign_utils.devices.resolve_device`). The model is moved there and stays there.
    checkpoint_dir : path-like, optional
        Where ``checkpoint.pt`` is written after every epoch; an existing checkpoint of the same model
        config and training settings is resumed.
    callback : callable(epoch, record), optional
        Called after every epoch (and after the checkpoint is written).
    progress : bool
        Show a tqdm bar over epochs.

    Returns
    -------
    pandas.DataFrame
        One row per epoch: ``epoch``, ``train_loss``, ``validation_correlation``, ``learning_rate``,
        ``best``, ``precision``, ``device`` (its type). The model holds the best weights on return.
    """
    if set(model.readouts) != set(data):
        raise ValueError(f"'data' mice {sorted(data)} do not match the model's readouts {sorted(model.readouts)}.")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    learning_rate = check_float(learning_rate, "learning_rate", minimum=0.0)
    max_epochs = check_int(max_epochs, "max_epochs", minimum=1)
    patience = check_int(patience, "patience", minimum=1)
    factor = check_float(factor, "factor", minimum=0.0, maximum=1.0)
    n_reductions = check_int(n_reductions, "n_reductions", minimum=0)
    seed = check_int(seed, "seed", minimum=0)
    device = devices.resolve_device(device)
    precision = resolve_precision(precision, model.core, device)
    retain_freed_memory()
    settings = dict(
        model=model.config,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_epochs=max_epochs,
        patience=patience,
        factor=factor,
        n_reductions=n_reductions,
        seed=seed,
        mice=sorted(data),
        scale_core_penalty=bool(scale_core_penalty),
        precision=precision,
    )

    model.to(device)
    optimizer = make_optimizer(model, learning_rate)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "float16")  # float16 needs loss scaling
    state = dict(
        epoch=0,
        best_score=-math.inf,
        best_state=copy.deepcopy(model.state_dict()),
        wait=0,
        reductions=0,
        history=[],
        done=False,
    )
    checkpoint = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    state = _resume(checkpoint, settings, model, optimizer, scaler, device) or state
    step = _EpochStep(
        model,
        optimizer,
        scaler,
        data,
        batch_size=batch_size,
        seed=seed,
        precision=precision,
        device=device,
        scale_core_penalty=scale_core_penalty,
    )

    bar = progress_bar(total=max_epochs, initial=state["epoch"], desc=f"train {model.config['core']}", enabled=progress)
    while not state["done"] and state["epoch"] < max_epochs:
        epoch = state["epoch"]
        total = step(epoch)
        score = validation_score(model, data)
        improved, lr = _plateau_update(
            state, model, optimizer, score, patience=patience, factor=factor, n_reductions=n_reductions
        )
        record = dict(
            epoch=epoch + 1,
            train_loss=total,
            validation_correlation=score,
            learning_rate=lr,
            best=improved,
            precision=precision,
            device=device.type,
        )
        state["history"].append(record)
        state["epoch"] = epoch + 1
        if checkpoint is not None:
            with storage.atomic_path(checkpoint) as tmp:
                torch.save(
                    dict(
                        settings=settings,
                        model=model.state_dict(),
                        optimizer=optimizer.state_dict(),
                        state=state,
                        scaler=scaler.state_dict(),
                    ),
                    tmp,
                )
        bar.update(1)
        bar.set_postfix(val_corr=f"{score:.3f}", lr=f"{lr:.1e}")
        if callback is not None:
            callback(epoch + 1, record)
    bar.close()
    model.load_state_dict(state["best_state"])
    model.eval()
    return pd.DataFrame(state["history"])


def _resume(checkpoint: Path | None, settings: dict, model: Encoder, optimizer, scaler, device) -> dict | None:
    """Load the checkpoint into model, optimiser and scaler and return its training state, if it was
    written for the same ``settings``; else None (training starts afresh)."""
    saved = _read_checkpoint(checkpoint, device) if checkpoint is not None and checkpoint.exists() else None
    if saved is None:
        return None
    if saved["settings"] != settings:
        logger.warning("ignoring %s: it was written for other settings", checkpoint)
        return None
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    logger.info("resuming from %s at epoch %d", checkpoint, saved["state"]["epoch"])
    return saved["state"]


class _EpochStep:
    """One training epoch: rounds of one batch from every mouse, one optimiser step per round.

    Holds what every epoch reuses: each mouse's data on the device (moved once), the Poisson term's
    scale ``√(training trials / batch)`` and the core penalty's scale per mouse. Calling it with the
    epoch number trains that epoch, seeded from ``(seed, epoch)``, and returns the summed loss.
    """

    def __init__(
        self,
        model: Encoder,
        optimizer,
        scaler,
        data: dict[str, MouseData],
        *,
        batch_size: int,
        seed: int,
        precision: str,
        device: torch.device,
        scale_core_penalty: bool,
    ):
        self.model, self.optimizer, self.scaler, self.data = model, optimizer, scaler, data
        self.batch_size, self.seed, self.precision, self.device = batch_size, seed, precision, device
        self.scales = {name: math.sqrt(len(m.tier("train")) / batch_size) for name, m in data.items()}
        self.core_scales = {
            name: core_penalty_scale(m.n_neurons, len(m.tier("train"))) if scale_core_penalty else 1.0
            for name, m in data.items()
        }
        self.tensors = {name: _tensors(m, None, device, INPUTS + ("responses",)) for name, m in data.items()}

    def __call__(self, epoch: int) -> float:
        model, optimizer, scaler = self.model, self.optimizer, self.scaler
        device, precision = self.device, self.precision
        model.train()
        losses = []
        with devices.fork_rng(device):
            torch.manual_seed(self.seed * 100_003 + epoch)
            for round_ in _epoch_batches(self.data, self.batch_size, self.seed, epoch):
                optimizer.zero_grad(set_to_none=True)
                for name, trials in round_:
                    index = torch.from_numpy(trials).to(device, non_blocking=True)
                    images, behaviour, pupil, responses = (t[index] for t in self.tensors[name])
                    with torch.autocast(device.type, dtype=getattr(torch, precision), enabled=precision != "float32"):
                        output = model(images, name, behaviour, pupil)
                    penalty = model.regularizer(name, self.core_scales[name])
                    loss = self.scales[name] * poisson_loss(responses, output) + penalty
                    scaler.scale(loss).backward()
                    losses.append(loss.detach())  # read once per epoch: no device sync per step
                scaler.step(optimizer)
                scaler.update()
        return sum((loss.item() for loss in losses), 0.0)


def _plateau_update(
    state: dict, model: Encoder, optimizer, score: float, *, patience: int, factor: float, n_reductions: int
) -> tuple[bool, float]:
    """Apply the plateau schedule after an epoch with validation ``score``.

    A better score keeps the weights as the best; after ``patience`` epochs without one the learning
    rate is multiplied by ``factor`` and the best weights are reloaded, or, after ``n_reductions``
    reductions, ``state['done']`` is set. Returns whether the score improved and the learning rate the
    epoch trained with.
    """
    improved = score > state["best_score"]
    if improved:
        state.update(best_score=score, best_state=copy.deepcopy(model.state_dict()), wait=0)
    else:
        state["wait"] += 1
    lr = optimizer.param_groups[0]["lr"]
    if state["wait"] >= patience:
        if state["reductions"] >= n_reductions:
            state["done"] = True
        else:
            model.load_state_dict(state["best_state"])
            for group in optimizer.param_groups:
                group["lr"] = lr * factor
            state.update(wait=0, reductions=state["reductions"] + 1)
            logger.info("epoch %d: learning rate → %.2g, best weights reloaded", state["epoch"] + 1, lr * factor)
    return improved, lr


def save_model(model: Encoder, path: str | os.PathLike) -> Path:
    """Write the model's config and weights to ``path`` atomically (read back with :func:`load_model`)."""
    with storage.atomic_path(path) as tmp:
        torch.save(dict(config=model.config, state=model.state_dict()), tmp)
    return Path(path)


def _read_checkpoint(path: Path, device: torch.device) -> dict | None:
    """A training checkpoint with its tensors on ``device``, or ``None`` (with a warning naming it) when
    it is damaged: training then starts afresh and the next epoch overwrites it."""
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError) as err:  # e.g. "PytorchStreamReader failed"
        logger.warning("ignoring %s: it cannot be read (%s); training starts from the first epoch", path, err)
        return None


def load_model(path: str | os.PathLike, *, device="cpu") -> Encoder:
    """Rebuild a model saved by :func:`save_model` (in evaluation mode) on ``device``; a damaged file is named.

    ``device`` accepts what :func:`neuroalign_utils.devices.resolve_device` accepts; a model trained on a
    GPU loads on a machine without one.
    """
    device = devices.resolve_device(device)
    try:
        saved = torch.load(Path(path), map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise ValueError(
            f"{path} cannot be read as a saved model ({err}); run the V1T training chapter "
            f"again (`neuroalign run v1t_training --force`)."
        ) from None
    model = build_encoder(saved["config"])
    model.load_state_dict(saved["state"])
    return model.to(device).eval()
