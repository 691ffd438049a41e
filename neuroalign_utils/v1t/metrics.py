"""Prediction metrics of the V1T paper, in one NumPy reference implementation.

Conventions (as the reference code): Pearson correlation per neuron over trials, population
standard deviations (``ddof=0``) with ``eps = 1e-8`` added to their product; per-neuron values are
averaged over neurons, then over mice.
"""

from __future__ import annotations

import numpy as np

from ..statistics import pearson_r


def correlation(x: np.ndarray, y: np.ndarray, *, axis: int = 0, eps: float = 1e-8) -> np.ndarray:
    """Pearson correlation of ``x`` and ``y`` along ``axis`` (``ddof=0``, ``eps`` in the denominator).

    :func:`~neuroalign_utils.statistics.pearson_r` with the reference code's ``eps``; a constant
    input scores 0 (``constant=0.0`` where ``eps=0`` leaves a zero denominator).
    """
    return pearson_r(x, y, axis=axis, constant=0.0, eps=eps)


def single_trial_correlation(responses: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Per-neuron correlation over single trials: ``(trials, neurons)`` × 2 → ``(neurons,)``."""
    return correlation(responses, predictions, axis=0)


def average_over_repeats(values: np.ndarray, image_ids: np.ndarray) -> np.ndarray:
    """Mean over the trials that share an image id: ``(trials, neurons)`` → ``(images, neurons)``."""
    ids, inverse = np.unique(np.asarray(image_ids), return_inverse=True)
    sums = np.zeros((len(ids), values.shape[1]))
    np.add.at(sums, inverse, values)
    return sums / np.bincount(inverse)[:, None]


def correlation_to_average(responses: np.ndarray, predictions: np.ndarray, image_ids: np.ndarray) -> np.ndarray:
    """Per-neuron correlation between repeat-averaged responses and repeat-averaged predictions."""
    return correlation(average_over_repeats(responses, image_ids), average_over_repeats(predictions, image_ids))
