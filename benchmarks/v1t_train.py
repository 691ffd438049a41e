"""Training cost of V1T and the CNN: time per training sample and peak memory.

Workload (the issue's): batch 16 from each of 2 mice × 1,000 neurons, 36×64 images, behaviour on,
one AdamW step per round (both mice's gradients accumulated). Each case runs in its own subprocess so
its peak resident memory (``ru_maxrss``) is its own. Also: the same V1T trained through
``scaled_dot_product_attention`` vs the explicit softmax(QKᵀ)V path, in one run.

    .venv/bin/python benchmarks/v1t_train.py            # all cases (stride 1 takes minutes)
    .venv/bin/python benchmarks/v1t_train.py --quick    # fewer steps, no stride-1 case
    .venv/bin/python benchmarks/v1t_train.py --stride-sweep  # choose the default stride (minutes)

``--stride-sweep`` trains the chapter's default V1T on the chapter's default synthetic mice (2 × 100
neurons, 800 trials) for the chapter's 8 epochs at strides 8, 4 and 2 and prints the best validation
correlation and the wall time per epoch of each.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

PAPER = dict(emb_dim=155, n_blocks=4, n_heads=4, mlp_dim=488, patch_size=8)  # Table A.2 (head width = emb)
CASES = {
    "v1t_stride8": ("v1t", dict(PAPER, stride=8)),
    "v1t_stride4": ("v1t", dict(PAPER, stride=4)),
    "v1t_stride1": ("v1t", dict(PAPER, stride=1)),
    "v1t_chapter_default": ("v1t", dict(emb_dim=48, n_blocks=2, n_heads=4, head_dim=12, mlp_dim=96, stride=8)),
    "cnn": ("cnn", dict(channels=64, n_layers=4)),
}


def run_case(name: str, steps: int, explicit_attention: bool) -> dict:
    import numpy as np
    import torch

    from neuroalign_utils.v1t.models import build_model
    from neuroalign_utils.v1t.training import poisson_loss

    core, options = CASES[name]
    mice = {"mouse_a": 1000, "mouse_b": 1000}
    rng = np.random.default_rng(0)
    coords = {m: rng.uniform(-300, 300, (n, 3)) for m, n in mice.items()}
    torch.manual_seed(0)
    model = build_model(dict(core=core, core_options=options, readout_options={}, use_behaviour=True,
                             image_size=(36, 64), mice=mice), coords)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = {m: (torch.randn(16, 1, 36, 64), torch.randn(16, 3), torch.randn(16, 2), torch.rand(16, n)) for m, n in mice.items()}

    def forward(mouse, images, behaviour, pupil):
        if not explicit_attention:
            return model(images, mouse, behaviour, pupil)
        grid, _ = model.core(images, model.core_inputs(behaviour, pupil), return_attention=True)
        shift = model.shifters[mouse](pupil)
        return torch.nn.functional.elu(model.readouts[mouse](grid, shift)) + 1

    def step():
        optimizer.zero_grad(set_to_none=True)
        for mouse, (images, behaviour, pupil, responses) in batch.items():
            loss = poisson_loss(responses, forward(mouse, images, behaviour, pupil)) + model.regularizer(mouse)
            loss.backward()
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps / (16 * len(mice))
    return dict(seconds_per_sample=seconds, peak_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)


def measure(name: str, steps: int, explicit: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--case", name, "--steps", str(steps)] + (["--explicit"] if explicit else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def stride_sweep(strides=(8, 4, 2), max_epochs: int = 8) -> None:
    import torch

    from neuroalign_utils.v1t import experiment, sensorium, training
    from neuroalign_utils.v1t.models import build_model

    data = sensorium.load_sensorium(sensorium.write_synthetic_sensorium(mice=("A", "B"), n_neurons=100, n_trials=800))
    _, options = CASES["v1t_chapter_default"]
    for stride in strides:
        torch.manual_seed(0)
        config = experiment.model_config("v1t", True, data, dict(options, stride=stride, attention_dropout=0.1, mlp_dropout=0.1))
        model = build_model(config, {k: m.coordinates for k, m in data.items()})
        start = time.perf_counter()
        history = training.train(model, data, max_epochs=max_epochs, patience=3, progress=False)
        seconds = (time.perf_counter() - start) / len(history)
        print(f"v1t_stride{stride}_best_validation_correlation: {history['validation_correlation'].max():.3f} corr")
        print(f"v1t_stride{stride}_time_per_epoch: {seconds:.1f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps; skip the stride-1 case")
    parser.add_argument("--stride-sweep", action="store_true", help="train the chapter V1T at strides 8, 4, 2")
    parser.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=5, help=argparse.SUPPRESS)
    parser.add_argument("--explicit", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.steps, args.explicit)))
        return

    if args.stride_sweep:
        stride_sweep()
        return
    import torch

    print(f"threads: {torch.get_num_threads()} threads")
    steps = 2 if args.quick else 5
    names = [n for n in CASES if not (args.quick and n == "v1t_stride1")]
    results = {}
    for name in names:
        results[name] = measure(name, 1 if name == "v1t_stride1" else steps)
        print(f"{name}_time_per_sample: {1000 * results[name]['seconds_per_sample']:.2f} ms")
        print(f"{name}_peak_memory: {results[name]['peak_gib']:.2f} GiB")
    for name in ("v1t_stride8", "v1t_stride4"):
        explicit = measure(name, steps, explicit=True)
        print(f"{name}_explicit_attention_time_per_sample: {1000 * explicit['seconds_per_sample']:.2f} ms")
        print(f"{name}_explicit_attention_peak_memory: {explicit['peak_gib']:.2f} GiB")
        print(f"{name}_sdpa_speedup_vs_explicit: {explicit['seconds_per_sample'] / results[name]['seconds_per_sample']:.2f} x")
    reference = {"v1t_stride8": (6.8e-3, 1.13), "v1t_stride1": (1.46, 11.6), "cnn": (12.7e-3, None)}
    for name, (ref_time, ref_mem) in reference.items():
        if name in results:
            print(f"{name}_speedup_vs_reference_anchor: {ref_time / results[name]['seconds_per_sample']:.2f} x")
            if ref_mem:
                print(f"{name}_peak_memory_ratio_vs_reference_anchor: {results[name]['peak_gib'] / ref_mem:.2f} x")


if __name__ == "__main__":
    main()
