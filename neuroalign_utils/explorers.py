"""Explorers: look around a chapter's results without rerunning it.

Each explorer is built once from results the chapter already holds (nothing heavy is recomputed), does
what every update needs in advance, and then redraws one figure, with the lens's own ``plot_*``
function, when the reader moves a control:

- :func:`kernel_alignment_explorer` (chapter "Kernel alignment"): a visual area × genotype group, its
  neural kernels beside their best-matching artificial kernels, and each model's mean 1 − RMSE, null
  and margin over the null in that group;
- :func:`v1t_explorer` (chapter "V1T analysis"): the attention rollout of a chosen test trial and the
  artificial receptive fields (aRFs) of a chosen unit, with their Gaussian fits;
- :func:`factortopy_explorer` (chapter "FactorTopy encoding"): one selector (layer, position, scale,
  layer position) or the test R² on the cortex.

Live or static
--------------
Widgets need a live kernel; :func:`neuroalign_utils.panel.is_live` decides, as for the parameter panel.
Live, an explorer is an :class:`Explorer`: dropdowns and sliders over an image of the figure, redrawn on
every change (``benchmarks/explorer_update.py`` times an update). Otherwise it is a :class:`StaticView`:
the default view as a plain figure and a one-line note that the page is interactive in a live kernel, so
the built book never shows a broken widget.
"""

from __future__ import annotations

import contextlib
import html
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import report
from ._validation import check_in_allowed, check_int
from .panel import is_live

#: The one option of a group dropdown that takes every value.
ALL = "all"


@dataclass(frozen=True)
class Choice:
    """A dropdown: ``options`` are ``(label, value)`` pairs."""

    name: str
    description: str
    options: tuple

    def values(self) -> list:
        return [value for _, value in self.options]

    def check(self, value: Any, chosen: Mapping[str, Any]) -> Any:
        return check_in_allowed(value, self.name, self.values())


@dataclass(frozen=True)
class Index:
    """A slider over ``0 … size(chosen) − 1``, where the size may follow the other controls (e.g. a mouse's
    number of units)."""

    name: str
    description: str
    size: Callable[[Mapping[str, Any]], int]

    def check(self, value: Any, chosen: Mapping[str, Any]) -> int:
        return check_int(value, self.name, minimum=0, maximum=self.size(chosen) - 1)


def _checked(controls: tuple, values: Mapping[str, Any]) -> dict:
    """``values`` checked in the controls' order (a slider's range may depend on an earlier dropdown)."""
    unknown = sorted(set(values) - {c.name for c in controls})
    if unknown:
        raise ValueError(f"Unknown control(s) {unknown}; this explorer has {[c.name for c in controls]}.")
    chosen = {}
    for control in controls:
        chosen[control.name] = control.check(values[control.name], chosen)
    return chosen


