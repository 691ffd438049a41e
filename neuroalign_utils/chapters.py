"""Chapters: discovery, their ``parameters`` cells, execution with papermill, and the book build.

A chapter is a jupytext MyST notebook ``notebooks/NN_<name>.md`` (paired with ``NN_<name>.ipynb`` for
Colab) with one code cell tagged ``parameters``. Its parameters, their types and defaults are read from
that cell, so the CLI, the tests and the book always agree with the notebook.

Executed notebooks go to a staging copy of the book sources (``_build/stage``); the book is built from
there, so the working tree stays clean and launch buttons keep pointing at the repository's own paths.
An executed chapter is reused when its source, the package source, its parameters and the data folder
are unchanged and the results it completed are still whole. A chapter that reads an earlier chapter's
results gets them through :func:`require_results`.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import storage
from .progress import ENV_PROGRESS

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
#: Set to "0" by :func:`run_chapter` for the kernels it starts: the chapter runs non-interactively (papermill,
#: ``neuroalign run``/``build``), so a parameter panel (:mod:`neuroalign_utils.panel`) shows its note instead.
ENV_INTERACTIVE = "NEUROALIGN_INTERACTIVE"
_CHAPTER_FILE = re.compile(r"^(\d\d)_([a-z0-9_]+)\.md$")


class ChapterError(RuntimeError):
    """A chapter could not be run; the message names the chapter, the cell and the error."""


#: The errors a reader's input can cause (bad name, type or value, missing file, failing chapter): the CLI and
#: the parameter panel show their message, never a traceback.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, ChapterError)


@dataclass(frozen=True)
class Parameter:
    """One entry of a chapter's ``parameters`` cell."""

    name: str
    default: Any
    help: str = ""

    @property
    def type_name(self) -> str:
        return "any" if self.default is None else type(self.default).__name__


@dataclass(frozen=True)
class Chapter:
    """A chapter notebook and its parameters."""

    name: str
    order: int
    path: Path
    title: str
    parameters: dict[str, Parameter] = field(default_factory=dict)

    @property
    def ipynb_path(self) -> Path:
        return self.path.with_suffix(".ipynb")

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters.values()}


# --------------------------------------------------------------------------------------------------
# discovery


def find_root(start: str | os.PathLike | None = None) -> Path:
    """Return the book's root folder (the one holding ``_toc.yml`` and ``notebooks/``).

    Searches ``start`` (default: the current folder) and its parents, then the package's own parent
    (an editable install). Raises ``FileNotFoundError`` listing where it looked.
    """
    tried = []
    here = Path(start or os.getcwd()).resolve()
    for folder in [here, *here.parents, PACKAGE_DIR.parent]:
        tried.append(str(folder))
        if (folder / "_toc.yml").is_file() and (folder / "notebooks").is_dir():
            return folder
    raise FileNotFoundError(
        "Cannot find the neuroalign book (a folder with _toc.yml and notebooks/); looked in: "
        + ", ".join(dict.fromkeys(tried))
        + ". Run from a clone of the repository or pass --root."
    )


def read_parameters(notebook_text: str, *, source: str = "<notebook>") -> dict[str, Parameter]:
    """Parse the ``parameters`` cell of a MyST notebook into :class:`Parameter` objects.

    Only ``name = <literal>`` assignments are allowed there (papermill overrides them); a trailing
    ``# comment`` becomes the parameter's help text.
    """
    import jupytext

    nb = jupytext.reads(notebook_text, fmt="md:myst")
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ChapterError(f"{source}: expected exactly one cell tagged 'parameters', found {len(cells)}.")
    code = cells[0].source
    lines = code.splitlines()
    params: dict[str, Parameter] = {}
    for node in ast.parse(code).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ChapterError(f"{source}: the parameters cell may hold only `name = literal` lines.")
        try:
            value = ast.literal_eval(node.value)
        except ValueError as err:
            raise ChapterError(f"{source}: parameter '{node.targets[0].id}' is not a literal.") from err
        line = lines[node.end_lineno - 1]
        comment = line.split("#", 1)[1].strip() if "#" in line[node.value.end_col_offset :] else ""
        params[node.targets[0].id] = Parameter(node.targets[0].id, value, comment)
    return params


