"""The zoo as tables: the paper's models and the packaged trained ones, with their parameter counts."""

from __future__ import annotations

import pandas as pd

from .build import count_parameters
from .registry import MODELS, PACKAGED_MODELS


def zoo_table(*, n_parameters: bool = True) -> pd.DataFrame:
    """One row per model: identity, the paper's COCO numbers, availability and (built) parameter count.

    Parameters
    ----------
    n_parameters : bool, default=True
        Count the parameters of each buildable architecture at its full configuration, built on the
        ``meta`` device (no weights are allocated). Unavailable models get NaN.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``model``.
    """
    rows = []
    for spec in MODELS:
        rows.append(
            {
                "model": spec.name,
                "family": spec.family,
                "variant": spec.variant,
                "backbone": spec.backbone,
                "training_data": spec.training_data,
                **{
                    k: spec.coco.get(k)
                    for k in (
                        "AP_box",
                        "AP",
                        "AP_l",
                        "AP_m",
                        "AP_s",
                        "point_max_1_IoU",
                        "point_oracle_1_IoU",
                        "coco_val2017",
                    )
                },
                "available": spec.available,
                "built_with": f"transformers {spec.builder} config" if spec.available else None,
                "hub_id": spec.hub_id,
                "n_parameters": count_parameters(spec.name) if (n_parameters and spec.available) else float("nan"),
                "unavailable_reason": spec.unavailable_reason,
            }
        )
    return pd.DataFrame(rows).set_index("model")


def packaged_table(*, n_parameters: bool = True) -> pd.DataFrame:
    """One row per packaged model: what it is, where its weights come from, its licence and size.

    Parameters
    ----------
    n_parameters : bool, default=True
        Count each architecture's parameters (built on PyTorch's ``meta`` device: nothing is allocated).
        Needs the packages installed; without them, or with ``False``, the column is NaN.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``model``.
    """
    rows = []
    for spec in PACKAGED_MODELS:
        rows.append(
            {
                "model": spec.name,
                "description": spec.description,
                "architecture": spec.architecture,
                "training": spec.training,
                "weights_package": f"{spec.weights_package} {spec.weights_version}",
                "license": spec.license,
                "input_size": spec.input_size,
                "n_parameters": _parameters_if_installed(spec.name) if n_parameters else float("nan"),
            }
        )
    return pd.DataFrame(rows).set_index("model")


def _parameters_if_installed(name: str) -> float:
    try:
        return float(count_parameters(name))
    except ModuleNotFoundError:
        return float("nan")
