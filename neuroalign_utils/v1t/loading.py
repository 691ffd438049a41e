"""Sensorium 2022 (the V1T paper's DATASET S): the loader of the release layout.

The release layout: a root folder ``sensorium`` holding one folder per mouse named as in the release,
one ``.npy`` per trial under ``data/`` (``images``, ``responses``, ``behavior``, ``pupil_center``),
unicode tiers and ids under ``meta/trials`` and ``meta/neurons``, and float32 statistics of the
training tier under ``meta/statistics``. The loader reads that layout and nothing else, so the
synthetic mice of :mod:`~neuroalign_utils.v1t.synthetic` and the real release are read the same way;
pointing it at the release is a change of one path. The planted truth of synthetic mice
(``<mouse>/ground_truth/``) is read only by :func:`load_planted_truth`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import storage
from .._validation import check_shape2d, check_subset

logger = logging.getLogger(__name__)


#: Release mouse names (DATASET S mice A–E) and the shared folder suffix.
MOUSE_IDS = {
    "A": "21067-10-18",
    "B": "22846-10-16",
    "C": "23343-5-17",
    "D": "23656-14-22",
    "E": "23964-4-22",
}
FOLDER_SUFFIX = "GrayImageNet-94c6ff995dac583098847cfecd43e7b6"
IMAGE_SHAPE = (144, 256)
#: Resolution at which the planted units see the image (and V1T's input size).
PLANTED_SHAPE = (36, 64)
TIERS = ("train", "validation", "test")
STAT_NAMES = ("min", "max", "median", "mean", "std")
TRIAL_FILES = {"images": (1, *IMAGE_SHAPE), "responses": None, "behavior": (3,), "pupil_center": (2,)}
META_FILES = (
    "meta/trials/tiers.npy",
    "meta/trials/frame_image_id.npy",
    "meta/trials/trial_idx.npy",
    "meta/neurons/unit_ids.npy",
    "meta/neurons/cell_motor_coordinates.npy",
    "meta/neurons/animal_ids.npy",
)


def mouse_label(folder_name: str) -> str:
    """Short label of a mouse folder: the release letter (``'A'``–``'E'``) or the folder's id part."""
    for letter, mouse_id in MOUSE_IDS.items():
        if folder_name.startswith(f"static{mouse_id}-"):
            return letter
    return folder_name.removeprefix("static").split("-GrayImageNet")[0]


def mouse_folder_name(mouse: str) -> str:
    """Release folder name of mouse ``'A'``–``'E'``, e.g. ``static21067-10-18-GrayImageNet-…``."""
    check_subset(mouse, "mouse", list(MOUSE_IDS))
    return f"static{MOUSE_IDS[mouse]}-{FOLDER_SUFFIX}"


