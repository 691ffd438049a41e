"""How time and peak memory grow with the data: each lens at 1×, 2× and 4× a base size (and at paper size).

For every lens and size, the data is written first in its own untimed child process, then one fresh
child process loads it and runs the lens's heavy step, so that its peak resident memory
(``getrusage(RUSAGE_SELF).ru_maxrss``) is that size's alone:

- ``v1t``: ``write_synthetic_sensorium(size=f)`` (2 mice × 200 neurons × 1,000·f trials), then
  ``load_sensorium`` + one epoch of ``training.train`` (the V1T chapter's default core at stride 8, or the
  paper's with ``--v1t-model paper``; float32, on the CPU). The epoch's cost grows with trials × neurons.
- ``factortopy``: ``write_synthetic_subject(size=f)`` (600·f images × 600 vertices per hemisphere), then
  ``load_algonauts_subject`` + the default backbone's features of its images (computed afresh into a
  scratch cache, timed apart) + one epoch of ``train_factortopy`` (every training image once, batch 8).
- ``allen``: ``make_synthetic_cache(n_experiments=15·f, cells_per_experiment=60)``, then
  ``load_responses`` (dask-backed, synchronous) + ``neural_kernels`` of every cell.

Prints ``<lens>_time_<f>x`` (wall s), ``<lens>_cpu_time_<f>x`` (CPU s of the process: what other jobs on a
shared machine disturb least) and ``<lens>_peak_rss_<f>x`` (MiB) per size, their parts
(``<lens>_<part>_time_<f>x``, ``<lens>_<part>_cpu_time_<f>x``), the preparation time, then per lens the log-log
least-squares slopes ``<lens>_time_exponent``, ``<lens>_cpu_time_exponent`` and ``<lens>_memory_exponent``
over the factors, the linear memory fit
(``<lens>_memory_base``, MiB, and ``<lens>_memory_per_unit``, MiB per trial / image / experiment) and,
extrapolated from that fit, the largest size that fits in 24 GiB and in Colab's ~12 GiB
(``<lens>_max_units_24gib``, ``<lens>_max_units_12gib``). ``--paper`` adds the paper-size data of the
V1T and FactorTopy lenses (``size='paper'``: 5 mice × 7,500 neurons × 6,000 trials, ~3 GB on disk;
9,841 images × 20,484 vertices), measured the same way but outside the fits. ``--quick`` runs tiny sizes
in seconds to check the script.

    .venv/bin/python benchmarks/scaling.py [--quick] [--paper] [--lenses v1t,factortopy,allen]
        [--factors 1,2,4] [--v1t-model chapter|paper] [--data DIR]

Pin it to one core (``taskset -c 0``) on a shared machine; the children inherit the pinning.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LENSES = ("v1t", "factortopy", "allen")
#: Units a factor multiplies: per mouse (V1T), per subject (FactorTopy), per cache (Allen).
UNITS = {"v1t": "trials per mouse", "factortopy": "images", "allen": "experiments"}
BASE_UNITS = {"v1t": 1000, "factortopy": 600, "allen": 15}
QUICK_SCALE = 0.1
V1T_MODELS = {
    "chapter": dict(emb_dim=48, n_blocks=2, n_heads=4, head_dim=12, mlp_dim=96, stride=8),
    "paper": dict(emb_dim=155, n_blocks=4, n_heads=4, mlp_dim=488, patch_size=8, stride=8),  # Table A.2
}
GIB = 1024  # MiB


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def timed(times: dict, part: str):
    """Record the wall and the CPU seconds (user + system) of the block as ``<part>_time`` and
    ``<part>_cpu_time``: on a shared machine the CPU time is the figure that other jobs disturb least."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu, wall = usage.ru_utime + usage.ru_stime, time.perf_counter()
    yield
    usage = resource.getrusage(resource.RUSAGE_SELF)
    times[f"{part}_time"] = time.perf_counter() - wall
    times[f"{part}_cpu_time"] = usage.ru_utime + usage.ru_stime - cpu


def data_folder(root: Path, lens: str, label: str) -> Path:
    return root / f"{lens}_{label}"


# --------------------------------------------------------------------------------------------------
# children


