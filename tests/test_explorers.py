"""The explorers of chapters 04, 06 and 07: built live on small real results, a control moved, the figure and
numbers follow; static, a plain figure and a note, no widget. ``small_*`` make the results (also used by
``benchmarks/explorer_update.py``)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from neuroalign_utils import explorers, report

AREAS, GENOTYPES = ("VISp", "VISl"), ("Cux2", "Rorb", "Sst")


def small_alignment(n_neural: int = 30, size=(12, 16), seed: int = 0):
    """Planted kernel alignment: neural Gaussian RFs in 2 areas × 3 genotypes (VISl has no Sst), a
    ``planted`` model holding a noisy copy of each at 9×12 and a ``random`` model of noise, through
    :func:`~neuroalign_utils.kernels.pipeline.alignment_summary` with the chapter's area and genotype
    groupings."""
    from neuroalign_utils.kernels import pipeline
    from neuroalign_utils.kernels.similarity import resize_kernels

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: size[0], : size[1]]
    centres = rng.uniform(3, min(size) - 3, size=(n_neural, 2))
    rfs = np.exp(-((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2) / (2 * 2.0**2))
    area = np.array([AREAS[i % 2] for i in range(n_neural)])
    genotype = np.array([GENOTYPES[i % 3] if area[i] == "VISp" else GENOTYPES[i % 2] for i in range(n_neural)])
    neural = xr.DataArray(
        rfs + 0.05 * rng.normal(size=rfs.shape),
        dims=("kernel", "y", "x"),
        coords={"area": ("kernel", area), "genotype": ("kernel", genotype)},
    )
    planted = resize_kernels(rfs, (9, 12))  # artificial kernels of another size than the neural ones
    artificial = xr.DataArray(
        np.concatenate([planted + 0.3 * rng.normal(size=planted.shape), rng.normal(size=(40, 9, 12))]),
        dims=("kernel", "y", "x"),
        coords={
            "model": ("kernel", ["planted"] * n_neural + ["random"] * 40),
            "kind": ("kernel", ["weight"] * (n_neural + 40)),
            "layer_type": ("kernel", ["convolution"] * (n_neural + 40)),
        },
    )
    groupings = {"area": ["model", "area"], "genotype": ["model", "genotype"]}
    result = pipeline.alignment_summary(neural, artificial, groupings, n_bootstrap=20, n_permutations=20, device="cpu")
    return result, neural, artificial


def small_v1t(seed: int = 0):
    """A small V1T encoder of two mice (5 and 3 units) at random weights: the rollout maps of 6 and 4 test
    images and every unit's aRFs with their Gaussian fits, as the V1T analysis chapter computes them."""
    from neuroalign_utils.v1t import analysis, models

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    units, trials = {"a": 5, "b": 3}, {"a": 6, "b": 4}
    config = dict(
        core="v1t",
        core_options=dict(emb_dim=8, n_blocks=2, n_heads=2, mlp_dim=8, stride=4),
        readout_options={},
        use_behaviour=True,
        image_size=(36, 64),
        mice=units,
    )
    model = models.build_encoder(config, {m: rng.normal(size=(n, 3)) for m, n in units.items()})
    images, maps, arfs, fits = {}, {}, {}, []
    for mouse, n in trials.items():
        images[mouse] = rng.normal(size=(n, 1, 36, 64)).astype(np.float32)
        behaviour, pupil = rng.normal(size=(n, 3)).astype(np.float32), rng.normal(size=(n, 2)).astype(np.float32)
        maps[mouse] = analysis.rollout_maps(model, images[mouse], behaviour, pupil)
        arfs["V1T", mouse], fit = analysis.encoder_arfs(model, mouse, behaviour.mean(0), n_images=200, seed=seed)
        fits.append(fit.assign(model="V1T", mouse=mouse))
    centres = {m: rng.uniform(0, 36, size=(n, 2)) for m, n in units.items()}
    images = {m: value[:, 0] for m, value in images.items()}
    return images, maps, arfs, pd.concat(fits, ignore_index=True), centres


def small_factortopy(n_per_hemisphere: int = 150, n_layers: int = 4, seed: int = 0):
    """The selector table of a small FactorTopy model on a synthetic cap of both hemispheres (random
    selector weights, so every quantity varies over vertices), with a test R² column."""
    from neuroalign_utils.factortopy import analysis, model, synthetic

    vertices = pd.concat([synthetic.cap_vertices(h, n_per_hemisphere) for h in ("lh", "rh")], ignore_index=True)
    vertices["roi"] = np.where(vertices["rho"] < 0.5, "V1v", "EBA")
    xyz = np.concatenate(
        [
            synthetic.sphere_coordinates(h, part["fsaverage_index"].to_numpy())
            for h, part in vertices.groupby("hemisphere")
        ]
    )
    coords = model.hemisphere_separated_coordinates(xyz, vertices["hemisphere"])
    torch.manual_seed(seed)
    factortopy = model.FactorTopy(coords, n_layers, 16, bottleneck=8)
    with torch.no_grad():
        for parameter in factortopy.parameters():
            parameter.normal_(0, 0.7)
    r2 = np.random.default_rng(seed).uniform(0, 0.4, len(vertices))
    return analysis.selector_table(factortopy, vertices).assign(test_r2=r2)


