"""The package's contracts, checked from its source: every lens has the same module set, no module imports
one that imports it back, no code outside the cores module asks which concrete core it holds, and every
plot function follows one convention."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import pytest

import neuroalign_utils

PACKAGE = Path(neuroalign_utils.__file__).parent

#: The packages that make up each lens (the kernel-alignment lens reads Allen data, then works on kernels).
LENS_PACKAGES = {
    "kernel alignment": ("allen", "kernels"),
    "V1T": ("v1t",),
    "FactorTopy": ("factortopy",),
}
#: What every lens has: a reader of the real format, the writer of its planted default in that format,
#: analysis, figures, typed results and the top module its chapters call.
LENS_MODULES = {"loading", "synthetic", "analysis", "figures", "results", "pipeline"}
#: Lenses that train a model also have these (the kernel-alignment lens trains none).
TRAINING_MODULES = {"V1T": {"models", "training"}, "FactorTopy": {"model", "training"}}


def _modules() -> dict[str, Path]:
    """Dotted name -> source file of every module in the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules) -> set[str]:
    """The package modules ``name`` imports anywhere in its source (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                target = f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in modules else stem
                if target in modules:
                    targets.add(target)
        elif isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names if alias.name in modules}
    return targets - {name}


def import_cycles() -> list[list[str]]:
    """Groups of modules that import each other, directly or through others (Tarjan's components)."""
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_no_module_imports_one_that_imports_it_back():
    assert import_cycles() == []


def test_the_cycle_finder_finds_a_cycle(tmp_path, monkeypatch):
    package = tmp_path / "neuroalign_utils"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("def f():\n    from .a import g\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert import_cycles() == [["neuroalign_utils.a", "neuroalign_utils.b"]]


@pytest.mark.parametrize("lens", LENS_PACKAGES)
def test_every_lens_has_the_same_module_set(lens):
    present = {info.name for package in LENS_PACKAGES[lens] for info in pkgutil.iter_modules([str(PACKAGE / package)])}
    missing = (LENS_MODULES | TRAINING_MODULES.get(lens, set())) - present
    assert not missing, f"the {lens} lens lacks {sorted(missing)}"


def test_no_code_outside_the_cores_module_asks_for_a_concrete_core():
    cores = importlib.import_module("neuroalign_utils.v1t.cores")
    concrete = {
        name
        for name, cls in inspect.getmembers(cores, inspect.isclass)
        if cls.__module__ == cores.__name__ and issubclass(cls, cores.Core) and not inspect.isabstract(cls)
    }
    assert concrete, "no concrete core found in v1t.cores"
    offenders = []
    for name, path in _modules().items():
        if name == cores.__name__:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("isinstance", "issubclass"):
                named = {n.id if isinstance(n, ast.Name) else getattr(n, "attr", None) for n in ast.walk(node.args[1])}
                if named & concrete:
                    offenders.append(f"{name}:{node.lineno}")
    assert offenders == []


def test_every_plot_function_takes_axes_and_no_other_drawing_target():
    checked = 0
    for name in _modules():
        if name.endswith("__main__"):  # importing it runs the command line
            continue
        module = importlib.import_module(name)
        for function_name, function in inspect.getmembers(module, inspect.isfunction):
            if function_name.startswith("plot_") and function.__module__ == name:
                parameters = inspect.signature(function).parameters
                assert "axes" in parameters and parameters["axes"].default is None, f"{name}.{function_name}"
                assert not {"ax", "fig"} & set(parameters), f"{name}.{function_name}"
                checked += 1
    assert checked >= 15
