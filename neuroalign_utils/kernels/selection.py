"""Pick a balanced, representative subset of kernels: UMAP embedding, then K-means on the embedding.

This follows the paper's recipe for its 1,000 neural kernels (UMAP with ``n_neighbors=15``,
``min_dist=0.1``, ``spread=1``; K-means with K = 10; the 50 kernels nearest each centroid: the defaults of
:class:`SelectionSettings`), and is reused for the convolution weight kernels of the artificial models.

Reproducibility: the UMAP and K-means seeds are both derived from ``random_state``. umap-learn forces
``n_jobs=1`` whenever ``random_state`` is set (it warns about this), trading parallel speed for a
deterministic embedding; we keep that trade-off, so the same inputs and seed always give the same
selection. K-means uses a fixed ``n_init`` so its result does not depend on the library default.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._validation import check_float, check_int

logger = logging.getLogger(__name__)


class SelectionShortfallWarning(UserWarning):
    """Fewer kernels were selected than ``n_clusters × per_cluster`` asked for (too few kernels, or short
    clusters). A caller that reports the shortfall itself (from the selection's result) may ignore it."""


KMEANS_N_INIT = 10
"""Number of K-means restarts (fixed so the result never depends on the scikit-learn default)."""


@dataclass(frozen=True)
class SelectionSettings:
    """How representative kernels are chosen: a UMAP embedding, K-means on it, the members nearest each centroid.

    Values are checked when the settings are made (a clear error naming the parameter).

    Parameters
    ----------
    n_clusters : int, default=10
        K of K-means (reduced to the number of kernels, with a warning, when larger).
    per_cluster : int, default=50
        How many kernels to keep per cluster: those nearest its centroid in the UMAP embedding. A
        cluster with fewer members keeps all of them, with a warning saying how many; nothing is
        padded or duplicated.
    n_neighbors : int, default=15
        UMAP ``n_neighbors`` (capped at ``n - 1`` for small inputs, with a warning).
    min_dist : float, default=0.1
        UMAP ``min_dist``; must not exceed ``spread``.
    spread : float, default=1.0
        UMAP ``spread``.
    """

    n_clusters: int = 10
    per_cluster: int = 50
    n_neighbors: int = 15
    min_dist: float = 0.1
    spread: float = 1.0

    def __post_init__(self):
        checked = {
            "n_clusters": check_int(self.n_clusters, "n_clusters", minimum=1),
            "per_cluster": check_int(self.per_cluster, "per_cluster", minimum=1),
            "n_neighbors": check_int(self.n_neighbors, "n_neighbors", minimum=2),
        }
        checked["spread"] = check_float(self.spread, "spread", minimum=np.finfo(float).tiny)
        checked["min_dist"] = check_float(self.min_dist, "min_dist", minimum=0.0, maximum=checked["spread"])
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen: store the checked (plain int / float) values


def select_representative_kernels(
    kernels,
    settings: SelectionSettings | None = None,
    *,
    random_state: int = 0,
) -> pd.DataFrame:
    """Embed kernels with UMAP, cluster the embedding with K-means, keep the members nearest each centroid.

    Parameters
    ----------
    kernels : array-like, shape (n, h, w) or (n, d)
        The kernels (or an xarray DataArray whose first dimension indexes kernels). Each kernel is
        flattened; no normalisation is applied here (z-score beforehand if that is what you want).
    settings : SelectionSettings, optional
        Clusters, kernels per cluster and UMAP settings (default: ``SelectionSettings()``, the paper's).
    random_state : int, default=0
        Seed for UMAP and K-means. With a seed umap-learn runs with ``n_jobs=1`` (deterministic).

    Returns
    -------
    pandas.DataFrame
        One row per input kernel, in input order, with columns ``umap_x``, ``umap_y`` (embedding),
        ``cluster`` (int label), ``distance_to_centroid`` (Euclidean, in the embedding) and
        ``selected`` (bool).
    """
    flat = _as_flat_kernels(kernels)
    n_kernels = flat.shape[0]
    settings = checked_settings(settings)
    random_state = check_int(random_state, "random_state", minimum=0)
    if n_kernels < 3:
        raise ValueError(f"'kernels' must hold at least 3 kernels for UMAP; {n_kernels} were provided.")

    n_clusters, per_cluster = settings.n_clusters, settings.per_cluster
    if n_kernels < n_clusters * per_cluster:
        warnings.warn(
            f"Only {n_kernels} kernels for n_clusters * per_cluster = {n_clusters * per_cluster} requested; "
            "at most all of them can be selected (nothing is padded or duplicated).",
            SelectionShortfallWarning,
            stacklevel=2,
        )
    if n_clusters > n_kernels:
        warnings.warn(f"n_clusters={n_clusters} exceeds the {n_kernels} kernels; using {n_kernels}.", stacklevel=2)
        n_clusters = n_kernels
    embedding = _umap_embedding(flat, settings.n_neighbors, settings.min_dist, settings.spread, random_state)
    labels, distances = _kmeans_distances(embedding, n_clusters, random_state)
    selected = _nearest_per_cluster(labels, distances, per_cluster)
    return pd.DataFrame(
        {
            "umap_x": embedding[:, 0],
            "umap_y": embedding[:, 1],
            "cluster": labels.astype(int),
            "distance_to_centroid": distances,
            "selected": selected,
        }
    )


def checked_settings(settings) -> SelectionSettings:
    """``settings``, or ``SelectionSettings()`` when ``None``; a clear ``TypeError`` for anything else."""
    if settings is None:
        return SelectionSettings()
    if not isinstance(settings, SelectionSettings):
        raise TypeError(f"'settings' must be a SelectionSettings; {type(settings).__name__} was provided.")
    return settings


def _as_flat_kernels(kernels) -> np.ndarray:
    values = np.asarray(getattr(kernels, "values", kernels), dtype=np.float64)
    if values.ndim not in (2, 3):
        raise ValueError(
            f"'kernels' must have shape (n, h, w) or (n, d); an array of shape {values.shape} was provided."
        )
    flat = values.reshape(values.shape[0], -1)
    if not np.isfinite(flat).all():
        raise ValueError("'kernels' contains NaN or infinite values; drop those kernels first.")
    return flat


def _umap_embedding(flat, n_neighbors, min_dist, spread, random_state) -> np.ndarray:
    import umap  # imported lazily: slow import (numba)

    n_kernels = flat.shape[0]
    if n_neighbors >= n_kernels:
        capped = n_kernels - 1
        warnings.warn(
            f"n_neighbors={n_neighbors} is not smaller than the {n_kernels} kernels; using {capped}.",
            stacklevel=3,
        )
        n_neighbors = capped
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        spread=spread,
        random_state=random_state,
        n_jobs=1,
    )
    logger.info("UMAP on %d kernels of dimension %d", n_kernels, flat.shape[1])
    return np.asarray(reducer.fit_transform(flat), dtype=np.float64)


