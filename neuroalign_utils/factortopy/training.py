"""Training FactorTopy: 8:1:1 split, smooth L1 + decaying layer-entropy term, AdamW, early stopping.

Recipe (Appendix E.3): smooth L1 (β = 0.1) + λ · decay · (−mean normalised layer entropy), λ = 0.1,
decay = max(0, 1 − step / decay_steps), plus, with the same weight and decay, the authors' code's
(s − 0.5)² on the scale selector, which keeps the scale from saturating at all-global before the space
selector has found its positions; AdamW lr 1e-3, weight decay 1e-2, batch 8. The paper decays over
6,000 steps of runs whose validation peaks at 40,000–60,000 steps, i.e. over the first ~15 % of the run;
:func:`default_decay_steps` keeps that fraction for shorter runs. Validation R² is evaluated every
``eval_every`` steps; training stops after ``patience`` evaluations without improvement and the best
state is restored (and written atomically to ``checkpoint`` when given).

Devices (``device='auto'``: a CUDA GPU, else MPS, else the CPU): on the CPU every batch is read from the
memory-mapped feature cache, so nothing more than a batch is held in memory; on a GPU the features
(float16, as cached) and responses are copied to the device once when they take at most half of its
free memory, and read batch by batch otherwise. Training is float32 on every device: the step is
dominated by the gathers of the read-out (``embedding_bag``), which mixed precision does not speed up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .. import devices, storage
from .._validation import check_float, check_int
from ..progress import progress_bar
from .model import FactorTopy, entropy_regulariser

logger = logging.getLogger(__name__)

PAPER_DECAY_FRACTION = 6_000 / 40_000


def default_decay_steps(n_steps: int) -> int:
    """Decay steps scaled with the run length: the paper's 6,000 of ~40,000 steps (15 %)."""
    return max(1, int(round(PAPER_DECAY_FRACTION * check_int(n_steps, "n_steps", minimum=1))))


def split_images(image_ids, *, seed: int = 0, fractions=(0.8, 0.1, 0.1)) -> dict:
    """Train / val / test row indices (8:1:1), split by unique image id so no image is in two parts."""
    image_ids = np.asarray(image_ids)
    unique = np.unique(image_ids)
    order = np.random.default_rng(seed).permutation(unique)
    n_train = int(round(fractions[0] * len(unique)))
    n_val = int(round(fractions[1] * len(unique)))
    parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    return {k: np.flatnonzero(np.isin(image_ids, v)) for k, v in parts.items()}


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per-column coefficient of determination 1 − SS_res / SS_tot (no noise-ceiling division)."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    ss_res = ((y_true - y_pred) ** 2).sum(0)
    ss_tot = ((y_true - y_true.mean(0)) ** 2).sum(0)
    return 1 - ss_res / np.maximum(ss_tot, 1e-12)


#: Share of a GPU's free memory that the features and responses may take to be copied there once.
RESIDENT_FRACTION = 0.5


def resident(arrays, device: torch.device) -> tuple:
    """``arrays`` as tensors on a CUDA ``device``, copied once, when together they take at most
    :data:`RESIDENT_FRACTION` of its free memory; otherwise (and on the CPU or MPS) the arrays as they
    are, to be read batch by batch with :func:`take_rows`."""
    size = sum(np.asarray(a).nbytes for a in arrays)
    if device.type != "cuda" or size > RESIDENT_FRACTION * torch.cuda.mem_get_info(device)[0]:
        return tuple(arrays)
    out = []
    for array in arrays:  # a chunk at a time: a memory-mapped cache is never read into memory whole
        dtype = torch.from_numpy(np.zeros(0, array.dtype)).dtype  # numpy's dtype as torch's
        tensor = torch.empty(array.shape, dtype=dtype, device=device)
        for start in range(0, len(array), 1024):
            tensor[start : start + 1024] = torch.from_numpy(np.array(array[start : start + 1024]))
        out.append(tensor)
    return tuple(out)


def take_rows(source, rows, device: torch.device) -> torch.Tensor:
    """Rows of an array (read now and moved to ``device``) or of a tensor already on a device, as float32."""
    if isinstance(source, torch.Tensor):
        return source[torch.as_tensor(np.asarray(rows), device=source.device)].float()
    return torch.as_tensor(np.asarray(source[rows]), dtype=torch.float32).to(device)


def predict(model: FactorTopy, local, global_, rows, *, batch_size: int = 32) -> np.ndarray:
    """Model predictions (len(rows), N) for the given feature rows, in eval mode, without gradients.

    Runs on the model's device; ``local`` and ``global_`` are arrays or tensors from :func:`resident`.
    """
    out = []
    model.eval()
    device = devices.module_device(model)
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            idx = np.asarray(rows[start : start + batch_size])
            out.append(model(take_rows(local, idx, device), take_rows(global_, idx, device)).cpu().numpy())
    return np.concatenate(out)


@dataclass
class TrainingResult:
    """A trained model, its history and per-vertex test R²."""

    model: FactorTopy
    history: pd.DataFrame
    test_r2: np.ndarray
    split: dict
    best_step: int
    options: dict = field(default_factory=dict)


