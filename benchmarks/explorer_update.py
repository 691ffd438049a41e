"""Time an update of each chapter explorer (neuroalign_utils.explorers): a control moved to the figure redrawn.

Each explorer is built live (ipywidgets, no kernel needed) on the small results of ``tests/test_explorers.py``
(kernel alignment: 30 neural kernels of 12×16 against 70 artificial ones; V1T: a small encoder of two
mice, 6 and 4 test trials, 5 and 3 units; FactorTopy: ``--vertices`` per hemisphere, default 500 as in
the chapter). An update is setting one control's ``value``: the explorer draws the figure with the lens's
``plot_*`` function, renders it to PNG and fills the details. Prints the build time and the median
update over ``--repeats`` changes that cycle through the choices, as ``<explorer>_build: N ms`` and
``<explorer>_update: N ms`` (wall clock), with ``<explorer>_update_cpu: N ms``, the process's CPU time of
the same updates (single-threaded drawing: close to the wall clock of an idle machine, and less moved by
other work on a busy one).

    .venv/bin/python benchmarks/explorer_update.py [--quick] [--repeats N] [--vertices N]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the small results of the tests

from test_explorers import small_alignment, small_factortopy, small_v1t  # noqa: E402

from neuroalign_utils import explorers, style  # noqa: E402


def time_explorer(name: str, build, changes, repeats: int) -> None:
    start = time.perf_counter()
    explorer = build()
    print(f"{name}_build: {1e3 * (time.perf_counter() - start):.0f} ms")
    wall, cpu = [], []
    for control, value in itertools.islice(itertools.cycle(changes), repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        explorer.controls[control].value = value
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    print(f"{name}_update: {1e3 * float(np.median(wall)):.0f} ms")
    print(f"{name}_update_cpu: {1e3 * float(np.median(cpu)):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=12, help="updates timed per explorer (median printed)")
    parser.add_argument("--vertices", type=int, default=500, help="FactorTopy vertices per hemisphere")
    parser.add_argument("--quick", action="store_true", help="3 updates each, 150 vertices per hemisphere")
    args = parser.parse_args()
    repeats, vertices = (3, 150) if args.quick else (args.repeats, args.vertices)
    style.use_book_style()

    result, neural, artificial = small_alignment()
    time_explorer(
        "kernel_alignment",
        lambda: explorers.kernel_alignment_explorer(result, neural, artificial, live=True),
        [("area", "VISp"), ("genotype", "Cux2"), ("area", "VISl"), ("genotype", "all"), ("area", "all")],
        repeats,
    )
    images, maps, arfs, fits, centres = small_v1t()
    time_explorer(
        "v1t",
        lambda: explorers.v1t_explorer(images, maps, arfs, fits=fits, centres=centres, live=True),
        [("trial", 3), ("unit", 2), ("trial", 1), ("unit", 4), ("trial", 0)],
        repeats,
    )
    table = small_factortopy(n_per_hemisphere=vertices)
    time_explorer(
        "factortopy",
        lambda: explorers.factortopy_explorer(table, live=True),
        [("quantity", q) for q in ("position", "scale", "iota", "r2", "layer")],
        repeats,
    )


if __name__ == "__main__":
    main()