def _kmeans_distances(embedding, n_clusters, random_state):
    from sklearn.cluster import KMeans

    kmeans = KMeans(n_clusters=n_clusters, n_init=KMEANS_N_INIT, random_state=random_state)
    labels = kmeans.fit_predict(embedding)
    distances = np.linalg.norm(embedding - kmeans.cluster_centers_[labels], axis=1)
    return labels, distances


def _nearest_per_cluster(labels, distances, per_cluster) -> np.ndarray:
    selected = np.zeros(labels.size, dtype=bool)
    short = {}
    for cluster in np.unique(labels):
        members = np.flatnonzero(labels == cluster)
        order = members[np.argsort(distances[members], kind="stable")]
        selected[order[:per_cluster]] = True
        if members.size < per_cluster:
            short[int(cluster)] = members.size
    if short:
        warnings.warn(
            f"{len(short)} cluster(s) had fewer than per_cluster={per_cluster} members and gave all they "
            f"had (cluster: count = {short}); {int(selected.sum())} kernels selected instead of "
            f"{per_cluster * len(np.unique(labels))}. Nothing was padded or duplicated.",
            SelectionShortfallWarning,
            stacklevel=3,
        )
    return selected


# --------------------------------------------------------------------------------------------------
# how diverse a set of kernels is: mean |Pearson r| over its pairs


def abs_correlation_matrix(kernels) -> np.ndarray:
    """|Pearson r| between every two kernels, ``(n, n)`` float32 (diagonal 1; NaN rows for constant kernels).

    Parameters
    ----------
    kernels : array-like, shape (n, h, w) or (n, d)
        Kernels (or a DataArray with kernels first); each is flattened and standardised.

    Returns
    -------
    numpy.ndarray
        ``n × n`` float32 (``4 n²`` bytes: 23 MB for 2,400 kernels).
    """
    flat = _as_flat_kernels(kernels)
    centred = flat - flat.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(norms > 0, centred / norms, np.nan).astype(np.float32)
    return np.abs(unit @ unit.T)


