"""The chapter runner never shows a reader stale or substituted results.

Uses the overview chapter (a few seconds) through the real runner.
"""

from __future__ import annotations

import os

import pytest

from neuroalign_utils import chapters, storage

pytestmark = pytest.mark.slow


@pytest.fixture
def data_folder(tmp_path, monkeypatch):
    def switch(name):
        path = tmp_path / name
        monkeypatch.setenv(storage.ENV_DATA, str(path))
        return path

    return switch


def test_switching_the_data_folder_reruns_the_chapter(data_folder, tmp_path, book_root):
    out = tmp_path / "executed"
    data_folder("a")
    first = chapters.run_chapter("overview", root=book_root, output_dir=out, progress=False)
    stamp = first.stat().st_mtime_ns
    assert chapters.run_chapter("overview", root=book_root, output_dir=out, progress=False).stat().st_mtime_ns == stamp
    data_folder("b")  # same parameters, another data folder: the results are not there, so it must run
    chapters.run_chapter("overview", root=book_root, output_dir=out, progress=False)
    assert storage.latest_run("overview").path.is_relative_to(tmp_path / "b")


def test_damaged_results_make_the_chapter_run_again(data_folder, tmp_path, book_root):
    out = tmp_path / "executed"
    data_folder("c")
    chapters.run_chapter("overview", root=book_root, output_dir=out, progress=False)
    image_set = storage.latest_run("overview").path / "image_set.nc"
    image_set.write_bytes(image_set.read_bytes()[:100])
    with pytest.raises(storage.IncompleteRunError, match="image_set.nc"):
        storage.latest_run("overview")
    chapters.run_chapter("overview", root=book_root, output_dir=out, progress=False)
    assert storage.latest_run("overview").files["image_set.nc"] == image_set.stat().st_size > 100


def test_a_killed_upstream_run_stops_the_next_chapter_instead_of_using_older_results(data_folder, book_root):
    data_folder("d")
    storage.finish_run(storage.chapter_results_dir("allen_natural_scenes", {"cache_dir": ""}), synthetic=True)
    storage.chapter_results_dir("allen_natural_scenes", {"cache_dir": "/lab/brain_observatory"})  # killed
    with pytest.raises(storage.IncompleteRunError, match="did not finish.*neuroalign run allen_natural_scenes"):
        chapters.require_results("allen_natural_scenes", root=book_root)


def test_a_chapter_that_never_ran_is_run_first(data_folder, book_root, capsys):
    data_folder("e")
    run = chapters.require_results("overview", root=book_root)
    assert run.chapter == "overview" and run.synthetic
    assert "No complete 'overview' run was found" in capsys.readouterr().out
    assert chapters.require_results("overview", root=book_root).path == run.path  # now it is found


def test_a_failing_chapter_leaves_only_its_named_failed_notebook(tmp_path, book_root, data_folder):
    data_folder("f")
    out = tmp_path / "executed"
    with pytest.raises(chapters.ChapterError, match=r"00_overview.failed.ipynb"):
        chapters.run_chapter("overview", {"n_images": -1}, root=book_root, output_dir=out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["00_overview.failed.ipynb"]
    chapters.run_chapter("overview", root=book_root, output_dir=out, progress=False)
    assert not (out / "00_overview.failed.ipynb").exists()
    assert os.path.exists(out / "00_overview.ipynb")


def test_a_crashed_rerun_leaves_the_last_good_run_to_the_next_chapter(data_folder, tmp_path, book_root):
    data_folder("g")
    chapters.run_chapter("overview", root=book_root, output_dir=tmp_path / "executed", progress=False)
    good = storage.latest_run("overview")
    running = storage.chapter_results_dir("overview", good.parameters)  # the same run started again
    (running / "image_set.nc").write_bytes(b"half")  # and killed while writing
    run = chapters.require_results("overview", root=book_root)
    assert run.path == good.path and run.files == good.files


def test_relative_folders_work_as_the_command_line_passes_them(data_folder, tmp_path, book_root, monkeypatch):
    data_folder("h")
    monkeypatch.chdir(tmp_path)  # `neuroalign run overview --output-dir executed` from tmp_path
    out = chapters.run_chapter("overview", root=os.path.relpath(book_root), output_dir="executed", progress=False)
    assert out == tmp_path / "executed" / "00_overview.ipynb" and out.exists()
    assert storage.latest_run("overview").parameters["n_images"] == 28
