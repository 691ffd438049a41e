"""The ``neuroalign`` command: listing, and refusing bad input before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuroalign_utils import chapters, cli

REPO = Path(__file__).resolve().parents[1]


def run_cli(capsys, *args):
    code = cli.main(["--root", str(REPO), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_shows_parameters_types_and_defaults(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    assert "overview" in out
    assert "n_images: int = 28" in out


def test_unknown_chapter_lists_valid_ones(capsys):
    code, _, err = run_cli(capsys, "run", "no_such_chapter")
    assert code == 2
    assert "Unknown chapter 'no_such_chapter'" in err and "overview" in err


def test_unknown_parameter_lists_the_chapter_parameters(capsys, monkeypatch):
    monkeypatch.setattr(chapters, "run_chapter", lambda *a, **k: pytest.fail("must not run"))
    code, _, err = run_cli(capsys, "run", "overview", "-p", "no_such_param", "1")
    assert code == 2
    assert "no parameter 'no_such_param'" in err
    assert "n_images (int)" in err and "seed (int)" in err


def test_wrong_type_names_the_expected_type(capsys, monkeypatch):
    monkeypatch.setattr(chapters, "run_chapter", lambda *a, **k: pytest.fail("must not run"))
    code, _, err = run_cli(capsys, "run", "overview", "-p", "n_images", "many")
    assert code == 2
    assert "expects int" in err and "'many'" in err


def test_parameter_file_is_validated(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(chapters, "run_chapter", lambda *a, **k: pytest.fail("must not run"))
    f = tmp_path / "p.yaml"
    f.write_text("seed: [1, 2]\n")
    code, _, err = run_cli(capsys, "run", "overview", "-f", str(f))
    assert code == 2 and "expects int" in err


def test_values_are_parsed_to_the_default_type():
    chapter = chapters.get_chapter("overview", REPO)
    assert chapters.resolve_parameters(chapter, {"n_images": "20", "seed": 3}) == {"n_images": 20, "seed": 3}
    with pytest.raises(TypeError, match="expects int"):
        chapters.resolve_parameters(chapter, {"seed": True})


def test_read_parameters_keeps_help_text():
    text = "```{code-cell} ipython3\n:tags: [parameters]\n\na = 1  # the a\nb = 'x'\n```\n"
    params = chapters.read_parameters(text)
    assert params["a"].default == 1 and params["a"].help == "the a"
    assert params["b"].type_name == "str"


def test_parameters_cell_must_hold_literals():
    text = "```{code-cell} ipython3\n:tags: [parameters]\n\na = f(1)\n```\n"
    with pytest.raises(chapters.ChapterError, match="not a literal"):
        chapters.read_parameters(text)


def test_failing_chapter_names_the_cell(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_toc.yml").write_text("root: x\n")
    (tmp_path / "notebooks" / "00_broken.md").write_text(
        "# Broken\n\n```{code-cell} ipython3\n:tags: [parameters]\n\nx = 1\n```\n\n"
        "```{code-cell} ipython3\nraise RuntimeError('planted failure')\n```\n"
    )
    with pytest.raises(chapters.ChapterError, match=r"Chapter 'broken' failed in cell .*planted failure"):
        chapters.run_chapter("broken", root=tmp_path, progress=False)
    assert not (tmp_path / "_build" / "stage" / "notebooks" / "00_broken.ipynb").exists()


def test_yaml_errors_name_the_file_line_and_column(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(chapters, "run_chapter", lambda *a, **k: pytest.fail("must not run"))
    f = tmp_path / "params.yaml"
    f.write_text("overview:\n  n_images: [1, 2\n")
    code, _, err = run_cli(capsys, "run", "all", "-f", str(f))
    assert code == 2 and "Traceback" not in err
    assert f"'{f}' is not valid YAML at line 3, column 1" in err


def test_a_misspelt_chapter_in_the_parameter_file_is_named(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(chapters, "run_chapter", lambda *a, **k: pytest.fail("must not run"))
    f = tmp_path / "params.yaml"
    f.write_text("overveiw:\n  n_images: 3\nv1t_training:\n  mice: A\n")
    code, _, err = run_cli(capsys, "run", "all", "-f", str(f))
    assert code == 2 and "names no chapter 'overveiw'" in err and "overview, allen_natural_scenes" in err


def test_papermill_reads_every_parameter_of_every_chapter():
    """papermill parses the parameters cell itself; a line it cannot parse (two '=' on one line) makes it
    warn 'Unable to parse line' and 'Passed unknown parameter' on every run that sets that parameter."""
    import jupytext
    from papermill.translators import PythonTranslator

    for chapter in chapters.list_chapters(REPO):
        nb = jupytext.read(chapter.path, fmt="md:myst")
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        found = {p.name for p in PythonTranslator.inspect(cell)}
        assert found == set(chapter.parameters), (chapter.name, set(chapter.parameters) ^ found)