def mean_abs_correlation(abs_r: np.ndarray, members=None) -> float:
    """Mean |r| over the distinct pairs of ``members`` (all kernels by default), from
    :func:`abs_correlation_matrix`; NaN pairs (constant kernels) are left out.

    0 for kernels that share no pattern, 1 for kernels that are copies of one another up to sign and
    scale: the lower, the more diverse the set. Sign is ignored because an ON and an OFF copy of one
    field (r = −1) are no more diverse than two ON copies.
    """
    abs_r = np.asarray(abs_r)
    if members is not None:
        members = np.asarray(members)
        index = np.flatnonzero(members) if members.dtype == bool else members
        abs_r = abs_r[np.ix_(index, index)]
    n = abs_r.shape[0]
    if n < 2:
        raise ValueError(f"mean |r| needs at least 2 kernels; {n} were given.")
    # the matrix is symmetric: the mean over the off-diagonal entries is the mean over the distinct pairs
    diagonal = np.diagonal(abs_r)
    total = np.nansum(abs_r, dtype=np.float64) - np.nansum(diagonal, dtype=np.float64)
    count = np.isfinite(abs_r).sum() - np.isfinite(diagonal).sum()
    return float(total / count) if count else float("nan")


def selection_diversity(
    kernels,
    selected,
    *,
    strata=None,
    clusters=None,
    n_random: int = 200,
    random_state: int = 0,
) -> dict:
    """Mean pairwise |r| among the selected kernels, among all kernels, and among random selections.

    The random selections draw, within each stratum (e.g. excitatory and inhibitory kernels), as many
    kernels as were selected from it, without replacement: what picking the same numbers blindly
    gives. A selection that spreads over the population's patterns has a lower mean |r| than they do.
    With ``clusters``, a second set of random selections draws as many as were selected from each
    cluster of each stratum, at random within it: the selection's balance over clusters without its
    choice of members (the paper's rule keeps those nearest the centroid).

    Parameters
    ----------
    kernels : array-like, shape (n, h, w) or (n, d)
    selected : array-like of bool, shape (n,)
    strata : array-like, shape (n,), optional
        Labels to keep the random selections' counts per label equal to the selection's; default one stratum.
    clusters : array-like, shape (n,), optional
        Cluster labels (within strata) for the second set of random selections.
    n_random : int, default=200
        Random selections drawn.
    random_state : int, default=0

    Returns
    -------
    dict
        ``selected``, ``all`` (mean |r|), ``random`` (array of ``n_random`` means), ``random_within_clusters``
        (likewise, or None without ``clusters``), ``n_selected``, ``n_all``, and ``abs_r_selected`` /
        ``abs_r_all``: the |r| of every distinct pair (for a histogram).
    """
    abs_r = abs_correlation_matrix(kernels)
    n = abs_r.shape[0]
    selected = np.asarray(selected, dtype=bool)
    if selected.shape != (n,):
        raise ValueError(f"'selected' must be {n} booleans, one per kernel; got shape {selected.shape}.")
    if selected.sum() < 2:
        raise ValueError(f"'selected' marks {int(selected.sum())} kernel(s); at least 2 are needed.")
    strata = np.zeros(n, dtype=int) if strata is None else np.asarray(strata)
    if strata.shape != (n,):
        raise ValueError(f"'strata' must hold one label per kernel ({n}); got shape {strata.shape}.")
    if clusters is not None and np.shape(clusters) != (n,):
        raise ValueError(f"'clusters' must hold one label per kernel ({n}); got shape {np.shape(clusters)}.")
    n_random = check_int(n_random, "n_random", minimum=1)
    rng = np.random.default_rng(check_int(random_state, "random_state", minimum=0))

    def random_means(labels):
        groups = [
            (rows, int(selected[rows].sum()))
            for rows in (np.flatnonzero(labels == label) for label in pd.unique(labels))
        ]
        return np.array(
            [
                mean_abs_correlation(abs_r, np.concatenate([rng.choice(rows, k, replace=False) for rows, k in groups]))
                for _ in range(n_random)
            ]
        )

    random = random_means(strata)
    within = None
    if clusters is not None:
        within = random_means(
            pd.Series(strata).astype(str).str.cat(pd.Series(clusters).astype(str), sep="/").to_numpy()
        )
    return {
        "selected": mean_abs_correlation(abs_r, selected),
        "all": mean_abs_correlation(abs_r),
        "random": random,
        "random_within_clusters": within,
        "n_selected": int(selected.sum()),
        "n_all": n,
        "abs_r_selected": abs_r[np.ix_(selected, selected)][np.triu_indices(int(selected.sum()), k=1)],
        "abs_r_all": abs_r[np.triu_indices(n, k=1)],
    }
