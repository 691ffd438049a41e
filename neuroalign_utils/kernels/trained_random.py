"""Trained models against their random twins: first-layer filter structure and attention spread.

A packaged trained model (:data:`~neuroalign_utils.zoo.registry.PACKAGED_MODELS`) built with
``weights="random"`` is the same architecture, at the same input size, with seeded random weights: its
*random twin*. Every difference between the two is what training put into the weights.

Two measures of each filter's 2-D power spectrum say whether filters are oriented and band-limited, as
V1 receptive fields and the first layers of trained networks are, or flat, as random filters are:

* **orientation selectivity** ``|Σ P(k) e^{2iθ(k)}| / Σ P(k)`` over the non-zero frequencies ``k``
  (``θ`` their orientation): 0 when the power is spread evenly over orientations, 1 for a grating;
* **spectral concentration** ``1 − H / log M``, with ``H`` the entropy of the power distribution over the
  ``M`` non-zero frequencies: 0 for a flat (white) spectrum, larger when the power sits in a few
  frequencies (a band-limited filter).

Both are computed on the filter's own grid (no padding, no resizing) with the power summed over input
channels, and both are invariant to the filter's phase, sign and scale. Trained − random differences get
bootstrap intervals (filters resampled within each build).
"""

from __future__ import annotations

import gc
import logging

import numpy as np
import pandas as pd
import xarray as xr

from .._validation import check_float, check_int, check_subset
from ..zoo import registry
from ..zoo.build import build_model
from .artificial import convolution_filters, model_label, twin_pairs

logger = logging.getLogger(__name__)

#: The filter measures, with their names for tables and figures.
MEASURES = {
    "orientation_selectivity": "orientation selectivity",
    "spectral_concentration": "spectral concentration",
}


# --------------------------------------------------------------------------- the measures
def filter_spectrum_measures(filters) -> pd.DataFrame:
    """Orientation selectivity, spectral concentration, DC share and peak frequency of each filter.

    Parameters
    ----------
    filters : array-like, shape (n, height, width) or (n, channels, height, width)
        Spatial filters; the power spectra of a filter's channels are summed.

    Returns
    -------
    pandas.DataFrame
        One row per filter: ``orientation_selectivity`` and ``spectral_concentration`` (see the module
        docstring), ``dc_share`` (the share of the filter's power at zero frequency, its plain average) and
        ``peak_frequency`` (cycles per pixel of the strongest non-zero frequency). A filter without power
        away from zero frequency (constant or all zero) has no spectrum to measure: NaN throughout.
    """
    values = np.asarray(filters, dtype=np.float64)
    if values.ndim == 3:
        values = values[:, None]
    if values.ndim != 4 or min(values.shape[-2:]) < 2:
        raise ValueError(
            f"'filters' must have shape (n, [channels,] height, width) with height and width of at "
            f"least 2; shape {np.shape(filters)} was provided."
        )
    power = (np.abs(np.fft.fft2(values)) ** 2).sum(axis=1)  # (n, height, width)
    fy, fx = np.meshgrid(np.fft.fftfreq(values.shape[-2]), np.fft.fftfreq(values.shape[-1]), indexing="ij")
    away = (fy != 0) | (fx != 0)
    spectrum = power[:, away]  # (n, M): every non-zero frequency
    total = spectrum.sum(axis=1)
    has_power = total > 1e-12 * np.maximum(power.sum(axis=(1, 2)), 1e-300)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = spectrum / total[:, None]
        orientation = np.abs((share * np.exp(2j * np.arctan2(fy[away], fx[away]))).sum(axis=1))
        entropy = -(share * np.log(np.where(share > 0, share, 1.0))).sum(axis=1)
        concentration = 1.0 - entropy / np.log(spectrum.shape[1])
        dc_share = power[:, 0, 0] / power.sum(axis=(1, 2))
    peak = np.hypot(fy[away], fx[away])[spectrum.argmax(axis=1)]
    table = pd.DataFrame(
        {
            "orientation_selectivity": orientation,
            "spectral_concentration": concentration,
            "dc_share": dc_share,
            "peak_frequency": peak,
        }
    )
    table.loc[~has_power] = np.nan
    return table


def filter_group(layer: str) -> str:
    """A readable name for the role of a convolution layer: its patch embedding, stem or depthwise filters."""
    if "patch_embed" in layer:
        return "patch embedding"
    if "conv_stem" in layer:
        return "stem"
    if "depthwise" in layer:
        return "depthwise"
    return layer.split(".")[-1]


