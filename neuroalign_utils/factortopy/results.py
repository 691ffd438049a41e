"""Results of the FactorTopy lens (chapter 07) as the synthesis reads them.

:class:`FactorTopyHeadline` is saved as ``headline.json``
(:meth:`~neuroalign_utils.results.Headline.save` / ``load``); :data:`RECOVERY_FILE` names the per-ROI
layer-recovery table the synthesis reads beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..results import Headline, TrainedVsRandom

#: Per named ROI: planted and recovered layer and scale (index ``roi``).
RECOVERY_FILE = "recovery.parquet"


@dataclass
class FactorTopyHeadline(Headline):
    """Chapter 07 (FactorTopy encoding): R², hierarchy slope, planted-layer recovery, trained against random.

    ``hierarchy_slope`` is :func:`neuroalign_utils.factortopy.analysis.hierarchy_slope`'s dictionary, ``None``
    for a subject without ROI labels; the recovery figures are NaN on a subject without planted truth.
    """

    CHAPTER = "factortopy_encoding"

    backbone: str
    weights: str
    image_size: int
    n_layers: int
    r2_mean: float
    r2_per_roi: dict[str, float]
    hierarchy_slope: dict[str, float] | None
    planted_ceiling_r2: float
    layer_within_one_fraction: float
    layer_exact_fraction: float
    median_position_error: float
    scale_correlation: float
    best_backbone: str
    trained_vs_random: list[TrainedVsRandom]
