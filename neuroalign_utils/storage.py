"""Where data, caches and results live, and how files are written safely.

Resolution order for the data folder (nilearn's pattern): the ``data_dir`` argument, then the
``NEUROALIGN_DATA`` environment variable, then ``$XDG_CACHE_HOME/neuroalign`` (``~/.cache/neuroalign``).
Every file is written to a temporary name in its destination folder and renamed into place, so an
interrupted run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

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

    On error the temporary file or folder is removed and ``path`` is left untouched.
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
        if is_dir and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))
    return Path(path)


def _json_default(obj):
    # numpy scalars and arrays appear in headline figures
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def chapter_results_dir(
    chapter: str, parameters: Mapping[str, Any], *, data_dir: str | os.PathLike | None = None
) -> Path:
    """Return (and create) the results folder of one chapter run, keyed by its parameters.

    The folder is ``<data dir>/results/<chapter>/<hash of parameters>``; it holds the chapter's tidy
    results and a ``parameters.json``. ``<data dir>/results/<chapter>/latest`` names the last run, so the
    synthesis chapter can read it with :func:`latest_results_dir`.
    """
    root = get_data_dir(data_dir) / "results" / chapter
    run_dir = root / content_key(dict(parameters))
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "parameters.json", dict(parameters))
    with atomic_path(root / "latest") as tmp:
        tmp.write_text(run_dir.name)
    return run_dir


def latest_results_dir(chapter: str, *, data_dir: str | os.PathLike | None = None) -> Path:
    """Return the results folder of the last run of ``chapter``; raise if it never ran."""
    root = get_data_dir(data_dir) / "results" / chapter
    pointer = root / "latest"
    if not pointer.exists():
        raise FileNotFoundError(
            f"Chapter '{chapter}' has no saved results under {root}; run it first "
            f"(`neuroalign run {chapter}`)."
        )
    return root / pointer.read_text().strip()