def list_chapters(root: str | os.PathLike | None = None) -> list[Chapter]:
    """All chapters of the book, in reading order."""
    root = Path(root) if root else find_root()
    chapters = []
    for path in sorted((root / "notebooks").glob("*.md")):
        m = _CHAPTER_FILE.match(path.name)
        if not m:
            continue
        text = path.read_text()
        title = next((ln[2:].strip() for ln in text.splitlines() if ln.startswith("# ")), m.group(2))
        chapters.append(Chapter(m.group(2), int(m.group(1)), path, title, read_parameters(text, source=str(path))))
    return chapters


def get_chapter(name: str, root: str | os.PathLike | None = None) -> Chapter:
    """Return the chapter called ``name``; the error lists the valid names."""
    chapters = {c.name: c for c in list_chapters(root)}
    if name not in chapters:
        raise ValueError(f"Unknown chapter {name!r}; valid chapters are: {', '.join(chapters)} (or 'all').")
    return chapters[name]


# --------------------------------------------------------------------------------------------------
# parameter values


def coerce_parameter(chapter: Chapter, name: str, value: Any) -> Any:
    """Check ``value`` for parameter ``name`` of ``chapter`` and convert it to the default's type.

    Strings (from the command line) are parsed as YAML first, so ``-p n 3`` gives an int and
    ``-p areas '[VISp, VISl]'`` a list.
    """
    if name not in chapter.parameters:
        valid = ", ".join(f"{p.name} ({p.type_name})" for p in chapter.parameters.values()) or "none"
        raise ValueError(f"Chapter '{chapter.name}' has no parameter {name!r}; its parameters are: {valid}.")
    param = chapter.parameters[name]
    raw = value
    if isinstance(value, str) and not isinstance(param.default, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            pass
    default = param.default
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = True
        value = value if isinstance(value, str) else str(raw)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
        value = list(value) if ok else value
    elif isinstance(default, dict):
        ok = isinstance(value, dict)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise TypeError(
            f"Parameter '{name}' of chapter '{chapter.name}' expects {param.type_name} "
            f"(default {default!r}); got {raw!r}."
        )
    return value


def resolve_parameters(chapter: Chapter, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate ``overrides`` for ``chapter``; return only the overridden, converted values."""
    return {k: coerce_parameter(chapter, k, v) for k, v in (overrides or {}).items()}


def read_parameter_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping of parameters (or of chapter name → parameters); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Parameter file '{path}' does not exist.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"Parameter file '{path}' is not valid YAML{where}: {problem}.") from None
    if not isinstance(data, dict):
        raise ValueError(f"Parameter file '{path}' must hold a mapping of name: value.")
    return data


# --------------------------------------------------------------------------------------------------
# execution


def package_fingerprint() -> str:
    """Hash of the package's Python sources: an executed chapter is stale when any changes."""
    h = hashlib.sha1()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        h.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _stamp(chapter: Chapter, parameters: Mapping[str, Any]) -> str:
    blob = json.dumps(
        {
            "source": chapter.path.read_text(),
            "package": package_fingerprint(),
            "parameters": dict(parameters),
            "data_dir": str(storage.get_data_dir()),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(blob.encode()).hexdigest()


def _is_up_to_date(out: Path, stamp_file: Path, stamp: str) -> bool:
    """The executed notebook exists, its stamp matches, and every run it completed is still whole."""
    if not (out.exists() and stamp_file.exists()):
        return False
    try:
        saved = json.loads(stamp_file.read_text())
    except ValueError:
        return False
    if not isinstance(saved, dict) or saved.get("stamp") != stamp:
        return False
    try:
        for run_dir in saved.get("runs", []):
            storage.read_run(run_dir)
    except storage.IncompleteRunError:
        return False
    return True


def run_chapter(
    chapter: Chapter | str,
    parameters: Mapping[str, Any] | None = None,
    *,
    output_dir: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Execute one chapter with papermill and return the executed notebook's path.

    Parameters
    ----------
    chapter : Chapter or str
    parameters : mapping, optional
        Overrides of the chapter's defaults; validated before anything runs.
    output_dir : path, optional
        Where the executed ``.ipynb`` goes; default ``<root>/_build/stage/notebooks``.
    force : bool, default=False
        Re-run even if an executed copy with the same source, package and parameters exists.

    Raises
    ------
    ChapterError
        When a cell fails; the message names the chapter, the cell and the error.
    """
    import jupytext
    import nbformat
    import papermill

    root = Path(root) if root else find_root()
    if isinstance(chapter, str):
        chapter = get_chapter(chapter, root)
    params = resolve_parameters(chapter, parameters)
    # absolute: the kernel runs inside output_dir and writes the run log (below) by this path
    output_dir = (Path(output_dir) if output_dir else root / "_build" / "stage" / "notebooks").resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    out = output_dir / chapter.ipynb_path.name
    stamp_file = output_dir / f".{out.name}.stamp"
    stamp = _stamp(chapter, params)
    if not force and _is_up_to_date(out, stamp_file, stamp):
        logger.info("chapter %s is up to date (%s)", chapter.name, out)
        return out

    nb = jupytext.read(chapter.path, fmt="md:myst")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = output_dir / f".{chapter.name}.input.ipynb"
    nbformat.write(nb, src)
    tmp_out = output_dir / f".{out.name}.running.ipynb"
    failed = output_dir / f"{chapter.path.stem}.failed.ipynb"
    run_log = output_dir / f".{chapter.name}.runs"
    run_log.unlink(missing_ok=True)
    stamp_file.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        # progress bars belong on the command line, a parameter panel in a live kernel; finish_run logs the runs
        # the chapter completes
        environment = {ENV_PROGRESS: "0", ENV_INTERACTIVE: "0", storage.ENV_RUN_LOG: str(run_log)}
        with _kernel_environment(environment):
            papermill.execute_notebook(
                str(src),
                str(tmp_out),
                parameters=params,
                kernel_name="python3",
                cwd=str(output_dir),
                progress_bar=progress,
                log_output=False,
                request_save_on_cell_execute=False,
                # the kernel's start-up notices (e.g. "running over TCP without encryption", which is
                # loopback-only here) would land in the output of a chapter that runs another one
                extra_arguments=["--IPKernelApp.log_level=ERROR"],
            )
    except papermill.PapermillExecutionError as err:
        if tmp_out.exists():
            os.replace(tmp_out, failed)
        raise ChapterError(
            f"Chapter '{chapter.name}' failed in cell {err.cell_index} (execution count {err.exec_count}): "
            f"{err.ename}: {err.evalue}\nThe partly executed notebook is at {failed}."
        ) from None
    except BaseException:
        tmp_out.unlink(missing_ok=True)
        raise
    finally:
        src.unlink(missing_ok=True)
    _hide_injected_parameters(tmp_out)
    os.replace(tmp_out, out)
    failed.unlink(missing_ok=True)
    runs = run_log.read_text().split() if run_log.exists() else []
    run_log.unlink(missing_ok=True)
    stamp_file.write_text(json.dumps({"stamp": stamp, "runs": runs}))
    logger.info("chapter %s ran in %.1f s -> %s", chapter.name, time.perf_counter() - start, out)
    return out


def small_parameters(name: str) -> dict[str, Any]:
    """The chapter's small settings (``small_parameters.yaml``), for runs made only to feed a later chapter."""
    import importlib.resources

    presets = yaml.safe_load(importlib.resources.files(__package__).joinpath("small_parameters.yaml").read_text())
    return dict(presets.get(name) or {})


def require_results(chapter: str, *, root: str | os.PathLike | None = None) -> storage.RunRecord:
    """The last complete run of an earlier chapter; when it never ran here, run it now at small settings.

    This is what lets a reader open any chapter alone: a missing upstream chapter is executed through
    the same runner as ``neuroalign run`` with :func:`small_parameters` (its own missing inputs are made
    the same way), and one printed sentence says so. A run of the chapter that is under way or crashed
    leaves its last complete run in place; when that run had other parameters, it is never replaced
    silently by the older complete one: :func:`storage.latest_run` refuses it.

    Returns
    -------
    storage.RunRecord
        Its :meth:`~storage.RunRecord.describe` names the run for the reader.
    """
    import tempfile

    try:
        return storage.latest_run(chapter)
    except storage.NoRunError as err:
        try:
            root = find_root(root)
        except FileNotFoundError:
            raise storage.NoRunError(
                f"{err} The book's notebooks are not here to run it from; clone the repository."
            ) from None
        params = small_parameters(chapter)
    settings = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "its defaults"
    print(
        f"No complete '{chapter}' run was found in this data folder, so it runs now with small settings "
        f"({settings}); `neuroalign run {chapter}` makes the full one."
    )
    with tempfile.TemporaryDirectory() as out:  # its executed notebook is not a page of the book
        run_chapter(chapter, params, output_dir=out, root=root, progress=False)
    return storage.latest_run(chapter)


@contextlib.contextmanager
def _kernel_environment(variables: Mapping[str, str]):
    """Set environment variables for the kernels started inside the block (they inherit ours)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _hide_injected_parameters(path: Path) -> None:
    """Tag papermill's injected-parameters cell so the book does not render it."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(nb, path)


# --------------------------------------------------------------------------------------------------
# the book


_BOOK_SOURCES = ("_config.yml", "_toc.yml", "book", "_static")

# What the book needs of MathJax 3.2.2 (the django-static-mathjax wheel's es5 folder) to render math
# offline: the TeX + CommonHTML component, the TeX extensions its autoload may fetch and the CHTML fonts.
# About 2.1 MB. They are staged as an ``html_extra_path`` folder that lands in ``_build/html/_static``
# (``_config.yml``: mathjax_path), not in ``_static`` itself: Jupyter Book 1 puts every ``.js`` found
# under ``_static`` on every page.
_MATHJAX_FILES = ("tex-chtml.js", "input/tex/extensions", "output/chtml/fonts/woff-v2")

# Sphinx 7 writes each inline script added after the builder started twice (once with filename None,
# once with ''), so sphinx-thebe's `const THEBE_JS_URL` throws a SyntaxError on every page. Sphinx fixed
# it in 8.x (sphinx-doc/sphinx#13402) by passing '' for None, which is what this does; Jupyter Book 1
# requires Sphinx 7.
_SPHINX_INLINE_JS_FIX = (
    "from sphinx.builders.html import StandaloneHTMLBuilder as B; _add = B.add_js_file; "
    "B.add_js_file = lambda self, filename, **kw: _add(self, filename or '', **kw)"
)


def build_book(
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    root: str | os.PathLike | None = None,
    chapters: list[str] | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Execute the chapters into ``_build/stage`` and build the Jupyter Book to ``_build/html``.

    Parameters
    ----------
    parameters : mapping of chapter name to overrides, optional
        Default: every chapter at its default parameters.
    chapters : list of str, optional
        Which chapters to execute (default: all). The others keep their previously executed copy.

    Returns
    -------
    pathlib.Path
        ``<root>/_build/html/index.html``.
    """
    root = Path(root) if root else find_root()
    all_chapters = list_chapters(root)
    by_name = {c.name: c for c in all_chapters}
    parameters = dict(parameters or {})
    for name in list(parameters) + list(chapters or []):
        if name not in by_name:
            raise ValueError(f"Unknown chapter {name!r}; valid chapters are: {', '.join(by_name)}.")
    selected = [by_name[n] for n in chapters] if chapters else all_chapters
    for ch in selected:  # validate everything before running anything
        resolve_parameters(ch, parameters.get(ch.name))

    stage = root / "_build" / "stage"
    stage.mkdir(parents=True, exist_ok=True)
    for name in _BOOK_SOURCES:
        src, dst = root / name, stage / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, dst)
    import mathjax  # django-static-mathjax

    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    for rel in _MATHJAX_FILES:
        src, dst = es5 / rel, stage / "_mathjax" / "_static" / "mathjax" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
    for i, ch in enumerate(selected, 1):
        print(f"[{i}/{len(selected)}] {ch.name}", flush=True)
        run_chapter(ch, parameters.get(ch.name), root=root, force=force, progress=progress)

    # launch buttons and the Colab cells of the built pages open and install the commit built here
    from . import launch

    commit = launch.current_commit(root)
    if commit:
        launch.pin_to_commit(stage, commit)

    # jupyter_book.cli.main has no __main__ guard, so call its entry point explicitly
    entry = f"import sys; {_SPHINX_INLINE_JS_FIX}; from jupyter_book.cli.main import main; sys.exit(main())"
    cmd = [sys.executable, "-c", entry, "build", str(stage), "--path-output", str(root)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ChapterError(f"jupyter-book build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    index = root / "_build" / "html" / "index.html"
    if not index.exists():
        raise ChapterError(f"jupyter-book finished but {index} is missing.")
    return index
