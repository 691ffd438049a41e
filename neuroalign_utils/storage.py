"""Where data, caches and results live, and how files are written safely.

Resolution order for the data folder (nilearn's pattern): the ``data_dir`` argument, then the
``NEUROALIGN_DATA`` environment variable, then ``$XDG_CACHE_HOME/neuroalign`` (``~/.cache/neuroalign``).
Every file is written to a temporary name in its destination folder and renamed into place, so an
interrupted run never leaves a half-written file under the final name. A chapter run writes into its own
``<key>.running`` folder, which :func:`finish_run` renames into place before moving the chapter's
``latest`` pointer, so a run that crashes leaves the last complete one whole and in use.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_DATA = "NEUROALIGN_DATA"


def get_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Return (and create) the folder for generated data, caches and results.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Explicit folder. When ``None``, ``$NEUROALIGN_DATA`` is used, else
        ``$XDG_CACHE_HOME/neuroalign`` (default ``~/.cache/neuroalign``).

    Returns
    -------
    pathlib.Path
    """
    if data_dir is None:
        data_dir = os.environ.get(ENV_DATA)
    if data_dir is None:
        cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        data_dir = Path(cache_home) / "neuroalign"
    path = Path(data_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(
            f"Cannot create the neuroalign data folder {path} (from 'data_dir' or ${ENV_DATA}): {err}"
        ) from err
    return path


def content_key(obj: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-serialisable object (dict keys sorted)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:length]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    On error the temporary file or folder is removed and ``path`` is left untouched. A folder gets a
    record of its files' sizes (``.sizes.json``), which :func:`folder_is_intact` checks later.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if is_dir:
            _write_sizes(tmp)
        # mkstemp/mkdtemp create owner-only files; give the result the mode of any file the user makes
        os.chmod(tmp, (0o777 if tmp.is_dir() else 0o666) & ~_umask())
        if is_dir and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


SIZES_FILE = ".sizes.json"


def _file_sizes(folder: Path, skip=lambda path: path.name == SIZES_FILE) -> dict[str, int]:
    """Size of every file below ``folder`` (relative POSIX path → bytes), except those ``skip`` names."""
    return {
        path.relative_to(folder).as_posix(): path.stat().st_size
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not skip(path)
    }


def _write_sizes(folder: Path) -> None:
    (folder / SIZES_FILE).write_text(json.dumps(_file_sizes(folder), sort_keys=True))


def folder_is_intact(folder: str | os.PathLike) -> bool:
    """Whether a folder written by :func:`atomic_path` still holds every file at the size it was written.

    Generated caches call this before reusing a folder, and rebuild it when it says ``False`` (a file
    deleted, truncated or added by hand, or a folder without a size record).
    """
    folder = Path(folder)
    try:
        recorded = json.loads((folder / SIZES_FILE).read_text())
    except (OSError, ValueError):
        return False
    return recorded == _file_sizes(folder)


def read_npy(path: str | os.PathLike, *, mmap: bool = False, allow_pickle: bool = False, numeric: bool = True):
    """``np.load`` whose errors name the file: missing, unreadable (truncated) or, with ``numeric``, not
    numbers."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing.")
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=allow_pickle)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path} cannot be read as a .npy array ({err}); is it truncated?") from None
    if numeric and not allow_pickle and not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{path} holds {array.dtype} values; numbers are needed.")
    return array


def chunk_slices(n: int, size: int) -> list[slice]:
    """Consecutive slices of at most ``size`` items covering ``range(n)``: the blocks in which a large array is
    read, written or computed, so that memory holds one block at a time."""
    return [slice(start, min(n, start + size)) for start in range(0, n, size)]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically; NaN and infinities become ``null`` (valid JSON)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_plain(obj), indent=2, sort_keys=True, allow_nan=False))
    return Path(path)


def _plain(obj):
    """``obj`` with numpy values as Python ones and non-finite floats as ``None``."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy scalars and arrays appear in headline figures
        return _plain(obj.tolist())
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


# --------------------------------------------------------------------------------------------------
# chapter runs
#
# <data dir>/results/<chapter>/<key>/ holds one complete run (key = hash of its parameters). A run is
# written in <key>.running/ and becomes complete when its notebook calls finish_run, which writes run.json
# (parameters, data source, every file's size), renames the folder to <key>/ and only then moves
# <chapter>/latest to it: a run that crashes leaves the complete runs, and latest, as they were.
# <chapter>/attempt names the run started last, so a chapter that reads another's results can tell
# "never ran" from "the last run, with other parameters, did not finish".

RUN_RECORD = "run.json"
#: Suffix of the folder a run writes into until :func:`finish_run` renames it.
RUNNING_SUFFIX = ".running"
ENV_RUN_LOG = "NEUROALIGN_RUN_LOG"


class IncompleteRunError(FileNotFoundError):
    """A chapter's results are missing, incomplete or damaged; the message says which and what to run."""


class NoRunError(IncompleteRunError):
    """A chapter has never completed, nor started, a run in this data folder."""


@dataclass(frozen=True)
class RunRecord:
    """One complete chapter run, as read back from its ``run.json``."""

    chapter: str
    path: Path
    parameters: dict
    synthetic: bool
    finished: str
    files: dict

    @property
    def key(self) -> str:
        return self.path.name

    def describe(self) -> str:
        """One reader-facing phrase naming the run (no local paths)."""
        data = "synthetic data" if self.synthetic else "the reader's data"
        return f"the '{self.chapter}' run {self.key} ({data}, finished {self.finished})"


def chapter_results_dir(
    chapter: str, parameters: Mapping[str, Any], *, data_dir: str | os.PathLike | None = None
) -> Path:
    """Return (and create) the folder a chapter run writes its results into, keyed by its parameters.

    The folder is ``<data dir>/results/<chapter>/<hash of parameters>.running``; it holds the chapter's
    tidy results and a ``parameters.json``. :func:`finish_run` makes it the complete run
    ``<data dir>/results/<chapter>/<hash of parameters>``. Until then the complete runs are untouched:
    :func:`latest_run` keeps returning the last complete one (or refuses when the run started last, with
    other parameters, did not finish). A run with the parameters of a complete run starts from a copy of
    its files (so saved models and checkpoints are reused); one whose earlier attempt did not finish
    continues in that attempt's folder.
    """
    root = get_data_dir(data_dir) / "results" / chapter
    key = content_key(dict(parameters))
    complete, running = root / key, root / f"{key}{RUNNING_SUFFIX}"
    if not running.is_dir():
        with atomic_path(running, is_dir=True) as tmp:
            if complete.is_dir():
                shutil.copytree(
                    complete, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(RUN_RECORD, SIZES_FILE)
                )
        (running / SIZES_FILE).unlink(missing_ok=True)
    write_json(running / "parameters.json", dict(parameters))
    _write_pointer(root / "attempt", key)
    return running


def finish_run(results_dir: str | os.PathLike, *, synthetic: bool) -> RunRecord:
    """Mark a chapter run complete: record its files and sizes, put the folder in place, point ``latest`` at it.

    Call it last in a chapter, after every result is saved; the results then live in the returned
    record's ``path`` (``results_dir`` without its ``.running`` suffix), replacing an earlier complete
    run with the same parameters.

    Parameters
    ----------
    results_dir : path-like
        From :func:`chapter_results_dir`.
    synthetic : bool
        Whether the run used the built-in synthetic data (``False``: the reader's data).
    """
    import datetime as dt

    running = Path(results_dir)
    if not (running.name.endswith(RUNNING_SUFFIX) and running.is_dir()):
        raise ValueError(
            f"results_dir must be a running folder from chapter_results_dir (…{RUNNING_SUFFIX}); got {running}."
        )
    run_dir = running.with_name(running.name[: -len(RUNNING_SUFFIX)])
    files = _file_sizes(running, skip=lambda path: path.name == RUN_RECORD or path.name.startswith("."))
    record = dict(
        chapter=run_dir.parent.name,
        parameters=json.loads((running / "parameters.json").read_text()),
        synthetic=bool(synthetic),
        finished=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        files=files,
    )
    write_json(running / RUN_RECORD, record)
    replaced = run_dir.with_name(f".{run_dir.name}.replaced")
    shutil.rmtree(replaced, ignore_errors=True)
    if run_dir.exists():
        os.replace(run_dir, replaced)
    os.replace(running, run_dir)
    shutil.rmtree(replaced, ignore_errors=True)
    _write_pointer(run_dir.parent / "latest", run_dir.name)
    log = os.environ.get(ENV_RUN_LOG)
    if log:  # the chapter runner records which runs a chapter completed, for its up-to-date check
        with open(log, "a") as handle:
            handle.write(str(run_dir) + "\n")
    return read_run(run_dir)


def read_run(run_dir: str | os.PathLike) -> RunRecord:
    """Read and check one run folder; raise :class:`IncompleteRunError` naming what is wrong.

    Every file recorded by :func:`finish_run` must still exist with its recorded size.
    """
    run_dir = Path(run_dir)
    chapter = run_dir.parent.name
    again = f"run it again (`neuroalign run {chapter} --force`)"
    record_path = run_dir / RUN_RECORD
    if not record_path.is_file():
        raise IncompleteRunError(f"The '{chapter}' run in {run_dir} did not finish; {again}.")
    try:
        record = json.loads(record_path.read_text())
    except (ValueError, OSError) as err:
        raise IncompleteRunError(f"{record_path} is unreadable ({err}); {again}.") from None
    for name, size in record["files"].items():
        path = run_dir / name
        if not path.is_file():
            raise IncompleteRunError(f"{path} is missing from the '{chapter}' run; {again}.")
        if path.stat().st_size != size:
            raise IncompleteRunError(
                f"{path} has {path.stat().st_size} bytes, not the {size} it was written with (damaged); {again}."
            )
    return RunRecord(chapter, run_dir, record["parameters"], record["synthetic"], record["finished"], record["files"])


def latest_run(chapter: str, *, data_dir: str | os.PathLike | None = None) -> RunRecord:
    """The last complete run of ``chapter``.

    A run that is under way, or crashed, with the parameters of the last complete run leaves that run
    in place and returned here.

    Raises
    ------
    IncompleteRunError
        When the chapter never completed a run, when the run started last did not finish (its
        results would silently be replaced by an older run's, perhaps of other data), or when the
        latest run's files are missing or damaged. The message names the command to run.
    """
    root = get_data_dir(data_dir) / "results" / chapter
    latest, attempt = _read_pointer(root / "latest"), _read_pointer(root / "attempt")
    running = root / f"{attempt}{RUNNING_SUFFIX}"
    unfinished = attempt is not None and (running.is_dir() or not (root / attempt / RUN_RECORD).is_file())
    if attempt != latest and unfinished:
        older = (
            f"the last complete run ({_read_parameters(root / latest)}) is not used in its place"
            if latest
            else "no run is complete"
        )
        started = _read_parameters(running if running.is_dir() else root / attempt)
        raise IncompleteRunError(
            f"The last run of '{chapter}' ({started}) did not finish, so its results are missing; {older}. "
            f"Run it again (`neuroalign run {chapter}` with those parameters)."
        )
    if latest is None:
        raise NoRunError(
            f"Chapter '{chapter}' has no complete results under {root}; run it first (`neuroalign run {chapter}`)."
        )
    return read_run(root / latest)


def latest_results_dir(chapter: str, *, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder of :func:`latest_run`."""
    return latest_run(chapter, data_dir=data_dir).path


def _write_pointer(path: Path, name: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(name)


def _read_pointer(path: Path) -> str | None:
    return path.read_text().strip() or None if path.is_file() else None


def _read_parameters(run_dir: Path) -> str:
    try:
        params = json.loads((run_dir / "parameters.json").read_text())
    except (OSError, ValueError):
        return "parameters unknown"
    return ", ".join(f"{k}={v!r}" for k, v in params.items())