def prepare(lens: str, size, folder: Path, quick: bool) -> dict:
    """Write the lens's synthetic data of ``size`` (a factor or 'paper') into ``folder``."""
    start = time.perf_counter()
    if lens == "v1t":
        from neuroalign_utils.v1t.synthetic import write_synthetic_sensorium

        write_synthetic_sensorium(folder, size=size, n_neurons=40 if quick else None)
    elif lens == "factortopy":
        from neuroalign_utils.factortopy.synthetic import write_synthetic_subject

        write_synthetic_subject(folder, size=size, n_vertices_per_hemisphere=100 if quick else None)
    else:
        from neuroalign_utils.allen.synthetic import make_synthetic_cache

        make_synthetic_cache(
            folder,
            n_experiments=max(1, round(BASE_UNITS["allen"] * size)),
            cells_per_experiment=60 if not quick else 10,
            n_repeats=50 if not quick else 8,
        )
    return dict(prepare_time=time.perf_counter() - start, prepare_peak_rss=peak_mib())


def measure(lens: str, folder: Path, v1t_model: str) -> dict:
    """Load the data in ``folder`` and run the lens's heavy step; times of the parts and the peak memory."""
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    # the first optimiser a process builds imports torch._dynamo (about 7 s here): a once-per-process cost that
    # would otherwise sit in the smallest size's epoch and flatten the time exponent; paid before the clock
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
    times = {}
    if lens == "v1t":
        from neuroalign_utils.v1t import loading, models, pipeline, training

        with timed(times, "load"):  # after the imports, in every branch
            data = loading.load_sensorium(folder / "sensorium")
        torch.manual_seed(0)
        config = pipeline.model_config("v1t", True, data, core_options=V1T_MODELS[v1t_model])
        model = models.build_encoder(config, {k: m.coordinates for k, m in data.items()})
        with timed(times, "epoch"):
            training.train(model, data, max_epochs=1, precision="float32", device="cpu", progress=False)
        units = len(next(iter(data.values())).tiers)
        extra = dict(train_trials=int(sum(len(m.tier("train")) for m in data.values())))
    elif lens == "factortopy":
        from neuroalign_utils.factortopy import features, loading, model, pipeline, training

        with timed(times, "load"):
            subject = loading.load_algonauts_subject(next(folder.glob("subj??")))
        spec = features.BackboneSpec()
        images = pipeline.backbone_images(subject, spec)
        with tempfile.TemporaryDirectory(dir=folder) as scratch:  # computed afresh, not read from the writer's
            with timed(times, "features"):
                feats = features.cached_features(spec, images, data_dir=scratch, device="cpu")
            coords = model.hemisphere_separated_coordinates(
                subject.vertices[["x", "y", "z"]].to_numpy(), subject.vertices["hemisphere"]
            )
            n_train = int(0.8 * len(images))
            n_steps = math.ceil(n_train / 8)  # one epoch: every training image once
            with timed(times, "epoch"):
                training.train_factortopy(
                    feats,
                    subject.responses,
                    coords,
                    image_ids=subject.images["nsd_id"].values,
                    n_steps=n_steps,
                    eval_every=n_steps,
                    progress=False,
                    device="cpu",
                )
            del feats
        units = len(images)
        extra = dict(vertices=int(subject.responses.shape[1]))
    else:
        from neuroalign_utils.allen import loading
        from neuroalign_utils.kernels import neural

        with timed(times, "load"):
            cache = loading.open_cache(folder / "brain_observatory" / "manifest.json")
            ids = loading.select_experiments(cache)["experiment_id"].tolist()
            dff = loading.load_responses(cache, ids, scheduler="synchronous", compute=False)
            scenes = loading.load_scene_templates(cache, ids[0])
        with timed(times, "kernels"):
            kernels = neural.neural_kernels(dff, scenes)
        units = len(ids)
        extra = dict(cells=int(kernels.sizes["kernel"]))
    cpu = sum(v for k, v in times.items() if k.endswith("_cpu_time"))
    wall = sum(v for k, v in times.items() if not k.endswith("_cpu_time"))
    return dict(times, time=wall, cpu_time=cpu, peak_rss=peak_mib(), units=units, **extra)


