"""Analyses of a trained FactorTopy model: confidence, hierarchy slope, R² per ROI, channel clusters.

All functions take plain arrays / DataFrames (selector outputs, read-out weights, a vertex table), so
they work on any trained model, real or synthetic.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .. import report
from .._validation import check_int

logger = logging.getLogger(__name__)

#: Section 4.3: four-level brain structure for the hierarchy slope
HIERARCHY_LEVELS = {"V1": 0.0, "V2": 1 / 3, "V3": 1 / 3, "OPA": 2 / 3, "EBA": 1.0}


def selector_table(model, vertices: pd.DataFrame) -> pd.DataFrame:
    """One row per vertex: ROI columns plus ``space_x, space_y, scale, layer_argmax, confidence, iota``
    and the layer weights ``layer_0 … layer_{L−1}``."""
    import torch

    with torch.no_grad():
        sel = {k: v.cpu().numpy() for k, v in model.selectors().items()}
    layer = sel["layer"]
    out = vertices.reset_index(drop=True).copy()
    out["space_x"], out["space_y"] = sel["space"][:, 0], sel["space"][:, 1]
    out["scale"] = sel["scale"]
    out["layer_argmax"] = layer.argmax(1)
    out["confidence"] = layer_confidence(layer)
    out["iota"] = layer_position(layer)
    for i in range(layer.shape[1]):
        out[f"layer_{i}"] = layer[:, i]
    return out


def layer_confidence(weights: np.ndarray) -> np.ndarray:
    """Eq. 2: s = 1 − H(ω)/log L per row of (N, L) layer weights (1 one-hot, 0 uniform)."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] < 2:
        raise ValueError(f"'weights' must be (n_vertices, n_layers ≥ 2); {weights.shape} was provided.")
    entropy = -(weights * np.log(np.clip(weights, 1e-300, None))).sum(1)
    return 1 - entropy / np.log(weights.shape[1])


def layer_position(weights: np.ndarray) -> np.ndarray:
    """ι̂ = Σ_l (l − 1)/(L − 1) · ω_l per vertex (section 4.3), in [0, 1]."""
    weights = np.asarray(weights, dtype=np.float64)
    return weights @ (np.arange(weights.shape[1]) / (weights.shape[1] - 1))


def roi_family(roi: str) -> str:
    """Map an NSD ROI name onto the slope's families: V1v/V1d → V1, V2v/V2d → V2, …; others unchanged."""
    for family in ("V1", "V2", "V3"):
        if roi.startswith(family):
            return family
    return roi


def can_fit_hierarchy(roi, levels=None) -> bool:
    """Whether ``roi`` labels vertices of at least two levels of :data:`HIERARCHY_LEVELS` (a real subject
    without its ``roi_masks`` label files has none)."""
    levels = HIERARCHY_LEVELS if levels is None else levels
    return len({levels[f] for f in (roi_family(str(r)) for r in np.unique(np.asarray(roi))) if f in levels}) >= 2


def hierarchy_slope(iota, roi, *, n_bootstrap: int = 1000, seed: int = 0, levels=None) -> dict:
    """Least-squares fit ι̂ = β·ι + b0 over vertices of V1, V2&V3, OPA, EBA (Table 2 analogue).

    Parameters
    ----------
    iota : array-like, (N,)
        :func:`layer_position` of every vertex.
    roi : array-like of str, (N,)
        ROI name of every vertex (``V1v`` etc. are folded by :func:`roi_family`).
    n_bootstrap : int
        Resamples of vertices (with replacement, within each level) for the 95 % interval of β.
    seed : int
    levels : dict, optional
        ROI family → ideal level; default :data:`HIERARCHY_LEVELS`.

    Returns
    -------
    dict
        ``slope``, ``b0`` (intercept at level 0), ``b1`` (= b0 + slope), ``slope_low``, ``slope_high``,
        ``n_vertices``.
    """
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", minimum=0)
    levels = HIERARCHY_LEVELS if levels is None else levels
    iota = np.asarray(iota, dtype=np.float64)
    family = np.array([roi_family(str(r)) for r in roi])
    keep = np.isin(family, list(levels))
    x = np.array([levels[f] for f in family[keep]])
    y = iota[keep]
    if len(np.unique(x)) < 2:
        raise ValueError(f"'roi' must contain at least two of {list(levels)} to fit a slope.")
    slope, b0 = np.polyfit(x, y, 1)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(x == v) for v in np.unique(x)]
    boot = []
    for _ in range(n_bootstrap):
        idx = np.concatenate([rng.choice(g, size=len(g)) for g in groups])
        boot.append(np.polyfit(x[idx], y[idx], 1)[0])
    low, high = np.percentile(boot, [2.5, 97.5]) if boot else (np.nan, np.nan)
    return {
        "slope": float(slope),
        "b0": float(b0),
        "b1": float(b0 + slope),
        "slope_low": float(low),
        "slope_high": float(high),
        "n_vertices": int(keep.sum()),
    }