# --------------------------------------------------------------------------- the models' filters
def twin_filters(models=registry.PACKAGED_MODEL_NAMES, *, random_state: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """The spatial filters of each packaged model, trained and as its random twin.

    Parameters
    ----------
    models : sequence of str
        Packaged trained models (:data:`~neuroalign_utils.zoo.registry.PACKAGED_MODEL_NAMES`).
    random_state : int, default=0
        Seed of the random twins (the same seed gives the same weights as
        :func:`~neuroalign_utils.kernels.artificial.artificial_kernels`).

    Returns
    -------
    dict
        ``{model label: {layer: float32 array (out, in per group, height, width)}}`` with labels from
        :func:`~neuroalign_utils.kernels.artificial.model_label`, trained first; layers as
        :func:`~neuroalign_utils.kernels.artificial.convolution_filters` gives them (1×1 and 2×2 left out).
    """
    models = check_subset(models, "models", registry.PACKAGED_MODEL_NAMES)
    random_state = check_int(random_state, "random_state", minimum=0)
    out = {}
    for name in models:
        for weights in ("pretrained", "random"):
            model = build_model(name, weights=weights, random_state=random_state)
            out[model_label(name, weights)] = convolution_filters(model)
            del model
            gc.collect()
    return out


def filter_measures(filters: dict) -> pd.DataFrame:
    """:func:`filter_spectrum_measures` of every filter of :func:`twin_filters`' output.

    Returns
    -------
    pandas.DataFrame
        One row per filter with ``model`` (label), ``architecture``, ``weights``, ``layer``, ``group``
        (:func:`filter_group` and the filter size, e.g. ``"depthwise 5×5"``), ``filter`` (its index in the
        layer) and the measures. Filters without a spectrum (NaN) are dropped.
    """
    frames = []
    for label, layers in filters.items():
        architecture, weights = _split_label(label)
        for layer, values in layers.items():
            measured = filter_spectrum_measures(values)
            measured.insert(0, "filter", np.arange(len(measured)))
            measured.insert(0, "group", f"{filter_group(layer)} {values.shape[-2]}×{values.shape[-1]}")
            measured.insert(0, "layer", layer)
            measured.insert(0, "weights", weights)
            measured.insert(0, "architecture", architecture)
            measured.insert(0, "model", label)
            frames.append(measured)
    if not frames:
        raise ValueError("'filters' holds no filters.")
    return pd.concat(frames, ignore_index=True).dropna(subset=list(MEASURES)).reset_index(drop=True)


def _split_label(label: str) -> tuple[str, str]:
    """(architecture, weights) of a :func:`model_label`."""
    for weights in ("pretrained", "random"):
        for name in registry.PACKAGED_MODEL_NAMES:
            if label == model_label(name, weights):
                return name, weights
    raise ValueError(
        f"{label!r} is not a packaged model's trained or random label (see kernels.artificial.model_label)."
    )


# --------------------------------------------------------------------------- trained − random
def bootstrap_difference(
    a, b, *, paired: bool = False, n_bootstrap: int = 1000, ci: float = 0.95, random_state: int = 0
) -> dict:
    """Mean of ``a`` minus mean of ``b`` with a percentile bootstrap interval.

    Parameters
    ----------
    a, b : array-like
        Samples (NaN dropped). With ``paired=True`` they must have the same length and a pair is resampled
        together (NaN in either drops the pair); otherwise each sample is resampled on its own.
    n_bootstrap : int, default=1000
    ci : float, default=0.95
    random_state : int, default=0

    Returns
    -------
    dict
        ``a``, ``b`` (the means), ``difference``, ``ci_low``, ``ci_high`` (its interval), ``a_ci_low``,
        ``a_ci_high``, ``b_ci_low``, ``b_ci_high`` (each mean's interval), ``n_a``, ``n_b``.
    """
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", minimum=1)
    ci = check_float(ci, "ci", minimum=0.0, maximum=1.0)
    rng = np.random.default_rng(check_int(random_state, "random_state", minimum=0))
    if paired:
        if a.size != b.size:
            raise ValueError(f"Paired samples must have the same length; {a.size} and {b.size} were provided.")
        keep = np.isfinite(a) & np.isfinite(b)
        a, b = a[keep], b[keep]
    else:
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        raise ValueError("Both samples need at least one finite value.")
    levels = [(1 - ci) / 2, (1 + ci) / 2]
    if paired:
        draws = rng.integers(0, a.size, size=(n_bootstrap, a.size))
        boot_a, boot_b = a[draws].mean(axis=1), b[draws].mean(axis=1)
    else:
        boot_a = a[rng.integers(0, a.size, size=(n_bootstrap, a.size))].mean(axis=1)
        boot_b = b[rng.integers(0, b.size, size=(n_bootstrap, b.size))].mean(axis=1)
    low, high = np.quantile(boot_a - boot_b, levels)
    (a_low, a_high), (b_low, b_high) = np.quantile(boot_a, levels), np.quantile(boot_b, levels)
    return {
        "a": float(a.mean()),
        "b": float(b.mean()),
        "difference": float(a.mean() - b.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "a_ci_low": float(a_low),
        "a_ci_high": float(a_high),
        "b_ci_low": float(b_low),
        "b_ci_high": float(b_high),
        "n_a": int(a.size),
        "n_b": int(b.size),
    }


def filter_margins(measures: pd.DataFrame, *, n_bootstrap: int = 1000, random_state: int = 0) -> pd.DataFrame:
    """Trained − random mean of each filter measure, per architecture and filter group, with 95 % intervals.

    Parameters
    ----------
    measures : pandas.DataFrame
        :func:`filter_measures` output.

    Returns
    -------
    pandas.DataFrame
        One row per (architecture, group, measure) that both builds have, in the order found: ``trained``,
        ``random`` (means over filters), ``margin`` (trained − random), ``ci_low``, ``ci_high`` (filters
        resampled within each build), each mean's interval (``trained_ci_low`` … ``random_ci_high``),
        ``n_trained``, ``n_random``.
    """
    rows = []
    for (architecture, group), rows_of_group in measures.groupby(["architecture", "group"], sort=False):
        trained = rows_of_group[rows_of_group["weights"] == "pretrained"]
        random = rows_of_group[rows_of_group["weights"] == "random"]
        if trained.empty or random.empty:
            continue
        for measure in MEASURES:
            found = bootstrap_difference(
                trained[measure], random[measure], n_bootstrap=n_bootstrap, random_state=random_state
            )
            rows.append(
                {
                    "architecture": architecture,
                    "group": group,
                    "measure": measure,
                    "trained": found["a"],
                    "random": found["b"],
                    "margin": found["difference"],
                    "ci_low": found["ci_low"],
                    "ci_high": found["ci_high"],
                    "trained_ci_low": found["a_ci_low"],
                    "trained_ci_high": found["a_ci_high"],
                    "random_ci_low": found["b_ci_low"],
                    "random_ci_high": found["b_ci_high"],
                    "n_trained": found["n_a"],
                    "n_random": found["n_b"],
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "architecture",
            "group",
            "measure",
            "trained",
            "random",
            "margin",
            "ci_low",
            "ci_high",
            "trained_ci_low",
            "trained_ci_high",
            "random_ci_low",
            "random_ci_high",
            "n_trained",
            "n_random",
        ],
    )


def coverage_margins(coverage: pd.DataFrame, *, n_bootstrap: int = 1000, random_state: int = 0) -> pd.DataFrame:
    """Trained − random effective coverage of the attention maps of each packaged model with both builds.

    Parameters
    ----------
    coverage : pandas.DataFrame
        :func:`~neuroalign_utils.kernels.artificial.attention_coverage` output. A trained map is paired with its
        random twin's map of the same layer, head and scene (rollout maps, head −1, with each other).

    Returns
    -------
    pandas.DataFrame
        One row per architecture: ``trained``, ``random`` (mean coverage), ``margin``, ``ci_low``,
        ``ci_high`` (pairs of maps resampled), ``n_maps``.
    """
    keys = ["layer_index", "attention_head", "image"]
    rows = []
    for trained, random in twin_pairs(coverage["model"].unique()).items():
        pairs = coverage[coverage["model"] == trained].merge(
            coverage[coverage["model"] == random], on=keys, suffixes=("_trained", "_random")
        )
        found = bootstrap_difference(
            pairs["coverage_trained"],
            pairs["coverage_random"],
            paired=True,
            n_bootstrap=n_bootstrap,
            random_state=random_state,
        )
        rows.append(
            {
                "architecture": _split_label(trained)[0],
                "trained": found["a"],
                "random": found["b"],
                "margin": found["difference"],
                "ci_low": found["ci_low"],
                "ci_high": found["ci_high"],
                "n_maps": found["n_a"],
            }
        )
    return pd.DataFrame(rows, columns=["architecture", "trained", "random", "margin", "ci_low", "ci_high", "n_maps"])


def reference_measures(
    kernels: xr.DataArray | np.ndarray, *, n_bootstrap: int = 1000, random_state: int = 0
) -> pd.DataFrame:
    """Mean filter measures of a set of reference kernels (the neural kernels) with 95 % bootstrap intervals.

    Returns
    -------
    pandas.DataFrame
        One row per measure: ``value``, ``ci_low``, ``ci_high``, ``n``, and the kernels' ``size``.
    """
    values = np.asarray(getattr(kernels, "values", kernels), dtype=np.float64)
    measured = filter_spectrum_measures(values)
    rows = []
    for measure in MEASURES:
        sample = measured[measure].dropna().to_numpy()
        rng = np.random.default_rng(check_int(random_state, "random_state", minimum=0))
        boot = sample[
            rng.integers(0, sample.size, size=(check_int(n_bootstrap, "n_bootstrap", minimum=1), sample.size))
        ].mean(axis=1)
        low, high = np.quantile(boot, [0.025, 0.975])
        rows.append(
            {
                "measure": measure,
                "value": float(sample.mean()),
                "ci_low": float(low),
                "ci_high": float(high),
                "n": int(sample.size),
                "size": f"{values.shape[-2]}×{values.shape[-1]}",
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- sentences
def direction(ci_low: float, ci_high: float) -> str:
    """``"higher"`` when a 95 % interval of a difference lies above 0, ``"lower"`` below, else ``"same"``."""
    if ci_low > 0:
        return "higher"
    if ci_high < 0:
        return "lower"
    return "same"


_MEASURE_WORDS = {  # (higher, lower, indistinguishable) for each measure
    "orientation_selectivity": ("more oriented", "less oriented", "neither more nor less oriented"),
    "spectral_concentration": (
        "more concentrated in spatial frequency",
        "less concentrated in spatial frequency",
        "neither more nor less concentrated in spatial frequency",
    ),
}


def describe_filter_margins(margins: pd.DataFrame, *, detail: bool = True) -> str:
    """Whether training made each model's filters oriented and band-limited, group by group, from the intervals.

    With ``detail=False`` only the closing verdict (in how many groups both measures rose), for a summary."""
    from .. import report

    if margins.empty:
        return "No packaged trained model was built, so no filters were compared with a random twin."
    sentences, structured, groups = [], 0, 0
    for (architecture, group), rows in margins.groupby(["architecture", "group"], sort=False):
        groups += 1
        parts, up = [], 0
        for row in rows.itertuples():
            word = direction(row.ci_low, row.ci_high)
            up += word == "higher"
            phrase = _MEASURE_WORDS[row.measure][("higher", "lower", "same").index(word)]
            parts.append(
                f"{phrase} ({MEASURES[row.measure]} {report.format_number(row.trained)} against "
                f"{report.format_number(row.random)}, difference {report.format_number(row.margin)}, "
                f"95 % interval {report.format_interval(row.ci_low, row.ci_high)})"
            )
        structured += up == len(rows)
        sentences.append(
            f"The trained {architecture}'s {group} filters are {report.join_words(parts)} than its random twin's."
        )
    if structured == groups:
        verdict = "In every group, training made the filters both more oriented and more band-limited."
    elif structured == 0:
        verdict = (
            "In no group did training make the filters both more oriented and more band-limited than their "
            "random twins'."
        )
    else:
        verdict = (
            f"Training made the filters both more oriented and more band-limited in "
            f"{report.format_count(structured, groups)} groups."
        )
    return " ".join(sentences + [verdict]) if detail else verdict


def describe_coverage_margins(margins: pd.DataFrame) -> str:
    """Whether each trained model's attention is less uniform than its random twin's."""
    from .. import report

    if margins.empty:
        return "No trained model with attention was built beside its random twin, so attention spread is not compared."
    sentences = []
    for row in margins.itertuples():
        word = direction(row.ci_low, row.ci_high)
        reading = {
            "lower": "more concentrated than its random twin's",
            "higher": "more uniform than its random twin's",
            "same": "no less uniform than its random twin's",
        }[word]
        sentences.append(
            f"The trained {row.architecture}'s attention maps cover {report.format_percent(row.trained, 1)} of the "
            f"grid on average against {report.format_percent(row.random, 1)} for its random twin (difference "
            f"{report.format_number(row.margin)}, 95 % interval {report.format_interval(row.ci_low, row.ci_high)}, "
            f"{report.format_number(row.n_maps)} pairs of maps): its attention is {reading}."
        )
    return " ".join(sentences)
