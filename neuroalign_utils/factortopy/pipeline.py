"""One call from a subject folder (or the synthetic default) to a trained FactorTopy model and its tables.

Used by the chapter: :func:`load_subject` (synthetic subject written on demand, or a real Algonauts
folder), :func:`fit_backbone` (cached features → trained model → per-vertex selector table), and
:func:`compare_backbones` (the same fit for several backbones, one row of R² and slope each).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import storage
from . import analysis, features, loading, model, synthetic, training

logger = logging.getLogger(__name__)


@dataclass
class Fit:
    """A fitted backbone: features, training result and the per-vertex selector table."""

    spec: features.BackboneSpec
    features: dict
    result: training.TrainingResult
    table: pd.DataFrame


def load_subject(
    data_dir: str = "",
    *,
    n_images: int = 600,
    n_vertices_per_hemisphere: int = 600,
    snr: float = 2.0,
    backbone: features.BackboneSpec | None = None,
    seed: int = 0,
):
    """The subject in ``data_dir`` (an Algonauts ``subjXX`` folder), or the synthetic one when empty.

    Returns
    -------
    subject : NSDSubject
        For the synthetic subject, its images carry the coordinates ``name`` and ``kind`` (photograph,
        crop or texture) of :func:`synthetic.load_stimuli`.
    truth : DataFrame or None
        The planted truth (synthetic subject only).
    """
    if data_dir:
        return loading.load_algonauts_subject(data_dir), None
    folder = synthetic.write_synthetic_subject(
        n_images=n_images, n_vertices_per_hemisphere=n_vertices_per_hemisphere, backbone=backbone, snr=snr, seed=seed
    )
    subject = loading.load_algonauts_subject(folder)
    stimuli = synthetic.load_stimuli(folder)
    subject.images = subject.images.assign_coords(
        name=("image", stimuli["name"].to_numpy()), kind=("image", stimuli["kind"].to_numpy())
    )
    return subject, synthetic.load_ground_truth(folder)


def backbone_images(subject: loading.NSDSubject, spec: features.BackboneSpec) -> np.ndarray:
    """The subject's images at ``spec``'s input size (resized with anti-aliasing where they differ), float32.

    Every use of a backbone's features of the subject goes through here, so they share one cache entry.
    """
    size = features.spec_input_size(spec)
    images = subject.images.values
    if images.shape[1:3] == (size, size):
        return np.asarray(images, np.float32)
    from skimage.transform import resize

    return np.stack([resize(img, (size, size), anti_aliasing=True) for img in images]).astype(np.float32)


def subject_tokens(subject: loading.NSDSubject, spec: features.BackboneSpec, rows, *, device="auto") -> np.ndarray:
    """Local tokens (len(rows), L, C, 8, 8), float16, of the subject's images ``rows`` for ``spec``.

    Read from the cached features of every image where they exist (the planting backbone's always do),
    else computed for those rows alone, which costs ``len(rows)`` forward passes, not one per image.
    Each cache scales a layer by its RMS over its own images; the cross-layer R² is blind to that scale.
    """
    images = backbone_images(subject, spec)
    rows = np.asarray(rows)
    if features.is_cached(spec, images):
        return np.asarray(features.cached_features(spec, images, device=device)["local"][rows])
    return np.array(features.cached_features(spec, images[rows], device=device)["local"])


def fit_backbone(
    subject: loading.NSDSubject,
    spec: features.BackboneSpec,
    *,
    layers=None,
    n_steps: int = 1500,
    decay_steps: int | None = None,
    lr: float = 1e-3,
    seed: int = 0,
    checkpoint_dir=None,
    device="auto",
    **options,
) -> Fit:
    """Features of ``spec`` for the subject's images (cached), then a trained FactorTopy model.

    The checkpoint is written to ``checkpoint_dir/<backbone>.pt`` when given. ``device`` (``'auto'``: a
    GPU when there is one) is where the features are computed and the model is trained.
    """
    feats = features.cached_features(spec, backbone_images(subject, spec), layers=layers, device=device)
    coords = model.hemisphere_separated_coordinates(
        subject.vertices[["x", "y", "z"]].to_numpy(), subject.vertices["hemisphere"]
    )
    checkpoint = None if checkpoint_dir is None else Path(checkpoint_dir) / f"{spec.name}.pt"
    result = training.train_factortopy(
        feats,
        subject.responses,
        coords,
        image_ids=subject.images["nsd_id"].values,
        n_steps=n_steps,
        decay_steps=decay_steps,
        lr=lr,
        seed=seed,
        checkpoint=checkpoint,
        device=device,
        **options,
    )
    table = analysis.selector_table(result.model, subject.vertices).assign(test_r2=result.test_r2)
    return Fit(spec=spec, features=feats, result=result, table=table)


def summary_row(fit: Fit) -> dict:
    """Backbone (name and weights), mean test R², hierarchy slope with its interval, b0, b1."""
    if analysis.can_fit_hierarchy(fit.table["roi"]):
        slope = analysis.hierarchy_slope(fit.table["iota"], fit.table["roi"], n_bootstrap=300)
    else:  # no ROI labels: the slope columns stay empty
        slope = dict.fromkeys(("slope", "b0", "b1", "slope_low", "slope_high"), np.nan) | {"n_vertices": 0}
    return {
        "backbone": fit.spec.label,
        "name": fit.spec.name,
        "weights": fit.spec.weights,
        "n_layers": len(fit.features["layers"]),
        "r2_mean": float(np.mean(fit.result.test_r2)),
        **slope,
        "best_step": fit.result.best_step,
    }


def compare_backbones(
    subject,
    entries,
    *,
    weights: str = "random",
    size: str = "small",
    init_range: float | None = 1.0,
    seed: int = 0,
    image_size: int | None = None,
    fitted: Fit | None = None,
    **fit_kwargs,
) -> pd.DataFrame:
    """Fit every backbone in ``entries``; one row each, indexed by :attr:`BackboneSpec.label`.

    Parameters
    ----------
    subject : NSDSubject
    entries : sequence of str
        ``"<name>"`` or ``"<name>:<weights>"`` (see :func:`features.backbone_spec`); all are checked
        before the first fit.
    weights, size, init_range, seed, image_size
        As in :func:`features.backbone_spec`: ``weights`` for bare names, ``size`` and ``init_range`` for
        the transformers architectures, ``image_size`` for the packaged models.
    fitted : Fit, optional
        A fit of one of the entries, reused instead of refitted.
    **fit_kwargs
        Passed to :func:`fit_backbone`.
    """
    specs = [
        features.backbone_spec(
            entry, weights=weights, size=size, init_range=init_range, seed=seed, image_size=image_size
        )
        for entry in entries
    ]
    rows = []
    for spec in specs:
        if fitted is not None and fitted.spec == spec:
            rows.append(summary_row(fitted))
            continue
        rows.append(summary_row(fit_backbone(subject, spec, **fit_kwargs)))
    return pd.DataFrame(rows).set_index("backbone")


def ground_truth_recovery(table: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Per ROI: planted vs recovered layer (argmax of the ROI-mean weights), scale, position error."""
    layer_cols = [c for c in table.columns if c.startswith("layer_") and c[6:].isdigit()]
    merged = table.assign(
        true_layer=truth["layer"].to_numpy(),
        true_scale=truth["scale"].to_numpy(),
        position_error=np.hypot(
            table["space_x"] - truth["pos_x"].to_numpy(), table["space_y"] - truth["pos_y"].to_numpy()
        ),
    )
    rows = []
    for roi, g in merged.groupby("roi", sort=False):
        rows.append(
            {
                "roi": roi,
                "n_vertices": len(g),
                "planted_layer": int(g["true_layer"].round().mode()[0]),
                "recovered_layer": int(np.argmax(g[layer_cols].mean().to_numpy())),
                "planted_scale": g["true_scale"].mean(),
                "recovered_scale": g["scale"].mean(),
                "median_position_error": g["position_error"].median(),
            }
        )
    out = pd.DataFrame(rows).set_index("roi")
    out["layer_within_one"] = (out["planted_layer"] - out["recovered_layer"]).abs() <= 1
    return out.sort_values(["planted_layer", "planted_scale"])


def results_paths(results_dir) -> dict:
    """Where the chapter saves its tables (one place, so the synthesis chapter can read them)."""
    results_dir = Path(results_dir)
    return {
        name: results_dir / file
        for name, file in (
            ("vertices", "vertices.parquet"),
            ("r2_per_roi", "r2_per_roi.parquet"),
            ("backbones", "backbones.parquet"),
            ("recovery", "recovery.parquet"),
            ("history", "history.parquet"),
            ("headline", "headline.json"),
            ("checkpoints", "checkpoints"),
        )
    }


def save_results(results_dir, *, fit: Fit, r2_table, backbones, recovery, headline: dict) -> dict:
    """Write the chapter's tidy results atomically; return the paths."""
    paths = results_paths(results_dir)
    for key, frame in (
        ("vertices", fit.table),
        ("r2_per_roi", r2_table),
        ("backbones", backbones),
        ("recovery", recovery),
        ("history", fit.result.history),
    ):
        if frame is None:
            continue
        with storage.atomic_path(paths[key]) as tmp:
            frame.to_parquet(tmp)
    storage.write_json(paths["headline"], headline)
    return paths
