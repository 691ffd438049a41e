"""The planted default subject: a synthetic NSD subject written in the Algonauts 2023 layout.

:func:`write_synthetic_subject` writes a subject whose vertices all lie below 10,242 in each hemisphere
(valid in fsaverage and fsaverage5 index spaces), in a cap around the occipital pole of the fsaverage
sphere, in the release layout that :func:`.loading.load_algonauts_subject` reads. Its ROIs are laid out
as rings (V1 → V2 → V3 → hV4) and sectors (OPA dorsal, EBA lateral, OFA/FFA/VWFA ventral, PPA medial).
Each vertex's response is a linear read-out of one backbone layer (later for higher ROIs) at a
retinotopic image position, mixing local and global tokens with a global share that grows along the
hierarchy, plus Gaussian noise at a stated SNR. The stimuli are the book's natural-image set
(:func:`neuroalign_utils.images.natural_image_set`: bundled photographs, random crops of them and 1/f
textures), and the features that drive the vertices are computed from the stimuli as stored (8-bit
PNG). The planted truth goes to ``subjXX_ground_truth.parquet`` (:func:`load_ground_truth`) and what
each stimulus is to ``subjXX_stimuli.parquet`` (:func:`load_stimuli`), beside the subject, outside the
release layout, so the loader reads only what a real subject has.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .. import storage
from .._validation import check_float, check_int, sized_arguments
from . import features as feats
from .loading import FSAVERAGE5_N_VERTICES, FSAVERAGE_N_VERTICES, HEMISPHERES, ROI_MAPPINGS, sphere_coordinates

logger = logging.getLogger(__name__)

#: synthetic layout: ROI → (file, radial range ρ, angle range θ in degrees, hierarchy level in [0, 1]).
#: ρ = distance from the occipital pole / cap radius; θ = 90 dorsal, 0 lateral, −90 ventral, ±180 medial.
ROI_LAYOUT = {
    "V1v": ("prf-visualrois", (0.0, 0.2), (-180, 0), 0.0),
    "V1d": ("prf-visualrois", (0.0, 0.2), (0, 180), 0.0),
    "V2v": ("prf-visualrois", (0.2, 0.33), (-180, 0), 1 / 6),
    "V2d": ("prf-visualrois", (0.2, 0.33), (0, 180), 1 / 6),
    "V3v": ("prf-visualrois", (0.33, 0.46), (-180, 0), 1 / 3),
    "V3d": ("prf-visualrois", (0.33, 0.46), (0, 180), 1 / 3),
    "hV4": ("prf-visualrois", (0.46, 0.6), (-150, -30), 0.45),
    "OPA": ("floc-places", (0.46, 1.0), (40, 140), 2 / 3),
    "OFA": ("floc-faces", (0.6, 0.75), (-60, -10), 0.75),
    "EBA": ("floc-bodies", (0.6, 1.0), (-10, 40), 1.0),
    "FFA-1": ("floc-faces", (0.6, 0.8), (-110, -60), 0.9),
    "FFA-2": ("floc-faces", (0.8, 1.0), (-110, -60), 0.9),
    "VWFA-1": ("floc-words", (0.75, 1.0), (-60, -10), 0.85),
    "PPA": ("floc-places", (0.6, 1.0), (-180, -110), 0.8),
}
#: Named sizes of :func:`write_synthetic_subject` (``size``). ``'paper'``: Algonauts 2023 subject 1's 9,841
#: training images, and every fsaverage5 vertex of each hemisphere (the most the synthetic cap can hold).
SIZES = {
    "book": dict(n_images=600, n_vertices_per_hemisphere=600),
    "paper": dict(n_images=9841, n_vertices_per_hemisphere=FSAVERAGE5_N_VERTICES),
}
STREAM_RINGS = (
    (0.46, ("early", "early", "early")),
    (0.6, ("midventral", "midlateral", "midparietal")),
    (1.01, ("ventral", "lateral", "parietal")),
)


def cap_vertices(hemisphere: str, n_vertices: int) -> pd.DataFrame:
    """The ``n_vertices`` fsaverage5 vertices nearest the occipital pole, with (ρ, θ) cap coordinates."""
    coords = sphere_coordinates(hemisphere, np.arange(FSAVERAGE5_N_VERTICES))
    unit = coords / np.linalg.norm(coords, axis=1, keepdims=True)
    pole = unit[np.argmin(unit[:, 1])]  # most posterior point
    angle = np.arccos(np.clip(unit @ pole, -1, 1))
    index = np.sort(np.argsort(angle, kind="stable")[:n_vertices])
    lateral = np.array([1.0 if hemisphere == "rh" else -1.0, 0.0, 0.0])
    up = np.array([0.0, 0.0, 1.0])
    theta = np.degrees(np.arctan2(unit[index] @ up, unit[index] @ lateral))
    rho = angle[index] / angle[index].max()
    return pd.DataFrame({"hemisphere": hemisphere, "fsaverage_index": index, "rho": rho, "theta": theta})


def _assign_rois(cap: pd.DataFrame) -> pd.DataFrame:
    roi = np.full(len(cap), "Unknown", dtype=object)
    level = cap["rho"].to_numpy().copy()  # vertices outside every ROI follow the radial gradient
    for name, (_, (r0, r1), (t0, t1), lev) in ROI_LAYOUT.items():
        inside = (cap["rho"] >= r0) & (cap["rho"] < r1) & (cap["theta"] >= t0) & (cap["theta"] < t1)
        inside &= roi == "Unknown"
        roi[inside.to_numpy()] = name
        level[inside.to_numpy()] = lev
    out = cap.assign(roi=roi, level=level)
    sector = np.where(cap["theta"] < -30, 0, np.where(cap["theta"] < 40, 1, 2))
    stream = np.empty(len(cap), dtype=object)
    for i, (rho, s) in enumerate(zip(cap["rho"], sector)):
        stream[i] = next(names[s] for edge, names in STREAM_RINGS if rho < edge)
    return out.assign(stream=stream)


def planted_truth(cap: pd.DataFrame, n_layers: int) -> pd.DataFrame:
    """Planted layer, image position and scale of every vertex from its ROI level and cap position.

    Layer = round(level · (L − 1)); scale (global share) = 0.1 + 0.5 · level; position: polar angle
    from θ (left hemisphere → right visual field), eccentricity growing with ρ and shrinking towards the
    centre for higher levels. Image coordinates in [−1, 1], x right, y down.
    """
    truth = _assign_rois(cap)
    level = truth["level"].to_numpy()
    theta = np.radians(truth["theta"].to_numpy())
    side = np.where(truth["hemisphere"] == "lh", 1.0, -1.0)
    ecc = (0.25 + 0.5 * truth["rho"].to_numpy()) * (1 - 0.6 * level)
    return truth.assign(
        layer=np.rint(level * (n_layers - 1)).astype(int),
        pos_x=side * ecc * np.abs(np.cos(theta)),
        pos_y=-ecc * np.sin(theta),
        scale=0.1 + 0.5 * level,
    )


def bilinear_sample(local: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Sample (n_images, C, h, w) tokens at positions (n, 2) in [−1, 1] → (n_images, n, C).

    Bilinear, zero padding, ``align_corners=False`` (``torch.nn.functional.grid_sample``'s convention).
    """
    import torch
    import torch.nn.functional as F

    grid = torch.as_tensor(pos, dtype=torch.float32)[None, None].expand(len(local), -1, -1, -1)
    out = F.grid_sample(
        torch.as_tensor(np.asarray(local), dtype=torch.float32),
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    return out[:, :, 0].permute(0, 2, 1).numpy()


def write_synthetic_subject(
    root=None,
    *,
    subject: int = 1,
    size="book",
    n_images: int | None = None,
    n_vertices_per_hemisphere: int | None = None,
    backbone: feats.BackboneSpec | None = None,
    snr: float = 2.0,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic subject in the Algonauts 2023 layout, deterministically from ``seed``.

    Parameters
    ----------
    root : path-like, optional
        Folder that receives ``subjXX/``; default ``<data dir>/nsd_synthetic/<hash of arguments>``.
    subject : int
        Subject number (1–8 in NSD).
    size : {'book', 'paper'} or float, default='book'
        Sets the defaults of ``n_images`` and ``n_vertices_per_hemisphere`` (see :data:`SIZES`). ``'book'``:
        600 images × 600 vertices per hemisphere. ``'paper'``: Algonauts 2023 subject 1's 9,841 training
        images × 10,242 vertices per hemisphere (all of fsaverage5; the paper's 37,984 nsdgeneral
        vertices do not fit fsaverage5's index space, so its fMRI arrays are 54 % of the paper's). A number
        ``f``: the book's settings with ``f`` times the images, for scaling curves. With ``'paper'`` both
        must be left at None.
    n_images : int, optional
        Training images (rows of the fMRI arrays).
    n_vertices_per_hemisphere : int, optional
        Vertices in the occipital cap of each hemisphere (at most 10,242; 37,984 / 2 at NSD scale
        does not fit fsaverage5, so the cap is limited to it).
    backbone : BackboneSpec, optional
        Backbone whose layers drive the vertices; default ``BackboneSpec()`` (random small ViT with
        ``init_range=1.0``, whose layers differ). A trained one (``dinov2_s14_saliency``) plants the
        hierarchy of real trained features.
    snr : float
        Signal-to-noise variance ratio of every vertex; the best reachable R² is snr / (1 + snr).
    seed : int
    overwrite : bool

    Memory holds the stimuli as float32 at the backbone's input size (0.1 GB for 9,841 images at the default
    backbone's 32 px; 5.9 GB at a trained backbone's 224 px) and two (images × vertices) float32 arrays, the
    planted signal and its noise (1.6 GB at paper size); stimuli are generated and written one at a time, the
    backbone's features are streamed to their memory-mapped cache (:func:`.features.cached_features`), the
    signal is planted and standardised 64 vertices at a time and the noise drawn in blocks of rows.

    Returns
    -------
    pathlib.Path
        The ``subjXX`` folder; the truth is in ``<root>/subjXX_ground_truth.parquet``, the stimulus table
        (:func:`load_stimuli`) in ``<root>/subjXX_stimuli.parquet``.
    """
    subject = check_int(subject, "subject", minimum=1, maximum=99)
    sized = sized_arguments(
        size, SIZES, dict(n_images=n_images, n_vertices_per_hemisphere=n_vertices_per_hemisphere), scaled=("n_images",)
    )
    n_images, n_vertices_per_hemisphere = sized["n_images"], sized["n_vertices_per_hemisphere"]
    n_images = check_int(n_images, "n_images", minimum=10)
    n_vert = check_int(
        n_vertices_per_hemisphere, "n_vertices_per_hemisphere", minimum=50, maximum=FSAVERAGE5_N_VERTICES
    )
    snr = check_float(snr, "snr", minimum=1e-6)
    seed = check_int(seed, "seed", minimum=0)
    backbone = backbone or feats.BackboneSpec()
    if root is None:
        key = dict(
            subject=subject,
            n_images=n_images,
            n_vert=n_vert,
            backbone=backbone.to_dict(),
            snr=snr,
            seed=seed,
            version=(2, feats.CACHE_VERSION),
        )
        root = storage.get_data_dir() / "nsd_synthetic" / storage.content_key(key)
    subj_dir, truth_path, stimuli_path = _subject_paths(Path(root), subject)
    if storage.folder_is_intact(subj_dir) and truth_path.exists() and stimuli_path.exists() and not overwrite:
        return subj_dir
    if subj_dir.exists():
        logger.info("rebuilding %s: its files are incomplete or changed", subj_dir)

    from .. import images as image_lib

    side = feats.spec_input_size(backbone)
    # the 8-bit values the PNG stimuli hold, as the loader reads them back: the fit's features then equal
    # (and reuse the cache of) the planting ones; one image at a time, never the float64 set
    pixels = np.empty((n_images, side, side, 3), np.float32)
    rows = []
    for i, (image, row) in enumerate(
        image_lib.iter_natural_images(n_images, (side, side), grayscale=False, random_state=seed)
    ):
        pixels[i] = _to_uint8(image).astype(np.float32) / 255.0
        rows.append(row)
    # on the CPU: the planted subject is the same on every machine
    feat = feats.cached_features(backbone, pixels, device="cpu")
    n_layers = feat["local"].shape[1]

    rng = np.random.default_rng(seed)
    truth = pd.concat([planted_truth(cap_vertices(h, n_vert), n_layers) for h in HEMISPHERES], ignore_index=True)
    signal = planted_signal(feat, truth, rng)
    del feat  # unmaps the feature cache, whose pages would otherwise stay in this process's memory
    noise = np.empty_like(signal)
    # blocks of rows: the same draws as one call, without its float64 copy
    for block in storage.chunk_slices(n_images, 256):
        noise[block] = rng.standard_normal((block.stop - block.start, signal.shape[1]))
    # the recorded responses, z-scored per vertex, written over the signal 64 vertices at a time
    fmri = signal
    for cols in storage.chunk_slices(signal.shape[1], 64):
        noisy = signal[:, cols] + noise[:, cols] / np.sqrt(snr)
        fmri[:, cols] = (noisy - noisy.mean(0)) / noisy.std(0)
    del noise

    with storage.atomic_path(subj_dir, is_dir=True) as tmp:
        nsd_ids = _write_layout(tmp, truth, fmri, pixels, rng)
    truth = truth.assign(snr=snr, backbone=backbone.name, n_layers=n_layers)
    with storage.atomic_path(truth_path) as tmp:
        truth.to_parquet(tmp)
    stimuli = pd.DataFrame(rows, columns=["name", "kind", "source", "licence"])
    stimuli.insert(0, "nsd_id", nsd_ids)
    with storage.atomic_path(stimuli_path) as tmp:
        stimuli.to_parquet(tmp)
    logger.info("Wrote synthetic NSD subject to %s", subj_dir)
    return subj_dir


def _subject_paths(root: Path, subject: int) -> tuple[Path, Path, Path]:
    """The ``subjXX`` folder and, beside it, the planted truth and the stimulus table."""
    name = f"subj{subject:02d}"
    return root / name, root / f"{name}_ground_truth.parquet", root / f"{name}_stimuli.parquet"


def planted_signal(feat: dict, truth: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Noise-free responses (n_images, N), each vertex standardised, of the vertices planted in ``truth``.

    Vertex n reads layer ``truth.layer[n]`` at image position ``(pos_x, pos_y)`` with global share
    ``scale``: w_n · ((1 − s) · bilinear(local, position) + s · global), through read-out weights w_n =
    its ROI's direction plus a vertex-specific part, both drawn from ``rng`` (ROI directions first, in
    sorted ROI order, then the vertices').

    Parameters
    ----------
    feat : dict
        Backbone features (:func:`.features.cached_features`): ``local`` (n_images, L, C, g, g),
        ``global`` (n_images, L, C).
    truth : DataFrame
        :func:`planted_truth` rows of every vertex, in response-column order.
    rng : numpy.random.Generator
    """
    global_ = np.asarray(feat["global"], np.float32)
    n_images, n_layers, n_channels = feat["local"].shape[:3]
    # read-out weights: a direction per ROI plus a vertex-specific part
    roi_dirs = {r: rng.standard_normal(n_channels) for r in sorted(set(truth["roi"]))}
    weights = np.stack([roi_dirs[r] for r in truth["roi"]]) + 0.5 * rng.standard_normal((len(truth), n_channels))
    position, scale = truth[["pos_x", "pos_y"]].to_numpy(), truth["scale"].to_numpy()
    signal = np.empty((n_images, len(truth)), np.float32)
    for layer in range(n_layers):
        cols = np.flatnonzero(truth["layer"].to_numpy() == layer)
        if cols.size == 0:
            continue
        layer_local = np.asarray(feat["local"][:, layer], np.float32)  # one layer in memory at a time
        # the read-out is linear: w·((1 − s)·local + s·global) = (1 − s)·w·local + s·w·global, so the mixed
        # tokens (n_images × vertices × channels) are never formed; vertices go in chunks of 64
        for chunk in np.array_split(cols, -(-cols.size // 64)):
            local_part = np.einsum("bnc,nc->bn", bilinear_sample(layer_local, position[chunk]), weights[chunk])
            global_part = global_[:, layer] @ weights[chunk].T
            block = ((1 - scale[chunk]) * local_part + scale[chunk] * global_part).astype(np.float32)
            signal[:, chunk] = (block - block.mean(0)) / (block.std(0) + 1e-8)
    return signal


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    return (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)


def _write_layout(folder: Path, truth: pd.DataFrame, fmri: np.ndarray, pixels: np.ndarray, rng) -> np.ndarray:
    """Write the release layout into ``folder``; return the NSD ids given to the stimuli."""
    from PIL import Image

    img_dir = folder / "training_split" / "training_images"
    fmri_dir = folder / "training_split" / "training_fmri"
    roi_dir = folder / "roi_masks"
    for d in (img_dir, fmri_dir, roi_dir):
        d.mkdir(parents=True)
    nsd_ids = np.sort(rng.choice(73_000, size=len(pixels), replace=False))
    for row, (nsd_id, img) in enumerate(zip(nsd_ids, pixels), start=1):
        Image.fromarray(_to_uint8(img)).save(img_dir / f"train-{row:04d}_nsd-{nsd_id:05d}.png")
    for hemi in HEMISPHERES:
        rows = truth[truth["hemisphere"] == hemi]
        columns = rows.index.to_numpy()
        # column-major, as the book's files have always been written; filled 64 vertices at a time
        out = np.lib.format.open_memmap(
            fmri_dir / f"{hemi}_training_fmri.npy",
            mode="w+",
            dtype=np.float32,
            shape=(len(fmri), len(columns)),
            fortran_order=True,
        )
        for cols in storage.chunk_slices(len(columns), 64):
            out[:, cols] = fmri[:, columns[cols]]
        out.flush()
        del out
        used = np.zeros(FSAVERAGE_N_VERTICES, dtype=np.int64)
        used[rows["fsaverage_index"].to_numpy()] = 1
        np.save(roi_dir / f"{hemi}.all-vertices_fsaverage_space.npy", used)
        for file, mapping in ROI_MAPPINGS.items():
            label_of = {name: label for label, name in mapping.items()}
            column = rows["stream"] if file == "streams" else rows["roi"]
            labels = np.array(
                [
                    label_of.get(name, 0) if (file == "streams" or ROI_LAYOUT.get(name, ("",))[0] == file) else 0
                    for name in column
                ],
                dtype=np.int64,
            )
            full = np.zeros(FSAVERAGE_N_VERTICES, dtype=np.int64)
            full[rows["fsaverage_index"].to_numpy()] = labels
            np.save(roi_dir / f"{hemi}.{file}_fsaverage_space.npy", full)
            np.save(roi_dir / f"{hemi}.{file}_challenge_space.npy", labels)
    for file, mapping in ROI_MAPPINGS.items():
        np.save(roi_dir / f"mapping_{file}.npy", mapping, allow_pickle=True)
    return nsd_ids


def load_ground_truth(subject_dir) -> pd.DataFrame:
    """The planted truth written beside a synthetic subject (one row per response column)."""
    subject_dir = Path(subject_dir)
    return pd.read_parquet(subject_dir.parent / f"{subject_dir.name}_ground_truth.parquet")


def describe_stimuli(kind) -> str:
    """What a synthetic subject's stimuli are, counted by kind (``kind`` of :func:`load_stimuli`); ``None``
    for a real subject's."""
    from .. import images as image_lib
    from .. import report

    if kind is None:
        return "The stimuli are the subject's own NSD images."
    counts = pd.Series(np.asarray(kind)).value_counts()
    photographs = [p.name.replace("_", " ") for p in image_lib.PHOTOGRAPHS]
    parts = [
        f"{report.plural(counts.get('photograph', 0), 'photograph')} bundled with scikit-image, scikit-learn "
        f"and matplotlib ({report.join_words(photographs[: counts.get('photograph', 0)])})"
    ]
    if counts.get("crop", 0):
        parts.append(
            f"{report.plural(counts['crop'], 'random crop')} of them (a quarter to all of the shorter side, "
            f"mirrored at random)"
        )
    if counts.get("texture", 0):
        parts.append(f"{report.plural(counts['texture'], 'texture')} with the 1/f amplitude spectrum of natural images")
    return f"The {report.format_number(int(counts.sum()))} stimuli are {report.join_words(parts)}."


def load_stimuli(subject_dir) -> pd.DataFrame:
    """What each stimulus of a synthetic subject is, in image order: ``nsd_id, name, kind`` (``photograph``,
    ``crop`` of one, or 1/f ``texture``), ``source, licence`` (see
    :func:`neuroalign_utils.images.natural_image_set`)."""
    subject_dir = Path(subject_dir)
    return pd.read_parquet(subject_dir.parent / f"{subject_dir.name}_stimuli.parquet")
