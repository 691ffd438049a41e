"""Where readers rerun the book: the repository URL, the Colab set-up cell and the launch links.

The repository URL has one home, ``repository.url`` in ``_config.yml`` (Jupyter Book's launch buttons
read it there). Everything else that names it is written from it by :func:`sync`, and
``tests/test_launch.py`` fails when a copy drifts:

* the first cell of every chapter, :func:`colab_cell` — on Colab it installs the package from the
  repository at a given commit, adding only the distributions Colab lacks and holding every installed
  distribution at the version Colab already has (a pip constraints file), then says whether the
  runtime must be restarted; where the package is already importable (``make book``, Binder) it does
  nothing;
* the README's Binder and Colab badges.

The committed notebooks install the branch named in ``_config.yml``; :func:`pin_to_commit`, called by
the book build on its staged copy, pins the launch buttons and the first cell of every executed
notebook to the commit the book was built from.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

#: First line of the set-up cell; :func:`sync` finds the cell by it.
CELL_MARK = "# Colab: install this book's package"

# The cell's text is written into every chapter (tests/test_launch.py compares them), so it must not change:
# its two longest lines are split across string pieces (implicit concatenation, nothing added between them)
# only to keep this file's lines within 120 characters.
_CELL = (
    """{mark} from the repository at the commit the book was built from, adding only what
# Colab lacks and keeping every version Colab already has; then say whether to restart. Where the package
# is already installed (make book, Binder) this cell does nothing. Written from _config.yml: `neuroalign sync`.
REPOSITORY, COMMIT = "{url}", "{ref}"
import importlib.util

if importlib.util.find_spec("neuroalign_utils") is None:
    import importlib.metadata, json, re, subprocess, sys, tempfile

    def norm(name):
        return re.sub(r"[-_.]+", "-", name).lower()

    before = {{norm(d.metadata["Name"]): d.version for d in importlib.metadata.distributions() if d.metadata["Name"]}}
    pinnable = {{n: v for n, v in before.items() if re.fullmatch(r"[0-9][0-9A-Za-z.+!_-]*", v)}}
    # first every version Colab has; if the package needs a newer one of something, hold only numpy, pandas
    # and torch (changing those under a running kernel breaks it) and report what else moved
    attempts = [pinnable, {{n: v for n, v in pinnable.items() if n in ("numpy", "pandas", "torch")}}]
    with tempfile.TemporaryDirectory() as tmp:
        for kept in attempts:
            with open(f"{{tmp}}/kept.txt", "w") as constraints:
                constraints.writelines(f"{{n}}=={{v}}\\n" for n, v in kept.items())
            pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--constraint", """
    """f"{{tmp}}/kept.txt",
                                  "--report", f"{{tmp}}/report.json", """
    """f"neuroalign_utils @ git+{{REPOSITORY}}@{{COMMIT}}"],
                                 capture_output=True, text=True)
            if pip.returncode == 0:
                break
        else:
            raise RuntimeError(f"pip could not install neuroalign_utils beside this runtime:\\n{{pip.stderr}}")
        with open(f"{{tmp}}/report.json") as report:
            installed = {{norm(i["metadata"]["name"]): i["metadata"]["version"] for i in json.load(report)["install"]}}
    importlib.invalidate_caches()
    owners = importlib.metadata.packages_distributions()
    imported = {{norm(name) for module in list(sys.modules) if "." not in module for name in owners.get(module, [])}}
    changed = sorted(n for n, v in installed.items() if n in before and before[n] != v and n in imported)
    added = sorted(n for n in installed if n not in before)
    updated = sorted(f"{{n}} {{before[n]}} -> {{v}}" for n, v in installed.items() if n in before and before[n] != v)
    print(f"Installed {{len(added)}} missing distributions ({{', '.join(added)}}) from {{REPOSITORY}} at {{COMMIT}}"
          + (f"; updated {{', '.join(updated)}}." if updated else "; kept every version already installed."))
    print(f"Restart the runtime (Runtime > Restart session), then run again: {{', '.join(changed)}} changed after "
          "being imported." if changed else "No restart is needed: nothing already imported was changed.")"""
)


def read_repository(root) -> tuple[str, str]:
    """``(url, branch)`` of ``repository`` in ``<root>/_config.yml``."""
    path = Path(root) / "_config.yml"
    config = yaml.safe_load(path.read_text())
    repo = config.get("repository") or {}
    if not repo.get("url"):
        raise ValueError(f"{path} has no repository.url; set it to the book's GitHub repository.")
    return repo["url"].rstrip("/"), repo.get("branch") or "main"


def colab_cell(url: str, ref: str) -> str:
    """Source of the Colab set-up cell that installs ``url`` at ``ref`` (see the module docstring)."""
    return _CELL.format(mark=CELL_MARK, url=url, ref=ref)


def badges(url: str, branch: str, notebook: str = "notebooks/00_overview.ipynb") -> str:
    """The README's Binder and Colab badges (Markdown), opening ``notebook`` on ``branch``."""
    slug = url.removeprefix("https://github.com/")
    return (
        f"[![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/{slug}/{branch}"
        f"?urlpath=lab/tree/{notebook})\n"
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{slug}/blob/{branch}/{notebook})"
    )


_BADGES = re.compile(r"\[!\[Binder\]\(.*?\n\[!\[Open In Colab\]\([^\n]*")


def _replace_cell(text: str, cell: str) -> str:
    """``text`` (a MyST notebook) with the set-up cell's code replaced by ``cell``."""
    start = text.index(CELL_MARK)
    end = text.index("\n```", start)
    return text[:start] + cell + text[end:]


def sync(root, chapters) -> list[Path]:
    """Rewrite the chapters' set-up cells and the README badges from ``_config.yml``; the changed files.

    ``chapters`` are the book's chapters (``chapters.list_chapters(root)``: the caller passes them, so this
    module does not import the runner that imports it). The paired ``.ipynb`` of a changed chapter is
    updated with jupytext (cell ids kept).
    """
    import jupytext

    root = Path(root)
    url, branch = read_repository(root)
    cell = colab_cell(url, branch)
    changed = []
    for chapter in chapters:
        text = chapter.path.read_text()
        new = _replace_cell(text, cell)
        if new != text:
            chapter.path.write_text(new)
            notebook = jupytext.read(chapter.path)
            paired = jupytext.read(chapter.ipynb_path)
            for target, source in zip(paired.cells, notebook.cells):
                target.source = source.source
            jupytext.write(paired, chapter.ipynb_path)
            changed += [chapter.path, chapter.ipynb_path]
    readme = root / "README.md"
    text = readme.read_text()
    new = _BADGES.sub(lambda _: badges(url, branch), text, count=1)
    if new != text:
        readme.write_text(new)
        changed.append(readme)
    return changed


def current_commit(root) -> str | None:
    """The git commit checked out at ``root``, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def pin_to_commit(stage, commit: str) -> None:
    """Point a staged book's launch buttons and its executed notebooks' set-up cells at ``commit``.

    ``stage`` is the staged copy the book is built from (``_config.yml`` and ``notebooks/*.ipynb``).
    """
    import nbformat

    stage = Path(stage)
    config_path = stage / "_config.yml"
    config = yaml.safe_load(config_path.read_text())
    url, branch = read_repository(stage)
    config["repository"]["branch"] = commit
    config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    for path in sorted((stage / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.source.startswith(CELL_MARK):
                cell.source = colab_cell(url, commit)
        nbformat.write(nb, path)
