"""The interactive figures (``view_*``): self-contained HTML, offline, drawing the run's own numbers.

Each figure's data is read back from its HTML (the arguments of ``Plotly.newPlot``), as a browser
gets them, and compared with what went in. That the figures draw in a real browser is checked by
tests/test_browser.py on the built book.
"""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from neuroalign_utils.factortopy import figures as ft_figures
from neuroalign_utils.factortopy import maps
from neuroalign_utils.factortopy.loading import FSAVERAGE5_N_VERTICES
from neuroalign_utils.interactive import InteractiveFigure
from neuroalign_utils.kernels import analysis, pipeline
from neuroalign_utils.kernels import figures as ka_figures

#: A script or stylesheet fetched from the network: what an offline book must never hold.
EXTERNAL_RESOURCE = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.I)
#: The banner at the top of plotly.min.js: one per copy of plotly.js.
PLOTLY_JS_BANNER = re.compile(r"\* plotly\.js v\d+\.\d+\.\d+")


def plotted(html: str) -> tuple[list, dict]:
    """The traces and layout passed to ``Plotly.newPlot`` in ``html``."""
    start = html.index("Plotly.newPlot(")
    decoder = json.JSONDecoder()
    position = html.index(",", start) + 1  # after the div's id
    data, end = decoder.raw_decode(html, position + len(html[position:]) - len(html[position:].lstrip()))
    rest = html[end:].lstrip().lstrip(",").lstrip()
    layout, _ = decoder.raw_decode(rest)
    return data, layout


def array(value) -> np.ndarray:
    """A trace's array as written in the HTML: a list, or plotly's base64 typed array."""
    if isinstance(value, dict):
        dtype = {"f4": "<f4", "f8": "<f8", "u1": "u1", "u2": "<u2", "i1": "i1", "i2": "<i2", "u4": "<u4", "i4": "<i4"}
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=dtype[value["dtype"]])
    return np.asarray(value)


def assert_self_contained(figure: InteractiveFigure, *, carries_plotlyjs: bool = True):
    assert not EXTERNAL_RESOURCE.search(figure.html), EXTERNAL_RESOURCE.search(figure.html).group(0)
    assert len(PLOTLY_JS_BANNER.findall(figure.html)) == (1 if carries_plotlyjs else 0)
    assert figure._repr_html_() == figure.html


# --------------------------------------------------------------------------------------------------
# FactorTopy: the layer selector on the inflated cortex


@pytest.fixture(scope="module")
def occipital_vertices():
    """The 40 most posterior vertices of each hemisphere, in two ROIs, with planted layers and confidences."""
    rows = []
    for hemi in ("lh", "rh"):
        xyz, _ = maps.mesh_3d(hemi, "inflated")
        index = np.argsort(xyz[:, 1])[:40]
        rows.append(pd.DataFrame({"hemisphere": hemi, "fsaverage_index": index, "roi": ["V1v"] * 20 + ["hV4"] * 20}))
    vertices = pd.concat(rows, ignore_index=True)
    rng = np.random.default_rng(0)
    values = np.stack([rng.integers(0, 6, len(vertices)), rng.uniform(0, 1, len(vertices))], 1)
    return vertices, values


def test_layer_surface_is_self_contained_and_draws_every_vertex(occipital_vertices):
    vertices, values = occipital_vertices
    view = ft_figures.view_layer_surface(values, vertices, n_layers=6)
    assert_self_contained(view)
    data, layout = plotted(view.html)
    cortex, subject = data[:2]
    assert [cortex["type"], subject["type"]] == ["mesh3d", "mesh3d"]
    assert cortex["hoverinfo"] == "skip" and "text" not in cortex  # grey cortex answers no hover
    # both whole hemispheres: every triangle of the two fsaverage5 meshes, in one mesh or the other
    n_faces = sum(len(array(mesh["i"])) for mesh in (cortex, subject))
    assert n_faces == 2 * len(maps.mesh_3d("lh", "inflated")[1])
    assert len(array(cortex["x"])) + len(array(subject["x"])) >= 2 * FSAVERAGE5_N_VERTICES
    for mesh in (cortex, subject):
        n = len(array(mesh["x"]))
        assert len(mesh["vertexcolor"]) == n and max(array(mesh[k]).max() for k in "ijk") < n
    # one legend entry per layer
    assert [trace["name"] for trace in data[2:]] == [f"layer {i}" for i in range(6)]
    labelled = [text for text in subject["text"] if text]
    assert len(labelled) == len(vertices)
    colours = maps.layer_colours(values[:, 0].astype(int), values[:, 1], 6)
    for row in (0, len(vertices) - 1):
        hemi, index, roi = vertices.loc[row, ["hemisphere", "fsaverage_index", "roi"]]
        side = "left" if hemi == "lh" else "right"
        head = f"{side} {index} · {roi}<br>"
        (position,) = [i for i, text in enumerate(subject["text"]) if text.startswith(head)]
        assert subject["text"][position] == head + f"layer {int(values[row, 0])} · confidence {values[row, 1]:.2f}"
        assert subject["vertexcolor"][position] == "#" + "".join(f"{round(255 * c):02x}" for c in colours[row])


def test_layer_surface_without_plotlyjs_is_small_and_still_offline(occipital_vertices):
    vertices, values = occipital_vertices
    view = ft_figures.view_layer_surface(values, vertices, include_plotlyjs=False)
    assert_self_contained(view, carries_plotlyjs=False)
    assert len(view.html) < 1.5e6


