"""Every chapter runs through the real runner with its smoke parameters, then the book builds.

A chapter's smoke parameters live in ``tests/smoke/<chapter>.yaml`` (defaults when the file is
absent), so a new chapter is covered as soon as it exists.
"""

from __future__ import annotations

import nbformat
import pytest
from conftest import REPO, SMOKE, smoke_parameters  # and the fixtures book_root, built_book

from neuroalign_utils import chapters

CHAPTERS = chapters.list_chapters(REPO)


def test_smoke_files_name_real_chapters():
    names = {c.name for c in CHAPTERS}
    for path in SMOKE.glob("*.yaml"):
        assert path.stem in names, f"{path} names no chapter"
        chapter = chapters.get_chapter(path.stem, REPO)
        chapters.resolve_parameters(chapter, smoke_parameters(path.stem))


def test_every_chapter_is_in_the_toc_and_paired():
    toc = (REPO / "_toc.yml").read_text()
    for chapter in CHAPTERS:
        stem = f"notebooks/{chapter.path.stem}"
        assert stem in toc, f"{stem} is missing from _toc.yml"
        assert chapter.ipynb_path.exists(), f"{chapter.ipynb_path} missing: run jupytext --sync"


def test_paired_ipynb_matches_text_notebook():
    import jupytext

    for chapter in CHAPTERS:
        text = jupytext.read(chapter.path)
        paired = jupytext.read(chapter.ipynb_path)
        assert [c.source for c in text.cells] == [c.source for c in paired.cells], (
            f"{chapter.ipynb_path.name} is out of date: run `jupytext --sync {chapter.path}`"
        )
        assert all(not c.get("outputs") for c in paired.cells if c.cell_type == "code"), (
            f"{chapter.ipynb_path.name} holds outputs; commit it clean"
        )


def test_every_chapter_has_the_cookbook_sections():
    for chapter in CHAPTERS:
        text = chapter.path.read_text()
        for heading in ("## Overview", "## Prerequisites", "## Parameters", "## Summary", "## What's next"):
            assert heading in text, f"{chapter.path.name} lacks '{heading}'"


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.name for c in CHAPTERS])
def test_chapter_runs_with_smoke_parameters(chapter, book_root):
    out = chapters.run_chapter(chapter.name, smoke_parameters(chapter.name), root=book_root, progress=False)
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert all("remove-cell" in c.metadata["tags"] for c in injected)


@pytest.mark.slow
def test_book_builds_with_overview_figure(book_root, built_book):
    index = built_book
    assert index == book_root / "_build" / "html" / "index.html"
    assert index.exists()
    page = (book_root / "_build" / "html" / "notebooks" / "00_overview.html").read_text()
    assert "<img" in page and "image/png" not in page.split("<img", 1)[0][-50:]
    assert "colab.research.google.com/github/" in page and "notebooks/00_overview.ipynb" in page
    assert list((book_root / "_build" / "html" / "_images").glob("*.png")), "no figure was rendered"
    # the injected-parameters cell is not rendered
    assert "Parameters" in page and "injected-parameters" not in page
