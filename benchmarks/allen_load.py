"""Allen loading plus neural kernels, per experiment: serial against a dask.distributed LocalCluster.

The workload is what the Allen and neural-kernels chapters run on each experiment: read its NWB file
(dF/F of every cell over the whole session), cut every natural-scene presentation, reduce to trial
responses and scene traces, and the neural kernels N = Tᵀ·FS. It runs on the synthetic cache at the
release's scale (``make_synthetic_cache(size="paper")``: about 170 cells per excitatory experiment,
115,000-frame sessions; generated first into the neuroalign data folder and reused, not timed), with

* ``synchronous``: dask's serial scheduler (the baseline);
* ``threads``: dask's threaded scheduler in this process;
* ``local:2``: a ``LocalCluster`` of 2 single-threaded worker processes, started and closed inside the
  timed run (``allen_distributed_speedup_cold``); its start-up (cluster and client ready) and shut-down are
  also reported alone. Then, on the same running cluster, the same work again with its workers warm
  (``allen_distributed_speedup``: the serial runs, too, come after a warm-up), which is what a session that
  keeps its cluster for several calls gets.

The cluster costs a few seconds whatever the work (start-up, each worker importing allensdk, shut-down),
so its speed-up grows with the number of experiments; the default 24 release-sized experiments are
fewer than the Allen chapter's 60. ``--size book`` runs the book's default experiments instead.

One untimed warm-up load (imports, file cache) comes first; each figure is the best of ``--repeats``
runs, and every scheduler's kernels are checked to equal the serial ones exactly. Run on two idle cores:

    taskset -c 0,1 .venv/bin/python benchmarks/allen_load.py [--quick] [--experiments N] [--size paper|book]
        [--workers N] [--repeats N] [--cache DIR]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")
os.environ.setdefault("NEUROALIGN_PROGRESS", "0")


def load_kernels(cache, ids, scenes, scheduler):
    """The per-experiment work of chapters 01 and 02: load, reduce, neural kernels."""
    from neuroalign_utils.allen import loading
    from neuroalign_utils.kernels import neural

    dff = loading.load_responses(cache, ids, scheduler=scheduler, compute=False)
    return neural.neural_kernels(dff, scenes, scheduler=scheduler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="book-size experiments, one repeat (checks it runs)")
    parser.add_argument("--experiments", type=int, default=24)
    parser.add_argument("--size", choices=["paper", "book"], default="paper", help="synthetic experiments' size")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the LocalCluster")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=None, help="existing cache folder (skips generation)")
    args = parser.parse_args()
    if args.quick:
        args.experiments, args.repeats = 4, 1

    from neuroalign_utils import parallel
    from neuroalign_utils.allen import loading, synthetic

    if args.cache:
        manifest = args.cache / "manifest.json"
    elif args.quick:
        manifest = synthetic.make_synthetic_cache(n_experiments=args.experiments, cells_per_experiment=6, n_repeats=8)
    else:
        manifest = synthetic.make_synthetic_cache(size=args.size, n_experiments=args.experiments)
    cache = loading.open_cache(manifest)
    ids = loading.select_experiments(cache)["experiment_id"].tolist()[: args.experiments]
    scenes = loading.load_scene_templates(cache, ids[0])
    load_kernels(cache, ids[:1], scenes, "synchronous")  # warm-up: imports, file cache

    cluster = f"local:{args.workers}"
    seconds, startup, shutdown, warm, kernels = {}, float("inf"), float("inf"), float("inf"), {}
    for scheduler in ("synchronous", "threads", cluster):
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            with parallel.dask_scheduler(scheduler) as where:
                ready = time.perf_counter()
                kernels[scheduler] = load_kernels(cache, ids, scenes, where)
                done = time.perf_counter()
                if scheduler == cluster:
                    # The same work again on the running cluster, its workers warm (imports, file cache),
                    # as the serial runs are after their warm-up: what a session that keeps its cluster gets.
                    load_kernels(cache, ids, scenes, where)
                    warm = min(warm, time.perf_counter() - done)
                    done = time.perf_counter()
            best = min(best, time.perf_counter() - start - (warm if scheduler == cluster else 0.0))
            if scheduler == cluster:
                startup, shutdown = min(startup, ready - start), min(shutdown, time.perf_counter() - done)
        seconds[scheduler] = best
    for scheduler in ("threads", cluster):
        if not np.array_equal(kernels[scheduler].values, kernels["synchronous"].values):
            raise AssertionError(f"kernels computed with scheduler={scheduler!r} differ from the serial ones")

    n_cells = kernels["synchronous"].sizes["kernel"]
    n_frames = _session_frames(cache, ids[0])
    print(f"allen_distributed_experiments: {len(ids)} experiments")
    print(f"allen_distributed_cells: {n_cells} cells")
    print(f"allen_distributed_session_length: {n_frames} frames")
    print(f"allen_serial: {seconds['synchronous']:.2f} s")
    print(f"allen_dask_threads: {seconds['threads']:.2f} s")
    print(f"allen_distributed_local{args.workers}: {seconds[cluster]:.2f} s")
    print(f"allen_distributed_startup: {startup:.2f} s")
    print(f"allen_distributed_shutdown: {shutdown:.2f} s")
    print(f"allen_threads_speedup: {seconds['synchronous'] / seconds['threads']:.2f} x")
    print(f"allen_distributed_local{args.workers}_warm: {warm:.2f} s")
    print(f"allen_distributed_speedup_cold: {seconds['synchronous'] / seconds[cluster]:.2f} x")
    print(f"allen_distributed_speedup: {seconds['synchronous'] / warm:.2f} x")


def _session_frames(cache, experiment_id) -> int:
    from neuroalign_utils.allen import loading

    ds = loading._data_set(cache, experiment_id)
    return len(ds.get_fluorescence_timestamps())


if __name__ == "__main__":
    main()
