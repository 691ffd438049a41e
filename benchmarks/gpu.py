"""Training steps on the accelerator: samples per second, peak device memory, speed-up over the CPU.

Cases (issue #16):

- ``v1t_stride8`` and ``v1t_stride1``: the paper's V1T (Table A.2: 4 blocks, 4 heads of 155, MLP 488,
  patch 8) at stride 8 (33 tokens) and at the paper's stride 1 (1,654 tokens); the step of
  ``training.train`` on the workload of ``benchmarks/v1t_train.py``: batch 16 from each of 2 mice ×
  1,000 neurons, 36×64 images, behaviour on, one AdamW step per round (32 samples). Each device uses
  the precision ``precision='auto'`` picks there (``training.resolve_precision``: bfloat16 mixed
  precision on a CUDA GPU that has it, else float16 with loss scaling; on the CPU float32 unless it has
  native bfloat16), with the same autocast and gradient scaler as ``train``.
- ``factortopy``: FactorTopy at 37,984 vertices, batch 8, 12 layers × 768 channels, 8×8 tokens,
  bottleneck 128 (the setting of ``benchmarks/factortopy_step.py``); the step of ``train_factortopy``
  while its entropy term decays, float32, features held in float16 on the device as ``resident`` does.

Every input is on the device before the clock starts. Each case runs one untimed warm-up step (cuDNN
autotuning, the allocator), then ``--steps`` steps on the accelerator, synchronised, and the same step
on the CPU (``--cpu-steps``; one at stride 1), in this process. Peak memory is
``torch.cuda.max_memory_allocated`` over the case on CUDA, the driver's allocation after the steps on
MPS, and the process's peak resident memory on the CPU.

    .venv/bin/python benchmarks/gpu.py                 # on a machine with a CUDA GPU or Apple MPS
    .venv/bin/python benchmarks/gpu.py --device cpu --quick   # check the script itself on a CPU

Without an accelerator (and without ``--device cpu``) it says so and exits with status 0.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from neuroalign_utils import devices

PAPER_V1T = dict(emb_dim=155, n_blocks=4, n_heads=4, mlp_dim=488, patch_size=8)  # Table A.2 (head width = emb)
CASES = {
    "v1t_stride8": dict(kind="v1t", core=dict(PAPER_V1T, stride=8), n_neurons=1000),
    "v1t_stride1": dict(kind="v1t", core=dict(PAPER_V1T, stride=1), n_neurons=1000),
    "factortopy": dict(kind="factortopy", n_vertices=37_984, n_layers=12, channels=768),
}
#: ``--quick``: the same code on sizes that take seconds on two CPU cores.
QUICK = {
    "v1t_stride8": dict(kind="v1t", core=dict(emb_dim=16, n_blocks=1, n_heads=2, mlp_dim=16, stride=8), n_neurons=50),
    "v1t_stride1": dict(kind="v1t", core=dict(emb_dim=8, n_blocks=1, n_heads=1, mlp_dim=8, stride=4), n_neurons=50),
    "factortopy": dict(kind="factortopy", n_vertices=600, n_layers=2, channels=32),
}
V1T_BATCH, V1T_MICE, FACTORTOPY_BATCH = 16, 2, 8


def v1t_step(case: dict, device: torch.device):
    """The training step of ``training.train`` for the case on ``device``: (step, samples per step, precision)."""
    from neuroalign_utils.v1t.models import build_encoder
    from neuroalign_utils.v1t.training import make_optimizer, poisson_loss, resolve_precision, retain_freed_memory

    mice = {f"mouse_{i}": case["n_neurons"] for i in range(V1T_MICE)}
    rng = np.random.default_rng(0)
    coords = {m: rng.uniform(-300, 300, (n, 3)) for m, n in mice.items()}
    torch.manual_seed(0)
    model = build_encoder(
        dict(
            core="v1t",
            core_options=case["core"],
            readout_options={},
            use_behaviour=True,
            image_size=(36, 64),
            mice=mice,
        ),
        coords,
    ).to(device)
    precision = resolve_precision("auto", model.core, device)
    optimizer = make_optimizer(model)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "float16")
    if device.type == "cpu":
        retain_freed_memory()  # as train does
    generator = torch.Generator().manual_seed(0)
    batches = {
        m: tuple(
            t.to(device)
            for t in (
                torch.randn(V1T_BATCH, 1, 36, 64, generator=generator),
                torch.randn(V1T_BATCH, 3, generator=generator),
                torch.randn(V1T_BATCH, 2, generator=generator),
                torch.rand(V1T_BATCH, n, generator=generator),
            )
        )
        for m, n in mice.items()
    }

    def step():
        optimizer.zero_grad(set_to_none=True)
        for mouse, (images, behaviour, pupil, responses) in batches.items():
            with torch.autocast(device.type, dtype=getattr(torch, precision), enabled=precision != "float32"):
                output = model(images, mouse, behaviour, pupil)
            loss = poisson_loss(responses, output) + model.regularizer(mouse)
            scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step, V1T_BATCH * V1T_MICE, precision


def factortopy_step(case: dict, device: torch.device):
    """The training step of ``train_factortopy`` (entropy term on) on ``device``: (step, samples, precision)."""
    from neuroalign_utils.factortopy.model import FactorTopy, entropy_regulariser

    grid, bottleneck = 8, 128
    generator = torch.Generator().manual_seed(0)
    local = torch.randn(FACTORTOPY_BATCH, case["n_layers"], case["channels"], grid, grid, generator=generator)
    global_ = torch.randn(FACTORTOPY_BATCH, case["n_layers"], case["channels"], generator=generator)
    target = torch.randn(FACTORTOPY_BATCH, case["n_vertices"], generator=generator).to(device)
    local, global_ = local.half().to(device), global_.half().to(device)  # float16, as cached
    coords = np.random.default_rng(0).standard_normal((case["n_vertices"], 3))
    model = FactorTopy(coords, case["n_layers"], case["channels"], grid=grid, bottleneck=bottleneck, seed=0).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-2)

    def step():
        pred = model(local.float(), global_.float())
        sel = model.selectors()
        loss = F.smooth_l1_loss(pred, target, beta=0.1) + 0.1 * 0.5 * (
            entropy_regulariser(sel["layer"]) + ((sel["scale"] - 0.5) ** 2).mean()
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return step, FACTORTOPY_BATCH, "float32"


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure(case: dict, device: torch.device, steps: int) -> dict:
    """Samples per second over ``steps`` timed steps after one warm-up, and the peak memory (GiB)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    step, samples, precision = (v1t_step if case["kind"] == "v1t" else factortopy_step)(case, device)
    step()  # warm-up
    _synchronise(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronise(device)
    seconds = (time.perf_counter() - start) / steps
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
    elif device.type == "mps":
        peak = torch.mps.driver_allocated_memory() / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    del step
    gc.collect()
    return dict(samples_per_second=samples / seconds, peak_gib=peak, precision=precision)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA, then MPS), cuda, cuda:N, mps, or cpu to check the script"
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps on the device (default 10)")
    parser.add_argument("--cpu-steps", type=int, default=2, help="timed steps on the CPU (default 2; 1 at stride 1)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds on a CPU)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown or args.steps < 1 or args.cpu_steps < 1:
        parser.error(
            f"'--cases' must name cases from {list(CASES)} (got {unknown}); '--steps' and '--cpu-steps' must be ≥ 1"
        )
    try:
        device = devices.resolve_device(args.device, name="--device")
    except ValueError as err:
        print(f"gpu.py: {err}", file=sys.stderr)
        return 2
    if device.type == "cpu" and str(args.device).strip().lower() != "cpu":
        print(
            "gpu.py: no accelerator on this machine (torch.cuda.is_available() and torch.backends.mps.is_available() "
            "are False), so there is nothing to time. Run it where a CUDA GPU or Apple MPS is present, or pass "
            "'--device cpu --quick' to check the script itself.",
            file=sys.stderr,
        )
        return 0
    print(
        f"gpu.py: timing on {devices.describe_device(device)}; CPU reference with {torch.get_num_threads()} threads",
        file=sys.stderr,
    )
    sizes = QUICK if args.quick else CASES
    cpu = torch.device("cpu")
    for name in cases:
        case = sizes[name]
        on_device = measure(case, device, args.steps)
        on_cpu = measure(case, cpu, 1 if name == "v1t_stride1" else args.cpu_steps)
        print(f"{name}_device_samples_per_second: {on_device['samples_per_second']:.1f} samples/s")
        print(f"{name}_device_peak_memory: {on_device['peak_gib']:.2f} GiB")
        print(f"{name}_device_bfloat16: {int(on_device['precision'] == 'bfloat16')} bool")
        print(f"{name}_device_float16: {int(on_device['precision'] == 'float16')} bool")
        print(f"{name}_cpu_samples_per_second: {on_cpu['samples_per_second']:.2f} samples/s")
        print(f"{name}_speedup_vs_cpu: {on_device['samples_per_second'] / on_cpu['samples_per_second']:.1f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