def test_layer_surface_saves_a_standalone_page(occipital_vertices, tmp_path):
    vertices, values = occipital_vertices
    path = ft_figures.view_layer_surface(values, vertices, include_plotlyjs=False).save_as_html(tmp_path / "map.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and len(PLOTLY_JS_BANNER.findall(page)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["map.html"]  # no temporary file left


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda v, x: (v[:-1], x), r"'values' must have shape \(80, 2\)"),
        (lambda v, x: (v[:, 0], x), r"'values' must have shape"),
        (lambda v, x: (v, x.assign(hemisphere="left")), r"'hemisphere' must hold \['lh', 'rh'\]; got \['left'\]"),
        (lambda v, x: (v, x.assign(fsaverage_index=x["fsaverage_index"] + 20000)), "'vertices' must index fsaverage5"),
    ],
)
def test_layer_surface_refuses_bad_input(occipital_vertices, change, match):
    values, vertices = change(occipital_vertices[1], occipital_vertices[0])
    with pytest.raises(ValueError, match=match):
        ft_figures.view_layer_surface(values, vertices)


def test_layer_surface_refuses_layers_beyond_n_layers_and_bad_options(occipital_vertices):
    vertices, values = occipital_vertices
    with pytest.raises(ValueError, match=r"'values\[:, 0\]' \(argmax layer\) must lie in 0 … 2"):
        ft_figures.view_layer_surface(values, vertices, n_layers=3)
    with pytest.raises(ValueError, match="'n_layers'"):
        ft_figures.view_layer_surface(values, vertices, n_layers=0)
    with pytest.raises(ValueError, match="'height'"):
        ft_figures.view_layer_surface(values, vertices, height=10)
    with pytest.raises(ValueError, match="'include_plotlyjs' must be True or False"):
        ft_figures.view_layer_surface(values, vertices, include_plotlyjs="cdn")


# --------------------------------------------------------------------------------------------------
# kernel alignment: every (area × genotype) group's margin over the null


@pytest.fixture(scope="module")
def group_table():
    """``alignment_summary``'s (model, area, genotype) table of kernels planted from the neural ones."""
    rng = np.random.default_rng(3)
    size = 12
    yy, xx = np.mgrid[:size, :size]
    centres = rng.uniform(3, size - 3, size=(24, 2))
    rfs = np.exp(-((yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2) / 8.0)
    neural = xr.DataArray(
        rfs + 0.05 * rng.normal(size=rfs.shape),
        dims=("kernel", "y", "x"),
        coords={
            "area": ("kernel", np.repeat(["VISp", "VISl"], 12)),
            "genotype": ("kernel", np.tile(np.repeat(["Cux2", "Emx1", "Sst"], 4), 2)),
        },
    )
    artificial = xr.DataArray(
        np.concatenate([rfs + 0.2 * rng.normal(size=rfs.shape), rng.normal(size=rfs.shape)]),
        dims=("kernel", "y", "x"),
        coords={"model": ("kernel", ["planted"] * 24 + ["noise"] * 24)},
    )
    grouping = {"area_genotype": ["model", "area", "genotype"]}
    result = pipeline.alignment_summary(neural, artificial, grouping, n_bootstrap=50, n_permutations=50)
    return result["tables"]["area_genotype"]


def test_group_margins_are_self_contained_and_show_every_group(group_table):
    view = ka_figures.view_group_margins(group_table, ["noise", "planted"], pd.Series({"noise": 2e6, "planted": 3e6}))
    assert_self_contained(view)
    data, layout = plotted(view.html)
    assert [trace["name"] for trace in data] == ["VISl", "VISp"]  # one trace per area
    assert sum(len(array(trace["y"])) for trace in data) == len(group_table) == 2 * 2 * 3
    assert layout["xaxis"]["ticktext"] == ["noise, 2 M", "planted, 3 M"]
    visp = data[1]
    row = group_table.set_index(["model", "area", "genotype"]).loc[("planted", "VISp", "Sst")]
    position = [i for i, text in enumerate(visp["text"]) if text.startswith("<b>VISp × Sst</b><br>planted<br>")]
    assert len(position) == 1
    text, y = visp["text"][position[0]], array(visp["y"])[position[0]]
    assert y == pytest.approx(row["margin"])
    assert f"margin over the null {row['margin']:.3f}" in text and "4 neural × 24 artificial kernels" in text
    assert array(visp["error_y"]["array"])[position[0]] == pytest.approx(row["margin_ci_high"] - row["margin"])
    # the planted model sits above the null, and its column is to the right of the noise model's
    assert (group_table.loc[group_table["model"] == "planted", "margin"] > 0).all()
    assert min(array(visp["x"])[position]) > 0.5
    # the reference lines: the null and the margin of r = 0.1
    assert sorted(shape["y0"] for shape in layout["shapes"]) == pytest.approx([0.0, analysis.meaningful_margin()])


def test_group_margins_refuse_bad_input(group_table):
    with pytest.raises(ValueError, match=r"'table' lacks the column\(s\) \['genotype'\]"):
        ka_figures.view_group_margins(group_table.drop(columns="genotype"), ["planted"])
    with pytest.raises(ValueError, match=r"'model_order' names none of the table's models; they are \['noise'"):
        ka_figures.view_group_margins(group_table, ["vit"])
    with pytest.raises(ValueError, match="'height'"):
        ka_figures.view_group_margins(group_table, ["planted"], height=0)
