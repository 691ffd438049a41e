"""The natural-image set every synthetic dataset in the book is built from.

Only photographs that ship inside installed packages are used (scikit-image, scikit-learn,
matplotlib), so the set is available offline and identical on every machine. Where a dataset needs
more images than there are photographs, further images are random crops (with mirror flips) of the
photographs, then 1/f ("pink") noise textures, whose amplitude spectrum falls like natural images'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ._validation import check_float, check_int, check_shape2d


@dataclass(frozen=True)
class _Photo:
    name: str
    source: str
    licence: str


#: The bundled photographs, in a fixed order. Licences as stated by the shipping packages' docs.
PHOTOGRAPHS: tuple[_Photo, ...] = (
    _Photo("astronaut", "skimage.data.astronaut", "public domain (NASA)"),
    _Photo("camera", "skimage.data.camera", "CC0 (Lav Varshney)"),
    _Photo("coffee", "skimage.data.coffee", "CC0 (Rachel Michetti)"),
    _Photo("chelsea", "skimage.data.chelsea", "CC0 (Stefan van der Walt)"),
    _Photo("rocket", "skimage.data.rocket", "public domain (SpaceX)"),
    _Photo("hubble_deep_field", "skimage.data.hubble_deep_field", "public domain (NASA)"),
    _Photo("grass", "skimage.data.grass", "CC0"),
    _Photo("gravel", "skimage.data.gravel", "CC0"),
    _Photo("brick", "skimage.data.brick", "CC0"),
    _Photo("coins", "skimage.data.coins", "no known copyright restrictions (Brooklyn Museum)"),
    _Photo("retina", "skimage.data.retina", "CC0"),
    _Photo("china", "sklearn.datasets.load_sample_images", "CC BY 2.0 (danielbuechele)"),
    _Photo("flower", "sklearn.datasets.load_sample_images", "CC BY 2.0 (danielbuechele)"),
    _Photo("grace_hopper", "matplotlib sample_data/grace_hopper.jpg", "public domain (U.S. Navy)"),
)


def _load_photo(name: str) -> np.ndarray:
    """Load one bundled photograph as a float image in [0, 1], (H, W) or (H, W, 3)."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        img = load_sample_image(f"{name}.jpg")
    elif name == "grace_hopper":
        import matplotlib
        from PIL import Image

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        img = np.asarray(Image.open(path).convert("RGB"))
    else:
        import skimage.data

        img = getattr(skimage.data, name)()
    return np.asarray(img, dtype=np.float64) / 255.0


