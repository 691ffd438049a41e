"""Chapter runs: keyed by parameters, complete only when finished, never silently replaced."""

from __future__ import annotations

import json
import math
import os
import stat

import pytest

from neuroalign_utils import chapters, storage


def _finished_run(chapter, params, *, synthetic=True, payload=b"12345"):
    run_dir = storage.chapter_results_dir(chapter, params)
    (run_dir / "table.bin").write_bytes(payload)
    storage.finish_run(run_dir, synthetic=synthetic)
    return run_dir


def test_results_are_keyed_by_parameters_and_latest_follows_finished_runs():
    a = _finished_run("demo_keys", {"seed": 0})
    b = _finished_run("demo_keys", {"seed": 1})
    assert a != b
    assert storage.latest_results_dir("demo_keys") == b
    assert json.loads((a / "parameters.json").read_text()) == {"seed": 0}
    record = storage.latest_run("demo_keys")
    assert record.parameters == {"seed": 1} and record.synthetic
    assert record.files == {"parameters.json": (b / "parameters.json").stat().st_size, "table.bin": 5}


def test_a_run_that_did_not_finish_is_refused_not_replaced_by_an_older_one():
    good = _finished_run("demo_killed", {"cache_dir": ""})
    storage.chapter_results_dir("demo_killed", {"cache_dir": "/my/real/cache"})  # started, then killed
    with pytest.raises(storage.IncompleteRunError, match=r"'/my/real/cache'\) did not finish.*complete run \(cache_dir=''\) is not used"):
        storage.latest_run("demo_killed")
    # finishing the real-data run makes it the one read
    real = storage.chapter_results_dir("demo_killed", {"cache_dir": "/my/real/cache"})
    storage.finish_run(real, synthetic=False)
    assert storage.latest_run("demo_killed").path == real != good
    assert "the reader's data" in storage.latest_run("demo_killed").describe()


def test_a_chapter_that_never_ran_is_told_apart_from_a_failed_one():
    with pytest.raises(storage.NoRunError, match="neuroalign run demo_never"):
        storage.latest_run("demo_never")


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_damaged_results_are_named_in_the_error(damage):
    run_dir = _finished_run("demo_damaged_" + damage, {"seed": 0})
    target = run_dir / "table.bin"
    if damage == "truncate":
        target.write_bytes(b"12")
    else:
        target.unlink()
    with pytest.raises(storage.IncompleteRunError, match="table.bin"):
        storage.latest_run("demo_damaged_" + damage)


def test_rerunning_makes_a_run_incomplete_until_it_finishes_again():
    run_dir = _finished_run("demo_rerun", {"seed": 0})
    storage.chapter_results_dir("demo_rerun", {"seed": 0})
    with pytest.raises(storage.IncompleteRunError):
        storage.read_run(run_dir)


def test_json_is_valid_and_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = storage.write_json(tmp_path / "headline.json", {"r": math.nan, "inf": math.inf, "ok": 1.5})
        folder_parent = tmp_path / "made"
        with storage.atomic_path(folder_parent, is_dir=True) as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(old)
    assert json.loads(path.read_text()) == {"r": None, "inf": None, "ok": 1.5}
    assert "NaN" not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(folder_parent.stat().st_mode) == 0o755


def test_small_parameters_are_valid_for_their_chapters():
    for chapter in chapters.list_chapters():
        chapters.resolve_parameters(chapter, chapters.small_parameters(chapter.name))


def test_generated_folders_know_when_they_are_damaged(tmp_path):
    target = tmp_path / "cache"
    with storage.atomic_path(target, is_dir=True) as tmp:
        (tmp / "a.npy").write_bytes(b"x" * 10)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("hello")
    assert storage.folder_is_intact(target)
    (target / "sub" / "b.txt").write_text("hel")  # truncated
    assert not storage.folder_is_intact(target)
    assert not storage.folder_is_intact(tmp_path / "never-written")
