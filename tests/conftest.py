"""Test set-up: no network, no writes to the user's cache, a non-interactive matplotlib."""

from __future__ import annotations

import os

import numpy as np
import pytest

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


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
