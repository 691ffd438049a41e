"""The repository URL lives in _config.yml; the Colab cells, README badges and launch buttons follow it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import nbformat
import pytest
import yaml
from conftest import REPO

from neuroalign_utils import chapters, launch


def test_every_chapter_starts_with_the_cell_written_from_config():
    url, branch = launch.read_repository(REPO)
    cell = launch.colab_cell(url, branch)
    for chapter in chapters.list_chapters(REPO):
        nb = nbformat.read(chapter.ipynb_path, as_version=4)
        first = next(c for c in nb.cells if c.cell_type == "code")
        assert first.source == cell, f"{chapter.ipynb_path.name}: run `neuroalign sync`"
        assert "remove-cell" in first.metadata.get("tags", [])


def test_the_url_appears_nowhere_but_in_config_and_its_written_copies():
    url, branch = launch.read_repository(REPO)
    readme = (REPO / "README.md").read_text()
    assert launch.badges(url, branch) in readme
    slug = url.removeprefix("https://github.com/")
    for path in [REPO / "README.md", *sorted((REPO / "book").glob("*.md")), *sorted((REPO / "notebooks").glob("*.md"))]:
        text = path.read_text()
        text = text.replace(launch.badges(url, branch), "")
        for chapter_cell in re.findall(re.escape(launch.CELL_MARK) + r".*?\n```", text, flags=re.S):
            text = text.replace(chapter_cell, "")
        assert slug not in text, f"{path.name} names the repository by hand; take it from _config.yml"


def test_sync_follows_a_changed_config(tmp_path):
    root = tmp_path / "book"
    root.mkdir()
    for name in ("_config.yml", "_toc.yml", "README.md", "notebooks"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy2)(REPO / name, root / name)
    assert launch.sync(root, chapters.list_chapters(root)) == []  # in step with _config.yml
    config = yaml.safe_load((root / "_config.yml").read_text())
    config["repository"]["url"] = "https://github.com/someone/fork"
    (root / "_config.yml").write_text(yaml.safe_dump(config))
    changed = launch.sync(root, chapters.list_chapters(root))
    assert root / "README.md" in changed and len(changed) == 1 + 2 * len(chapters.list_chapters(root))
    assert "mybinder.org/v2/gh/someone/fork/main" in (root / "README.md").read_text()
    nb = nbformat.read(root / "notebooks" / "00_overview.ipynb", as_version=4)
    assert 'REPOSITORY, COMMIT = "https://github.com/someone/fork", "main"' in nb.cells[1].source + nb.cells[2].source


def test_pin_to_commit_points_buttons_and_cells_at_the_build(tmp_path):
    shutil.copy2(REPO / "_config.yml", tmp_path / "_config.yml")
    (tmp_path / "notebooks").mkdir()
    shutil.copy2(REPO / "notebooks" / "00_overview.ipynb", tmp_path / "notebooks")
    launch.pin_to_commit(tmp_path, "0123abc")
    assert yaml.safe_load((tmp_path / "_config.yml").read_text())["repository"]["branch"] == "0123abc"
    source = nbformat.read(tmp_path / "notebooks" / "00_overview.ipynb", as_version=4).cells
    assert any('"0123abc"' in c.source for c in source if c.cell_type == "code")


def test_the_cell_does_nothing_where_the_package_is_installed():
    url, branch = launch.read_repository(REPO)
    out = subprocess.run(
        [sys.executable, "-c", launch.colab_cell(url, branch)], capture_output=True, text=True, check=True
    )
    assert out.stdout == "" and out.stderr == ""


def test_a_config_without_repository_is_named(tmp_path):
    (tmp_path / "_config.yml").write_text("title: x\n")
    with pytest.raises(ValueError, match="has no repository.url"):
        launch.read_repository(tmp_path)