def _to_gray(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        return img
    # ITU-R BT.601 luma, as in skimage.color.rgb2gray's documentation
    return img[..., :3] @ np.array([0.299, 0.587, 0.114])


def _crop_resize(img: np.ndarray, shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    from skimage.transform import resize

    y0, x0, h, w = box
    return resize(img[y0 : y0 + h, x0 : x0 + w], shape, anti_aliasing=True, mode="reflect")


def _centre_box(img_shape, aspect: float) -> tuple[int, int, int, int]:
    """Largest centred box of the requested aspect (width / height)."""
    H, W = img_shape[:2]
    if W / H > aspect:
        h, w = H, int(round(H * aspect))
    else:
        h, w = int(round(W / aspect)), W
    return (H - h) // 2, (W - w) // 2, h, w


def pink_noise_texture(shape, *, exponent: float = 1.0, random_state=0) -> np.ndarray:
    """A random texture whose amplitude spectrum falls as 1/f**exponent, scaled to [0, 1].

    Parameters
    ----------
    shape : int or (int, int)
        Height and width.
    exponent : float, default=1.0
        Spectral slope of the amplitude; natural images are close to 1.
    random_state : int or numpy.random.Generator, default=0

    Returns
    -------
    numpy.ndarray of shape (height, width), float64 in [0, 1]
    """
    h, w = check_shape2d(shape, "shape")
    exponent = check_float(exponent, "exponent", minimum=0.0)
    rng = np.random.default_rng(random_state)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fy**2 + fx**2)
    f[0, 0] = 1.0  # the mean is set below; avoid dividing by zero
    amplitude = f**-exponent
    amplitude[0, 0] = 0.0
    phase = rng.uniform(0, 2 * np.pi, size=amplitude.shape)
    tex = np.fft.irfft2(amplitude * np.exp(1j * phase), s=(h, w))
    tex -= tex.min()
    return tex / tex.max()


def iter_natural_images(n_images: int, shape, *, grayscale: bool = True, random_state: int = 0):
    """:func:`natural_image_set` one image at a time: yields ``(image, (name, kind, source, licence))``.

    The same images, in the same order, as :func:`natural_image_set` with the same arguments; memory holds
    one image, so writers of large synthetic sets stream them (``n_images`` and ``shape`` are not checked
    here: :func:`natural_image_set` checks them).
    """
    rng = np.random.default_rng(random_state)
    aspect = shape[1] / shape[0]
    photos = [_load_photo(p.name) for p in PHOTOGRAPHS]
    if grayscale:
        photos = [_to_gray(p) for p in photos]
    else:
        photos = [p if p.ndim == 3 else np.repeat(p[..., None], 3, axis=-1) for p in photos]
    for i in range(n_images):
        if i < len(PHOTOGRAPHS):
            photo = PHOTOGRAPHS[i]
            img = _crop_resize(photos[i], shape, _centre_box(photos[i].shape, aspect))
            row = (photo.name, "photograph", photo.source, photo.licence)
        elif (i - len(PHOTOGRAPHS)) % 5 == 4:
            img = pink_noise_texture(shape, random_state=rng)
            if not grayscale:
                img = np.repeat(img[..., None], 3, axis=-1)
            row = (f"texture_{i:04d}", "texture", "1/f noise (neuroalign_utils.images)", "CC0")
        else:
            k = int(rng.integers(len(PHOTOGRAPHS)))
            src = photos[k]
            y0c, x0c, hc, wc = _centre_box(src.shape, aspect)
            scale = rng.uniform(0.25, 1.0)
            h, w = max(8, int(hc * scale)), max(8, int(wc * scale))
            y0 = int(rng.integers(0, src.shape[0] - h + 1))
            x0 = int(rng.integers(0, src.shape[1] - w + 1))
            img = _crop_resize(src, shape, (y0, x0, h, w))
            if rng.random() < 0.5:
                img = img[:, ::-1]
            photo = PHOTOGRAPHS[k]
            row = (f"{photo.name}_crop_{i:04d}", "crop", photo.source, photo.licence)
        yield np.clip(img, 0.0, 1.0), row


def natural_image_set(
    n_images: int | None = None,
    shape=(256, 256),
    *,
    grayscale: bool = True,
    random_state: int = 0,
) -> xr.DataArray:
    """Return the book's deterministic natural-image set.

    The first images are the bundled photographs (centre crop to the requested aspect, then resize).
    If more are asked for, the next ones are random crops (a quarter to all of the photograph's
    shorter side, mirrored at random) and, for every fifth extra image, a 1/f noise texture.

    Parameters
    ----------
    n_images : int, optional
        How many images; default is one per bundled photograph (14).
    shape : int or (int, int), default=(256, 256)
        Output height and width in pixels.
    grayscale : bool, default=True
        Return luminance only (BT.601 weights); otherwise RGB (textures are replicated to 3 channels).
    random_state : int, default=0
        Seed for the crops, flips and textures.

    Returns
    -------
    xarray.DataArray
        Dims ``(image, y, x)`` (plus ``channel`` when RGB), float64 in [0, 1], with per-image
        coordinates ``name``, ``kind`` (``photograph``, ``crop`` or ``texture``), ``source`` and
        ``licence``.
    """
    shape = check_shape2d(shape, "shape")
    if n_images is None:
        n_images = len(PHOTOGRAPHS)
    n_images = check_int(n_images, "n_images", minimum=1)
    if not isinstance(grayscale, bool):
        raise TypeError(f"'grayscale' must be a bool; {grayscale!r} was provided.")
    images, rows = [], []
    for img, row in iter_natural_images(n_images, shape, grayscale=grayscale, random_state=random_state):
        images.append(img)
        rows.append(row)

    meta = pd.DataFrame(rows, columns=["name", "kind", "source", "licence"])
    dims = ("image", "y", "x") if grayscale else ("image", "y", "x", "channel")
    return xr.DataArray(
        np.stack(images),
        dims=dims,
        coords={"image": np.arange(n_images), **{c: ("image", meta[c].to_numpy()) for c in meta}},
        name="natural_images",
        attrs={"description": "neuroalign natural-image set", "random_state": random_state},
    )


def plot_image_grid(images: xr.DataArray, *, n_cols: int = 7, label: str = "name", axes=None):
    """Show an ``(image, y, x[, channel])`` DataArray as a grid, at the book's width, one label per image.

    Parameters
    ----------
    images : xarray.DataArray
        ``(image, y, x[, channel])`` in [0, 1]; the coordinate named ``label`` titles each panel.
    n_cols : int
        Panels per row of a new figure.
    label : str
        The coordinate that titles each image (its index when absent).
    axes : array of matplotlib.axes.Axes, optional
        At least one Axes per image; a new figure of ``n_cols`` columns when None.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from .style import BOOK_WIDTH

    n_cols = check_int(n_cols, "n_cols", minimum=1)
    n = images.sizes["image"]
    if axes is None:
        n_rows = int(np.ceil(n / n_cols))
        panel = BOOK_WIDTH / n_cols
        fig, axes = plt.subplots(
            n_rows,
            n_cols,
            figsize=(BOOK_WIDTH, n_rows * (panel * images.sizes["y"] / images.sizes["x"] + 0.25)),
            squeeze=False,
        )
    else:
        axes = np.atleast_1d(np.asarray(axes, dtype=object))
        if axes.size < n:
            raise ValueError(f"'axes' must hold at least {n} Axes (one per image); got {axes.size}.")
        fig = axes.flat[0].figure
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in zip(range(n), axes.flat):
        img = images.isel(image=i).values
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        name = str(images[label].values[i]) if label in images.coords else str(i)
        ax.set_title(name if len(name) <= 12 else name[:11] + "…")
    fig.tight_layout()
    return fig


def radial_amplitude_spectrum(image: np.ndarray) -> np.ndarray:
    """Radially averaged Fourier amplitude of a mean-subtracted 2-D image, at 1 … min(h, w)/2 − 1 cycles."""
    image = np.asarray(image, dtype=np.float64)
    amplitude = np.abs(np.fft.fftshift(np.fft.fft2(image - image.mean())))
    h, w = image.shape
    yy, xx = np.indices(amplitude.shape)
    radius = np.hypot(yy - h // 2, xx - w // 2).astype(int)
    total = np.bincount(radius.ravel(), amplitude.ravel())
    count = np.bincount(radius.ravel())
    return (total / np.maximum(count, 1))[1 : min(h, w) // 2]


def spectral_slopes(images: np.ndarray) -> np.ndarray:
    """α of a least-squares fit log A(f) = c − α log f per image (natural scenes: α near 1)."""
    spectra = np.stack([radial_amplitude_spectrum(img) for img in images])
    freqs = np.arange(1, spectra.shape[1] + 1)
    return -np.polyfit(np.log(freqs), np.log(spectra.T), 1)[0]


def describe_spectral_slope(median_slope: float, *, tolerance: float = 0.2) -> str:
    """How the photographs' median slope compares with the α = 1 of the 1/f textures."""
    if abs(median_slope - 1) <= tolerance:
        verdict = "close to"
    else:
        verdict = "steeper than" if median_slope > 1 else "shallower than"
    return (
        f"The median slope of the photographs is α = {median_slope:.2f}, {verdict} the α = 1 of the "
        f"1/f textures (within ±{tolerance:g} counts as close)."
    )
