"""Readers of the Natural Scenes Dataset: the Algonauts 2023 release layout and raw NSD, real or synthetic.

Layout (that of the Algonauts 2023 release), per subject ``subjXX/``::

    training_split/training_images/train-NNNN_nsd-MMMMM.png
    training_split/training_fmri/{lh,rh}_training_fmri.npy          float32 (n_images, n_vertices_hemi)
    roi_masks/{lh,rh}.all-vertices_fsaverage_space.npy               163,842 ints, 1 = vertex used
    roi_masks/{lh,rh}.<roi file>_{fsaverage,challenge}_space.npy     ROI label per vertex
    roi_masks/mapping_<roi file>.npy                                 dict label → ROI name

:func:`load_algonauts_subject` reads a subject in that layout, a real one or the synthetic one written
by :mod:`.synthetic`, which goes through this same reader. :func:`load_raw_nsd` reads raw NSD
(fsaverage betas ``.mgh``, ``nsd_expdesign.mat``, ``nsd_stimuli.hdf5``) into the same
:class:`NSDSubject`. :func:`sphere_coordinates` places fsaverage5 vertices on nilearn's bundled sphere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .. import storage
from .._validation import check_int, check_subset

FSAVERAGE_N_VERTICES = 163_842
FSAVERAGE5_N_VERTICES = 10_242
HEMISPHERES = ("lh", "rh")
#: ROI files and their label → name mappings, as in the Algonauts 2023 release
ROI_MAPPINGS = {
    "prf-visualrois": {0: "Unknown", 1: "V1v", 2: "V1d", 3: "V2v", 4: "V2d", 5: "V3v", 6: "V3d", 7: "hV4"},
    "floc-bodies": {0: "Unknown", 1: "EBA", 2: "FBA-1", 3: "FBA-2", 4: "mTL-bodies"},
    "floc-faces": {0: "Unknown", 1: "OFA", 2: "FFA-1", 3: "FFA-2", 4: "mTL-faces", 5: "aTL-faces"},
    "floc-places": {0: "Unknown", 1: "OPA", 2: "PPA", 3: "RSC"},
    "floc-words": {0: "Unknown", 1: "OWFA", 2: "VWFA-1", 3: "VWFA-2", 4: "mfs-words", 5: "mTL-words"},
    "streams": {
        0: "Unknown",
        1: "early",
        2: "midventral",
        3: "midlateral",
        4: "midparietal",
        5: "ventral",
        6: "lateral",
        7: "parietal",
    },
}


@dataclass
class NSDSubject:
    """One subject's stimuli, responses and vertices, however they were loaded.

    Attributes
    ----------
    images : xarray.DataArray, (image, y, x, channel) float in [0, 1], coord ``nsd_id``
    responses : ndarray, float32 (n_images, n_vertices), left hemisphere then right
    vertices : pandas.DataFrame, one row per response column: ``hemisphere``, ``fsaverage_index``,
        ``roi`` (first ROI found, else "Unknown"), ``stream``, sphere coordinates ``x, y, z``
    """

    images: xr.DataArray
    responses: np.ndarray
    vertices: pd.DataFrame


def fsaverage5_mesh():
    """nilearn's bundled fsaverage5 meshes (a dict-like with ``sphere_left``, ``flat_left``, …)."""
    from nilearn import datasets

    return datasets.fetch_surf_fsaverage("fsaverage5")


def sphere_coordinates(hemisphere: str, fsaverage_index) -> np.ndarray:
    """fsaverage-sphere coordinates (n, 3) of vertices below 10,242 (the fsaverage5 vertices)."""
    from nilearn import surface

    index = np.asarray(fsaverage_index)
    if index.size and index.max() >= FSAVERAGE5_N_VERTICES:
        raise ValueError(
            f"'fsaverage_index' must be below {FSAVERAGE5_N_VERTICES} (fsaverage5 vertices) to use the "
            f"bundled sphere; the largest is {index.max()}."
        )
    side = {"lh": "left", "rh": "right"}[hemisphere]
    coords, _ = surface.load_surf_mesh(fsaverage5_mesh()[f"sphere_{side}"])
    return np.asarray(coords, dtype=np.float64)[index]


_IMAGE_NAME = re.compile(r"train-(\d{4})_nsd-(\d{5})\.png$")


