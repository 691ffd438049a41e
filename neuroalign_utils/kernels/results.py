"""Results of the kernel-alignment lens (chapters 01–04) as later chapters and the synthesis read them.

One headline dataclass per chapter (:class:`AllenHeadline`, :class:`NeuralKernelsHeadline`,
:class:`ArtificialKernelsHeadline`, :class:`KernelAlignmentHeadline`), each saved as ``headline.json``
(:meth:`~neuroalign_utils.results.Headline.save` / ``load``), and the names of the other files these
chapters write that another chapter reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..results import Headline, TrainedVsRandom

#: Chapter 01's tables and arrays that chapter 02 reads.
ALLEN_EXPERIMENTS_FILE = "experiments.parquet"
ALLEN_CELLS_FILE = "cells.parquet"
ALLEN_SCENE_TRACES_FILE = "scene_traces.nc"
ALLEN_SCENES_FILE = "scenes.nc"
#: Chapter 02's neural kernels (with the balanced selection as the ``selected`` coordinate).
NEURAL_KERNELS_FILE = "neural_kernels.nc"
#: Chapter 03's artificial kernels of every zoo model and their parameter counts.
ARTIFICIAL_KERNELS_FILE = "kernels.nc"
MODEL_PARAMETERS_FILE = "model_parameters.parquet"
#: Chapter 04's per-model permutation tests against the phase-randomised null.
ALIGNMENT_TESTS_FILE = "tests.parquet"


@dataclass
class AllenHeadline(Headline):
    """Chapter 01 (Allen natural scenes): the sessions read and how the responses check out."""

    CHAPTER = "allen_natural_scenes"

    manifest: str
    synthetic: bool
    n_experiments: int
    n_cells: int
    n_strong_cells: int
    peak_threshold_percent: float
    mean_time_to_peak_s_by_area: dict[str, float]
    allensdk_scene_agreement: float
    allensdk_max_peak_difference: float
    planted_preferred_scene_exact: float | None
    planted_preferred_scene_near: float | None


@dataclass
class NeuralKernelsHeadline(Headline):
    """Chapter 02 (neural kernels): how many kernels, the balanced selection, planted-RF recovery."""

    CHAPTER = "neural_kernels"

    n_kernels: int
    kernel_size: list[int]
    response_window_s: list[float]
    n_selected: dict[str, int]
    mean_abs_r_selected: float
    mean_abs_r_all: float
    median_r_planted_rf_responsive: float | None
    median_r_best_kernel_responsive: float | None
    polarity_correct_fraction: float | None


@dataclass
class ArtificialKernelsHeadline(Headline):
    """Chapter 03 (artificial kernels): the zoo built, its kernels, trained-versus-random filter measures."""

    CHAPTER = "artificial_kernels"

    models: list[str]
    weights: str
    trained_models: list[str]
    trained_vs_random: list[TrainedVsRandom]
    n_available_models: int
    n_kernels: int
    n_attention_maps: int
    n_weight_kernels: int
    mean_attention_coverage: float | None
    seconds: float


@dataclass
class KernelAlignmentHeadline(Headline):
    """Chapter 04 (kernel alignment): each model's mean 1 − RMSE against its null, and the best one."""

    CHAPTER = "kernel_alignment"

    n_neural_kernels: int
    n_artificial_kernels: int
    artificial_weights: str
    best_model: str
    best_model_margin_over_null: float
    best_model_p_vs_null: float
    verdict_by_model: dict[str, str]
    mean_one_minus_rmse_by_model: dict[str, float]
    mean_null_by_model: dict[str, float]
    margin_by_model: dict[str, float]
    median_pearson_r: float
    trained_vs_random: list[TrainedVsRandom]
