"""The package's metadata admits both supported stacks, and binder/ is a complete, lean environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
KEPT = ("numpy", "pandas", "torch")  # what Colab already holds: the package must never move them


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _requirements(python: str, extras=()) -> list[Requirement]:
    """The requirements pip resolves for this Python version and extras."""
    project = _pyproject()["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    env = {"python_version": python, "python_full_version": f"{python}.0", "extra": ""}
    return [r for r in map(Requirement, lines) if r.marker is None or r.marker.evaluate(env)]


@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
def test_metadata_admits_python(python):
    assert f"{python}.0" in SpecifierSet(_pyproject()["project"]["requires-python"])


@pytest.mark.parametrize("python", ["3.12", "3.13"])
def test_current_python_never_asks_for_allensdk_or_caps_numpy_pandas_torch(python):
    for extras in ((), ("allensdk",), ("allensdk", "book", "test")):
        requirements = _requirements(python, extras)
        assert "allensdk" not in {r.name for r in requirements}, extras
        for r in requirements:
            if r.name in KEPT:
                # lower bounds only: a newer installed version always satisfies them
                assert all(s.operator == ">=" for s in r.specifier), r


def test_core_dependencies_put_no_upper_bound_on_what_colab_has():
    for r in _requirements("3.11"):
        if r.name in KEPT:
            assert all(s.operator == ">=" for s in r.specifier), r
    assert "allensdk" not in {r.name for r in _requirements("3.11")}
    assert "allensdk" in {r.name for r in _requirements("3.11", ("allensdk",))}


def test_binder_is_complete_lean_and_read_by_repo2docker():
    binder = REPO / "binder"
    lines = [line.split("#")[0].strip() for line in (binder / "requirements.txt").read_text().splitlines()]
    lines = [line for line in lines if line]
    # repo2docker installs the repository itself only through a local reference in this file
    editable = [line for line in lines if line.startswith("-e .")]
    assert len(editable) == 1
    extras = editable[0].partition("[")[2].rstrip("]").split(",") if "[" in editable[0] else []
    assert "test" not in extras and "book" not in extras  # no test tooling, no book builder
    assert not any(line.split("=")[0].split("[")[0] in ("pytest", "playwright") for line in lines)
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert any(line.startswith("torch==") and line.endswith("+cpu") for line in lines)
    constraints = [line.split(None, 1)[1] for line in lines if line.startswith("-c ")]
    assert constraints and all((binder / c).resolve().is_file() for c in constraints)  # relative to the file
    runtime = (binder / "runtime.txt").read_text().strip()
    assert runtime == "python-3.11"  # allensdk's pins need Python <= 3.11
    assert not (binder / "postBuild").exists()  # requirements.txt is the whole recipe