def figure_png(fig) -> bytes:
    """The figure as PNG bytes, cropped to what it draws (legends beside the axes kept).

    A figure under a layout engine (constrained layout) already fits what it draws, so it is rendered
    once; cropping costs a second rendering.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches=None if fig.get_layout_engine() else "tight")
    return buffer.getvalue()


class StaticView:
    """An explorer's default view where widgets cannot run: its figure, its details and a one-line note.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
    details : str
        HTML shown under the figure (e.g. the numbers of the chosen group).
    note : str
        Markdown: the page is interactive in a live kernel.
    """

    def __init__(self, figure, details: str, note: str):
        self.figure, self.details, self.note = figure, details, note

    def _ipython_display_(self):
        from IPython.display import HTML, Markdown, display

        display(self.figure)
        if self.details:
            display(HTML(self.details))
        display(Markdown(self.note))


class Explorer:
    """Controls over a figure redrawn on every change (shown by displaying the explorer).

    Attributes
    ----------
    controls : dict of str to ipywidgets control
        One dropdown or slider per choice; setting ``.value`` redraws.
    image : ipywidgets.Image
        The figure, as PNG.
    details : ipywidgets.HTML
        The numbers that go with the figure.
    figure : matplotlib.figure.Figure
        The figure last drawn (closed: it lives on in ``image``).
    widget : ipywidgets.VBox
    """

    def __init__(self, title: str, controls: tuple, draw: Callable, values: Mapping[str, Any]):
        import ipywidgets as widgets

        self._spec, self._draw, self._holding = controls, draw, False
        slider_style = dict(style={"description_width": "initial"}, continuous_update=False)  # redraw on release
        self.controls = {}
        for control in controls:
            if isinstance(control, Choice):
                widget = widgets.Dropdown(
                    options=list(control.options), value=values[control.name], description=control.description
                )
            else:
                size = control.size(values)
                widget = widgets.IntSlider(
                    value=values[control.name], min=0, max=size - 1, description=control.description, **slider_style
                )
            widget.observe(self._changed, names="value")
            self.controls[control.name] = widget
        self.image = widgets.Image(format="png")
        self.details = widgets.HTML()
        self.figure = None
        heading = widgets.HTML(f"<b>{html.escape(title)}</b>")
        self.widget = widgets.VBox([heading, widgets.HBox(list(self.controls.values())), self.image, self.details])
        self.update()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    @contextlib.contextmanager
    def _hold(self):
        """Change several controls with one redraw at the end."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False

    def _changed(self, _change) -> None:
        if not self._holding:
            self.update()

    def values(self) -> dict:
        """The controls' current values."""
        return {name: control.value for name, control in self.controls.items()}

    def select(self, **values) -> None:
        """Set controls by name, checked first (the error names the control and its accepted values), then
        redraw once."""
        chosen = _checked(self._spec, {**self.values(), **values})
        with self._hold():
            for control in self._spec:
                widget = self.controls[control.name]
                if isinstance(control, Index):
                    widget.max = control.size(chosen) - 1
                widget.value = chosen[control.name]
        self.update()

    def update(self) -> None:
        """Redraw the figure and the details for the controls' current values."""
        import matplotlib.pyplot as plt

        with self._hold():  # a slider whose range follows a dropdown is clamped first
            for control in self._spec:
                if isinstance(control, Index):
                    self.controls[control.name].max = control.size(self.values()) - 1
        fig, details = self._draw(**self.values())
        self.image.value = figure_png(fig)
        plt.close(fig)
        self.figure, self.details.value = fig, details


def live_note(what: str) -> str:
    """The one line a static explorer shows under its default view."""
    return (
        f"*Interactive in a live kernel:* launch this page on Binder or Colab (the rocket button at the top) "
        f"and run it to choose {what} here; this is the default view."
    )


def explore(title: str, controls: tuple, draw: Callable, values: Mapping[str, Any], *, what: str, live=None):
    """An :class:`Explorer` in a live kernel, else the :class:`StaticView` of ``values``.

    Parameters
    ----------
    title : str
    controls : tuple of Choice and Index
    draw : callable
        ``draw(**values)`` returns ``(figure, details HTML)``.
    values : mapping
        The first view; checked against ``controls`` (the error names the control).
    what : str
        What the reader chooses, for the static note ("the group", …).
    live : bool, optional
        See :func:`neuroalign_utils.panel.is_live`.
    """
    values = _checked(controls, values)
    if is_live(live):
        return Explorer(title, controls, draw, values)
    import matplotlib.pyplot as plt

    fig, details = draw(**values)
    plt.close(fig)  # shown once, by the view, not again by the inline backend at the end of the cell
    return StaticView(fig, details, live_note(what))


def _html_table(frame: pd.DataFrame) -> str:
    return frame.to_html(border=0, escape=True)


def _message_figure(text: str):
    """A small figure that says why there is nothing to draw (an empty group)."""
    import matplotlib.pyplot as plt

    from . import style

    fig, ax = plt.subplots(figsize=style.book_size(1.0))
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.set_axis_off()
    return fig


# --------------------------------------------------------------------------- kernel alignment
def _per_model(similarity, models: list, reduce=np.mean) -> np.ndarray:
    """(neural kernel, model) mean (or other ``reduce``) 1 − RMSE over each model's artificial kernels."""
    scores = similarity["one_minus_rmse"].values
    owner = similarity["model"].values
    return np.stack([reduce(scores[:, owner == model], axis=1) for model in models], axis=1)


def _group_rows(similarity, area: str, genotype: str) -> np.ndarray:
    keep = np.ones(similarity.sizes["neural"], dtype=bool)
    if area != ALL:
        keep &= similarity["area"].values.astype(str) == area
    if genotype != ALL:
        keep &= similarity["genotype"].values.astype(str) == genotype
    return keep


