"""A parameter panel for every chapter: change its parameters in a live notebook and rerun it.

:func:`parameter_panel` reads the chapter's ``parameters`` cell (:func:`neuroalign_utils.chapters.get_chapter`,
the source ``neuroalign list`` and ``neuroalign run`` validate against) and builds one ipywidgets control per
parameter, typed from its default (int, float, bool, str; lists, dictionaries and ``None`` as YAML text), with
the parameter's comment as help text and tooltip. Its **Run** button validates the values with the CLI's own
function (:func:`neuroalign_utils.chapters.resolve_parameters`), reruns the chapter with the changed ones
through :func:`neuroalign_utils.chapters.run_chapter` (what ``neuroalign run <chapter> -p NAME VALUE --force``
does), shows papermill's progress over the chapter's cells, then the run's headline numbers, read through
the chapter's ``results`` module, beside the previous panel run's, and the figures the chapter saved.

Live or static
--------------
A widget needs a live kernel. The panel is built only when :func:`is_live` says so: ``live=True`` or
``live=False`` decides; by default it is live in a Jupyter kernel unless ``$NEUROALIGN_INTERACTIVE`` is
``"0"``, which the chapter runner (``neuroalign run``, ``neuroalign build``, the tests) sets for the kernels
it starts. Otherwise :func:`parameter_panel` returns a short Markdown note and runs nothing, so the built
book shows that note, never a widget or its saved state, and a chapter run by the panel does not build a
panel of its own.
"""

from __future__ import annotations

import html
import json
import os
import shlex
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from . import chapters, report, storage
from .progress import in_kernel
from .results import Headline, OverviewHeadline, Record, ResultsError, TrainedVsRandom

#: Where the panel's executed notebooks go, inside the data folder (one folder per chapter): not the book's
#: ``_build/stage``, whose pages the panel must not replace.
PANEL_FOLDER = "panel"


def is_live(live: bool | None = None) -> bool:
    """Whether :func:`parameter_panel` and the explorers (:mod:`neuroalign_utils.explorers`) build their widgets
    (``True``) or show their static view.

    Parameters
    ----------
    live : bool, optional
        ``True`` or ``False`` decides. ``None`` (default): live in a Jupyter kernel, unless
        ``$NEUROALIGN_INTERACTIVE`` is ``"0"`` (set by the chapter runner for the kernels it starts).
    """
    if live is not None:
        return bool(live)
    return os.environ.get(chapters.ENV_INTERACTIVE, "1") != "0" and in_kernel()


def static_note(chapter: str) -> str:
    """The Markdown the panel shows where it cannot run (the built book, a non-interactive run)."""
    return (
        "**Rerun this chapter with your parameters.** This panel runs in a live kernel: launch this page "
        "on Binder (the rocket button at the top of the page) or open it in a clone of the repository, run "
        "the notebook, and a form with this chapter's parameters appears here. Its **Run** button reruns "
        f"the chapter with your values, as `neuroalign run {chapter} -p NAME VALUE` does, and shows the "
        "chapter's headline numbers and figures."
    )


def headline_class(chapter: str) -> type[Headline]:
    """The :class:`~neuroalign_utils.results.Headline` subclass that ``chapter`` saves as ``headline.json``.

    Raises
    ------
    ValueError
        For a chapter without a headline schema; the message lists the chapters that have one.
    """
    from . import synthesis  # the synthesis module pulls in every lens's analysis

    by_chapter = {
        OverviewHeadline.CHAPTER: OverviewHeadline,
        **synthesis.HEADLINES,
        synthesis.SynthesisHeadline.CHAPTER: synthesis.SynthesisHeadline,
    }
    if chapter not in by_chapter:
        raise ValueError(f"Chapter {chapter!r} has no headline schema; chapters with one: {', '.join(by_chapter)}.")
    return by_chapter[chapter]


