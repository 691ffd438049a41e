"""A synthetic Allen Brain Observatory cache, in the real release's on-disk format.

:func:`make_synthetic_cache` writes a folder that
``allensdk.core.brain_observatory_cache.BrainObservatoryCache`` opens unchanged: ``manifest.json``
(version 1.3), the four metadata JSON files and one NWB v1 (HDF5) file per ``three_session_B``
experiment, holding dF/F, corrected-fluorescence inputs (demixed signal, neuropil and its ``r``),
the natural-scenes stimulus table and template, running speed and, for every other experiment, pupil
size and location. Everything is deterministic from ``seed``.

The planted ground truth (each cell's receptive field, gain, latency, responsiveness and the scene it
prefers) is written **beside** the cache, in ``<root>/planted_truth/``, never inside allensdk's files:
the loaders must not know the data is synthetic.

Model of a cell (all numbers are documented parameters of :data:`AREA_RF`, :data:`CLASS_RF` and
:func:`make_synthetic_cache`):

* Receptive field (:func:`planted_rf_maps`), one of two shapes, as mouse V1 and higher visual areas
  (HVAs) have both: **Gabor-like** (an elongated Gaussian envelope times a grating: orientation,
  spatial frequency, phase; simple-cell-like fields with ON and OFF subfields, Niell & Stryker 2008)
  or **blob-like** (a difference of Gaussians: an ON or OFF centre with a weaker, wider surround;
  single-subfield fields). Every cell draws its own centre, envelope width, elongation, orientation,
  spatial frequency, phase and polarity (ON +1 / OFF −1), from distributions that depend on the area
  and the Cre line: fields grow up the hierarchy (VISp smallest, VISam largest) and HVAs' fields of
  view cover more of the visual field; VISl, VISal, VISrl and VISam prefer lower spatial frequencies
  than VISp and VISpm (Marshel et al. 2011; Andermann et al. 2011); inhibitory cells (Sst, Vip,
  Pvalb) have larger, rounder, less orientation-selective fields (mostly blobs, lower spatial
  frequency; Niell & Stryker 2008; Liu et al. 2009); layer-5/6 lines have larger fields. Each
  experiment's field of view sits at its own retinotopic position around the area's centre, and its
  cells scatter around that.
* Drive to scene *s*: the signed field's dot product with the scene's contrast (scene minus the mean
  scene), z-scored over the 118 scenes; response amplitude ``gain · max(z − 1, 0)`` (rectification), times
  trial-to-trial log-normal gain noise and a running modulation.
* The amplitude drives a 250 ms boxcar delayed by an area-specific latency, convolved with a
  GCaMP-like kernel (rise 50 ms; decay 0.4 s for GCaMP6f, 1.0 s for GCaMP6s); white noise is added.
  A fraction of cells is unresponsive (gain 0).
* Fluorescence: ``F = F0 · (1 + dF/F)``; neuropil ``N`` is a slow random signal; the demixed trace
  is ``F + r · N`` so that allensdk's corrected fluorescence ``demixed − r · neuropil`` equals ``F``.

Disk: the real template stack is 118 × 918 × 1174 uint8 (127 MB) inside every NWB file. Here it is
written at ``template_scale`` of that resolution (default 0.125 → 115 × 147), gzip-compressed and chunked
one scene per chunk. Traces are float32 through HDF5's scale-offset filter (lossy: dF/F kept to 0.001,
fluorescence to 0.1, far below the noise) and gzip, one cell per chunk; the frame timestamps are stored
once and hard-linked into every time series. The default cache (60 experiments, about 2,400 cells)
takes about 500 MB.

Size (:data:`SIZES`): ``size="book"``, the default, keeps experiments small enough for Binder: 60 cells
per excitatory experiment and a session holding only the natural-scenes presentations (about 25
minutes). ``size="paper"`` writes experiments the size of the release's: about 170 cells per
excitatory experiment (the release's typical count; inhibitory ones half) and a full-length
``three_session_B`` session of 115,000 two-photon frames (64 minutes at 30 Hz) in which the
natural-scenes presentations fall in three epochs, placed where the release's session puts them; the
other stimuli of the session (static gratings, natural movie one, spontaneous gray screen) are not
simulated: there the cells show only their noise and running modulation is absent. Its scene template
is stored at a quarter of the real resolution. Cells are simulated and written a block at a time
(:data:`SIMULATED_SAMPLES` samples), so memory stays bounded whatever the session's length.

Population: experiments go to the class (excitatory or inhibitory Cre lines) with fewer cells so far,
so the two classes come out about equal in size, as the paper's balanced selection of 500 + 500
kernels needs; within a class, experiments cycle through its Table S1 genotypes (in a random order)
and through :data:`AREA_CYCLE` (every area, then VISp and VISl again: VISp is the most recorded area,
as in the release). Inhibitory experiments hold half as many cells as excitatory ones, as in the
release, so there are about twice as many of them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .. import storage
from .._validation import check_float, check_in_allowed, check_int
from ..images import natural_image_set
from ..progress import progress_bar
from . import metadata

logger = logging.getLogger(__name__)

#: Real template geometry (scenes, height, width).
TEMPLATE_SHAPE = (118, 918, 1174)
FRAME_RATE = 30.0  # 2-photon frames per second
PRESENTATION_S = 0.25
MANIFEST_VERSION = "1.3"
SESSION_TYPE = "three_session_B"

#: Planted receptive fields and responses per area. ``sigma``: median envelope width (SD across the
#: grating or of a blob's centre, fraction of the image width), growing up the hierarchy; ``sf``: median
#: spatial frequency of Gabor-like fields (cycles per image width; VISl, VISal, VISrl and VISam prefer
#: lower ones than VISp and VISpm); ``gabor``: share of Gabor-like fields among excitatory cells (the
#: rest are blobs); ``scatter``: SD of RF centres around their field of view's centre (fraction of the
#: width; an HVA's field of view covers more of the visual field); ``latency``: response latency (s);
#: ``x, y``: the area's retinotopic centre (fractions of width, height).
AREA_RF: dict[str, dict[str, float]] = {
    "VISp": {"sigma": 0.05, "sf": 4.5, "gabor": 0.7, "scatter": 0.08, "latency": 0.05, "x": 0.50, "y": 0.50},
    "VISl": {"sigma": 0.07, "sf": 3.5, "gabor": 0.65, "scatter": 0.10, "latency": 0.07, "x": 0.35, "y": 0.50},
    "VISal": {"sigma": 0.08, "sf": 2.5, "gabor": 0.55, "scatter": 0.10, "latency": 0.06, "x": 0.60, "y": 0.40},
    "VISrl": {"sigma": 0.09, "sf": 2.5, "gabor": 0.55, "scatter": 0.11, "latency": 0.08, "x": 0.55, "y": 0.65},
    "VISpm": {"sigma": 0.10, "sf": 4.5, "gabor": 0.6, "scatter": 0.12, "latency": 0.03, "x": 0.45, "y": 0.35},
    "VISam": {"sigma": 0.12, "sf": 2.0, "gabor": 0.5, "scatter": 0.12, "latency": 0.15, "x": 0.50, "y": 0.55},
}
#: How a Cre line changes its area's fields: ``size`` and ``sf`` multiply the area's ``sigma`` and
#: ``sf``, ``gabor`` its Gabor share; ``aspect``: median elongation of a Gabor envelope (length along the
#: bars over ``sigma``); ``surround``: largest surround strength of a blob (relative to the centre).
#: Inhibitory cells are broader and less selective (Niell & Stryker 2008; Liu et al. 2009); layer-5/6
#: lines have larger fields.
CLASS_RF: dict[str, dict[str, float]] = {
    "excitatory": {"size": 1.0, "sf": 1.0, "gabor": 1.0, "aspect": 1.6, "surround": 0.9},
    "deep": {"size": 1.2, "sf": 0.85, "gabor": 1.0, "aspect": 1.6, "surround": 0.9},
    "inhibitory": {"size": 1.4, "sf": 0.75, "gabor": 0.35, "aspect": 1.15, "surround": 0.5},
}
#: Spread (SD of the log) of the envelope width and spatial frequency within an area and line.
SIZE_LOG_SD, SF_LOG_SD = 0.25, 0.25
#: Largest |centre − 0.5| of an experiment's field of view, and of an RF centre (fractions of width, height).
FOV_RANGE, RF_RANGE = 0.3, 0.42
#: Version of the planted-population model; part of the cache's key, so a changed model is never read
#: from an old cache.
MODEL_VERSION = 2
#: Areas of a class's successive experiments: every area once, then VISp and VISl again (the release
#: records VISp most; Jalil et al. Fig. S1).
AREA_CYCLE: tuple[str, ...] = ("VISp", "VISl", "VISal", "VISpm", "VISam", "VISrl", "VISp", "VISl", "VISp")
_DEEP_LINES = ("Rbp4", "Fezf2", "Tlx3", "Ntsr1")
_DEPTHS = {  # imaging depths (µm) by Cre line, as in the release
    "Cux2": (175, 225, 275),
    "Emx1": (175, 275, 375),
    "Slc17a7": (175, 275, 375),
    "Rorb": (275, 325),
    "Scnn1a": (325, 350),
    "Nr5a1": (300, 350),
    "Rbp4": (375, 425),
    "Fezf2": (425, 450),
    "Tlx3": (375, 425),
    "Ntsr1": (550, 625),
    "Sst": (275, 300),
    "Vip": (175, 200),
    "Pvalb": (275, 375),
}
_DEVICE = "Nikon A1R-MP multiphoton microscope. CAM2P.1 Please see protocols for details"


#: Presets of :func:`make_synthetic_cache`'s ``size``: the book's (small) and the release's scale.
#: ``session_frames``: two-photon frames of a session, or None for a session that holds only the
#: natural-scenes presentations (2 s before the first, 4 s after the last).
SIZES: dict[str, dict] = {
    "book": {"cells_per_experiment": 60, "n_repeats": 50, "template_scale": 0.125, "session_frames": None},
    "paper": {"cells_per_experiment": 170, "n_repeats": 50, "template_scale": 0.25, "session_frames": 115_000},
}
#: Where the three natural-scenes epochs of a full ``three_session_B`` session start (fraction of the
#: session): after the first static gratings, after the spontaneous gray screen, after natural movie one.
SESSION_B_EPOCHS = (0.128, 0.334, 0.666)
#: Cells × frames simulated at a time when writing an experiment (bounds the writer's memory).
SIMULATED_SAMPLES = 2**23


def default_cache_dir(seed: int = 0, **size) -> Path:
    """Folder of the default synthetic cache for these settings (under the neuroalign data folder)."""
    key = storage.content_key({"seed": seed, "model_version": MODEL_VERSION, **size})
    return storage.get_data_dir() / "allen_synthetic" / key


def make_synthetic_cache(
    root=None,
    *,
    size: str = "book",
    n_experiments: int = 60,
    cells_per_experiment: int | None = None,
    n_repeats: int | None = None,
    template_scale: float | None = None,
    responsive_fraction: float = 0.75,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic Brain Observatory cache and return the path of its ``manifest.json``.

    Parameters
    ----------
    root : path, optional
        Folder to write; the allensdk cache is ``<root>/brain_observatory`` and the planted truth
        ``<root>/planted_truth``. Default: :func:`default_cache_dir` of these settings.
    size : {"book", "paper"}, default="book"
        Preset of the experiments' size (:data:`SIZES`, module docstring): ``"paper"`` writes release-sized
        experiments (about 170 cells, full-length 115,000-frame sessions). ``cells_per_experiment``,
        ``n_repeats`` and ``template_scale`` override the preset's values.
    n_experiments : int, default=60
        ``three_session_B`` experiments (one mouse and container each), given to the class with fewer
        cells so far; within a class, areas cycle through :data:`AREA_CYCLE` and genotypes through
        Table S1 (≥ 57 experiments cover every genotype). The default gives about 1,200 cells per
        class: enough for the paper's 10 clusters × 50 kernels per class even when clusters are unequal.
    cells_per_experiment : int, optional
        Mean cells per excitatory experiment; inhibitory ones get half, as in the release. Default: the
        preset's (60 for ``"book"``, 170 for ``"paper"``).
    n_repeats : int, optional
        Presentations of each scene; a blank is inserted after about every 100 presentations. Default 50.
    template_scale : float, optional
        Resolution of the stored template relative to the real 918 × 1174 (default 0.125 for ``"book"``,
        0.25 for ``"paper"``).
    responsive_fraction : float, default=0.75
        Fraction of cells with a non-zero gain.
    seed : int, default=0
    overwrite : bool, default=False
        Rewrite even if a complete cache exists.

    Returns
    -------
    pathlib.Path
        ``<root>/brain_observatory/manifest.json``.
    """
    preset = SIZES[check_in_allowed(size, "size", SIZES)]
    n_experiments = check_int(n_experiments, "n_experiments", minimum=1)
    cells_per_experiment = check_int(
        preset["cells_per_experiment"] if cells_per_experiment is None else cells_per_experiment,
        "cells_per_experiment",
        minimum=2,
    )
    n_repeats = check_int(preset["n_repeats"] if n_repeats is None else n_repeats, "n_repeats", minimum=2)
    template_scale = check_float(
        preset["template_scale"] if template_scale is None else template_scale,
        "template_scale",
        minimum=0.02,
        maximum=1.0,
    )
    responsive_fraction = check_float(responsive_fraction, "responsive_fraction", minimum=0.0, maximum=1.0)
    seed = check_int(seed, "seed", minimum=0)
    settings = dict(
        n_experiments=n_experiments,
        cells_per_experiment=cells_per_experiment,
        n_repeats=n_repeats,
        template_scale=template_scale,
        responsive_fraction=responsive_fraction,
    )
    if preset["session_frames"] is not None:  # the book's caches keep the key (and folder) they always had
        settings["session_frames"] = preset["session_frames"]
    root = Path(root) if root is not None else default_cache_dir(seed, **settings)
    manifest = root / "brain_observatory" / "manifest.json"
    done = root / "COMPLETE.json"
    if (
        storage.folder_is_intact(root)
        and not overwrite
        and json.loads(done.read_text()) == {"seed": seed, "model_version": MODEL_VERSION, **settings}
    ):
        return manifest
    if root.exists():
        logger.info("rebuilding %s: its files are incomplete or changed", root)

    with storage.atomic_path(root, is_dir=True) as tmp:
        _write_cache(tmp, seed=seed, **{"session_frames": None, **settings})
        (tmp / "COMPLETE.json").write_text(
            json.dumps({"seed": seed, "model_version": MODEL_VERSION, **settings}, sort_keys=True)
        )
    logger.info("wrote synthetic Allen cache to %s", root)
    return manifest