def _panels(fig) -> list:
    """The Axes of ``fig`` other than colour bars, in the order drawn."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def _images(fig):
    """The arrays drawn by ``imshow`` in each panel of ``fig``."""
    return [[np.asarray(image.get_array()) for image in ax.get_images()] for ax in _panels(fig)]


# --------------------------------------------------------------------------- kernel alignment
@pytest.fixture(scope="module")
def alignment():
    return small_alignment()


def test_kernel_alignment_explorer_follows_the_group(alignment):
    result, neural, artificial = alignment
    explorer = explorers.kernel_alignment_explorer(result, neural, artificial, live=True)
    assert set(explorer.controls) == {"area", "genotype"}
    assert list(explorer.controls["area"].options) == [("all", "all"), ("VISl", "VISl"), ("VISp", "VISp")]
    first_png = explorer.image.value
    explorer.controls["area"].value = "VISl"
    fig = explorer.figure
    assert fig._suptitle.get_text().startswith(f"VISl × all genotypes: {int((neural['area'] == 'VISl').sum())} ")
    assert explorer.image.value != first_png
    # the panels hold VISl kernels, each beside its own planted copy (the planted best match)
    similarity = result["similarity"]
    shown_neural = [int(ax.get_title().split()[1]) for ax in _panels(fig)[:8:2] if ax.get_title().startswith("neural")]
    assert shown_neural and all(neural["area"].values[k] == "VISl" for k in shown_neural)
    assert all(ax.get_title().startswith("planted") for ax in _panels(fig)[1:8:2] if ax.get_images())
    drawn = _images(fig)[0][0]
    kernel = neural.values[shown_neural[0]]
    np.testing.assert_allclose(drawn, kernel / np.abs(kernel).max())
    # the group's numbers are the chapter's per-area table
    table = result["tables"]["area"].set_index(["model", "area"])
    for model in ("planted", "random"):
        for column in ("value", "null_value", "margin"):
            assert report.format_number(float(table.loc[(model, "VISl"), column]), 3) in explorer.details.value
    best = similarity["one_minus_rmse"].values[similarity["area"].values == "VISl"].max()
    assert report.format_number(float(best), 3) in explorer.details.value
    # a combination: its count and an empty one
    explorer.controls["genotype"].value = "Rorb"
    count = int(((neural["area"] == "VISl") & (neural["genotype"] == "Rorb")).sum())
    assert explorer.figure._suptitle.get_text().startswith(f"VISl × Rorb: {count} neural kernels")
    explorer.select(genotype="Sst")
    assert explorer.figure.axes[0].texts[0].get_text() == "No neural kernels in VISl × Sst."


def test_kernel_alignment_explorer_matches_only_the_models_asked(alignment):
    result, neural, artificial = alignment
    explorer = explorers.kernel_alignment_explorer(result, neural, artificial, models=["random"], live=True)
    titles = [ax.get_title() for ax in _panels(explorer.figure)[1:8:2] if ax.get_images()]
    assert titles and all(title.startswith("random") for title in titles)


def test_kernel_alignment_explorer_refuses_unknown_choices(alignment):
    result, neural, artificial = alignment
    with pytest.raises(ValueError, match="'genotype' must be one of .*'Cux2'"):
        explorers.kernel_alignment_explorer(result, neural, artificial, genotype="Pvalb", live=True)
    with pytest.raises(ValueError, match="'models' must be one of"):
        explorers.kernel_alignment_explorer(result, neural, artificial, models=["planted", "vit"], live=False)
    explorer = explorers.kernel_alignment_explorer(result, neural, artificial, live=True)
    with pytest.raises(ValueError, match="'area' must be one of"):
        explorer.select(area="V1")
    with pytest.raises(ValueError, match=r"Unknown control\(s\) \['layer'\]"):
        explorer.select(layer=2)


def test_static_explorer_is_a_figure_and_a_note_without_widgets(alignment, monkeypatch):
    result, neural, artificial = alignment
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # any widget built would fail to import
    monkeypatch.setenv("NEUROALIGN_INTERACTIVE", "0")
    view = explorers.kernel_alignment_explorer(result, neural, artificial, area="VISp")
    assert isinstance(view, explorers.StaticView)
    assert view.figure._suptitle.get_text().startswith("VISp × all genotypes")
    assert "live kernel" in view.note and "\n" not in view.note
    assert "planted" in view.details


# --------------------------------------------------------------------------- V1T
@pytest.fixture(scope="module")
def v1t():
    return small_v1t()


def test_v1t_explorer_follows_trial_unit_and_mouse(v1t):
    from neuroalign_utils.v1t import analysis

    images, maps, arfs, fits, centres = v1t
    explorer = explorers.v1t_explorer(images, maps, arfs, fits=fits, centres=centres, live=True)
    assert set(explorer.controls) == {"mouse", "trial", "unit"}
    assert (explorer.controls["trial"].max, explorer.controls["unit"].max) == (5, 4)
    explorer.controls["trial"].value = 3
    image_panel, rollout_panel, arf_panel = _images(explorer.figure)[:3]
    np.testing.assert_allclose(image_panel[0], images["a"][3])
    np.testing.assert_allclose(rollout_panel[1], maps["a"][3])
    com = analysis.centre_of_mass(maps["a"][3:4]).iloc[0]
    np.testing.assert_allclose(_panels(explorer.figure)[1].lines[0].get_xydata()[0], [com["x"], com["y"]])
    assert explorer.figure.subfigs[0]._suptitle.get_text() == "mouse a, test trial 3"
    explorer.controls["unit"].value = 2
    arf = arfs["V1T", "a"][2]
    np.testing.assert_allclose(_images(explorer.figure)[2][0], arf / np.abs(arf).max())
    assert _panels(explorer.figure)[2].get_title() == "unit 2"
    np.testing.assert_allclose(_panels(explorer.figure)[2].lines[0].get_xydata()[0], centres["a"][2])
    r2 = fits.query("mouse == 'a' and neuron == 2")["r2"].iloc[0]
    assert f"{r2:.3f}".rstrip("0") in explorer.details.value
    # mouse b has 4 trials and 3 units: the sliders follow, the values are clamped
    explorer.controls["unit"].value = 4
    explorer.controls["mouse"].value = "b"
    assert (explorer.controls["trial"].max, explorer.controls["unit"].max) == (3, 2)
    assert explorer.values() == {"mouse": "b", "trial": 3, "unit": 2}
    np.testing.assert_allclose(_images(explorer.figure)[1][1], maps["b"][3])
    explorer.select(mouse="a", unit=4)
    assert _panels(explorer.figure)[2].get_title() == "unit 4"


def test_v1t_explorer_refuses_unknown_choices_and_is_static_under_the_runner(v1t, monkeypatch):
    images, maps, arfs, fits, centres = v1t
    with pytest.raises(ValueError, match="'unit' must be <= 2"):
        explorers.v1t_explorer(images, maps, arfs, mouse="b", unit=3, live=True)
    with pytest.raises(ValueError, match="'mouse' must be one of"):
        explorers.v1t_explorer(images, maps, arfs, mouse="c", live=False)
    explorer = explorers.v1t_explorer(images, maps, arfs, live=True)
    with pytest.raises(ValueError, match="'trial' must be <= 5"):
        explorer.select(trial=6)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    monkeypatch.setenv("NEUROALIGN_INTERACTIVE", "0")
    view = explorers.v1t_explorer(images, maps, arfs, trial=1)
    assert isinstance(view, explorers.StaticView)
    np.testing.assert_allclose(_images(view.figure)[1][1], maps["a"][1])


# --------------------------------------------------------------------------- FactorTopy
@pytest.fixture(scope="module")
def factortopy_table():
    return small_factortopy()


def _colour_bar_label(fig) -> str:
    return next(ax.get_ylabel() for ax in fig.axes if ax.get_label() == "<colorbar>")


def test_factortopy_explorer_follows_the_quantity(factortopy_table):
    table = factortopy_table
    explorer = explorers.factortopy_explorer(table, n_layers=4, live=True)
    legend = explorer.figure.axes[1].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [f"layer {i}" for i in range(4)]
    pngs = {"layer": explorer.image.value}
    for quantity, label in (("scale", "global share"), ("iota", "layer position ι̂"), ("r2", "test R²")):
        explorer.controls["quantity"].value = quantity
        assert _colour_bar_label(explorer.figure) == label
        pngs[quantity] = explorer.image.value
        column = {"scale": "scale", "iota": "iota", "r2": "test_r2"}[quantity]
        for roi, mean in table.groupby("roi")[column].mean().items():
            assert f"<th>{roi}</th>" in explorer.details.value and f"{mean:.3f}".rstrip("0") in explorer.details.value
    colour_bar = next(ax for ax in explorer.figure.axes if ax.get_label() == "<colorbar>")
    assert colour_bar.get_ylim()[1] == pytest.approx(table["test_r2"].max())
    explorer.select(quantity="position")
    assert any(ax.get_title() == "image\nposition" for ax in explorer.figure.axes)
    assert len(set(pngs.values())) == len(pngs)


def test_factortopy_explorer_refuses_unknown_quantities_and_is_static_by_default(factortopy_table, monkeypatch):
    with pytest.raises(ValueError, match="'quantity' must be one of"):
        explorers.factortopy_explorer(factortopy_table, quantity="noise", live=True)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    view = explorers.factortopy_explorer(factortopy_table, quantity="scale")  # outside a kernel: static
    assert isinstance(view, explorers.StaticView)
    assert _colour_bar_label(view.figure) == "global share"
