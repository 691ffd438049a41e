"""Pick a balanced, representative subset of kernels: UMAP embedding, then K-means on the embedding.

This follows the paper's recipe for its 1,000 neural kernels (UMAP with ``n_neighbors=15``,
``min_dist=0.1``, ``spread=1``; K-means with K = 10; the 50 kernels nearest each centroid), and is
reused for the convolution weight kernels of the artificial models.

Reproducibility: the UMAP and K-means seeds are both derived from ``random_state``. umap-learn forces
``n_jobs=1`` whenever ``random_state`` is set (it warns about this), trading parallel speed for a
deterministic embedding; we keep that trade-off, so the same inputs and seed always give the same
selection. K-means uses a fixed ``n_init`` so its result does not depend on the library default.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from .._validation import check_float, check_int

logger = logging.getLogger(__name__)

class SelectionShortfallWarning(UserWarning):
    """Fewer kernels were selected than ``n_clusters × per_cluster`` asked for (too few kernels, or short
    clusters). A caller that reports the shortfall itself (from the selection's result) may ignore it."""


KMEANS_N_INIT = 10
"""Number of K-means restarts (fixed so the result never depends on the scikit-learn default)."""


def select_representative_kernels(
    kernels,
    *,
    n_clusters: int = 10,
    per_cluster: int = 50,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    spread: float = 1.0,
    random_state: int = 0,
) -> pd.DataFrame:
    """Embed kernels with UMAP, cluster the embedding with K-means, keep the members nearest each centroid.

    Parameters
    ----------
    kernels : array-like, shape (n, h, w) or (n, d)
        The kernels (or an xarray DataArray whose first dimension indexes kernels). Each kernel is
        flattened; no normalisation is applied here (z-score beforehand if that is what you want).
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
    n_clusters = check_int(n_clusters, "n_clusters", minimum=1)
    per_cluster = check_int(per_cluster, "per_cluster", minimum=1)
    n_neighbors = check_int(n_neighbors, "n_neighbors", minimum=2)
    spread = check_float(spread, "spread", minimum=np.finfo(float).tiny)
    min_dist = check_float(min_dist, "min_dist", minimum=0.0, maximum=spread)
    random_state = check_int(random_state, "random_state", minimum=0)
    if n_kernels < 3:
        raise ValueError(f"'kernels' must hold at least 3 kernels for UMAP; {n_kernels} were provided.")

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
    embedding = _umap_embedding(flat, n_neighbors, min_dist, spread, random_state)
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