# --------------------------------------------------------------------------------------------------
# the planted population


def _experiment_table(n_experiments: int, cells_per_experiment: int, rng) -> pd.DataFrame:
    """Experiments, each given to the class with fewer cells so far (module docstring: Population)."""
    by_class = {"excitatory": [], "inhibitory": []}
    for abbreviation, genotype in metadata.GENOTYPES.items():
        by_class[metadata.cell_class(metadata.cre_full_name(genotype))].append(abbreviation)
    order = {c: [names[i] for i in rng.permutation(len(names))] for c, names in by_class.items()}
    n_cells_so_far = {"excitatory": 0, "inhibitory": 0}
    n_experiments_so_far = {"excitatory": 0, "inhibitory": 0}
    rows = []
    for i in range(n_experiments):
        cell_class = "inhibitory" if n_cells_so_far["inhibitory"] < n_cells_so_far["excitatory"] else "excitatory"
        k = n_experiments_so_far[cell_class]
        abbreviation = order[cell_class][k % len(order[cell_class])]
        genotype = metadata.GENOTYPES[abbreviation]
        cre = metadata.cre_full_name(genotype)
        short = metadata.cre_short_name(cre)
        mean_cells = cells_per_experiment / 2 if cell_class == "inhibitory" else cells_per_experiment
        n_cells = int(np.clip(rng.poisson(mean_cells), max(2, mean_cells // 2), 2 * mean_cells))
        n_cells_so_far[cell_class] += n_cells
        n_experiments_so_far[cell_class] += 1
        rows.append(
            {
                "experiment_id": 500_000_000 + 1000 * i + int(rng.integers(1000)),
                "experiment_container_id": 600_000_000 + 1000 * i + int(rng.integers(1000)),
                "specimen_id": 700_000_000 + 1000 * i,
                "area": AREA_CYCLE[k % len(AREA_CYCLE)],
                "genotype": genotype,
                "genotype_abbreviation": abbreviation,
                "cre_line": cre,
                "cre": short,
                "reporter_line": metadata.reporter_name(genotype),
                "indicator": metadata.indicator_name(genotype),
                "imaging_depth": int(rng.choice(_DEPTHS[short])),
                "n_cells": n_cells,
                "has_eye_tracking": i % 2 == 0,
                "age_days": int(rng.integers(80, 130)),
                "sex": str(rng.choice(["male", "female"])),
            }
        )
    return pd.DataFrame(rows)


def _line_rf(cre: str) -> dict[str, float]:
    if cre in metadata.INHIBITORY_CRE:
        return CLASS_RF["inhibitory"]
    return CLASS_RF["deep"] if cre in _DEEP_LINES else CLASS_RF["excitatory"]


def _cell_table(experiments: pd.DataFrame, responsive_fraction: float, rng) -> pd.DataFrame:
    rows = []
    cell_id = 517_000_000
    for exp in experiments.itertuples():
        area, line = AREA_RF[exp.area], _line_rf(exp.cre)
        fov_x = np.clip(area["x"] + rng.normal(0, 0.1), 0.5 - FOV_RANGE, 0.5 + FOV_RANGE)
        fov_y = np.clip(area["y"] + rng.normal(0, 0.1), 0.5 - FOV_RANGE, 0.5 + FOV_RANGE)
        for _ in range(exp.n_cells):
            cell_id += int(rng.integers(1, 50))
            responsive = bool(rng.random() < responsive_fraction)
            gabor = bool(rng.random() < area["gabor"] * line["gabor"])
            rows.append(
                {
                    "cell_specimen_id": cell_id,
                    "experiment_id": exp.experiment_id,
                    "rf_shape": "gabor" if gabor else "blob",
                    "rf_x": float(np.clip(fov_x + rng.normal(0, area["scatter"]), 0.5 - RF_RANGE, 0.5 + RF_RANGE)),
                    "rf_y": float(np.clip(fov_y + rng.normal(0, area["scatter"]), 0.5 - RF_RANGE, 0.5 + RF_RANGE)),
                    "rf_sigma": float(area["sigma"] * line["size"] * rng.lognormal(0, SIZE_LOG_SD)),
                    "polarity": int(rng.choice([1, -1])),
                    # Gabor-like fields only (NaN for blobs)
                    "rf_orientation": float(rng.uniform(0, np.pi)) if gabor else np.nan,
                    "rf_sf": float(area["sf"] * line["sf"] * rng.lognormal(0, SF_LOG_SD)) if gabor else np.nan,
                    "rf_phase": float(rng.uniform(0, np.pi)) if gabor else np.nan,
                    "rf_aspect": float(np.clip(line["aspect"] * rng.lognormal(0, 0.2), 1.0, 3.0)) if gabor else np.nan,
                    # blob-like fields only (NaN for Gabors)
                    "rf_surround_scale": np.nan if gabor else float(rng.uniform(2.0, 3.0)),
                    "rf_surround_strength": np.nan if gabor else float(rng.uniform(0.0, line["surround"])),
                    "gain": float(rng.lognormal(np.log(0.3), 0.4)) if responsive else 0.0,
                    "responsive": responsive,
                    "latency_s": float(area["latency"] + abs(rng.normal(0, 0.01))),
                    "noise_sd": float(rng.uniform(0.02, 0.05)),
                    "baseline_f": float(rng.lognormal(np.log(300), 0.3)),
                    "neuropil_r": float(rng.uniform(0.6, 0.8)),
                    "run_modulation": float(rng.normal(0.2, 0.1)),
                }
            )
    return pd.DataFrame(rows)


#: Cells per block when planted fields are drawn on a grid (bounds the memory of the temporaries).
_RF_BLOCK = 256


def planted_rf_maps(cells: pd.DataFrame, shape) -> np.ndarray:
    """The planted receptive fields on a ``(height, width)`` grid, signed, each of unit Euclidean norm.

    A Gabor-like field (``rf_shape == "gabor"``) at ``(rf_x, rf_y)`` is
    ``exp(−u²/2σ² − v²/2(aσ)²) · cos(2π f u + φ)``, with ``u`` across the grating (orientation θ =
    ``rf_orientation``, radians, the direction of the grating's modulation), ``v`` along its bars,
    σ = ``rf_sigma``, a = ``rf_aspect``, f = ``rf_sf`` (cycles per image width) and φ = ``rf_phase``.
    A blob-like field is a difference of Gaussians ``G(σ)/ΣG(σ) − s · G(kσ)/ΣG(kσ)`` with
    k = ``rf_surround_scale`` and s = ``rf_surround_strength``. Distances are in units of the image
    width; each field is multiplied by ``polarity`` (+1 ON, −1 OFF) and scaled to unit norm (the writer
    z-scores each cell's drive, so the scale plays no role there).

    Parameters
    ----------
    cells : pandas.DataFrame
        Rows of the planted truth (``planted_truth/cells.parquet``).
    shape : (int, int)

    Returns
    -------
    numpy.ndarray of shape (n_cells, height, width)
    """
    h, w = shape
    out = np.empty((len(cells), h, w))
    for start in range(0, len(cells), _RF_BLOCK):
        out[start : start + _RF_BLOCK] = _rf_block(cells.iloc[start : start + _RF_BLOCK], h, w)
    return out


def _rf_block(cells: pd.DataFrame, h: int, w: int) -> np.ndarray:
    def column(part, name):
        return part[name].to_numpy(dtype=np.float64)[:, None, None]

    def offsets(part):  # distances from each field's centre, in units of the image width
        y = ((np.arange(h) + 0.5) / w)[None, :, None]
        x = ((np.arange(w) + 0.5) / w)[None, None, :]
        return x - column(part, "rf_x"), y - column(part, "rf_y") * h / w

    def gabor(part):
        dx, dy = offsets(part)
        theta, sigma = column(part, "rf_orientation"), column(part, "rf_sigma")
        u = dx * np.cos(theta) + dy * np.sin(theta)  # across the grating
        v = -dx * np.sin(theta) + dy * np.cos(theta)  # along its bars
        envelope = np.exp(-(u**2) / (2 * sigma**2) - v**2 / (2 * (column(part, "rf_aspect") * sigma) ** 2))
        return envelope * np.cos(2 * np.pi * column(part, "rf_sf") * u + column(part, "rf_phase"))

    def blob(part):
        dx, dy = offsets(part)
        r2, sigma = dx**2 + dy**2, column(part, "rf_sigma")
        centre = np.exp(-r2 / (2 * sigma**2))
        surround = np.exp(-r2 / (2 * (column(part, "rf_surround_scale") * sigma) ** 2))
        return centre / centre.sum(axis=(1, 2), keepdims=True) - column(
            part, "rf_surround_strength"
        ) * surround / surround.sum(axis=(1, 2), keepdims=True)

    field = np.empty((len(cells), h, w))
    is_gabor = (cells["rf_shape"] == "gabor").to_numpy()
    for rows, draw in ((is_gabor, gabor), (~is_gabor, blob)):
        if rows.any():
            field[rows] = draw(cells[rows])
    field /= np.sqrt((field**2).sum(axis=(1, 2), keepdims=True))
    return field * column(cells, "polarity")


def _scene_amplitudes(cells: pd.DataFrame, scenes: np.ndarray) -> np.ndarray:
    """Mean response amplitude (dF/F) of each cell to each scene, (n_cells, n_scenes)."""
    contrast = (scenes - scenes.mean(axis=0, keepdims=True)).reshape(len(scenes), -1)
    drive = np.concatenate(
        [  # block by block: the fields of all cells at the scenes' size would be large
            planted_rf_maps(block, scenes.shape[1:]).reshape(len(block), -1) @ contrast.T
            for block in (cells.iloc[start : start + _RF_BLOCK] for start in range(0, len(cells), _RF_BLOCK))
        ]
    )
    z = (drive - drive.mean(axis=1, keepdims=True)) / (drive.std(axis=1, keepdims=True) + 1e-12)
    return cells["gain"].to_numpy()[:, None] * np.maximum(z - 1.0, 0.0)


def _calcium_kernel(indicator: str) -> np.ndarray:
    t = np.arange(int(4 * FRAME_RATE)) / FRAME_RATE
    decay = 1.0 if indicator == "GCaMP6s" else 0.4
    k = np.exp(-t / decay) - np.exp(-t / 0.05)
    return k / k.max()


# --------------------------------------------------------------------------------------------------
# writing


def _write_cache(
    root: Path,
    *,
    n_experiments,
    cells_per_experiment,
    n_repeats,
    template_scale,
    responsive_fraction,
    session_frames,
    seed,
) -> None:
    rng = np.random.default_rng(seed)
    experiments = _experiment_table(n_experiments, cells_per_experiment, rng)
    cells = _cell_table(experiments, responsive_fraction, rng)

    shape = (round(TEMPLATE_SHAPE[1] * template_scale), round(TEMPLATE_SHAPE[2] * template_scale))
    images = natural_image_set(TEMPLATE_SHAPE[0], shape, random_state=seed)
    template = np.round(images.values * 255).astype(np.uint8)
    work = _block_mean(template.astype(np.float64) / 255, max(1, shape[0] // 60))
    amplitudes = _scene_amplitudes(cells, work)
    cells["preferred_scene"] = amplitudes.argmax(axis=1)
    cells["preferred_amplitude"] = amplitudes.max(axis=1)

    cache = root / "brain_observatory"
    (cache / "ophys_experiment_data").mkdir(parents=True)
    _write_manifest(cache / "manifest.json")
    _write_metadata_json(cache, experiments, cells)
    for exp in progress_bar(list(experiments.itertuples()), desc="synthetic Allen experiments", leave=False):
        exp_cells = cells[cells.experiment_id == exp.experiment_id]
        exp_rng = np.random.default_rng([seed, int(exp.experiment_id)])
        peaks = _write_nwb(
            cache / "ophys_experiment_data" / f"{exp.experiment_id}.nwb",
            exp,
            exp_cells,
            amplitudes[exp_cells.index.to_numpy()],
            template,
            n_repeats,
            session_frames,
            exp_rng,
        )
        cells.loc[exp_cells.index, "planted_time_to_peak_s"] = peaks

    truth = root / "planted_truth"
    truth.mkdir()
    cells.to_parquet(truth / "cells.parquet")
    experiments.to_parquet(truth / "experiments.parquet")
    np.save(truth / "scene_amplitudes.npy", amplitudes)
    storage.write_json(
        truth / "README.json",
        {
            "cells.parquet": "planted receptive field (rf_shape gabor or blob; rf_x, rf_y as fractions of "
            "width/height; rf_sigma as fraction of width; polarity; Gabors: rf_orientation and rf_phase in "
            "radians, rf_sf in cycles per image width, rf_aspect; blobs: rf_surround_scale, "
            "rf_surround_strength; formulas in neuroalign_utils.allen.synthetic.planted_rf_maps), gain, "
            "responsiveness, latency, preferred scene",
            "scene_amplitudes.npy": "(cell, scene) noiseless mean response amplitude (dF/F) in cell order",
            "template_shape": list(template.shape),
        },
    )


def _block_mean(stack: np.ndarray, factor: int) -> np.ndarray:
    n, h, w = stack.shape
    h2, w2 = h // factor, w // factor
    return stack[:, : h2 * factor, : w2 * factor].reshape(n, h2, factor, w2, factor).mean(axis=(2, 4))


def _write_manifest(path: Path) -> None:
    def entry(key, spec, parent="BASEDIR"):
        return {"key": key, "type": "file", "spec": spec, "parent_key": parent}

    manifest = {
        "manifest": [
            {"type": "manifest_version", "value": MANIFEST_VERSION},
            {"key": "BASEDIR", "type": "dir", "spec": "."},
            entry("EXPERIMENT_CONTAINERS", "experiment_containers.json"),
            entry("EXPERIMENTS", "ophys_experiments.json"),
            entry("EXPERIMENT_DATA", "ophys_experiment_data/%d.nwb"),
            entry("ANALYSIS_DATA", "ophys_experiment_analysis/%d_%s_analysis.h5"),
            entry("EVENTS_DATA", "ophys_experiment_events/%d_events.npz"),
            entry("CELL_SPECIMENS", "cell_specimens.json"),
            entry("STIMULUS_MAPPINGS", "stimulus_mappings.json"),
            entry("EYE_GAZE_DATA", "ophys_eye_gaze_mapping/%d_eyetracking_dlc_to_screen_mapping.h5"),
        ]
    }
    path.write_text(json.dumps(manifest, indent=2))


def _specimen(exp) -> dict:
    birth = dt.date(2016, 1, 1) + dt.timedelta(days=int(exp.experiment_id % 200))
    return {
        "id": int(exp.specimen_id),
        "name": f"{exp.cre}-{exp.specimen_id}",
        "donor": {
            "external_donor_name": str(exp.specimen_id % 1_000_000),
            "date_of_birth": birth.isoformat() + "T00:00:00Z",
            "full_genotype": exp.genotype,
            "conditions": [],
            "transgenic_lines": [
                {"name": exp.cre_line, "transgenic_line_type_name": "driver"},
                {"name": exp.reporter_line, "transgenic_line_type_name": "reporter"},
            ],
        },
    }


def _acquisition_date(exp) -> str:
    birth = dt.date(2016, 1, 1) + dt.timedelta(days=int(exp.experiment_id % 200))
    return (birth + dt.timedelta(days=exp.age_days)).isoformat() + "T12:00:00Z"


def _write_metadata_json(cache: Path, experiments: pd.DataFrame, cells: pd.DataFrame) -> None:
    containers, exps = [], []
    for exp in experiments.itertuples():
        structure = {"acronym": exp.area}
        containers.append(
            {
                "id": int(exp.experiment_container_id),
                "imaging_depth": exp.imaging_depth,
                "targeted_structure": structure,
                "specimen": _specimen(exp),
                "failed": False,
            }
        )
        exps.append(
            {
                "id": int(exp.experiment_id),
                "experiment_container_id": int(exp.experiment_container_id),
                "imaging_depth": exp.imaging_depth,
                "targeted_structure": structure,
                "stimulus_name": SESSION_TYPE,
                "date_of_acquisition": _acquisition_date(exp),
                "experiment_container": {"id": int(exp.experiment_container_id), "failed": False},
                "specimen": _specimen(exp),
            }
        )
    by_exp = experiments.set_index("experiment_id")
    metrics = (
        "peak_dff_ns",
        "time_to_peak_ns",
        "pref_image_ns",
        "image_sel_ns",
        "p_ns",
        "reliability_ns",
        "run_mod_ns",
        "p_run_mod_ns",
    )
    specimens = []
    for cell in cells.itertuples():
        exp = by_exp.loc[cell.experiment_id]
        specimens.append(
            {
                "cell_specimen_id": int(cell.cell_specimen_id),
                "experiment_container_id": int(exp.experiment_container_id),
                "specimen_id": int(exp.specimen_id),
                "area": exp.area,
                "tld1_name": exp.cre_line,
                "tld2_name": exp.reporter_line,
                "imaging_depth": int(exp.imaging_depth),
                "donor_full_genotype": exp.genotype,
                "failed_experiment_container": False,
                # metrics are computed by the reader (neuroalign_utils.allen.responses); empty here
                **{m: None for m in metrics},
            }
        )
    (cache / "experiment_containers.json").write_text(json.dumps(containers))
    (cache / "ophys_experiments.json").write_text(json.dumps(exps))
    (cache / "cell_specimens.json").write_text(json.dumps(specimens))
    (cache / "stimulus_mappings.json").write_text("[]")


def _stimulus_table(n_scenes: int, n_repeats: int, session_frames, rng) -> tuple[np.ndarray, np.ndarray, int]:
    """Scene index per presentation (−1 = blank), its start frame (2-photon frames) and the session's frames.

    Without ``session_frames`` the presentations follow each other from 2 s into the session, which
    ends 4 s after the last; with it they are split into the three epochs of :data:`SESSION_B_EPOCHS`.
    """
    order = rng.permutation(np.repeat(np.arange(n_scenes), n_repeats))
    blanks = np.arange(100, len(order), 100) + rng.integers(-10, 10, size=len(range(100, len(order), 100)))
    frames = np.insert(order, np.sort(blanks), -1)
    if session_frames is None:
        epochs = [np.arange(len(frames))]
        firsts = [int(2 * FRAME_RATE)]
    else:
        epochs = np.array_split(np.arange(len(frames)), len(SESSION_B_EPOCHS))
        firsts = [int(f * session_frames) for f in SESSION_B_EPOCHS]
    starts = np.concatenate(
        [
            first + np.floor(np.arange(len(rows)) * PRESENTATION_S * FRAME_RATE).astype(int)
            for first, rows in zip(firsts, epochs)
        ]
    )
    n_frames = int(starts[-1] + 4 * FRAME_RATE)
    if session_frames is not None:
        if n_frames > session_frames or np.any(np.diff(starts) <= 0):
            raise ValueError(
                f"{len(frames)} presentations do not fit the three natural-scenes epochs of a {session_frames}-frame "
                "session; lower 'n_repeats'."
            )
        n_frames = int(session_frames)
    return frames, starts, n_frames


def _write_nwb(path, exp, cells, amplitudes, template, n_repeats, session_frames, rng) -> np.ndarray:
    """Write one NWB v1 file, a block of cells at a time; return each cell's noiseless time to peak (s)."""
    import h5py

    scenes, starts, n_frames = _stimulus_table(template.shape[0], n_repeats, session_frames, rng)
    running = _running_speed(n_frames, rng)
    run_state = (running > 1.0).astype(float)
    per_block = max(1, SIMULATED_SAMPLES // n_frames)
    peaks = []
    with h5py.File(path, "w") as f:
        _write_session(f, exp)
        datasets = _create_traces(f, cells, n_frames)
        for rows in storage.chunk_slices(len(cells), per_block):
            traces = _simulate_traces(exp, cells.iloc[rows], amplitudes[rows], scenes, starts, n_frames, run_state, rng)
            for name, dataset in datasets.items():
                dataset[rows] = traces[name].astype(np.float32)
            peaks.append(traces["peaks"])
        f[f"{_PIPELINE}/Fluorescence/imaging_plane_1_neuropil_response/r"] = cells["neuropil_r"].to_numpy()
        _write_behaviour(f, exp, running, run_state, n_frames, rng)
        _write_stimulus(f, scenes, starts, template)
    return np.concatenate(peaks)


#: Where the pipeline's outputs sit in an NWB v1 file of the Brain Observatory.
_PIPELINE = "processing/brain_observatory_pipeline"
#: Compression of the file's 1-D datasets.
_COMPRESSION = dict(compression="gzip", compression_opts=4, shuffle=True)


def _simulate_traces(exp, cells, amplitudes, scenes, starts, n_frames: int, run_state, rng) -> dict:
    """ΔF/F, demixed and neuropil traces of these cells, and each one's noiseless time to peak."""
    from scipy.signal import fftconvolve

    n_cells = len(cells)
    # each presentation drives its cells for 250 ms after the area's latency
    drive = np.zeros((n_cells, n_frames))
    shown = scenes >= 0
    lag = np.round(cells["latency_s"].to_numpy() * FRAME_RATE).astype(int)
    trial_gain = rng.lognormal(0, 0.3, size=(n_cells, shown.sum()))
    amp = amplitudes[:, scenes[shown]] * trial_gain
    amp *= 1 + cells["run_modulation"].to_numpy()[:, None] * run_state[starts[shown]][None, :]
    box = int(round(PRESENTATION_S * FRAME_RATE))
    # an impulse at each onset (plus the cell's lag; the recording runs 4 s past the last onset, so
    # every index is inside it), then one convolution with the boxcar and the calcium kernel together
    drive[np.arange(n_cells)[:, None], starts[shown][None, :] + lag[:, None]] = amp
    one = np.convolve(np.ones(box) / box, _calcium_kernel(exp.indicator))  # response to one presentation
    dff = fftconvolve(drive, one[None, :], axes=1)[:, :n_frames]
    dff += rng.normal(size=dff.shape) * cells["noise_sd"].to_numpy()[:, None]

    f0 = cells["baseline_f"].to_numpy()[:, None]
    fluorescence = f0 * (1 + dff)
    neuropil = 0.5 * f0 + np.cumsum(rng.normal(size=(n_cells, n_frames)), axis=1) * 0.2
    r = cells["neuropil_r"].to_numpy()
    return {
        "dff": dff,
        "demixed": fluorescence + r[:, None] * neuropil,
        "neuropil": neuropil,
        # noiseless time to peak of the response to one presentation (relative to onset)
        "peaks": (np.argmax(one) + lag) / FRAME_RATE,
    }


def _write_session(f, exp) -> None:
    """The session's metadata (``session_start_time``, ``general/…``) as the release writes it."""
    f["session_start_time"] = np.bytes_(_acquisition_date(exp))
    g = f.create_group("general")
    for key, value in {
        "session_type": SESSION_TYPE,
        "session_id": str(exp.experiment_id),
        "experiment_container_id": str(exp.experiment_container_id),
        "specimen_name": f"{exp.cre}-{exp.specimen_id}",
        "fov": "400x400 microns (512 x 512 pixels)",
        "devices/2-photon microscope": _DEVICE,
        "subject/age": f"{exp.age_days} days",
        "subject/sex": exp.sex,
        "subject/genotype": exp.genotype,
        "optophysiology/imaging_plane_1/imaging depth": f"{exp.imaging_depth} microns",
        "optophysiology/imaging_plane_1/location": f"Area: {exp.area}",
        "optophysiology/imaging_plane_1/excitation_lambda": "910 nanometers",
        "optophysiology/imaging_plane_1/indicator": exp.indicator,
    }.items():
        g[key] = np.bytes_(value)
    g["generated_by"] = np.array([b"neuroalign synthetic writer", b"pipeline version", b"2.0"])


def _create_traces(f, cells, n_frames: int) -> dict:
    """Frame times, the segmentation's cell ids and the (empty) fluorescence datasets: ΔF/F, demixed, neuropil.

    Returns the three datasets by trace name; the writer fills them a block of cells at a time.
    """
    P = _PIPELINE
    timestamps = 5.0 + np.arange(n_frames) / FRAME_RATE
    # one timestamps dataset, hard-linked into every time series (2-photon frame times, s)
    f.create_dataset(f"{P}/Fluorescence/imaging_plane_1/timestamps", data=timestamps, **_COMPRESSION)
    timestamps = f[f"{P}/Fluorescence/imaging_plane_1/timestamps"]
    seg = f.create_group(f"{P}/ImageSegmentation")
    seg["cell_specimen_ids"] = cells["cell_specimen_id"].to_numpy(np.int64)
    seg["roi_ids"] = np.array([str(i).encode() for i in range(len(cells))])
    datasets = {}
    for trace, name, digits in (
        ("dff", "DfOverF/imaging_plane_1", 3),
        ("demixed", "Fluorescence/imaging_plane_1_demixed_signal", 1),
        ("neuropil", "Fluorescence/imaging_plane_1_neuropil_response", 1),
    ):
        grp = f.create_group(f"{P}/{name}")
        datasets[trace] = grp.create_dataset(
            "data",
            shape=(len(cells), n_frames),
            dtype=np.float32,
            chunks=(1, n_frames),
            scaleoffset=digits,
            compression="gzip",
            compression_opts=4,
        )
        grp["timestamps"] = timestamps
    # no crosstalk in the synthetic data: the raw ROI trace equals the demixed one (a hard link)
    f[f"{P}/Fluorescence/imaging_plane_1/data"] = f[f"{P}/Fluorescence/imaging_plane_1_demixed_signal/data"]
    return datasets


def _write_behaviour(f, exp, running, run_state, n_frames: int, rng) -> None:
    """Running speed and, for sessions with eye tracking, pupil size (larger when running) and location."""
    P = _PIPELINE
    timestamps = f[f"{P}/Fluorescence/imaging_plane_1/timestamps"]
    run = f.create_group(f"{P}/BehavioralTimeSeries/running_speed")
    run.create_dataset("data", data=running.astype(np.float32), **_COMPRESSION)
    run["timestamps"] = timestamps
    if exp.has_eye_tracking:
        size = 1500 + 400 * np.convolve(run_state, np.ones(30) / 30, mode="same") + rng.normal(0, 20, n_frames)
        pupil = f.create_group(f"{P}/PupilTracking/pupil_size")
        pupil.create_dataset("data", data=size.astype(np.float32), **_COMPRESSION)
        pupil["timestamps"] = timestamps
        loc = np.cumsum(rng.normal(0, 0.05, size=(n_frames, 2)), axis=0)
        eye = f.create_group(f"{P}/EyeTracking/pupil_location_spherical")
        eye.create_dataset("data", data=(loc - loc.mean(axis=0)).astype(np.float32), **_COMPRESSION)
        eye["timestamps"] = timestamps


def _write_stimulus(f, scenes, starts, template) -> None:
    """The natural-scenes presentation table (scene, start and end frame) and the template image stack."""
    frames_per_presentation = int(np.floor(PRESENTATION_S * FRAME_RATE))  # end − start, as in the release
    stim = f.create_group("stimulus/presentation/natural_scenes_stimulus")
    stim["data"] = scenes.astype(np.int32)
    stim["frame_duration"] = np.stack([starts, starts + frames_per_presentation], axis=1).astype(np.float64)
    tmpl = f.create_group("stimulus/templates/natural_scenes_image_stack")
    tmpl.create_dataset("data", data=template, chunks=(1, *template.shape[1:]), compression="gzip", compression_opts=4)
    tmpl["data"].attrs["full_resolution_shape"] = np.array(TEMPLATE_SHAPE)


def _running_speed(n_frames: int, rng) -> np.ndarray:
    """Bouts of running (~15–30 cm/s) alternating with rest, sampled per 2-photon frame."""
    state = np.zeros(n_frames, dtype=bool)
    t, running = 0, False
    while t < n_frames:
        length = int(rng.exponential(20 if running else 30) * FRAME_RATE) + 1
        state[t : t + length] = running
        t += length
        running = not running
    speed = np.where(state, rng.uniform(15, 30), 0.0) + np.abs(rng.normal(0, 0.5, n_frames))
    return np.convolve(speed, np.ones(15) / 15, mode="same")