def r2_per_roi(r2, roi, *, order=None) -> pd.DataFrame:
    """Mean, median and count of per-vertex R² for each ROI (raw R², no noise-ceiling division)."""
    df = pd.DataFrame({"roi": np.asarray(roi), "r2": np.asarray(r2, dtype=np.float64)})
    table = (
        df.groupby("roi")["r2"]
        .agg(["mean", "median", "count"])
        .rename(columns={"mean": "r2_mean", "median": "r2_median", "count": "n_vertices"})
    )
    if order is not None:
        table = table.reindex([r for r in order if r in table.index])
    all_row = pd.DataFrame(
        {"r2_mean": [df["r2"].mean()], "r2_median": [df["r2"].median()], "n_vertices": [len(df)]}, index=["all"]
    )
    return pd.concat([table, all_row]).rename_axis("roi")


def cluster_channels(
    weights: np.ndarray, n_clusters: int = 20, *, n_kmeans: int = 1000, seed: int = 0, batch_size: int = 4096
) -> np.ndarray:
    """Cluster vertices by their read-out weights (Appendix E.2), in bounded memory.

    The paper clusters rows of the N×N kernel W̄ = WᵀW (W: D×N) with k-means (k = 1000), then merges
    the centroids by Ward agglomeration into 20 clusters. With W = UΣVᵀ, WᵀW = VΣ²Vᵀ, so row i of
    WᵀW is (VΣ²)ᵢ Vᵀ, and since Vᵀ has orthonormal rows the Euclidean distance between rows i and j equals
    that between rows of the N × D embedding VΣ². Clustering VΣ² is therefore exactly clustering WᵀW,
    without the N × N matrix; mini-batch k-means and Ward on the ≤ ``n_kmeans`` centroids keep memory
    at O(N·D).

    Parameters
    ----------
    weights : ndarray, (N, D)
        Read-out weights, one row per vertex.
    n_clusters : int
    n_kmeans : int
        First-stage k-means centroids (capped at N).
    seed : int
    batch_size : int
        Mini-batch size of the k-means stage.

    Returns
    -------
    ndarray of int, (N,)
        Cluster label of every vertex, 0 … n_clusters − 1, numbered by decreasing cluster size.
    """
    from sklearn.cluster import AgglomerativeClustering, MiniBatchKMeans

    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 2:
        raise ValueError(f"'weights' must be (n_vertices, n_channels); {weights.shape} was provided.")
    n = len(weights)
    n_clusters = check_int(n_clusters, "n_clusters", minimum=1, maximum=n)
    n_kmeans = min(check_int(n_kmeans, "n_kmeans", minimum=1), n)
    n_kmeans = max(n_kmeans, n_clusters)
    # rows of WᵀW (N×N) = V Σ² Vᵀ; their pairwise distances equal those of V Σ² (N×D)
    _, sigma, vt = np.linalg.svd(weights.T, full_matrices=False)
    embedding = vt.T * sigma**2
    kmeans = MiniBatchKMeans(n_clusters=n_kmeans, random_state=seed, batch_size=batch_size, n_init=3)
    fine = kmeans.fit_predict(embedding)
    centroids = kmeans.cluster_centers_
    used = np.unique(fine)
    coarse = AgglomerativeClustering(n_clusters=min(n_clusters, len(used)), linkage="ward").fit_predict(centroids[used])
    lookup = np.zeros(n_kmeans, dtype=int)
    lookup[used] = coarse
    labels = lookup[fine]
    if len(np.unique(labels)) < n_clusters:
        # a degenerate k-means (fewer distinct centroids than clusters): split the largest clusters
        labels = _split_to(labels, embedding, n_clusters)
    sizes = np.bincount(labels, minlength=n_clusters)
    rank = np.argsort(np.argsort(-sizes, kind="stable"), kind="stable")
    return rank[labels]