def _format_value(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    return report.format_number(value)


def _headline_rows(label: str, value: Any):
    """(row label, formatted value) pairs of one headline field; nested mappings become ``field · key`` rows."""
    if isinstance(value, TrainedVsRandom):
        yield (
            f"{label} · {value.model}, {value.quantity}",
            f"trained {_format_value(value.trained)}, random {_format_value(value.random)}",
        )
    elif isinstance(value, Record):
        for name in value.field_names():
            yield from _headline_rows(f"{label} · {name}", getattr(value, name))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _headline_rows(f"{label} · {key}", item)
    elif isinstance(value, (list, tuple)):
        if all(item is None or isinstance(item, (str, int, float, bool)) for item in value):
            yield label, ", ".join(_format_value(item) for item in value) or "none"
        else:
            for item in value:
                yield from _headline_rows(label, item)
    else:
        yield label, _format_value(value)


def headline_table(headlines: Mapping[str, Headline]) -> pd.DataFrame:
    """Headlines side by side: one row per number (nested fields as ``field · key``), one column per run.

    Parameters
    ----------
    headlines : mapping of column label to Headline
        E.g. ``{"this run": ..., "previous run": ...}``; values are formatted for reading
        (:func:`neuroalign_utils.report.format_number`).

    Returns
    -------
    pandas.DataFrame
        Indexed by the row labels, in the order of the fields; a number one run lacks is empty.
    """
    columns = {
        name: dict(row for field in headline.field_names() for row in _headline_rows(field, getattr(headline, field)))
        for name, headline in headlines.items()
    }
    table = pd.DataFrame(columns).fillna("")
    table.index.name = "headline"
    return table


def _control(parameter: chapters.Parameter):
    """The ipywidgets control for one parameter, typed from its default, with its help as tooltip."""
    import ipywidgets as widgets

    default, common = parameter.default, dict(description=parameter.name, style={"description_width": "initial"})
    if isinstance(default, bool):
        control = widgets.Checkbox(value=default, indent=False, **common)
    elif isinstance(default, int):
        control = widgets.IntText(value=default, **common)
    elif isinstance(default, float):
        control = widgets.FloatText(value=default, **common)
    elif isinstance(default, str):
        control = widgets.Text(value=default, **common)
    else:  # lists, dictionaries, None: YAML text, parsed as `neuroalign run -p` parses it
        control = widgets.Text(value=_default_text(default), placeholder="YAML, e.g. [a, b]", **common)
    control.tooltip = parameter.help or parameter.name
    return control


def _default_text(default: Any) -> Any:
    """What a control holds for ``default`` (see :func:`_control`)."""
    return default if isinstance(default, (bool, int, float, str)) else json.dumps(default)


class ParameterPanel:
    """The widgets of :func:`parameter_panel` and the runs made with them (shown by displaying the panel).

    Attributes
    ----------
    chapter : chapters.Chapter
    controls : dict of str to ipywidgets control
        One per parameter, in the order of the ``parameters`` cell.
    run_button, reset_button : ipywidgets.Button
    status : ipywidgets.HTML
        What is running, what ran (the equivalent ``neuroalign run`` command) or the validation message.
    progress : ipywidgets.Output
        papermill's bar over the chapter's cells while it runs.
    headline : ipywidgets.HTML
        :func:`headline_table` of the last run and the one before it.
    figures : ipywidgets.VBox
        The PNG figures the last run saved in its results folder.
    runs : list of (dict, Headline)
        The changed parameters and the headline of every run made with this panel, oldest first.
    """

    def __init__(self, chapter: chapters.Chapter, root: Path):
        import ipywidgets as widgets

        self.chapter, self.root = chapter, root
        self.controls = {name: _control(parameter) for name, parameter in chapter.parameters.items()}
        rows = [
            widgets.HBox(
                [control, widgets.HTML(f"<span style='color:#555'>{html.escape(parameter.help)}</span>")],
                layout=widgets.Layout(align_items="center"),
            )
            for control, parameter in zip(self.controls.values(), chapter.parameters.values())
        ]
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.reset_button = widgets.Button(description="Defaults", tooltip="Put every parameter back to its default")
        self.run_button.on_click(lambda _: self.run())
        self.reset_button.on_click(lambda _: self.reset())
        self.status = widgets.HTML()
        self.progress = widgets.Output()
        self.headline = widgets.HTML()
        self.figures = widgets.VBox()
        self.runs: list[tuple[dict, Headline]] = []
        title = widgets.HTML(f"<b>Rerun “{html.escape(chapter.title)}” with your parameters</b>")
        buttons = widgets.HBox([self.run_button, self.reset_button])
        self.widget = widgets.VBox([title, *rows, buttons, self.status, self.progress, self.headline, self.figures])

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def values(self) -> dict[str, Any]:
        """The controls' current values, as typed (text for lists, dictionaries and ``None``)."""
        return {name: control.value for name, control in self.controls.items()}

    def changed_parameters(self) -> dict[str, Any]:
        """The parameters that differ from the chapter's defaults, validated and converted as the CLI does.

        Raises
        ------
        ValueError, TypeError
            The message of :func:`neuroalign_utils.chapters.resolve_parameters` (parameter, expected type).
        """
        values = chapters.resolve_parameters(self.chapter, self.values())
        return {name: value for name, value in values.items() if value != self.chapter.parameters[name].default}

    def command(self, parameters: Mapping[str, Any]) -> str:
        """The ``neuroalign run`` command that makes the same run."""
        options = "".join(
            f" -p {name} {shlex.quote(value if isinstance(value, str) else json.dumps(value))}"
            for name, value in parameters.items()
        )
        return f"neuroalign run {self.chapter.name}{options} --force"

    def reset(self) -> None:
        """Put every control back to the chapter's default."""
        for name, control in self.controls.items():
            control.value = _default_text(self.chapter.parameters[name].default)

    def run(self) -> Headline | None:
        """Validate the values, rerun the chapter with the changed ones, show its headline and figures.

        Returns
        -------
        Headline or None
            The run's headline; ``None`` when the values were refused or the chapter failed (the status
            then shows the message ``neuroalign run`` prints).
        """
        try:
            parameters = self.changed_parameters()
        except chapters.USER_ERRORS as err:
            self._show_error(err)
            return None
        command = html.escape(self.command(parameters))
        self.status.value = f"Running the chapter (the same as <code>{command}</code>) …"
        self.progress.clear_output()
        self.run_button.disabled = True
        start = time.perf_counter()
        failure = None
        try:
            # ipywidgets' Output shows and swallows an exception raised inside it: catch the reader's errors first
            with self.progress:
                try:
                    record, headline = self._run_chapter(parameters)
                except (*chapters.USER_ERRORS, ResultsError) as err:
                    failure = err
        finally:
            self.run_button.disabled = False
        if failure is not None:
            self.progress.clear_output()
            self._show_error(failure)
            return None
        self.progress.clear_output()
        self.runs.append((parameters, headline))
        self.status.value = (
            f"Ran in {time.perf_counter() - start:.0f} s (the same as <code>{command}</code>): "
            f"{html.escape(record.describe())}."
        )
        shown = {"this run": headline}
        if len(self.runs) > 1:
            shown["previous run"] = self.runs[-2][1]
        self.headline.value = headline_table(shown).to_html(border=0, index_names=False)
        self.figures.children = self._figure_widgets(record.path)
        return headline

    def _run_chapter(self, parameters: Mapping[str, Any]) -> tuple[storage.RunRecord, Headline]:
        """Run the chapter with ``parameters`` through the runner; return the run and its headline."""
        chapters.run_chapter(
            self.chapter,
            parameters,
            output_dir=storage.get_data_dir() / PANEL_FOLDER / self.chapter.name,
            root=self.root,
            force=True,
        )
        record = storage.latest_run(self.chapter.name)
        return record, headline_class(self.chapter.name).load(record.path)

    def _show_error(self, err: BaseException) -> None:
        self.status.value = f"<span style='color:#b00020'>Not run: {html.escape(str(err))}</span>".replace("\n", "<br>")

    @staticmethod
    def _figure_widgets(folder: Path) -> tuple:
        import ipywidgets as widgets

        shown = []
        for path in sorted(folder.glob("*.png")):
            shown.append(widgets.HTML(f"<i>{html.escape(path.stem.replace('_', ' '))}</i>"))
            shown.append(widgets.Image(value=path.read_bytes(), format="png", layout=widgets.Layout(max_width="100%")))
        return tuple(shown)


def parameter_panel(chapter: str, *, live: bool | None = None, root: str | os.PathLike | None = None):
    """A panel to rerun ``chapter`` with other parameters, or, where no live kernel is, a note saying so.

    Parameters
    ----------
    chapter : str
        The chapter's name, as ``neuroalign list`` prints it (e.g. ``"v1t_training"``).
    live : bool, optional
        Build the widgets (``True``) or return the note (``False``); by default :func:`is_live` decides
        (live in a Jupyter kernel unless ``$NEUROALIGN_INTERACTIVE`` is ``"0"``, as the chapter runner sets).
    root : path-like, optional
        The book's folder; by default found from the current folder (:func:`neuroalign_utils.chapters.find_root`).

    Returns
    -------
    ParameterPanel or IPython.display.Markdown
        The panel (displaying it shows its widgets), or the Markdown note, which runs nothing. Where the
        book's notebooks are not on this machine, the note says so.
    """
    from IPython.display import Markdown

    if not is_live(live):
        return Markdown(static_note(chapter))
    try:
        root = chapters.find_root(root)
    except FileNotFoundError as err:
        return Markdown(f"The parameter panel reruns the chapter from the book's notebooks: {err}")
    return ParameterPanel(chapters.get_chapter(chapter, root), root)
