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
    return storage.finish_run(run_dir, synthetic=synthetic).path


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
    unfinished = r"'/my/real/cache'\) did not finish.*complete run \(cache_dir=''\) is not used"
    with pytest.raises(storage.IncompleteRunError, match=unfinished):
        storage.latest_run("demo_killed")
    # finishing the real-data run makes it the one read
    running = storage.chapter_results_dir("demo_killed", {"cache_dir": "/my/real/cache"})
    real = storage.finish_run(running, synthetic=False).path
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


def test_a_crashed_rerun_leaves_latest_on_the_last_good_run():
    good = _finished_run("demo_crash", {"seed": 0})
    running = storage.chapter_results_dir("demo_crash", {"seed": 0})  # same parameters: starts from its files
    assert running != good and (running / "table.bin").read_bytes() == b"12345"
    (running / "table.bin").write_bytes(b"half")  # then the run crashes before finish_run
    assert (good.parent / "latest").read_text() == good.name
    record = storage.latest_run("demo_crash")
    assert record.path == good and (good / "table.bin").read_bytes() == b"12345"
    storage.read_run(good)  # whole: every recorded size still holds
    # the next attempt continues in the crashed one's folder and, finished, replaces the good run
    again = storage.chapter_results_dir("demo_crash", {"seed": 0})
    assert again == running and (again / "table.bin").read_bytes() == b"half"
    (again / "table.bin").write_bytes(b"123456")
    assert storage.finish_run(again, synthetic=True).path == good
    assert not running.exists() and storage.latest_run("demo_crash").files["table.bin"] == 6


def test_a_crashed_run_with_other_parameters_keeps_latest_but_is_named():
    good = _finished_run("demo_other", {"seed": 0})
    storage.chapter_results_dir("demo_other", {"seed": 1})  # started, then crashed
    assert (good.parent / "latest").read_text() == good.name
    storage.read_run(good)
    with pytest.raises(storage.IncompleteRunError, match=r"\(seed=1\) did not finish.*\(seed=0\) is not used"):
        storage.latest_run("demo_other")


def test_finish_run_takes_only_a_running_folder(tmp_path):
    done = _finished_run("demo_twice", {"seed": 0})
    with pytest.raises(ValueError, match="results_dir must be a running folder"):
        storage.finish_run(done, synthetic=True)


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
