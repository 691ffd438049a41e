"""Peak resident memory of every chapter run at its defaults, against Binder's limit.

Each chapter runs through the real runner (papermill, one Jupyter kernel) in a fresh Python process, in
book order, in a fresh data folder shared by all of them (so every chapter reads its upstream chapters'
default results instead of running them again, as in ``make book``). The figure is the largest resident
set of any process that chapter started (its kernel; ``getrusage(RUSAGE_CHILDREN).ru_maxrss``, which
Linux keeps for every reaped descendant), i.e. what the chapter's kernel needs on Binder, where
mybinder.org gives 1–2 GB.

    .venv/bin/python benchmarks/chapter_memory.py [--only CHAPTER ...] [--data-dir DIR] [--small]

Prints ``<chapter>_peak: N MiB`` per chapter, then ``largest_peak`` and ``limit`` (MiB) and
``chapters_over_limit`` (count); exits 1 when a chapter exceeds ``--limit``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: mybinder.org gives 1–2 GB; a chapter at its defaults must fit the lower end with room for the server.
LIMIT_MIB = 2000

_ONE = """
import resource, sys
from neuroalign_utils import chapters
name, output_dir, small = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
params = chapters.small_parameters(name) if small else {}
chapters.run_chapter(name, params, output_dir=output_dir, force=True, progress=False)
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kernels = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(max(own, kernels) // 1024)  # KiB on Linux
"""


def chapter_peak(name: str, output_dir: Path, env: dict, small: bool) -> int:
    """Peak resident memory (MiB) of one chapter's run, measured in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-c", _ONE, name, str(output_dir), "1" if small else "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"chapter {name} failed:\n{result.stderr[-3000:]}")
    return int(result.stdout.strip().splitlines()[-1])


def main() -> None:
    from neuroalign_utils import chapters

    names = [c.name for c in chapters.list_chapters(REPO)]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=names, help="these chapters (default: all, in book order)")
    parser.add_argument("--data-dir", type=Path, help="data folder (default: a fresh temporary one)")
    parser.add_argument("--small", action="store_true", help="the chapters' small parameters (checks it runs)")
    parser.add_argument("--limit", type=int, default=LIMIT_MIB, help="MiB a chapter may peak at")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="chapter_memory_") as tmp:
        data_dir = args.data_dir or Path(tmp) / "data"
        env = dict(os.environ, NEUROALIGN_DATA=str(data_dir), NEUROALIGN_PROGRESS="0", HF_HUB_OFFLINE="1")
        peaks = {}
        for name in args.only or names:
            peaks[name] = chapter_peak(name, Path(tmp) / "notebooks", env, args.small)
            print(f"{name}_peak: {peaks[name]} MiB", flush=True)
    over = [n for n, p in peaks.items() if p > args.limit]
    print(f"largest_peak: {max(peaks.values())} MiB")
    print(f"limit: {args.limit} MiB")
    print(f"chapters_over_limit: {len(over)} count")
    if over:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