def kernel_alignment_explorer(
    result: Mapping,
    neural,
    artificial,
    *,
    area: str = ALL,
    genotype: str = ALL,
    models=None,
    n_show: int = 4,
    live: bool | None = None,
):
    """Pick a visual area × genotype group; see its neural kernels beside their best artificial matches.

    Parameters
    ----------
    result : dict
        What :func:`neuroalign_utils.kernels.pipeline.alignment_summary` returned (``similarity``,
        ``null_similarity``, ``difference``); its neural kernels carry ``area`` and ``genotype``.
    neural, artificial : xarray.DataArray
        The kernels it compared, in the shared format.
    area, genotype : str, default="all"
        The first group shown (``"all"``: every area or genotype).
    models : sequence of str, optional
        Models whose kernels count as matches (e.g. leave out random twins); all by default. The group's
        numbers cover every model.
    n_show : int, default=4
        Neural kernels shown: the group's best-matched ones, each beside its best match.
    live : bool, optional
        See :func:`neuroalign_utils.panel.is_live`.

    Returns
    -------
    Explorer or StaticView
        Live: dropdowns ``area`` and ``genotype``. The details give, per model, the group's mean
        1 − RMSE, the same for the phase-randomised null, their paired margin and the best pair.
    """
    import matplotlib.pyplot as plt

    from . import style
    from .kernels.figures import plot_kernel_gallery

    similarity = result["similarity"]
    missing = [c for c in ("area", "genotype", "model") if c not in similarity.coords]
    if missing:
        raise ValueError(f"'result' similarity lacks the coordinate(s) {missing}; it needs area, genotype and model.")
    n_show = check_int(n_show, "n_show", minimum=1)
    all_models = list(pd.unique(similarity["model"].values))
    models = all_models if models is None else list(models)
    if not models:
        raise ValueError(f"'models' is empty; it needs at least one of {all_models}.")
    for model in models:
        check_in_allowed(model, "models", all_models)

    # once: per neural kernel, each model's mean score (real, null, paired difference) and its best match
    tables = {
        key: (result[key], _per_model(result[key], all_models))
        for key in ("similarity", "null_similarity", "difference")
    }
    best_by_model = _per_model(similarity, all_models, np.max)
    scores = similarity["one_minus_rmse"].values
    allowed = np.flatnonzero(np.isin(similarity["model"].values, models))
    best_column = allowed[scores[:, allowed].argmax(axis=1)]
    best_score = scores[np.arange(len(scores)), best_column]
    neural_index = similarity["neural_index"].values
    artificial_index = similarity["artificial_index"].values
    kinds = similarity["kind"].values if "kind" in similarity.coords else np.full(scores.shape[1], "")
    owners = similarity["model"].values

    def draw(area, genotype):
        group = f"{'all areas' if area == ALL else area} × {'all genotypes' if genotype == ALL else genotype}"
        rows = np.flatnonzero(_group_rows(similarity, area, genotype))
        if not len(rows):
            return _message_figure(f"No neural kernels in {group}."), ""
        shown = rows[np.argsort(-best_score[rows], kind="stable")[:n_show]]
        kernels, labels = [], []
        for row in shown:
            column = best_column[row]
            kernels += [neural.isel(kernel=int(neural_index[row])).values]
            kernels += [artificial.isel(kernel=int(artificial_index[column])).values]
            labels += [
                f"neural {int(neural_index[row])}",
                f"{str(owners[column]).split(' (')[0]}\n{kinds[column]}, "
                f"{report.format_number(float(best_score[row]))}",
            ]
        n_cols = min(4, len(kernels))
        n_rows = -(-len(kernels) // n_cols)
        fig, axes = plt.subplots(
            n_rows, n_cols, figsize=style.book_size(0.4 + 1.45 * n_rows), squeeze=False, layout="constrained"
        )
        plot_kernel_gallery(kernels, labels, n_cols=n_cols, axes=axes)
        fig.suptitle(f"{group}: {len(rows)} neural kernels")
        numbers = {}
        for key, (table, means) in tables.items():
            keep = _group_rows(table, area, genotype)
            numbers[key] = means[keep].mean(axis=0) if keep.any() else np.full(len(all_models), np.nan)
        columns = {
            "mean 1 − RMSE": numbers["similarity"],
            "null": numbers["null_similarity"],
            "margin over null": numbers["difference"],
            "best pair": best_by_model[rows].max(axis=0),
        }
        frame = pd.DataFrame(
            {name: [report.format_number(float(v), 3) for v in values] for name, values in columns.items()},
            index=pd.Index(all_models, name="model"),
        )
        caption = (
            f"{html.escape(group)}: its {len(shown)} best-matched neural kernels, each beside its best match "
            "(model, kind, 1 − RMSE); per model, the group's mean 1 − RMSE, the same with phase-randomised "
            "neural kernels (null), the paired margin between them and the best pair."
        )
        return fig, f"<p>{caption}</p>" + _html_table(frame)

    def options(name):
        present = sorted(pd.unique(similarity[name].values.astype(str)))
        return tuple((value, value) for value in [ALL, *present])

    controls = (Choice("area", "area", options("area")), Choice("genotype", "genotype", options("genotype")))
    return explore(
        "Alignment by visual area × genotype",
        controls,
        draw,
        {"area": area, "genotype": genotype},
        what="the area and genotype",
        live=live,
    )


# --------------------------------------------------------------------------- V1T
def v1t_explorer(
    images: Mapping,
    maps: Mapping,
    arfs: Mapping,
    *,
    fits: pd.DataFrame | None = None,
    centres: Mapping | None = None,
    mouse: str | None = None,
    trial: int = 0,
    unit: int = 0,
    live: bool | None = None,
):
    """Pick a mouse, a test trial and a unit; see the trial's attention rollout and the unit's aRFs.

    Parameters
    ----------
    images, maps : dict of mouse to array-like, shape (trial, h, w)
        The test images and their attention-rollout maps
        (:func:`neuroalign_utils.v1t.analysis.rollout_maps`), in the same trial order.
    arfs : dict of (model label, mouse) to array-like, shape (unit, h, w)
        aRFs (:func:`neuroalign_utils.v1t.analysis.encoder_arfs`) of each model, e.g. ``("V1T", mouse)``.
    fits : DataFrame, optional
        Their Gaussian fits: ``model``, ``mouse``, ``neuron`` and the fitted columns (``x0``, ``y0``,
        ``sigma_horizontal``, ``sigma_vertical``, ``r2``; ``kept`` and ``position_error`` where present).
    centres : dict of mouse to array-like, shape (unit, 2), optional
        Planted RF centres ``(x, y)`` (synthetic mice), marked on the aRFs.
    mouse : str, optional
        The first mouse shown; the first key of ``maps`` by default.
    trial, unit : int, default=0
        The first test trial (position in ``maps``) and unit shown.
    live : bool, optional
        See :func:`neuroalign_utils.panel.is_live`.

    Returns
    -------
    Explorer or StaticView
        Live: a dropdown ``mouse`` and sliders ``trial`` and ``unit``.
    """
    import matplotlib.pyplot as plt

    from . import style
    from .v1t import analysis
    from .v1t.figures import plot_arfs, plot_rollout

    mice = list(maps)
    if not mice:
        raise ValueError("'maps' is empty; it needs the rollout maps of at least one mouse.")
    missing = [m for m in mice if m not in images]
    if missing:
        raise ValueError(f"'images' lacks the mice {missing} of 'maps'.")
    models = list(dict.fromkeys(label for label, _ in arfs))
    missing = [(label, m) for label in models for m in mice if (label, m) not in arfs]
    if missing:
        raise ValueError(f"'arfs' lacks the (model, mouse) pairs {missing}.")
    if not models:
        raise ValueError("'arfs' is empty; it needs the aRFs of at least one model.")
    images = {m: np.asarray(images[m]) for m in mice}
    unequal = [m for m in mice if len(images[m]) != len(maps[m])]
    if unequal:
        raise ValueError(f"'images' and 'maps' hold different numbers of trials for the mice {unequal}.")
    mouse = mice[0] if mouse is None else mouse
    # once: the maps as arrays, their centres of mass, the fits indexed by (model, mouse, unit)
    maps = {m: np.asarray(maps[m]) for m in mice}
    coms = {m: analysis.centre_of_mass(maps[m])[["x", "y"]].to_numpy() for m in mice}
    fit_rows = fits.set_index(["model", "mouse", "neuron"]).sort_index() if fits is not None else None
    shown_fit = {  # fit column → table heading
        "x0": "x (px)",
        "y0": "y (px)",
        "sigma_horizontal": "σ horizontal (px)",
        "sigma_vertical": "σ vertical (px)",
        "r2": "R²",
        "position_error": "error (px)",
        "kept": "kept",
    }

    def draw(mouse, trial, unit):
        fig = plt.figure(figsize=style.book_size(2.6 + 0.4 * len(models)), layout="constrained")
        left, right = fig.subfigures(1, 2, width_ratios=[1.1, 1])
        plot_rollout(images[mouse][[trial]], maps[mouse][[trial]], coms[mouse][[trial]], axes=left.subplots(2, 1))
        plot_arfs(
            {label: np.asarray(arfs[label, mouse])[[unit]] for label in models},
            centres=None if centres is None else np.asarray(centres[mouse])[[unit]],
            unit_labels=[f"unit {unit}"],
            axes=right.subplots(len(models), 1, squeeze=False),
        )
        left.suptitle(f"mouse {mouse}, test trial {trial}")
        x, y = coms[mouse][trial]
        details = (
            f"<p>Rollout centre of mass of test trial {trial}: x {report.format_number(float(x))}, "
            f"y {report.format_number(float(y))} px.</p>"
        )
        if fit_rows is not None:
            keys = [(label, mouse, unit) for label in models if (label, mouse, unit) in fit_rows.index]
            if keys:
                frame = fit_rows.loc[keys, [c for c in shown_fit if c in fit_rows.columns]].rename(columns=shown_fit)
                frame.index = pd.Index([label for label, _, _ in keys], name="model")
                planted = " (error: distance from the planted centre)" if "position_error" in fit_rows.columns else ""
                details += f"<p>Gaussian fits of unit {unit}'s aRFs{planted}:</p>"
                details += _html_table(frame.round(3))
        return fig, details

    controls = (
        Choice("mouse", "mouse", tuple((str(m), m) for m in mice)),
        Index("trial", "test trial", lambda chosen: len(maps[chosen["mouse"]])),
        Index("unit", "unit", lambda chosen: len(arfs[models[0], chosen["mouse"]])),
    )
    return explore(
        "Attention rollout and artificial receptive fields",
        controls,
        draw,
        {"mouse": mouse, "trial": trial, "unit": unit},
        what="the mouse, test trial and unit",
        live=live,
    )


# --------------------------------------------------------------------------- FactorTopy
def factortopy_explorer(
    table: pd.DataFrame,
    *,
    quantity: str = "layer",
    n_layers: int | None = None,
    r2_max: float | None = None,
    live: bool | None = None,
):
    """Pick a quantity of a fitted FactorTopy model; see it on the flattened cortex.

    Parameters
    ----------
    table : DataFrame
        The fit's selector table (``pipeline.Fit.table``: one row per vertex with ``hemisphere``,
        ``fsaverage_index``, ``roi``, the selectors and ``test_r2``).
    quantity : {"layer", "position", "scale", "iota", "r2"}, default="layer"
        The first map shown (:data:`neuroalign_utils.factortopy.figures.SELECTOR_MAPS`).
    n_layers, r2_max
        As :func:`neuroalign_utils.factortopy.figures.plot_selector_map`.
    live : bool, optional
        See :func:`neuroalign_utils.panel.is_live`.

    Returns
    -------
    Explorer or StaticView
        Live: a dropdown ``quantity``. The details say what the map shows and give its mean per ROI.
    """
    from .factortopy.figures import SELECTOR_MAPS, plot_selector_map

    labels = {
        "layer": "layer selector",
        "position": "image position",
        "scale": "scale (global share)",
        "iota": "layer position ι̂",
        "r2": "test R²",
    }
    columns = {"layer": "iota", "position": None, "scale": "scale", "iota": "iota", "r2": "test_r2"}
    # once: each scalar's mean per ROI (the layer map's ROIs are summarised by their mean ι̂)
    per_roi = {
        quantity: table.groupby("roi", observed=True)[column].mean() for quantity, column in columns.items() if column
    }

    def draw(quantity):
        fig = plot_selector_map(table, quantity, n_layers=n_layers, r2_max=r2_max)
        details = f"<p>{html.escape(SELECTOR_MAPS[quantity])}.</p>"
        if quantity in per_roi:
            name = "ι̂" if columns[quantity] == "iota" else labels[quantity]
            frame = per_roi[quantity].rename(f"mean {name}").round(3).to_frame().T
            details += _html_table(frame)
        return fig, details

    controls = (Choice("quantity", "map", tuple((labels[q], q) for q in SELECTOR_MAPS)),)
    return explore(
        "FactorTopy on the cortex", controls, draw, {"quantity": quantity}, what="the quantity mapped", live=live
    )