def run_child(*arguments: str) -> dict:
    """Run this script as a child with ``arguments``; its last stdout line is its JSON result."""
    out = subprocess.run(
        [sys.executable, __file__, *arguments], check=True, stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------------
# fits


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x."""
    lx = [math.log(v) for v in x]
    ly = [math.log(v) for v in y]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def linear_fit(x, y) -> tuple[float, float]:
    """Intercept and slope of the least-squares line y = a + b·x."""
    mx, my = sum(x) / len(x), sum(y) / len(y)
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)
    return my - slope * mx, slope


def largest_fitting(intercept: float, slope: float, limit_mib: float) -> float:
    """Units whose extrapolated peak memory reaches ``limit_mib`` (inf when memory does not grow)."""
    return math.inf if slope <= 0 else max(0.0, (limit_mib - intercept) / slope)


def label_of(factor) -> str:
    return "paper" if factor == "paper" else f"{factor:g}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds (checks the script)")
    parser.add_argument("--paper", action="store_true", help="also the paper-size V1T and FactorTopy data")
    parser.add_argument("--lenses", default=",".join(LENSES))
    parser.add_argument("--factors", default="1,2,4")
    parser.add_argument("--v1t-model", choices=sorted(V1T_MODELS), default="chapter")
    parser.add_argument("--data", type=Path, default=None, help="folder for the data (kept; reused when intact)")
    parser.add_argument("--child", choices=("prepare", "measure"), help=argparse.SUPPRESS)
    parser.add_argument("--lens", choices=LENSES, help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        size = args.size if args.size == "paper" else float(args.size)
        if args.child == "prepare":
            result = prepare(args.lens, size, args.folder, args.quick)
        else:
            result = measure(args.lens, args.folder, args.v1t_model)
        print(json.dumps(result))
        return

    lenses = [name.strip() for name in args.lenses.split(",") if name.strip()]
    unknown = sorted(set(lenses) - set(LENSES))
    if unknown:
        parser.error(f"--lenses must be among {list(LENSES)}; got {unknown}")
    if args.quick and args.paper:
        parser.error("--paper writes the full paper-size data; it cannot be combined with --quick")
    factors = [float(f) for f in args.factors.split(",")]
    if len(factors) < 2 or min(factors) <= 0:
        parser.error("--factors needs at least two positive numbers")
    scale = QUICK_SCALE if args.quick else 1.0
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("NEUROALIGN_DATA", str(root / "data_dir"))
        for lens in lenses:
            sizes = [*factors, *(["paper"] if args.paper and lens != "allen" else [])]
            results = {}
            for factor in sizes:
                size = "paper" if factor == "paper" else f"{factor * scale:g}"
                folder = data_folder(root, lens, f"{'quick_' if args.quick else ''}{label_of(factor)}")
                common = ["--lens", lens, "--size", size, "--folder", str(folder), *(["--quick"] if args.quick else [])]
                prepared = run_child("--child", "prepare", *common)
                measured = run_child("--child", "measure", "--v1t-model", args.v1t_model, *common)
                results[factor] = measured
                tag = label_of(factor)
                print(f"{lens}_prepare_time_{tag}: {prepared['prepare_time']:.1f} s", flush=True)
                print(f"{lens}_prepare_peak_rss_{tag}: {prepared['prepare_peak_rss']:.0f} MiB")
                print(f"{lens}_units_{tag}: {measured['units']} {UNITS[lens]}")
                for part in sorted(k for k in measured if k.endswith("_time") and k not in ("time", "cpu_time")):
                    print(f"{lens}_{part}_{tag}: {measured[part]:.2f} s")
                print(f"{lens}_time_{tag}: {measured['time']:.2f} s")
                print(f"{lens}_cpu_time_{tag}: {measured['cpu_time']:.2f} s")
                print(f"{lens}_peak_rss_{tag}: {measured['peak_rss']:.0f} MiB", flush=True)
            units = [results[f]["units"] for f in factors]
            times = [results[f]["time"] for f in factors]
            cpu_times = [results[f]["cpu_time"] for f in factors]
            peaks = [results[f]["peak_rss"] for f in factors]
            intercept, slope = linear_fit(units, peaks)
            print(f"{lens}_time_exponent: {loglog_slope(units, times):.2f} k")
            print(f"{lens}_cpu_time_exponent: {loglog_slope(units, cpu_times):.2f} k")
            print(f"{lens}_memory_exponent: {loglog_slope(units, peaks):.2f} k")
            print(f"{lens}_memory_base: {intercept:.0f} MiB")
            print(f"{lens}_memory_per_unit: {slope:.4f} MiB")
            for limit in (24, 12):  # this machine; Colab's free tier
                fitting = largest_fitting(intercept, slope, limit * GIB)
                print(f"{lens}_max_units_{limit}gib: {fitting:.0f} {UNITS[lens]} (extrapolated: linear memory fit)")


if __name__ == "__main__":
    main()