def _split_to(labels: np.ndarray, embedding: np.ndarray, n_clusters: int) -> np.ndarray:
    labels = np.unique(labels, return_inverse=True)[1]
    while labels.max() + 1 < n_clusters:
        largest = np.bincount(labels).argmax()
        members = np.flatnonzero(labels == largest)
        order = np.argsort(embedding[members, 0], kind="stable")
        labels[members[order[len(order) // 2 :]]] = labels.max() + 1
    return labels


def top_channel_image(model, local: np.ndarray, roi_mask: np.ndarray, *, n_components: int = 3) -> np.ndarray:
    """Listing 2: the ROI's top read-out principal components projected on one image's local tokens.

    Parameters
    ----------
    model : FactorTopy
    local : ndarray, (L, C, g, g)
        One image's local tokens.
    roi_mask : ndarray of bool, (N,)
    n_components : int

    Returns
    -------
    ndarray, (g, g, n_components), each component rescaled to [0, 1] (an RGB image for 3).
    """
    import torch

    roi_mask = np.asarray(roi_mask, dtype=bool)
    if roi_mask.shape != (model.n_vertices,):
        raise ValueError(f"'roi_mask' must have {model.n_vertices} entries; {roi_mask.shape} was provided.")
    if roi_mask.sum() < n_components:
        raise ValueError(f"'roi_mask' selects {roi_mask.sum()} vertices; at least {n_components} needed.")
    device = model.readout_weight.device  # runs where the model is
    mask = torch.from_numpy(roi_mask).to(device)
    with torch.no_grad():
        layer_w = model.selectors()["layer"][mask].mean(0)  # (L,)
        tokens = torch.einsum(
            "lchw,lcd->ldhw", torch.as_tensor(local, dtype=torch.float32, device=device), model.local_bottleneck
        )
        summed = torch.einsum("l,ldhw->dhw", layer_w, tokens).cpu().numpy()  # (D, g, g)
        w = model.readout_weight[mask].cpu().numpy()  # (N', D)
    w = w - w.mean(0)
    _, _, vt = np.linalg.svd(w, full_matrices=False)
    image = np.einsum("kd,dhw->hwk", vt[:n_components], summed)
    lo, hi = image.min((0, 1)), image.max((0, 1))
    return (image - lo) / np.maximum(hi - lo, 1e-12)


def within_one_chance(planted_layers, n_layers: int) -> float:
    """Fraction of ROIs a uniformly random layer choice puts within one layer of the planted one."""
    planted = np.asarray(planted_layers, dtype=int)
    n_layers = check_int(n_layers, "n_layers", minimum=1)
    counts = np.minimum(planted + 1, n_layers - 1) - np.maximum(planted - 1, 0) + 1
    return float(np.mean(counts / n_layers))


# --------------------------------------------------------------------------------------------------
# trained against random layers

#: The two distinctness quantities of :func:`compare_layer_distinctness`, each 1 − a mean cross-layer R².
DISTINCTNESS = {
    "all_pairs": "layer distinctness: 1 − mean held-out cross-layer R², all layer pairs",
    "adjacent": "adjacent-layer distinctness: 1 − mean held-out cross-layer R², neighbouring layers",
}


def layer_distinctness(matrix: np.ndarray) -> dict:
    """1 − the mean off-diagonal cross-layer R² over all layer pairs and over neighbouring layers.

    0 means every layer predicts the others perfectly (interchangeable layers); 1 means not at all.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or len(matrix) < 2:
        raise ValueError(f"'matrix' must be a square (L, L) matrix with L ≥ 2; shape {matrix.shape} was provided.")
    off = ~np.eye(len(matrix), dtype=bool)
    adjacent = np.abs(np.subtract.outer(np.arange(len(matrix)), np.arange(len(matrix)))) == 1
    return {"all_pairs": float(1 - matrix[off].mean()), "adjacent": float(1 - matrix[adjacent].mean())}


def compare_layer_distinctness(
    trained_local, random_local, *, n_bootstrap: int = 1000, seed: int = 0, n_readouts: int = 20, ridge: float = 10.0
) -> dict:
    """How much more distinct a trained backbone's layers are than its random control's, with intervals.

    Both sets of local tokens (same images, same order) go through
    :func:`~neuroalign_utils.factortopy.features.cross_layer_predictability` (ridge fits on the first 2/3
    of the images, R² on the rest). The intervals come from a paired bootstrap over the held-out images:
    each resample draws held-out images with replacement and recomputes both models' R² on the same
    draw (the fits stay as they are), so they reflect the finite test set, not refits.

    Parameters
    ----------
    trained_local, random_local : array-like, (n_images, L, C, g, g)
    n_bootstrap : int
        Resamples (0: no intervals, NaN).
    seed : int
        Seed of the read-out directions and of the resamples.
    n_readouts, ridge
        See :func:`~neuroalign_utils.factortopy.features.cross_layer_predictability`.

    Returns
    -------
    dict
        ``matrices`` ({"trained", "random"} → (L, L) R²), ``table`` (DataFrame indexed by quantity, a key of
        :data:`DISTINCTNESS`, with ``trained, random, margin`` (trained − random), ``ci_low, ci_high``
        (95 % bootstrap interval of the margin), ``random_ci_low, random_ci_high``, ``trained_ci_low,
        trained_ci_high``), ``by_distance`` (DataFrame: ``model, layers_apart, r2, ci_low, ci_high``, the
        mean R² of the layer pairs that far apart with its interval), ``n_images``, ``n_held_out``,
        ``n_bootstrap``.
    """
    from . import features

    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", minimum=0)
    if np.shape(trained_local)[0] != np.shape(random_local)[0]:
        raise ValueError(
            f"'trained_local' and 'random_local' must hold the same images; they hold "
            f"{np.shape(trained_local)[0]} and {np.shape(random_local)[0]}."
        )
    parts = {
        label: features.cross_layer_parts(local, n_readouts=n_readouts, ridge=ridge, seed=seed)
        for label, local in (("trained", trained_local), ("random", random_local))
    }
    matrices = {label: features.cross_layer_r2(p) for label, p in parts.items()}
    point = {label: layer_distinctness(m) for label, m in matrices.items()}
    n_test = len(parts["trained"]["held_out"])
    rng = np.random.default_rng(seed)
    draws = {label: {q: [] for q in DISTINCTNESS} for label in parts}
    distance_draws = {label: [] for label in parts}
    for _ in range(n_bootstrap):
        counts = np.bincount(rng.integers(0, n_test, n_test), minlength=n_test)
        for label, p in parts.items():
            matrix = features.cross_layer_r2(p, counts)
            for q, value in layer_distinctness(matrix).items():
                draws[label][q].append(value)
            distance_draws[label].append(_mean_by_distance(matrix))
    rows = []
    for q in DISTINCTNESS:
        row = {
            "quantity": q,
            "trained": point["trained"][q],
            "random": point["random"][q],
            "margin": point["trained"][q] - point["random"][q],
        }
        if n_bootstrap:
            trained, random = np.array(draws["trained"][q]), np.array(draws["random"][q])
            for prefix, values in (("", trained - random), ("trained_", trained), ("random_", random)):
                row[f"{prefix}ci_low"], row[f"{prefix}ci_high"] = np.percentile(values, [2.5, 97.5])
        else:
            row.update(
                dict.fromkeys(
                    ("ci_low", "ci_high", "trained_ci_low", "trained_ci_high", "random_ci_low", "random_ci_high"),
                    np.nan,
                )
            )
        rows.append(row)
    by_distance = []
    for label, matrix in matrices.items():
        mean = _mean_by_distance(matrix)
        low, high = (
            np.percentile(distance_draws[label], [2.5, 97.5], axis=0)
            if n_bootstrap
            else (np.full(len(mean), np.nan),) * 2
        )
        by_distance += [
            {"model": label, "layers_apart": d + 1, "r2": mean[d], "ci_low": low[d], "ci_high": high[d]}
            for d in range(len(mean))
        ]
    return {
        "matrices": matrices,
        "table": pd.DataFrame(rows).set_index("quantity"),
        "by_distance": pd.DataFrame(by_distance),
        "n_images": int(np.shape(trained_local)[0]),
        "n_held_out": n_test,
        "n_bootstrap": n_bootstrap,
    }


def _mean_by_distance(matrix: np.ndarray) -> np.ndarray:
    """Mean of an (L, L) matrix over the pairs 1, 2, …, L − 1 layers apart."""
    distance = np.abs(np.subtract.outer(np.arange(len(matrix)), np.arange(len(matrix))))
    return np.array([matrix[distance == d].mean() for d in range(1, len(matrix))])


def trained_vs_random_rows(table: pd.DataFrame, *, lens: str, model: str) -> list[dict]:
    """The rows of ``headline.json``'s ``trained_vs_random`` key for the synthesis table.

    Parameters
    ----------
    table : DataFrame
        ``compare_layer_distinctness(...)["table"]``.
    lens : str
        The lens's name in the synthesis, ``synthesis.LENS_CHAPTERS["factortopy_encoding"]``.
    model : str
        What was compared, e.g. ``"dinov2_s14_saliency (a DINOv2-S/14 backbone from a saliency model)"``.

    Returns
    -------
    list of dict
        ``{"lens", "model", "quantity", "trained", "random", "margin", "ci_low", "ci_high"}``
        per quantity; ``margin`` = trained − random, its interval by paired bootstrap over held-out
        images (NaN without one).
    """
    return [
        {
            "lens": str(lens),
            "model": model,
            "quantity": DISTINCTNESS[q],
            **{k: float(row[k]) for k in ("trained", "random", "margin", "ci_low", "ci_high")},
        }
        for q, row in table.iterrows()
    ]


# --------------------------------------------------------------------------------------------------
# sentences for the chapter, chosen from the numbers

#: Mean off-diagonal cross-layer R² above which layers count as interchangeable.
INTERCHANGEABLE_R2 = 0.9
#: |β| below which the hierarchy line counts as flat (a twentieth of the ideal β = 1).
FLAT_SLOPE = 0.05


def describe_layer_distinctness(default_r2: float, chosen_r2: float, chosen_init: float) -> str:
    """Whether the layers of the default and of the chosen initialisation can be told apart."""

    def verdict(r2):
        return "nearly interchangeable" if r2 >= INTERCHANGEABLE_R2 else "distinct enough to tell apart"

    return (
        f"At the usual ViT initialisation (std 0.02) the layers predict each other with mean R² "
        f"{report.format_number(default_r2)}: they are {verdict(default_r2)}. At std "
        f"{report.format_number(chosen_init)}, the one used here, the mean R² is "
        f"{report.format_number(chosen_r2)}: they are {verdict(chosen_r2)}."
    )


def describe_trained_vs_random_layers(table: pd.DataFrame, *, model: str, brief: bool = False) -> str:
    """Whether the trained backbone's layers are more distinct than its random control's (paired bootstrap).

    Reads the ``all_pairs`` and ``adjacent`` rows of ``compare_layer_distinctness(...)["table"]``: more
    distinct when the margin's 95 % interval lies above zero, less when below, indistinguishable when it
    includes zero (or there is no interval). Each model's layers are also called nearly interchangeable
    when their mean cross-layer R² is at least :data:`INTERCHANGEABLE_R2`. ``brief`` returns the first
    sentence only.
    """
    row = table.loc["all_pairs"]
    low, high = row["ci_low"], row["ci_high"]
    interval = (
        f"difference {report.format_number(row['margin'])}, 95 % interval over held-out images "
        f"{report.format_interval(low, high)}"
        if np.isfinite(low) and np.isfinite(high)
        else f"difference {report.format_number(row['margin'])}, no interval"
    )
    if np.isfinite(low) and low > 0:
        verdict = (
            f"The trained layers of {model} are more distinct than those of the same architecture at random weights"
        )
    elif np.isfinite(high) and high < 0:
        verdict = (
            f"The trained layers of {model} are less distinct than those of the same architecture at random weights"
        )
    else:
        verdict = (
            f"The trained layers of {model} cannot be told apart from those of the same architecture at random "
            f"weights by how distinct they are"
        )

    def state(distinctness):
        r2 = 1 - distinctness
        words = "nearly interchangeable" if r2 >= INTERCHANGEABLE_R2 else "distinct enough to tell apart"
        return f"mean cross-layer R² {report.format_number(r2)}, {words}"

    adjacent = table.loc["adjacent"]
    first = (
        f"{verdict}: 1 − mean cross-layer R² is {report.format_number(row['trained'])} trained against "
        f"{report.format_number(row['random'])} random ({interval})."
    )
    if brief:
        return first
    return (
        f"{first} Trained: {state(row['trained'])}; "
        f"random: {state(row['random'])}. Between neighbouring layers alone the distinctness is "
        f"{report.format_number(adjacent['trained'])} trained and {report.format_number(adjacent['random'])} "
        f"random."
    )


def describe_hierarchy_slope(
    slope: dict | None, *, median_confidence: float, planted_slope: float | None = None
) -> str:
    """What the hierarchy slope and its interval say (sign, interval, why an interval is degenerate);
    ``slope=None``: why there is none."""
    if slope is None:
        return (
            "The subject's vertices carry no labels of V1, V2/V3, OPA or EBA (the roi_masks mapping "
            "files), so the hierarchy slope is not computed."
        )
    beta, low, high = slope["slope"], slope["slope_low"], slope["slope_high"]
    text = (
        f"The hierarchy slope is β = {report.format_number(beta)} (95 % interval over vertices "
        f"{report.format_interval(low, high)}"
    )
    text += f"; planted: {report.format_number(planted_slope)})" if planted_slope is not None else ")"
    if abs(beta) < FLAT_SLOPE:
        text += f": the line is flat (|β| < {FLAT_SLOPE:g}), so no layer hierarchy was found."
    elif low > 0:
        text += ": later ROIs choose later layers."
    elif high < 0:
        text += ": the order is reversed, later ROIs choose earlier layers."
    else:
        text += ": the interval includes zero, so no layer hierarchy was found."
    if high - low < 0.01 * max(1.0, abs(beta)) and median_confidence > 0.95:
        text += (
            f" The interval is this narrow because the layer choice of almost every vertex is hard "
            f"(median confidence {report.format_number(median_confidence)}): resampling vertices "
            f"hardly changes the fit, so it says nothing about the spread between training runs."
        )
    return text


def describe_recovery(
    recovery: pd.DataFrame,
    n_layers: int,
    *,
    slope: dict,
    position_error: float,
    scale_correlation: float,
    brief: bool = False,
) -> str:
    """Whether FactorTopy recovered the planted layers, positions and scales (synthetic subject).

    The layer hierarchy counts as recovered when the planted layer is chosen in at least 80 % of the
    named ROIs and within one layer in at least 95 %; as recovered in part when the slope's interval
    lies above zero and the within-one share beats a random layer choice; otherwise as not recovered.
    ``brief`` returns only that verdict with its counts.
    """
    named = recovery.drop(index="Unknown", errors="ignore")
    n = len(named)
    exact = int((named["planted_layer"] == named["recovered_layer"]).sum())
    within = int(named["layer_within_one"].sum())
    chance = within_one_chance(named["planted_layer"], n_layers)
    counts = (
        f"the planted layer is chosen in {report.format_count(exact, n)} named ROIs and is within one "
        f"layer in {report.format_count(within, n)} (a random choice: {report.format_percent(chance)})"
    )
    if exact >= 0.8 * n and within >= 0.95 * n:
        text = f"The layer selector recovered the planted hierarchy: {counts}."
    elif slope["slope_low"] > 0 and slope["slope"] >= FLAT_SLOPE and within / n > chance:
        text = f"The layer selector recovered the planted hierarchy only in part: {counts}."
    else:
        text = f"The layer selector did not recover the planted hierarchy: {counts}."
    if brief:
        return text
    misses = named[named["planted_layer"] != named["recovered_layer"]]
    if len(misses):
        text += (
            " Missed: "
            + report.join_words(
                f"{roi} (planted {int(r.planted_layer)}, chosen {int(r.recovered_layer)})"
                for roi, r in misses.iterrows()
            )
            + "."
        )
    scale = (
        f"correlates with the planted global share at r = {report.format_number(scale_correlation)}"
        if np.isfinite(scale_correlation)
        else "is the same for every vertex, so it does not follow the planted global share"
    )
    text += (
        f" On mostly local vertices the chosen image position lies {report.format_number(position_error)} "
        f"from the planted one (image half-width 1; one token cell 0.25), and the scale selector {scale}."
    )
    return text


def recovery_scores(table: pd.DataFrame, truth: pd.DataFrame, recovery: pd.DataFrame) -> dict:
    """Numbers of the planted-truth comparison: layer within one / exact (named ROIs), median position
    error on mostly local vertices (planted scale < 0.3), scale correlation (NaN when either is constant)."""
    named = recovery.drop(index="Unknown", errors="ignore")
    local = truth["scale"].to_numpy() < 0.3
    error = np.hypot(
        table["space_x"].to_numpy() - truth["pos_x"].to_numpy(), table["space_y"].to_numpy() - truth["pos_y"].to_numpy()
    )
    chosen, planted = table["scale"].to_numpy(float), truth["scale"].to_numpy(float)
    constant = np.ptp(chosen) == 0 or np.ptp(planted) == 0
    return {
        "within_one": float(named["layer_within_one"].mean()),
        "exact": float((named["planted_layer"] == named["recovered_layer"]).mean()),
        "position_error": float(np.median(error[local])) if local.any() else np.nan,
        "scale_correlation": np.nan if constant else float(np.corrcoef(chosen, planted)[0, 1]),
    }


def describe_backbones(backbones: pd.DataFrame, *, planting_backbone: str | None) -> str:
    """Which backbone explains the subject best; on a synthetic subject, whether it is the planting one.

    ``backbones`` is indexed by backbone label (:attr:`~neuroalign_utils.factortopy.features.BackboneSpec.label`,
    e.g. ``"vit (random)"``); ``planting_backbone`` is the label of the backbone the subject was planted from.
    """
    order = backbones["r2_mean"].sort_values(ascending=False)
    best = str(order.index[0])
    others = report.join_words(f"{name} {report.format_number(r2)}" for name, r2 in order.iloc[1:].items())
    text = f"{best} has the highest mean test R² ({report.format_number(order.iloc[0])}; {others})"
    if planting_backbone is None:
        return text + "."
    if best == planting_backbone:
        return text + ": the backbone the subject was planted from explains it best, as it should."
    return (
        text + f": not {planting_backbone}, the backbone the subject was planted from, so this "
        f"comparison cannot single out the planting backbone at this training length."
    )


#: The paper's name (paper_values.yaml keys) for each backbone of this package.
PAPER_BACKBONE = {"vit": "imagenet", "clip": "clip", "dinov2": "dinov2", "mae": "mae", "sam": "sam"}


def paper_comparison_values(backbones: pd.DataFrame, *, n_clusters: int) -> dict:
    """This run's values under the keys of ``paper_values.yaml`` (mean R², slope, b0/b1 per backbone).

    Rows are matched by their ``name`` column; backbones the paper did not use (the packaged saliency
    backbone) have no keys.
    """
    values = {"n_clusters": int(n_clusters)}
    for _, row in backbones.iterrows():
        key = PAPER_BACKBONE.get(str(row["name"]))
        if key is None:
            continue
        values[f"r2_all_{key}"] = float(row["r2_mean"])
        values[f"hierarchy_slope_{key}"] = float(row["slope"])
        if key == "imagenet":
            values.update(hierarchy_b0_imagenet=float(row["b0"]), hierarchy_b1_imagenet=float(row["b1"]))
    return values


def describe_setting(*, synthetic: bool, backbones: pd.DataFrame, size: str) -> str:
    """Why this run's numbers differ from the paper's (for the paper-vs-run table).

    Names the subject and, for each row of ``backbones`` (the comparison table, with ``name`` and
    ``weights`` columns) that the table compares with the paper, how it differs from the paper's backbone.
    """
    parts = ["synthetic subject with a planted hierarchy (planted β = 1)" if synthetic else "the reader's subject"]
    compared = backbones[backbones["name"].isin(list(PAPER_BACKBONE))]
    if not len(compared):
        return "; ".join(parts + ["none of the backbones compared here is one of the paper's"])
    for label, row in compared.iterrows():
        if row["weights"] == "pretrained":
            parts.append(f"{label}: the hub checkpoint named in the table's notes")
        else:
            size_note = f", {size} size, not the paper's base" if size != "base" else ""
            parts.append(f"{label}: random weights{size_note}")
    return "; ".join(parts)