def _read_npy_into(path: Path, out: np.ndarray, block_bytes: int = 1 << 26) -> None:
    """Copy the 2-d ``.npy`` at ``path`` into ``out`` in blocks of about ``block_bytes`` along its contiguous axis.

    The file is memory-mapped afresh for every block, so the pages read stay out of this process's
    resident memory (a single map would keep them all mapped until it closes).
    """
    header = storage.read_npy(path, mmap=True)
    by_columns = header.flags.f_contiguous and not header.flags.c_contiguous
    n_blocks_axis = header.shape[1] if by_columns else header.shape[0]
    other = header.shape[0] if by_columns else header.shape[1]
    del header
    step = max(1, block_bytes // max(1, 4 * other))
    for start in range(0, n_blocks_axis, step):
        block = slice(start, start + step)
        source = np.load(path, mmap_mode="r")
        if by_columns:
            out[:, block] = source[:, block]
        else:
            out[block] = source[block]
        del source


def load_algonauts_subject(subject_dir, *, image_size: int | None = None) -> NSDSubject:
    """Load one subject in the Algonauts 2023 layout (real or synthetic).

    Parameters
    ----------
    subject_dir : path-like
        The ``subjXX`` folder.
    image_size : int, optional
        Resize images to this square size (the backbone's input); native size when ``None``.

    Returns
    -------
    NSDSubject
    """
    from PIL import Image

    subject_dir = Path(subject_dir)
    img_dir = subject_dir / "training_split" / "training_images"
    if not img_dir.is_dir():
        raise FileNotFoundError(f"'subject_dir' {subject_dir} has no training_split/training_images folder.")
    names = sorted(p.name for p in img_dir.glob("*.png"))
    nsd_ids = [int(_IMAGE_NAME.match(n).group(2)) for n in names if _IMAGE_NAME.match(n)]
    # shapes and types from the files' headers first: a mismatch is reported before any image is read
    n_vertices = {}
    for hemi in HEMISPHERES:
        fmri = storage.read_npy(
            subject_dir / "training_split" / "training_fmri" / f"{hemi}_training_fmri.npy", mmap=True
        )
        used = storage.read_npy(subject_dir / "roi_masks" / f"{hemi}.all-vertices_fsaverage_space.npy", mmap=True)
        n_used = int(np.count_nonzero(used))
        if fmri.shape != (len(names), n_used):
            raise ValueError(
                f"{hemi}_training_fmri.npy has shape {fmri.shape}; expected "
                f"({len(names)} images, {n_used} vertices of the all-vertices mask)."
            )
        n_vertices[hemi] = n_used
    pictures = None  # filled in place: one copy of the image set in memory, not a list and its stack
    for row, name in enumerate(names):
        img = Image.open(img_dir / name).convert("RGB")
        if image_size is not None:
            img = img.resize((image_size, image_size), Image.BILINEAR)
        picture = np.asarray(img, dtype=np.float32) / 255.0
        if pictures is None:
            pictures = np.empty((len(names), *picture.shape), np.float32)
        pictures[row] = picture
    images = xr.DataArray(
        pictures,
        dims=("image", "y", "x", "channel"),
        coords={"image": np.arange(len(names)), "nsd_id": ("image", nsd_ids)},
    )
    # both hemispheres' fMRI go straight into one array, read from the memory-mapped files in blocks of
    # images: the paper-size arrays (9,841 × 10,242 float32 per hemisphere) are never held twice
    responses = np.empty((len(names), sum(n_vertices.values())), np.float32)
    tables = []
    first = 0
    mappings = {
        f: storage.read_npy(subject_dir / "roi_masks" / f"mapping_{f}.npy", allow_pickle=True).item()
        for f in ROI_MAPPINGS
        if (subject_dir / "roi_masks" / f"mapping_{f}.npy").exists()
    }
    for hemi in HEMISPHERES:
        path = subject_dir / "training_split" / "training_fmri" / f"{hemi}_training_fmri.npy"
        _read_npy_into(path, responses[:, first : first + n_vertices[hemi]])
        first += n_vertices[hemi]
        index = np.flatnonzero(storage.read_npy(subject_dir / "roi_masks" / f"{hemi}.all-vertices_fsaverage_space.npy"))
        roi = np.full(len(index), "Unknown", dtype=object)
        stream = np.full(len(index), "Unknown", dtype=object)
        for file, mapping in mappings.items():
            labels = storage.read_npy(subject_dir / "roi_masks" / f"{hemi}.{file}_fsaverage_space.npy")[index]
            names_here = np.array([mapping.get(int(v), "Unknown") for v in labels], dtype=object)
            target = stream if file == "streams" else roi
            fill = (target == "Unknown") & (names_here != "Unknown")
            target[fill] = names_here[fill]
        table = pd.DataFrame({"hemisphere": hemi, "fsaverage_index": index, "roi": roi, "stream": stream})
        if index.size and index.max() < FSAVERAGE5_N_VERTICES:
            table[["x", "y", "z"]] = sphere_coordinates(hemi, index)
        tables.append(table)
    return NSDSubject(images=images, responses=responses, vertices=pd.concat(tables, ignore_index=True))


def load_raw_nsd(
    nsd_root,
    *,
    subject: int = 1,
    sessions=(1,),
    vertices: dict | None = None,
    image_size: int | None = None,
) -> NSDSubject:
    """Load raw NSD fsaverage betas, average repeats per image and return an :class:`NSDSubject`.

    Betas are z-scored per session and vertex (as in the Algonauts release), then averaged over the
    repeats of each image.

    Parameters
    ----------
    nsd_root : path-like
        Folder holding ``nsddata``, ``nsddata_betas`` and ``nsddata_stimuli`` as released.
    subject : int
        1–8.
    sessions : sequence of int
        1-based session numbers (750 trials each).
    vertices : dict, optional
        ``{"lh": indices, "rh": indices}`` of fsaverage vertices to keep; all by default.
    image_size : int, optional
        Resize stimuli to this square size.

    Returns
    -------
    NSDSubject
    """
    from scipy.io import loadmat

    subject = check_int(subject, "subject", minimum=1, maximum=8)
    sessions = [check_int(s, "sessions", minimum=1, maximum=40) for s in sessions]
    if vertices is not None:
        check_subset(list(vertices), "vertices", HEMISPHERES)
    root = Path(nsd_root)
    design = loadmat(root / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat")
    order = np.asarray(design["masterordering"]).ravel().astype(int)  # 1-based into subjectim
    subject_images = np.asarray(design["subjectim"])[subject - 1].astype(int)  # 1-based 73k ids
    beta_dir = root / "nsddata_betas" / "ppdata" / f"subj{subject:02d}" / "fsaverage" / "betas_fithrf_GLMdenoise_RR"
    per_hemi, trial_ids = {h: [] for h in HEMISPHERES}, []
    for session in sessions:
        for hemi, data in _session_betas(beta_dir, session, vertices).items():
            per_hemi[hemi].append(data)
        n_trials = data.shape[0]
        start = (session - 1) * n_trials  # every NSD session holds the same number (750) of trials
        trial_ids.append(subject_images[order[start : start + n_trials] - 1] - 1)  # 0-based 73k ids
    trial_ids = np.concatenate(trial_ids)
    betas = np.concatenate([np.concatenate(per_hemi[h]) for h in HEMISPHERES], axis=1)
    unique_ids, inverse = np.unique(trial_ids, return_inverse=True)
    sums = np.zeros((len(unique_ids), betas.shape[1]), np.float64)
    np.add.at(sums, inverse, betas)
    responses = (sums / np.bincount(inverse)[:, None]).astype(np.float32)
    pictures = _stimulus_pictures(
        root / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5", unique_ids, image_size
    )
    images = xr.DataArray(
        pictures,
        dims=("image", "y", "x", "channel"),
        coords={"image": np.arange(len(unique_ids)), "nsd_id": ("image", unique_ids)},
    )
    tables = []
    for hemi in HEMISPHERES:
        n_hemi = per_hemi[hemi][0].shape[1]
        index = np.arange(n_hemi) if vertices is None else np.asarray(vertices[hemi])
        tables.append(
            pd.DataFrame({"hemisphere": hemi, "fsaverage_index": index, "roi": "Unknown", "stream": "Unknown"})
        )
    return NSDSubject(images=images, responses=responses, vertices=pd.concat(tables, ignore_index=True))


def _session_betas(beta_dir: Path, session: int, vertices: dict | None) -> dict:
    """One session's betas per hemisphere, (trials, kept vertices) float32, z-scored per vertex."""
    import nibabel as nib

    out = {}
    for hemi in HEMISPHERES:
        data = np.asarray(nib.load(beta_dir / f"{hemi}.betas_session{session:02d}.mgh").get_fdata(), dtype=np.float32)
        data = data.reshape(data.shape[0], -1)  # (vertices, trials)
        keep = np.arange(data.shape[0]) if vertices is None else np.asarray(vertices[hemi])
        data = data[keep].T
        out[hemi] = (data - data.mean(0)) / (data.std(0) + 1e-8)
    return out


def _stimulus_pictures(path: Path, nsd_ids: np.ndarray, image_size: int | None) -> np.ndarray:
    """The images ``nsd_ids`` (0-based, increasing) of ``nsd_stimuli.hdf5``, float32 in [0, 1], resized
    to ``image_size`` when given."""
    import h5py

    with h5py.File(path, "r") as fh:
        pictures = fh["imgBrick"][np.sort(nsd_ids)]  # h5py needs increasing indices
    pictures = pictures.astype(np.float32) / 255.0
    if image_size is not None:
        from skimage.transform import resize

        pictures = np.stack([resize(p, (image_size, image_size), anti_aliasing=True) for p in pictures])
    return pictures.astype(np.float32)
