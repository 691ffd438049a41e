"""The parameter panel: its controls follow each chapter's parameters cell, it refuses bad values with the CLI's
message, its Run button reruns the chapter through the runner, and outside a live kernel it is only a note."""

from __future__ import annotations

import html

import ipywidgets as widgets
import nbformat
import pytest
from conftest import REPO

from neuroalign_utils import chapters, cli, panel, storage
from neuroalign_utils.results import OverviewHeadline, TrainedVsRandom

CHAPTERS = chapters.list_chapters(REPO)
CONTROL_TYPES = {bool: widgets.Checkbox, int: widgets.IntText, float: widgets.FloatText, str: widgets.Text}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.name for c in CHAPTERS])
def test_controls_match_the_chapter_parameters(chapter):
    built = panel.parameter_panel(chapter.name, live=True, root=REPO)
    assert list(built.controls) == list(chapter.parameters)  # same names, same order as the cell
    for name, parameter in chapter.parameters.items():
        control = built.controls[name]
        assert type(control) is CONTROL_TYPES.get(type(parameter.default), widgets.Text), name
        assert control.description == name
        assert control.tooltip == (parameter.help or name)
    # every default (lists as YAML text included) reads back as itself: nothing counts as changed
    assert built.changed_parameters() == {}
    assert {p.name: p.default for p in chapter.parameters.values()} == chapters.resolve_parameters(
        chapter, built.values()
    )


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.name for c in CHAPTERS])
def test_every_chapter_shows_its_panel_right_after_its_parameters(chapter):
    import jupytext

    cells = [c for c in jupytext.read(chapter.path).cells if c.cell_type == "code"]
    index = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    assert f'parameter_panel("{chapter.name}")' in cells[index + 1].source
    assert sum("parameter_panel(" in c.source for c in cells) == 1


def test_changed_list_is_parsed_as_the_cli_parses_it():
    built = panel.parameter_panel("allen_natural_scenes", live=True, root=REPO)
    built.controls["areas"].value = "[VISp, VISl]"
    built.controls["n_experiments"].value = 6
    assert built.changed_parameters() == {"areas": ["VISp", "VISl"], "n_experiments": 6}
    assert built.command(built.changed_parameters()) == (
        """neuroalign run allen_natural_scenes -p areas '["VISp", "VISl"]' -p n_experiments 6 --force"""
    )
    built.reset()
    assert built.changed_parameters() == {}


def test_invalid_value_shows_the_cli_message(monkeypatch, capsys):
    monkeypatch.setattr(chapters, "run_chapter", lambda *a, **k: pytest.fail("a refused value must not run"))
    code = cli.main(["--root", str(REPO), "run", "allen_natural_scenes", "-p", "areas", "VISp"])
    message = capsys.readouterr().err.removeprefix("neuroalign: error: ").strip()
    assert code == 2 and "expects list" in message

    built = panel.parameter_panel("allen_natural_scenes", live=True, root=REPO)
    built.controls["areas"].value = "VISp"
    assert built.run() is None
    assert message in html.unescape(built.status.value)
    assert not built.runs and not built.headline.value


def test_static_under_the_runner_and_outside_a_kernel(monkeypatch):
    monkeypatch.setattr(panel, "in_kernel", lambda: True)  # as in a notebook kernel
    monkeypatch.delenv(chapters.ENV_INTERACTIVE, raising=False)
    assert panel.is_live()
    assert isinstance(panel.parameter_panel("overview", root=REPO), panel.ParameterPanel)
    monkeypatch.setenv(chapters.ENV_INTERACTIVE, "0")  # what run_chapter sets for its kernels
    note = panel.parameter_panel("overview", root=REPO)
    assert not isinstance(note, (panel.ParameterPanel, widgets.Widget))
    assert note._repr_markdown_() == panel.static_note("overview")
    assert "live kernel" in note.data and "neuroalign run overview" in note.data
    assert panel.parameter_panel("overview", live=False).data == note.data
    monkeypatch.setattr(panel, "in_kernel", lambda: False)  # plain Python: widgets cannot show
    monkeypatch.delenv(chapters.ENV_INTERACTIVE)
    assert not panel.is_live()


def test_headline_table_puts_runs_side_by_side():
    first = OverviewHeadline(n_images=16, photograph_median_spectral_slope=1.234)
    second = OverviewHeadline(n_images=20, photograph_median_spectral_slope=1.1)
    table = panel.headline_table({"this run": second, "previous run": first})
    assert table.loc["n_images"].tolist() == ["20", "16"]
    assert table.loc["photograph_median_spectral_slope"].tolist() == ["1.10", "1.23"]
    entry = TrainedVsRandom("V1T", "v1t", "corr", trained=0.31, random=0.05, margin=0.26, ci_low=0.2, ci_high=0.3)
    rows = dict(panel._headline_rows("trained_vs_random", [entry]))
    assert rows == {"trained_vs_random · v1t, corr": "trained 0.31, random 0.050"}


@pytest.mark.slow
def test_run_button_reruns_the_chapter_and_the_headline_follows(book_root, neuroalign_data_dir):
    built = panel.parameter_panel("overview", live=True, root=book_root)
    built.controls["image_size"].value = 48
    built.controls["n_images"].value = 16
    built.run_button.click()
    assert "Not run" not in built.status.value, built.status.value
    run = storage.latest_run("overview")
    assert run.parameters["n_images"] == 16 and run.parameters["image_size"] == 48
    assert OverviewHeadline.load(run.path).n_images == 16
    assert "<td>16</td>" in built.headline.value and "previous run" not in built.headline.value
    assert any(isinstance(child, widgets.Image) and child.value[:4] == b"\x89PNG" for child in built.figures.children)

    built.controls["n_images"].value = 17
    built.run_button.click()
    assert storage.latest_run("overview").parameters["n_images"] == 17
    assert panel.headline_table({"this run": built.runs[-1][1], "previous run": built.runs[-2][1]}).loc[
        "n_images"
    ].tolist() == ["17", "16"]
    assert "<td>17</td>" in built.headline.value and "previous run" in built.headline.value
    assert "neuroalign run overview -p n_images 17 -p image_size 48 --force" in html.unescape(built.status.value)

    # a value the chapter itself refuses: the runner's message (as `neuroalign run` prints it), no traceback
    built.controls["n_images"].value = 0
    assert built.run() is None
    assert "Chapter 'overview' failed in cell" in html.unescape(built.status.value)
    assert "Traceback" not in built.status.value and len(built.runs) == 2

    # the chapter ran through the runner, so its own panel cell is the note: no widget, nothing run
    executed = nbformat.read(neuroalign_data_dir / panel.PANEL_FOLDER / "overview" / "00_overview.ipynb", 4)
    cell = next(c for c in executed.cells if c.cell_type == "code" and "parameter_panel(" in c.source)
    assert [sorted(o.get("data", {})) for o in cell.outputs] == [["text/markdown", "text/plain"]]
    assert cell.outputs[0]["data"]["text/markdown"] == panel.static_note("overview")
    assert "widgets" not in executed.metadata
