"""Seconds per FactorTopy training step, peak memory and cached feature bytes per image.

Setting of the issue: batch 8, 12 layers, C = 768, 8×8 tokens, D = 128, at 2,400 and 37,984 vertices.
The baseline, run in the same process, is Listing 1 written directly: every layer's tokens sampled with
``grid_sample`` into a (B, N, D, L) tensor, then mixed and summed. Peak memory is the growth of the
process's maximum resident set size over the warm-up and measured steps (``resource.getrusage``); sizes
run smallest first, and ``--only`` runs one implementation per process for a clean figure.

    .venv/bin/python benchmarks/factortopy_step.py            # both sizes, both implementations
    .venv/bin/python benchmarks/factortopy_step.py --quick    # small sizes, seconds
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F

from neuroalign_utils.factortopy.model import FactorTopy


def dense_listing_1(model: FactorTopy, local, global_):
    """Listing 1 as written: v_local (B, N, D, L) by grid_sample per layer."""
    sel = model.selectors()
    b = len(local)
    tokens = torch.einsum("blchw,lcd->bldhw", local, model.local_bottleneck)
    glob = torch.einsum("blc,lcd->bld", global_, model.global_bottleneck)
    grid = sel["space"][None, None].expand(b, -1, -1, -1)
    v_local = torch.stack(
        [
            F.grid_sample(tokens[:, layer], grid, align_corners=False)[:, :, 0].transpose(1, 2)
            for layer in range(model.n_layers)
        ],
        -1,
    )
    s = sel["scale"][None, :, None, None]
    v = (v_local * (1 - s) + glob.transpose(1, 2)[:, None] * s) * sel["layer"][None, :, None, :]
    return (v.sum(-1) * model.readout_weight).mean(-1) + model.readout_bias


def time_steps(forward, model, local, global_, target, n_steps):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)

    def step():
        loss = F.smooth_l1_loss(forward(model, local, global_), target, beta=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()  # warm-up (counted in the peak, not in the time)
    start = time.perf_counter()
    for _ in range(n_steps):
        step()
    seconds = (time.perf_counter() - start) / n_steps
    peak_gb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1e6
    return seconds, peak_gb


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small vertex counts and 2 steps")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--only", choices=("factortopy", "listing1"), default=None)
    args = parser.parse_args()
    batch, n_layers, channels, grid, bottleneck = 8, 12, 768, 8, 128
    sizes = (600, 2_400) if args.quick else (2_400, 37_984)
    n_steps = 2 if args.quick else args.steps
    gen = torch.Generator().manual_seed(0)
    local = torch.randn(batch, n_layers, channels, grid, grid, generator=gen)
    global_ = torch.randn(batch, n_layers, channels, generator=gen)
    impls = {"factortopy": lambda m, loc, glo: m(loc, glo), "listing1": dense_listing_1}
    if args.only:
        impls = {args.only: impls[args.only]}
    for n in sizes:
        coords = np.random.default_rng(0).standard_normal((n, 3))
        target = torch.randn(batch, n, generator=gen)
        seconds = {}
        for name, forward in impls.items():
            model = FactorTopy(coords, n_layers, channels, grid=grid, bottleneck=bottleneck, seed=0)
            seconds[name], peak = time_steps(forward, model, local, global_, target, n_steps)
            print(f"{name}_seconds_per_step_{n}_vertices: {seconds[name]:.3f} s")
            print(f"{name}_peak_memory_growth_{n}_vertices: {peak:.2f} GB")
        if len(seconds) == 2:
            print(f"speedup_over_listing1_{n}_vertices: {seconds['listing1'] / seconds['factortopy']:.1f} x")
    cached = n_layers * (grid * grid + 1) * channels * np.dtype(np.float16).itemsize
    print(f"cached_feature_bytes_per_image: {cached / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
