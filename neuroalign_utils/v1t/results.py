"""Results of the V1T lens (chapters 05–06) as later chapters and the synthesis read them.

:class:`V1TTrainingHeadline` and :class:`V1TAnalysisHeadline` are saved as ``headline.json``
(:meth:`~neuroalign_utils.results.Headline.save` / ``load``); the other files these chapters write
that another chapter reads are named here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..results import Headline

#: Chapter 05's per-model, per-mouse table (core, behaviour, mouse, single-trial correlation, …).
RESULTS_FILE = "results.parquet"
#: Chapter 06's exported kernels, one file per kind (``kernels_<label>.nc``).
KERNELS_PATTERN = "kernels_*.nc"


def kernels_file(results_dir, label: str) -> Path:
    """Where chapter 06 saves the kernels of one kind (``label``, e.g. ``"patch_embedding"``)."""
    return Path(results_dir) / KERNELS_PATTERN.replace("*", label)


def kernel_files(results_dir) -> list[Path]:
    """Chapter 06's exported kernel files in ``results_dir``, sorted by name."""
    return sorted(Path(results_dir).glob(KERNELS_PATTERN))


@dataclass
class V1TTrainingHeadline(Headline):
    """Chapter 05 (V1T training): each core's average single-trial correlation and the gains between them.

    A gain is :func:`neuroalign_utils.v1t.findings.relative_gain`'s dictionary, ``None`` where one of the
    two models was not trained.
    """

    CHAPTER = "v1t_training"

    average_single_trial_correlation: dict[str, float]
    best_model: list[str | bool]
    v1t_gain_over_cnn: dict[str, float] | None
    behaviour_gain: dict[str, dict[str, float] | None]
    noise_ceiling_single_trial: float | None
    v1t_grid: list[int]
    models: list[str]


@dataclass
class V1TAnalysisHeadline(Headline):
    """Chapter 06 (V1T analysis): how attention, shifter and aRFs move with the pupil, and the kernels exported."""

    CHAPTER = "v1t_analysis"

    source: str
    com_pupil_r_x: float
    com_pupil_r_y: float
    com_moved_with_pupil_px: dict[str, float]
    shifter_moved_with_pupil_px: dict[str, float]
    arf_moved_with_pupil_px: dict[str, float]
    planted_move_px: float | None
    pupil_effect_through_attention: dict[str, float]
    arf_mean_sigma_horizontal_vertical: dict[str, list[float]]
    arf_dropped: dict[str, int]
    arf_position_error_px: dict[str, float] | None
    bmlp_spread_by_block: dict[str, float]
    readout_retinotopy_r: dict[str, float]
    n_kernels: int