def train_factortopy(
    features: dict,
    responses: np.ndarray,
    coords: np.ndarray,
    *,
    image_ids=None,
    n_steps: int = 2000,
    decay_steps: int | None = None,
    batch_size: int = 8,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    entropy_weight: float = 0.1,
    eval_every: int = 100,
    patience: int = 5,
    bottleneck: int = 128,
    seed: int = 0,
    checkpoint=None,
    progress: bool = True,
    device="auto",
    **model_options,
) -> TrainingResult:
    """Train FactorTopy on cached features and responses.

    Parameters
    ----------
    features : dict
        From :func:`features.cached_features` (``local`` (n, L, C, g, g), ``global`` (n, L, C)).
    responses : ndarray, (n_images, N)
    coords : ndarray, (N, 3)
        Hemisphere-separated sphere coordinates.
    image_ids : array-like, optional
        Image identity of each row (defaults to the row number); the split never puts one image in
        two parts.
    n_steps, decay_steps, batch_size, lr, weight_decay, entropy_weight, eval_every, patience, bottleneck
        See the module docstring; ``decay_steps`` defaults to :func:`default_decay_steps`.
    seed : int
        Split, initialisation and batch order.
    checkpoint : path-like, optional
        Where the best state is saved (atomically).
    progress : bool
    device : {'auto', 'cpu', 'cuda', 'cuda:N', 'mps'} or torch.device
        Where to train (see :func:`neuroalign_utils.devices.resolve_device`); the model stays there.
    **model_options
        Ablation options of :class:`FactorTopy` (``layer_selection``, ``space_selection``,
        ``scale_selection``, ``topology``, ``tokens``).

    Returns
    -------
    TrainingResult
    """
    n_steps = check_int(n_steps, "n_steps", minimum=1)
    decay_steps = (
        default_decay_steps(n_steps) if decay_steps is None else check_int(decay_steps, "decay_steps", minimum=1)
    )
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    check_float(lr, "lr", minimum=0)
    check_int(eval_every, "eval_every", minimum=1)
    check_int(patience, "patience", minimum=1)
    device = devices.resolve_device(device)
    local, global_ = features["local"], features["global"]
    responses = np.asarray(responses, np.float32)
    if len(responses) != len(local):
        raise ValueError(f"'responses' has {len(responses)} rows; the features have {len(local)} images.")
    split = split_images(np.arange(len(local)) if image_ids is None else image_ids, seed=seed)
    model = FactorTopy(
        coords, local.shape[1], local.shape[2], grid=local.shape[-1], bottleneck=bottleneck, seed=seed, **model_options
    ).to(device)
    local, global_, targets = resident((local, global_, responses), device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=weight_decay)
    batches = _batches(split["train"], batch_size, np.random.default_rng(seed))
    best_r2, best_step, best_state = -np.inf, 0, _state_on_cpu(model)
    history, stale = [], 0
    bar = progress_bar(range(1, n_steps + 1), desc="FactorTopy", enabled=progress, leave=False)
    for step in bar:
        rows = next(batches)
        loss_fit = _training_step(
            model,
            optimiser,
            (take_rows(local, rows, device), take_rows(global_, rows, device)),
            take_rows(targets, rows, device),
            entropy_weight=entropy_weight,
            decay=max(0.0, 1.0 - step / decay_steps),
        )
        if step % eval_every and step != n_steps:
            continue
        val_r2 = float(np.mean(r2_score(responses[split["val"]], predict(model, local, global_, split["val"]))))
        history.append({"step": step, "loss": loss_fit.item(), "val_r2": val_r2})
        bar.set_postfix(val_r2=f"{val_r2:.3f}")
        if val_r2 > best_r2:
            best_r2, best_step, best_state, stale = val_r2, step, _state_on_cpu(model), 0
            continue
        stale += 1
        if stale >= patience and step > decay_steps:  # never stopped while the entropy term still acts
            logger.info("Early stop at step %d (best %d)", step, best_step)
            break
    model.load_state_dict(best_state)
    if checkpoint is not None:
        with storage.atomic_path(checkpoint) as tmp:
            torch.save({"state": best_state, "options": model.options, "step": best_step}, tmp)
    test_r2 = r2_score(responses[split["test"]], predict(model, local, global_, split["test"]))
    return TrainingResult(
        model=model,
        history=pd.DataFrame(history),
        test_r2=test_r2,
        split=split,
        best_step=best_step,
        options=dict(model.options),
    )


def _batches(train_rows: np.ndarray, batch_size: int, rng: np.random.Generator):
    """Endless batches of training rows (each sorted): ``train_rows`` in a random order, reshuffled when
    fewer than ``batch_size`` rows of the current order are left."""
    order, cursor = rng.permutation(train_rows), 0
    while True:
        if cursor + batch_size > len(order):
            order, cursor = rng.permutation(train_rows), 0
        yield np.sort(order[cursor : cursor + batch_size])
        cursor += batch_size


def _training_step(
    model: FactorTopy, optimiser, inputs: tuple, target: torch.Tensor, *, entropy_weight: float, decay: float
) -> torch.Tensor:
    """One optimiser step on a batch; returns the fit term (smooth L1) of its loss.

    While ``decay`` > 0 the loss adds ``entropy_weight · decay`` times the layer-entropy term and the
    scale selector's mean (s − 0.5)².
    """
    model.train()
    pred = model(*inputs)
    loss_fit = F.smooth_l1_loss(pred, target, beta=0.1)
    loss = loss_fit
    if decay > 0:
        sel = model.selectors()
        loss = loss + entropy_weight * decay * (entropy_regulariser(sel["layer"]) + ((sel["scale"] - 0.5) ** 2).mean())
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return loss_fit


def _state_on_cpu(model: torch.nn.Module) -> dict:
    """A copy of the model's state in CPU memory (a checkpoint that loads on any machine)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
