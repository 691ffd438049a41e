"""Benchmark the all-pairs 1 − RMSE engine (neuroalign_utils.kernels.similarity).

Default: 1,000 neural × 100,000 artificial kernels of 32×32. Prints, one figure per line:
achieved GFLOP/s of the engine (block products + conversion to 1 − RMSE + a per-neural-kernel
max/mean reduction, never holding the 10⁸-pair table), the ratio to a bare ``torch.matmul`` of the
same shapes on the same device in the same run, the speed-up over a per-pair NumPy loop timed on a
subset, and the peak resident memory of the process after each stage.

    .venv/bin/python benchmarks/similarity.py                  # full size, on the CPU
    .venv/bin/python benchmarks/similarity.py --quick          # 200 × 5,000, seconds
    .venv/bin/python benchmarks/similarity.py --device auto    # on a CUDA GPU where there is one
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from neuroalign_utils import devices
from neuroalign_utils.kernels.similarity import (
    iter_similarity_blocks,
    one_minus_rmse_from_r,
    prepare_kernels,
)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def engine_reduce(neural, artificial, chunk_size, dtype, device):
    """Best and mean 1 − RMSE per neural kernel over all artificial kernels, block by block."""
    best = np.full(neural.shape[0], -np.inf)
    total = np.zeros(neural.shape[0])
    for _, r in iter_similarity_blocks(neural, artificial, chunk_size=chunk_size, dtype=dtype, device=device):
        score = one_minus_rmse_from_r(r)
        np.maximum(best, score.max(axis=1), out=best)
        total += score.sum(axis=1)
    return best, total / artificial.shape[0]


def per_pair_loop(neural, artificial):
    out = np.empty((neural.shape[0], artificial.shape[0]))
    for i, a in enumerate(neural):
        for j, b in enumerate(artificial):
            out[i, j] = 1.0 - np.sqrt(np.mean((a - b) ** 2))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-neural", type=int, default=1000)
    parser.add_argument("--n-artificial", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--chunk-size", type=int, default=8192)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--loop-neural", type=int, default=20, help="neural kernels in the per-pair loop subset")
    parser.add_argument("--loop-artificial", type=int, default=500, help="artificial kernels in the loop subset")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (best kept)")
    parser.add_argument("--quick", action="store_true", help="200 × 5,000 kernels, one repeat")
    parser.add_argument(
        "--device", default="cpu", help="where the products run: cpu (default), auto, cuda, cuda:N, mps"
    )
    args = parser.parse_args()
    try:
        device = devices.resolve_device(args.device, name="--device")
    except ValueError as error:
        parser.error(str(error))
    if args.quick:
        args.n_neural, args.n_artificial, args.repeats = 200, 5000, 1

    rng = np.random.default_rng(0)
    shape = (args.size, args.size)
    start = time.perf_counter()
    neural = _prepared_random_kernels(rng, args.n_neural, shape, args.dtype)
    artificial = _prepared_random_kernels(rng, args.n_artificial, shape, args.dtype)
    prepare_s = time.perf_counter() - start
    print(f"threads: {torch.get_num_threads()} torch threads")
    print(f"device: {devices.describe_device(device)}")
    print(f"prepare (z-score, flatten) {args.n_neural + args.n_artificial} kernels: {prepare_s:.2f} s")
    print(f"peak memory after inputs: {peak_rss_mib():.0f} MiB")

    flops = 2.0 * args.n_neural * args.n_artificial * args.size**2
    engine_s = min(
        _timed(lambda: engine_reduce(neural, artificial, args.chunk_size, args.dtype, device))
        for _ in range(args.repeats)
    )
    print(
        f"engine all-pairs 1-RMSE ({args.n_neural} x {args.n_artificial}, {args.size}x{args.size}, {args.dtype}): "
        f"{engine_s:.2f} s"
    )
    print(f"engine throughput: {flops / engine_s / 1e9:.1f} GFLOP/s")
    print(f"peak memory after engine: {peak_rss_mib():.0f} MiB")

    neural_t = torch.from_numpy(neural).to(device)
    artificial_t = torch.from_numpy(artificial).to(device)
    matmul_s = min(
        _timed(lambda: _synchronised(torch.matmul(neural_t, artificial_t.T), device)) for _ in range(args.repeats)
    )
    print(f"bare torch.matmul same shapes: {matmul_s:.2f} s")
    print(f"bare torch.matmul throughput: {flops / matmul_s / 1e9:.1f} GFLOP/s")
    print(f"engine / bare matmul throughput ratio: {matmul_s / engine_s:.2f} x")
    print(f"peak memory after bare matmul (holds the full output): {peak_rss_mib():.0f} MiB")

    sub_n, sub_a = neural[: args.loop_neural].astype(np.float64), artificial[: args.loop_artificial].astype(np.float64)
    loop_s = _timed(lambda: per_pair_loop(sub_n, sub_a))
    per_pair_s = loop_s / (sub_n.shape[0] * sub_a.shape[0])
    print(f"per-pair NumPy loop: {per_pair_s * 1e6:.2f} us/pair (on {sub_n.shape[0] * sub_a.shape[0]} pairs)")
    print(f"engine speed-up over per-pair loop: {per_pair_s * args.n_neural * args.n_artificial / engine_s:.0f} x")


def _prepared_random_kernels(rng, n, shape, dtype, batch=10_000):
    """Random kernels z-scored by the engine's own preparation, in batches to bound memory."""
    out = np.empty((n, shape[0] * shape[1]), dtype=dtype)
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        out[start:stop] = prepare_kernels(rng.standard_normal((stop - start, *shape)), shape)[0]
    return out


def _synchronised(tensor, device):
    """``tensor`` once the device has finished computing it (GPU kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
    return tensor


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
