"""Progress bars for long loops: on the command line and in a live notebook, never in the built book.

The chapter runner (:func:`neuroalign_utils.chapters.run_chapter`) sets ``NEUROALIGN_PROGRESS=0`` for the
kernels it starts, so an executed chapter carries no progress text into the book; ``neuroalign run``
shows papermill's bar over the chapter's cells instead. A reader running a notebook by hand sees the
bars (as widgets where ipywidgets is installed, as text otherwise).
"""

from __future__ import annotations

import importlib.util
import os

ENV_PROGRESS = "NEUROALIGN_PROGRESS"


def progress_enabled(requested: bool = True) -> bool:
    """Whether a bar asked for with ``requested`` is shown (``$NEUROALIGN_PROGRESS=0`` hides all bars)."""
    return bool(requested) and os.environ.get(ENV_PROGRESS, "1") != "0"


def in_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel (where widgets can be shown), not a plain Python or terminal."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs):
    """A tqdm bar over ``iterable`` (or ``total=``), shown only where :func:`progress_enabled` says so.

    Parameters
    ----------
    iterable : iterable, optional
    enabled : bool, default=True
        The caller's own switch (a function's ``progress`` argument).
    **kwargs
        Passed to tqdm (``total``, ``desc``, ``initial``, ``leave`` …).
    """
    # tqdm.auto warns "IProgress not found" in a kernel without ipywidgets: choose the class ourselves
    if in_kernel() and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(iterable, disable=not progress_enabled(enabled), **kwargs)
