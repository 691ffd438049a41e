"""Synthetic mice in the Sensorium 2022 layout (the V1T paper's DATASET S), with planted ground truth.

The writer produces the release's folder and file layout exactly:
a root folder ``sensorium`` holding one folder per mouse named as in the release, one ``.npy`` per trial
under ``data/``, unicode tiers, and float32 statistics computed on the training tier. The loader reads
that layout (:mod:`~neuroalign_utils.v1t.loading`) and nothing else, so the real release is read the same way.

Planted ground truth (synthetic mice only, in ``<mouse>/ground_truth/``, which the loader ignores):
each neuron is a V1-like unit (a Gabor pair: a half-squared simple part mixed with an energy part) on
the image block-averaged to 36×64 (the V1T input size). Its RF centre follows a smooth retinotopic map
of ``cell_motor_coordinates`` (azimuth from cortical x, elevation from cortical y) over the share
``rf_field`` of the screen around its centre. Per trial the
response is gain-modulated by pupil dilation and running speed, the RF is shifted by the pupil centre,
and the recorded response is Gamma distributed with variance equal to its mean (Poisson-like). The
noise-free expected response of every trial is recorded, so the true noise ceiling is known.
Optionally (``gaze_gain``) every unit's gain also follows the image's brightness at a gaze point
that moves with the pupil centre: a probe for attention analyses.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from .. import storage
from .._validation import (
    check_float,
    check_float_pair,
    check_in_allowed,
    check_int,
    check_subset,
    sized_arguments,
)
from ..images import iter_natural_images
from .loading import IMAGE_SHAPE, MOUSE_IDS, PLANTED_SHAPE, STAT_NAMES, TRIAL_FILES, block_average, mouse_folder_name

logger = logging.getLogger(__name__)

#: Image sets the synthetic writer can show (``images`` of :func:`write_synthetic_sensorium`).
IMAGE_KINDS = ("natural", "noise")
#: Named sizes of :func:`write_synthetic_sensorium` (``size``): the defaults of its size arguments. ``'paper'``
#: follows the V1T paper's description of DATASET S: five mice, more than 7,000 neurons, up to 6,000 image
#: presentations, of which 1,000 trials with repeated images are the test set, the rest split 90 % / 10 %.
SIZES = {
    "book": dict(
        mice=("A", "B"), n_neurons=200, n_trials=1000, n_test_images=20, n_repeats=10, validation_fraction=0.15
    ),
    "paper": dict(
        mice=tuple(MOUSE_IDS), n_neurons=7500, n_trials=6000, n_test_images=100, n_repeats=10, validation_fraction=0.10
    ),
}
#: Trials whose visual drive is computed at once (bounds the (trials × pixels) and (trials × neurons) blocks).
TRIAL_CHUNK = 4096
#: Neurons whose Gabor filters are built at once (bounds the (neurons × pixels) filter blocks).
NEURON_CHUNK = 1024
#: Largest train-tier pixel count whose image statistics are computed on a float32 copy (as before sizes
#: existed, so the book's files keep their bytes); above it they come from a histogram of the uint8 pixels.
EXACT_IMAGE_STATISTICS_MAX = 2**27


def write_synthetic_sensorium(
    root: str | os.PathLike | None = None,
    *,
    size="book",
    mice=None,
    n_neurons: int | None = None,
    n_trials: int | None = None,
    n_test_images: int | None = None,
    n_repeats: int | None = None,
    validation_fraction: float | None = None,
    behaviour_gain: float = 0.35,
    pupil_shift_px: float = 1.5,
    rf_field=(0.60, 0.72),
    mean_rate: float = 0.4,
    gaze_gain: float = 0.0,
    gaze_shift_px: float = 6.0,
    images: str = "natural",
    seed: int = 0,
) -> Path:
    """Write synthetic mice in the Sensorium 2022 layout (cached: an existing complete copy is reused).

    Parameters
    ----------
    root : path-like, optional
        Folder that will hold ``sensorium/``. Default: ``<data dir>/sensorium_synthetic/<key>`` where
        the key hashes every argument below.
    size : {'book', 'paper'} or float, default='book'
        Sets the defaults of the six arguments below (see :data:`SIZES`). ``'book'``: two mice of 200
        neurons × 1,000 trials (20 test images × 10 repeats, 15 % validation). ``'paper'``: the release's
        scale as the V1T paper describes it, five mice of 7,500 neurons (“more than 7,000”) × 6,000 trials,
        of which 1,000 repeat 100 test images 10 times, the rest split 90 % train / 10 % validation: about
        0.6 GB per mouse on disk (uint8 images, float32 responses and their noise-free truth). A number ``f``:
        the book's settings with ``f`` times the trials and test images (neurons unchanged), for scaling
        curves. With ``'paper'`` the six arguments must be left at None.
    mice : sequence of {'A', 'B', 'C', 'D', 'E'}, optional
        Which release mice to imitate (folder names as in the release). Book: ('A', 'B'); paper: all five.
    n_neurons : int, optional
        Neurons per mouse (book 200; the paper's mice have ~7–8k).
    n_trials : int, optional
        Trials per mouse, test repeats included (book 1,000; the paper's mice have ~6k).
    n_test_images : int, optional
        Distinct test images; each is shown ``n_repeats`` times (book 20).
    n_repeats : int, optional
        Repeats per test image (book and release: 10).
    validation_fraction : float, optional
        Share of the non-test trials in the ``validation`` tier (book 0.15, paper 0.10).
    behaviour_gain : float, default=0.35
        Largest log-gain per standard deviation of pupil dilation and of running speed; 0 plants no
        behavioural modulation.
    pupil_shift_px : float, default=1.5
        RF shift (pixels of the 36×64 image) per standard deviation of the pupil centre; 0 plants none.
    rf_field : float or (float, float), default=(0.60, 0.72)
        Share of the image height and width spanned by the retinotopic map of RF centres, centred on
        the image (one number: the same share of both). The default tiles most of the screen; a small
        field, e.g. 0.3, gives a population that sees a compact patch of the screen, as an imaged
        patch of real V1 does.
    mean_rate : float, default=0.4
        Mean expected response; with unit Fano factor it sets the noise level (default: single-trial ceiling ≈ 0.65).
    gaze_gain : float, default=0.0
        Log-gain, shared by every unit, per standard deviation of the image's brightness at the gaze
        point; 0 plants none. A probe for attention analyses, not a claim about mice: to predict it
        a model must read the image where the pupil points (a V1T could move its attention there;
        trained ones do it without their attention weights, see the "V1T analysis" chapter).
    gaze_shift_px : float, default=6.0
        Gaze point's move (pixels of the 36×64 image) per standard deviation of the pupil centre, from
        the image centre, along x and y (kept 4 px inside the image).
    images : {'natural', 'noise'}, default='natural'
        ``'natural'``: the book's natural-image set (:func:`~neuroalign_utils.images.natural_image_set`).
        ``'noise'``: white noise drawn at 36×64 and enlarged 4× by repeating pixels, so that any
        resizing to 36×64 (area or bilinear) returns exactly the image the planted units saw; every
        image is new, as in a system-identification experiment.
    seed : int, default=0

    Memory holds one mouse's (trials × neurons) drive, gain and responses (float64, float64, float32:
    about 0.8 GB per mouse at paper size) and its uint8 image pool (0.2 GB); the images are written one trial
    at a time and block-averaged in chunks, the image statistics come from a histogram of the uint8 pixels.

    Returns
    -------
    pathlib.Path
        The ``sensorium`` folder.
    """
    sized = sized_arguments(
        size,
        SIZES,
        dict(
            mice=mice,
            n_neurons=n_neurons,
            n_trials=n_trials,
            n_test_images=n_test_images,
            n_repeats=n_repeats,
            validation_fraction=validation_fraction,
        ),
        scaled=("n_trials", "n_test_images"),
    )
    settings = _checked_settings(
        dict(
            **sized,
            behaviour_gain=behaviour_gain,
            pupil_shift_px=pupil_shift_px,
            rf_field=rf_field,
            mean_rate=mean_rate,
            gaze_gain=gaze_gain,
            gaze_shift_px=gaze_shift_px,
            images=images,
            seed=seed,
        )
    )
    mice, seed = settings["mice"], settings["seed"]
    if root is None:
        root = storage.get_data_dir() / "sensorium_synthetic" / storage.content_key(settings)
    target = Path(root) / "sensorium"
    if storage.folder_is_intact(target) and all(
        (target / mouse_folder_name(m) / "ground_truth" / "neurons.npz").exists() for m in mice
    ):
        return target
    if target.exists():
        logger.info("rebuilding %s: its files are incomplete or changed", target)
    with storage.atomic_path(target, is_dir=True) as tmp:
        for mouse in mice:  # each mouse's draws depend on its letter only, not on the other mice
            index = list(MOUSE_IDS).index(mouse)
            rng = np.random.default_rng([seed, index])
            _write_mouse(tmp / mouse_folder_name(mouse), rng, mouse, settings)
        storage.write_json(tmp / "synthetic_settings.json", settings)
    logger.info("wrote synthetic Sensorium mice %s to %s", mice, target)
    return target


def _checked_settings(s: dict) -> dict:
    """The writer's arguments, validated (errors name the argument), in the key order that keys the cache."""
    mice = check_subset(s["mice"], "mice", list(MOUSE_IDS))
    n_neurons = check_int(s["n_neurons"], "n_neurons", minimum=1)
    n_test_images = check_int(s["n_test_images"], "n_test_images", minimum=1)
    n_repeats = check_int(s["n_repeats"], "n_repeats", minimum=2)
    return dict(
        mice=mice,
        n_neurons=n_neurons,
        n_trials=check_int(s["n_trials"], "n_trials", minimum=n_test_images * n_repeats + 10),
        n_test_images=n_test_images,
        n_repeats=n_repeats,
        validation_fraction=check_float(s["validation_fraction"], "validation_fraction", minimum=0.01, maximum=0.5),
        behaviour_gain=check_float(s["behaviour_gain"], "behaviour_gain", minimum=0.0, maximum=2.0),
        pupil_shift_px=check_float(s["pupil_shift_px"], "pupil_shift_px", minimum=0.0, maximum=10.0),
        rf_field=check_float_pair(s["rf_field"], "rf_field", minimum=0.0, maximum=1.0),
        mean_rate=check_float(s["mean_rate"], "mean_rate", minimum=0.01),
        gaze_gain=check_float(s["gaze_gain"], "gaze_gain", minimum=0.0, maximum=2.0),
        gaze_shift_px=check_float(s["gaze_shift_px"], "gaze_shift_px", minimum=0.0, maximum=16.0),
        images=check_in_allowed(s["images"], "images", IMAGE_KINDS),
        seed=check_int(s["seed"], "seed", minimum=0),
    )


def _write_mouse(folder: Path, rng: np.random.Generator, mouse: str, s: dict) -> None:
    n_trials, n_neurons = s["n_trials"], s["n_neurons"]
    n_test_trials = s["n_test_images"] * s["n_repeats"]
    n_rest = n_trials - n_test_trials
    n_val = max(1, int(round(s["validation_fraction"] * n_rest)))
    n_images = s["n_test_images"] + n_rest
    pool = _image_pool(s["images"], n_images, int(rng.integers(2**31)))

    # trials: test images repeated, every other image once; shuffled presentation order
    image_of_trial = np.concatenate(
        [np.repeat(np.arange(s["n_test_images"]), s["n_repeats"]), np.arange(s["n_test_images"], n_images)]
    )
    tier_of_trial = np.array(["test"] * n_test_trials + ["validation"] * n_val + ["train"] * (n_rest - n_val))
    order = rng.permutation(n_trials)
    image_of_trial, tier_of_trial = image_of_trial[order], tier_of_trial[order]

    behaviour, pupil_center = _behaviour_traces(rng, n_trials)
    neurons = _plant_neurons(rng, n_neurons, s["rf_field"])
    expected = _expected_responses(pool, image_of_trial, behaviour, pupil_center, neurons, s)
    responses = np.empty(expected.shape, np.float32)
    for rows in storage.chunk_slices(
        n_trials, TRIAL_CHUNK
    ):  # row by row, the same draws as one call on the whole array
        responses[rows] = rng.gamma(np.maximum(expected[rows], 1e-6), 1.0)  # variance = mean

    for sub in TRIAL_FILES:
        (folder / "data" / sub).mkdir(parents=True, exist_ok=True)
    for t in range(n_trials):
        np.save(folder / "data" / "images" / f"{t}.npy", pool[image_of_trial[t]][None])
        np.save(folder / "data" / "responses" / f"{t}.npy", responses[t])
        np.save(folder / "data" / "behavior" / f"{t}.npy", behaviour[t])
        np.save(folder / "data" / "pupil_center" / f"{t}.npy", pupil_center[t])

    meta_trials, meta_neurons = folder / "meta" / "trials", folder / "meta" / "neurons"
    meta_trials.mkdir(parents=True)
    meta_neurons.mkdir(parents=True)
    np.save(meta_trials / "tiers.npy", tier_of_trial.astype(str))  # unicode, as the release
    np.save(
        meta_trials / "frame_image_id.npy", (image_of_trial + 100_000 * list(MOUSE_IDS).index(mouse)).astype(np.int64)
    )
    np.save(meta_trials / "trial_idx.npy", np.arange(n_trials, dtype=np.int64))
    np.save(meta_neurons / "unit_ids.npy", np.arange(1, n_neurons + 1, dtype=np.int64))
    np.save(meta_neurons / "cell_motor_coordinates.npy", neurons.pop("cell_motor_coordinates"))
    np.save(meta_neurons / "animal_ids.npy", np.full(n_neurons, int(MOUSE_IDS[mouse].split("-")[0])))

    train = tier_of_trial == "train"
    statistics = {
        "images": _image_statistics(pool, image_of_trial[train]),
        **{
            name: _statistics(values[train], axis=0)
            for name, values in (("responses", responses), ("behavior", behaviour), ("pupil_center", pupil_center))
        },
    }
    for name, values in statistics.items():
        stats_dir = folder / "meta" / "statistics" / name / "all"
        stats_dir.mkdir(parents=True)
        for stat, value in zip(STAT_NAMES, values):
            np.save(stats_dir / f"{stat}.npy", np.asarray(value, dtype=np.float32))

    truth = folder / "ground_truth"
    truth.mkdir()
    np.save(truth / "expected_responses.npy", expected.astype(np.float32))
    np.savez(
        truth / "neurons.npz",
        pupil_shift_px=s["pupil_shift_px"],
        gaze_gain=s["gaze_gain"],
        gaze_shift_px=s["gaze_shift_px"],
        **neurons,
    )


def _statistics(values: np.ndarray, axis=None) -> tuple:
    """min, max, median, mean, std of ``values`` (the order of ``STAT_NAMES``)."""
    return tuple(func(values, axis=axis) for func in (np.min, np.max, np.median, np.mean, np.std))


def _image_statistics(pool: np.ndarray, images_shown: np.ndarray) -> tuple:
    """Statistics of the pixels of the images shown (``pool[images_shown]``), without stacking them when large.

    Up to :data:`EXACT_IMAGE_STATISTICS_MAX` pixels they are computed on a float32 copy (the book's files are
    unchanged by sizes); above, exactly from a histogram of the uint8 pixels (median: the mean of the two
    middle values when their count is even, as :func:`numpy.median`), in bounded memory.
    """
    if len(images_shown) * pool[0].size <= EXACT_IMAGE_STATISTICS_MAX:
        return _statistics(pool[images_shown].astype(np.float32))
    times_shown = np.bincount(images_shown, minlength=len(pool))
    counts = np.zeros(256, np.int64)
    for i in np.flatnonzero(times_shown):
        counts += times_shown[i] * np.bincount(pool[i].ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64)
    total = counts.sum()
    cumulative = np.cumsum(counts)
    lower = np.searchsorted(cumulative, (total - 1) // 2, side="right")
    upper = np.searchsorted(cumulative, total // 2, side="right")
    mean = (counts * values).sum() / total
    std = np.sqrt((counts * (values - mean) ** 2).sum() / total)
    present = np.flatnonzero(counts)
    return present[0], present[-1], (lower + upper) / 2, mean, std


def _image_pool(kind: str, n_images: int, seed: int) -> np.ndarray:
    """``(n_images, 144, 256)`` uint8 images of ``kind`` (see ``images`` of :func:`write_synthetic_sensorium`)."""
    if kind == "natural":
        pool = np.empty((n_images, *IMAGE_SHAPE), np.uint8)
        for i, (image, _) in enumerate(iter_natural_images(n_images, IMAGE_SHAPE, random_state=seed)):
            pool[i] = np.round(image * 255)
        return pool
    noise = np.random.default_rng(seed).integers(0, 256, (n_images, *PLANTED_SHAPE), dtype=np.uint8)
    factor = IMAGE_SHAPE[0] // PLANTED_SHAPE[0]
    return noise.repeat(factor, axis=1).repeat(factor, axis=2)


def _behaviour_traces(rng: np.random.Generator, n_trials: int):
    """Slow pupil (AR(1) across trials), its derivative, bouts of running, a wandering pupil centre."""

    def ar1(rho, n):
        x = np.empty(n)
        x[0] = rng.normal()
        for t in range(1, n):
            x[t] = rho * x[t - 1] + np.sqrt(1 - rho**2) * rng.normal()
        return x

    arousal = ar1(0.95, n_trials)
    dilation = np.clip(18 + 6 * arousal + rng.normal(0, 1, n_trials), 4, None)
    derivative = np.diff(dilation, prepend=dilation[0])
    running_state = np.zeros(n_trials, bool)
    for t in range(1, n_trials):  # bouts, more likely when aroused
        p_on = 0.04 * np.exp(arousal[t])
        running_state[t] = rng.random() < (0.92 if running_state[t - 1] else p_on)
    speed = np.where(running_state, np.abs(rng.normal(12, 5, n_trials)), np.abs(rng.normal(0, 0.3, n_trials)))
    behaviour = np.stack([dilation, derivative, speed], axis=1).astype(np.float32)
    pupil_center = np.stack([160 + 6 * ar1(0.8, n_trials), 120 + 4 * ar1(0.8, n_trials)], axis=1)
    return behaviour, pupil_center.astype(np.float32)


def _plant_neurons(rng: np.random.Generator, n: int, rf_field: tuple[float, float]) -> dict:
    """Cortical positions and the V1-like units they carry (retinotopy: position → RF centre).

    The RF centres span ``rf_field`` (shares of the image height and width) around the image centre.
    """
    h, w = PLANTED_SHAPE
    coords = np.stack([rng.uniform(-400, 400, n), rng.uniform(-300, 300, n), rng.uniform(150, 400, n)], 1)
    centre_x = w / 2 + (w * rf_field[1] / 2) * coords[:, 0] / 400 + rng.normal(0, 1.0, n)
    centre_y = h / 2 - (h * rf_field[0] / 2) * coords[:, 1] / 300 + rng.normal(0, 1.0, n)
    sigma = rng.uniform(2.0, 3.2, n)
    return dict(
        cell_motor_coordinates=coords.astype(np.float32),
        centre_x=np.clip(centre_x, 4, w - 5),
        centre_y=np.clip(centre_y, 4, h - 5),
        sigma=sigma,
        wavelength=sigma * rng.uniform(2.2, 3.2, n),
        orientation=rng.uniform(0, np.pi, n),
        phase=rng.uniform(0, 2 * np.pi, n),
        simple_weight=rng.uniform(0.0, 1.0, n),
        gain_pupil=rng.uniform(0.3, 1.0, n),
        gain_running=rng.uniform(0.0, 1.0, n),
        baseline=rng.uniform(0.1, 0.4, n),
    )


def gabor_pair(neurons: dict, shape=PLANTED_SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """Even and odd Gabor filters of the planted units, each ``(n_neurons, h, w)``."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    dx = xx[None] - neurons["centre_x"][:, None, None]
    dy = yy[None] - neurons["centre_y"][:, None, None]
    theta = neurons["orientation"][:, None, None]
    u = dx * np.cos(theta) + dy * np.sin(theta)
    envelope = np.exp(-(dx**2 + dy**2) / (2 * neurons["sigma"][:, None, None] ** 2))
    carrier = 2 * np.pi * u / neurons["wavelength"][:, None, None] + neurons["phase"][:, None, None]
    even, odd = envelope * np.cos(carrier), envelope * np.sin(carrier)
    norm = np.sqrt((even**2).sum((1, 2), keepdims=True))
    return even / norm, odd / norm


def planted_drive(images: np.ndarray, neurons: dict) -> np.ndarray:
    """Visual drive ``(n_images, n_neurons)`` of the planted units to 36×64 images in [0, 1] units.

    Drive = w·relu(even)² + (1 − w)·(even² + odd²): a simple-cell part mixed with an energy part.
    """
    flat = (images - 0.5).reshape(len(images), -1)
    n_neurons = len(neurons["simple_weight"])
    drive = np.empty((len(images), n_neurons))
    for cols in storage.chunk_slices(n_neurons, NEURON_CHUNK):  # the filters of a chunk of neurons at a time
        filters = {k: neurons[k][cols] for k in ("centre_x", "centre_y", "sigma", "wavelength", "orientation", "phase")}
        even, odd = gabor_pair(filters, images.shape[-2:])
        e = flat @ even.reshape(len(even), -1).T
        o = flat @ odd.reshape(len(odd), -1).T
        w = neurons["simple_weight"][cols]
        drive[:, cols] = w * np.maximum(e, 0) ** 2 + (1 - w) * (e**2 + o**2)
    return drive


def _expected_responses(pool, image_of_trial, behaviour, pupil_center, neurons, s) -> np.ndarray:
    small = np.concatenate([block_average(pool[rows]) / 255.0 for rows in storage.chunk_slices(len(pool), TRIAL_CHUNK)])
    z_pupil_center = (pupil_center - pupil_center.mean(0)) / pupil_center.std(0)
    shift = s["pupil_shift_px"] * z_pupil_center  # RF moves by +shift: sample the image at x + shift
    drive = np.empty((len(image_of_trial), len(neurons["simple_weight"])))
    for rows in storage.chunk_slices(len(image_of_trial), TRIAL_CHUNK):
        seen = np.stack(
            [
                ndimage.shift(small[image_of_trial[t]], (-shift[t, 1], -shift[t, 0]), order=1, mode="nearest")
                for t in range(rows.start, rows.stop)
            ]
        )
        drive[rows] = planted_drive(seen, neurons)
    drive /= drive.mean(0, keepdims=True) + 1e-12
    z = (behaviour - behaviour.mean(0)) / behaviour.std(0)
    log_gain = s["behaviour_gain"] * (neurons["gain_pupil"] * z[:, [0]] + neurons["gain_running"] * z[:, [2]])
    if s["gaze_gain"]:
        log_gain += s["gaze_gain"] * gaze_brightness(small[image_of_trial], z_pupil_center, s["gaze_shift_px"])[:, None]
    # in place: two (trials × neurons) arrays in memory, not five
    log_gain -= log_gain.mean(0, keepdims=True)
    expected = np.exp(log_gain, out=log_gain)
    expected *= s["mean_rate"]
    drive += neurons["baseline"]
    expected *= drive
    expected /= 1 + neurons["baseline"]
    return expected


def gaze_point(z_pupil_center: np.ndarray, shift_px: float, shape=PLANTED_SHAPE) -> np.ndarray:
    """Planted gaze point ``(T, 2)`` (x, y pixels): the image centre moved ``shift_px`` per SD of the
    pupil centre, kept 4 px inside the image."""
    h, w = shape
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    return np.clip(centre + shift_px * np.asarray(z_pupil_center), 4, np.array([w - 5, h - 5]))


def gaze_brightness(images: np.ndarray, z_pupil_center: np.ndarray, shift_px: float, sigma: float = 3.0) -> np.ndarray:
    """Z-scored brightness of each trial's image in a Gaussian window (``sigma`` px) at its gaze point."""
    yy, xx = np.mgrid[: images.shape[-2], : images.shape[-1]]
    gaze = gaze_point(z_pupil_center, shift_px, images.shape[-2:])
    window = np.exp(-((xx - gaze[:, :1, None]) ** 2 + (yy - gaze[:, 1:, None]) ** 2) / (2 * sigma**2))
    brightness = (window * images).sum((1, 2)) / window.sum((1, 2))
    return (brightness - brightness.mean()) / brightness.std()
