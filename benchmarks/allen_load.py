"""Cells per second loaded from a Brain Observatory cache into the tidy (cell, presentation, time) array.

Serial (dask's synchronous scheduler) against dask threads and processes, in the same process, on the
synthetic cache (generated first, not timed), after one untimed warm-up load. Each figure is the best
of ``--repeats`` runs; the process pool's start-up is part of each processes run.

    .venv/bin/python benchmarks/allen_load.py [--quick] [--experiments N] [--cells N] [--repeats N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny cache, one repeat (checks it runs)")
    parser.add_argument("--experiments", type=int, default=12)
    parser.add_argument("--cells", type=int, default=20, help="mean cells per experiment")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=None, help="existing cache folder (skips generation)")
    args = parser.parse_args()
    if args.quick:
        args.experiments, args.cells, args.repeats = 4, 6, 1

    from neuroalign_utils.allen import loading, synthetic

    with tempfile.TemporaryDirectory() as tmp:
        manifest = (
            args.cache / "manifest.json"
            if args.cache
            else synthetic.make_synthetic_cache(
                Path(tmp) / "cache",
                n_experiments=args.experiments,
                cells_per_experiment=args.cells,
                n_repeats=8 if args.quick else 50,
            )
        )
        cache = loading.open_cache(manifest)
        ids = loading.select_experiments(cache)["experiment_id"].tolist()
        loading.load_responses(cache, ids[:1], scheduler="synchronous")  # warm-up: imports, file cache
        rates = {}
        for scheduler in ("synchronous", "threads", "processes"):
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                dff = loading.load_responses(cache, ids, scheduler=scheduler)
                best = min(best, time.perf_counter() - start)
            rates[scheduler] = dff.sizes["cell"] / best
        print(f"allen_load_experiments: {len(ids)} experiments")
        print(f"allen_load_cells: {dff.sizes['cell']} cells")
        print(f"allen_load_tidy_size: {dff.nbytes / 1e6:.1f} MB")
        print(f"allen_load_serial: {rates['synchronous']:.1f} cells/s")
        print(f"allen_load_dask_threads: {rates['threads']:.1f} cells/s")
        print(f"allen_load_dask_processes: {rates['processes']:.1f} cells/s")
        print(f"allen_load_threads_speedup: {rates['threads'] / rates['synchronous']:.2f} x")
        print(f"allen_load_processes_speedup: {rates['processes'] / rates['synchronous']:.2f} x")


if __name__ == "__main__":
    main()
