"""Test set-up: no network, no writes to the user's cache, a non-interactive matplotlib."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

# Set before anything imports transformers / matplotlib; executed chapters inherit the environment.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import matplotlib  # noqa: E402

# Agg for this process only: executed chapters keep the inline backend, which renders figures.
matplotlib.use("Agg")
os.environ.pop("MPLBACKEND", None)


@pytest.fixture(scope="session", autouse=True)
def neuroalign_data_dir(tmp_path_factory):
    """Every test session writes data, caches and results to its own temporary folder."""
    path = tmp_path_factory.mktemp("neuroalign_data")
    old = os.environ.get("NEUROALIGN_DATA")
    os.environ["NEUROALIGN_DATA"] = str(path)
    yield path
    if old is None:
        os.environ.pop("NEUROALIGN_DATA", None)
    else:
        os.environ["NEUROALIGN_DATA"] = old


REPO = Path(__file__).resolve().parents[1]
SMOKE = Path(__file__).parent / "smoke"


def smoke_parameters(name: str) -> dict:
    """A chapter's small test parameters, ``tests/smoke/<chapter>.yaml`` (its defaults when absent)."""
    path = SMOKE / f"{name}.yaml"
    return yaml.safe_load(path.read_text()) or {} if path.exists() else {}


@pytest.fixture(scope="session")
def book_root(tmp_path_factory):
    """A copy of the book sources, so tests never write into the working tree."""
    root = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml", "book", "notebooks", "_static"):
        src = REPO / name
        if src.exists():
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, root / name)
    return root


@pytest.fixture(scope="session")
def built_book(book_root):
    """The book built once per test session, every chapter at its smoke parameters: its index.html.

    Chapters already executed in ``book_root`` with the same parameters (test_book.py runs them one
    by one) are reused, not run again.
    """
    from neuroalign_utils import chapters

    params = {c.name: smoke_parameters(c.name) for c in chapters.list_chapters(book_root)}
    return chapters.build_book(params, root=book_root, progress=False)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
