import numpy as np
import pytest

from neuroalign_utils import images


def test_image_set_is_deterministic_and_labelled():
    a = images.natural_image_set(20, (32, 48), random_state=1)
    b = images.natural_image_set(20, (32, 48), random_state=1)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.dims == ("image", "y", "x") and a.shape == (20, 32, 48)
    assert list(a["kind"].values[:14]) == ["photograph"] * 14
    assert set(a["kind"].values[14:]) == {"crop", "texture"}
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert all(a["licence"].values)


def test_rgb_has_a_channel_dimension():
    a = images.natural_image_set(3, 16, grayscale=False)
    assert a.dims == ("image", "y", "x", "channel") and a.shape[-1] == 3


def test_pink_noise_has_the_requested_spectral_slope():
    tex = images.pink_noise_texture((128, 128), exponent=1.0, random_state=0)
    amp = np.abs(np.fft.fft2(tex - tex.mean()))
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128), indexing="ij"))
    sel = (f > 0.02) & (f < 0.4)
    slope = np.polyfit(np.log(f[sel]), np.log(amp[sel]), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.05)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_images": 0}, "'n_images' must be >= 1"),
        ({"shape": (0, 4)}, "'shape' must be >= 1"),
        ({"grayscale": "yes"}, "'grayscale' must be a bool"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        images.natural_image_set(**kwargs)


def test_image_grid_draws_into_given_axes_or_its_own_figure():
    import matplotlib.pyplot as plt

    image_set = images.natural_image_set(3, (16, 16), random_state=0)
    own = images.plot_image_grid(image_set, n_cols=2)
    assert len(own.axes) == 4 and [ax.get_title() for ax in own.axes[:3]] == list(image_set["name"].values)
    fig, axes = plt.subplots(1, 3)
    assert images.plot_image_grid(image_set, axes=axes) is fig
    with pytest.raises(ValueError, match="'axes' must hold at least 3 Axes"):
        images.plot_image_grid(image_set, axes=axes[:2])
    plt.close("all")