def block_average(images: np.ndarray, shape=PLANTED_SHAPE) -> np.ndarray:
    """Area-average ``(..., H, W)`` images to ``shape`` (what the planted units and V1T see)."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    lead = x.shape[:-2]
    out = F.interpolate(x.reshape(-1, 1, *x.shape[-2:]), size=tuple(shape), mode="area")
    return out.reshape(*lead, *shape).numpy()


@dataclass
class MouseData:
    """One mouse, standardised as in the V1T paper, in trial order.

    ``images`` ``(T, 1, h, w)``: ``(x − mean) / std``; ``responses`` ``(T, N)``: ``x / std`` per
    neuron (std floored at 1 % of the mean std); ``behaviour`` ``(T, 3)``: ``x / std``;
    ``pupil_center`` ``(T, 2)``: z-scored. Statistics come from ``meta/statistics`` (training tier).
    """

    name: str
    folder: Path
    images: np.ndarray
    responses: np.ndarray
    behaviour: np.ndarray
    pupil_center: np.ndarray
    tiers: np.ndarray
    image_ids: np.ndarray
    trial_idx: np.ndarray
    unit_ids: np.ndarray
    coordinates: np.ndarray
    animal_id: int
    response_scale: np.ndarray
    statistics: dict = field(repr=False)

    @property
    def n_neurons(self) -> int:
        return self.responses.shape[1]

    def tier(self, name: str) -> np.ndarray:
        """Trial indices of tier ``name`` (``'train'``, ``'validation'`` or ``'test'``)."""
        check_subset(name, "tier", TIERS)
        return np.flatnonzero(self.tiers == name)


def _require(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(
            f"Malformed Sensorium folder: missing {path} (the folder layout of the Sensorium 2022 release is "
            f"described in the docstring of neuroalign_utils.v1t.loading)."
        )
    return path


def _read(path: Path, *, numeric: bool = True):
    """A file of the layout, its errors naming it (missing, truncated, not numbers)."""
    return storage.read_npy(_require(path), numeric=numeric)


def load_mouse(folder: str | os.PathLike, *, image_size=PLANTED_SHAPE) -> MouseData:
    """Read one mouse folder of the Sensorium 2022 layout and standardise it.

    Parameters
    ----------
    folder : path-like
        A mouse folder, e.g. ``.../sensorium/static21067-10-18-GrayImageNet-…``.
    image_size : (int, int), default=(36, 64)
        Images are area-averaged to this size once at load time (V1T's input size; the reference
        resizes bilinearly inside every forward pass).

    Returns
    -------
    MouseData

    Raises
    ------
    FileNotFoundError
        Naming the first missing file of the layout.
    ValueError
        When tiers are not unicode strings or the statistics are not float32.
    """
    folder = Path(folder)
    image_size = check_shape2d(image_size, "image_size")
    for rel in META_FILES:
        _require(folder / rel)
    stats = {}
    for name in TRIAL_FILES:
        stats[name] = {}
        for stat in STAT_NAMES:
            value = _read(folder / "meta" / "statistics" / name / "all" / f"{stat}.npy")
            if value.dtype != np.float32:
                raise ValueError(
                    f"{folder}/meta/statistics/{name}/all/{stat}.npy must be float32 as in the release; "
                    f"found {value.dtype}."
                )
            stats[name][stat] = value
    tiers = _read(folder / "meta/trials/tiers.npy", numeric=False)
    if tiers.dtype.kind != "U":
        raise ValueError(
            f"{folder}/meta/trials/tiers.npy must hold unicode strings {TIERS}; found dtype {tiers.dtype} "
            "(bytes compare unequal to every tier name)."
        )
    unknown = sorted(set(tiers) - set(TIERS))
    if unknown or not (tiers == "train").any():
        raise ValueError(f"{folder}/meta/trials/tiers.npy: tiers must be in {TIERS} with some 'train'; got {unknown}.")
    n_trials = len(tiers)
    images = _read_images(folder, n_trials, image_size)
    images -= stats["images"]["mean"]
    images /= stats["images"]["std"]
    raw = {
        name: np.stack([_read(folder / "data" / name / f"{t}.npy") for t in range(n_trials)])
        for name in TRIAL_FILES
        if name != "images"
    }
    logger.info("read %d trials from %s", n_trials, folder)
    response_std = stats["responses"]["std"]
    response_scale = np.maximum(response_std, 0.01 * response_std.mean()).astype(np.float32)
    pupil = stats["pupil_center"]
    animal_ids = _read(folder / "meta/neurons/animal_ids.npy")
    return MouseData(
        name=folder.name,
        folder=folder,
        images=images,
        responses=(raw["responses"] / response_scale).astype(np.float32),
        behaviour=(raw["behavior"] / stats["behavior"]["std"]).astype(np.float32),
        pupil_center=((raw["pupil_center"] - pupil["mean"]) / pupil["std"]).astype(np.float32),
        tiers=tiers,
        image_ids=_read(folder / "meta/trials/frame_image_id.npy"),
        trial_idx=_read(folder / "meta/trials/trial_idx.npy"),
        unit_ids=_read(folder / "meta/neurons/unit_ids.npy"),
        coordinates=_read(folder / "meta/neurons/cell_motor_coordinates.npy").astype(np.float32),
        animal_id=int(np.unique(animal_ids)[0]),
        response_scale=response_scale,
        statistics=stats,
    )


#: Trials whose full-size images are held at once while loading (256 × 144 × 256 float32: 38 MB).
IMAGE_CHUNK = 256


def _read_images(folder: Path, n_trials: int, image_size) -> np.ndarray:
    """``(T, 1, *image_size)`` float32 images, read and area-averaged ``IMAGE_CHUNK`` trials at a time, so that
    the full-size stack of a paper-size mouse (6,000 × 144 × 256 float32: 0.9 GB) is never formed."""
    images = np.empty((n_trials, 1, *image_size), np.float32)
    for rows in storage.chunk_slices(n_trials, IMAGE_CHUNK):
        files = [folder / "data" / "images" / f"{t}.npy" for t in range(rows.start, rows.stop)]
        chunk = np.stack([_read(f) for f in files]).astype(np.float32)
        if chunk.shape[1:] != (1, *IMAGE_SHAPE):
            raise ValueError(f"{folder}/data/images: each trial must be (1, 144, 256); found {chunk.shape[1:]}.")
        images[rows] = chunk if tuple(image_size) == IMAGE_SHAPE else block_average(chunk, image_size)
    return images


def load_sensorium(root: str | os.PathLike, mice=None, *, image_size=PLANTED_SHAPE) -> dict[str, MouseData]:
    """Load mouse folders under a ``sensorium`` root, keyed by folder name.

    ``mice`` is a list of release letters (``'A'``–``'E'``) or folder names; default: every
    ``static*`` folder under ``root``, sorted.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"'root' {root} is not a folder; point it at the 'sensorium' folder.")
    available = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("static"))
    if mice is None:
        names = available
    else:
        names = [
            mouse_folder_name(m) if m in MOUSE_IDS else m for m in check_subset(mice, "mice", [*MOUSE_IDS, *available])
        ]
    if not names:
        raise FileNotFoundError(f"No 'static*' mouse folders under {root}.")
    return {name: load_mouse(root / name, image_size=image_size) for name in names}


def load_planted_truth(folder: str | os.PathLike) -> dict:
    """Planted ground truth of a synthetic mouse folder (absent from the real release).

    Returns a dict with ``expected_responses`` ``(T, N)`` (noise-free, raw units), the planted unit
    parameters (``centre_x``, ``centre_y``, ``sigma`` in pixels of the 36×64 image, ``orientation``,
    …), ``pupil_shift_px``, ``gaze_gain`` and ``gaze_shift_px``.
    """
    truth = Path(folder) / "ground_truth"
    _require(truth / "neurons.npz")
    out = dict(np.load(truth / "neurons.npz"))
    for name in ("pupil_shift_px", "gaze_gain", "gaze_shift_px"):
        out[name] = float(out.get(name, 0.0))
    out["expected_responses"] = np.load(_require(truth / "expected_responses.npy"))
    return out
