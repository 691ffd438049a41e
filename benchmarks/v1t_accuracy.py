"""How much V1T and the CNN learn: best validation single-trial correlation after 30 epochs.

Accuracy parity with the authors' code (bryanlimy/V1T), measured on one dataset that both can read.
The dataset is written by our own Sensorium writer (``write_synthetic_sensorium``) in the release's
layout: mice A and B, 1,000 neurons each, 900 training / 100 validation / 200 test trials (20 test
images × 10 repeats), 1×144×256 images of white noise drawn at 36×64 and enlarged 4× (so the
authors' bilinear resize and our area average give the model the same 36×64 image), V1-like
planted units (see ``neuroalign_utils.v1t.synthetic``), seed 0. Both models train at the paper's settings: batch 16,
one AdamW step per round of one batch from each mouse, behaviour on, the plateau schedule, 30 epochs.

- V1T: the paper's architecture (embedding 155, 4 blocks, 4 heads, MLP 488, patch 8) at stride 8,
  B-MLP with behaviour and pupil centre, learning rate 0.0016;
- CNN: the Sensorium 2022 baseline (64 channels, 4 layers, 9×9 input kernel without padding, 7×7
  depth-separable hidden layers), behaviour as channels, learning rate 0.009 (the baseline's).

Each prints ``<model>_val_corr: r corr`` (the best validation correlation of the run, averaged over
neurons then mice, as both codes compute it) and ``<model>_time_per_epoch: s s``.

Reference: the authors' ``train.py`` at commit 6599bf6 on the same folder, the same mice and the
same settings (``--batch_size 16 --epochs 30 --seed 1234``; V1T ``--core vit --behavior_mode 3
--patch_stride 8 --lr 0.0016``; CNN ``--core stacked2d --behavior_mode 1 --lr 0.009``; ``--readout
gaussian2d``, default shifter), one thread each, measured 2026-12-03 (validation correlation per epoch;
both codes peak early on this data and recover after each learning-rate cut):

- authors' V1T: 0.1918 at epoch 1, falling to 0.135 by epoch 11, 0.1935 after the first cut (epoch
  14) and 0.1917 after the second (epoch 26): best **0.1935** in 30 epochs;
- authors' CNN: 0.1901 at epoch 1, best **0.2025** at epoch 10, 0.179–0.200 after that (30 epochs, no
  learning-rate cut).

Ours on the same data (``seed 0``):

- V1T before (position embedding and class token ~ truncated N(0, 0.02²), patch embedding ~ truncated
  N(0, 1/64), bias 0; float32): 0.1767 at epoch 1, best **0.1803** in 30 epochs; with only the position
  embedding and class token ~ N(0, 1): 0.1830 at epoch 1, best 0.1834;
- V1T now (positions N(0, 1), patch embedding and its bias U(±1/8), as the authors' code; this script,
  bfloat16 products by ``precision='auto'``): 0.1940 at epoch 1, best **0.1942** in 30 epochs. One epoch
  in float32, seeds 0 / 1: before 0.1767 / 0.1867, positions only 0.1830 / 0.1861; seed 0 both 0.1926;
- CNN before (PyTorch's default initialisation, uniform ±1/√fan-in): 0.0046 after one epoch and 0.0815
  after two, where the authors' reaches 0.19. BatchNorm momentum 0.9 (theirs) instead of 0.1 changed
  nothing (0.0021 / 0.0815); the Laplace penalty unscaled by ``core_penalty_scale`` helped half-way
  (0.0031 / 0.1773). With every convolution Glorot-normal, as their code: 0.1923 / 0.1972 in a one-off
  script, and through this script 0.1795 at epoch 1, best 0.1998 over the first 19 epochs (stopped
  there). But Glorot counts every group of a depthwise convolution in its fan-out (std 0.025 for
  64 channels of 7×7, against 0.082 for PyTorch's default), and on the learning test's mice (80
  neurons, 700 trials, 8 epochs, learning rate 0.0016; seeds 0 / 1) all-Glorot reached 0.34 / 0.50 of
  the planted ceiling against 0.42 / 0.46 before; Glorot only on the input convolution 0.36 / 0.46,
  only on the hidden ones 0.41 / 0.47, and on all but the depthwise ones **0.49 / 0.54**;
- CNN now (input and 1×1 convolutions Glorot-normal, depthwise ones PyTorch's default; this script):
  0.1936 at epoch 1, best **0.2027** at epoch 9, 0.200 after the learning-rate cut at epoch 20 (30
  epochs). At the V1T training chapter's size (2 × 100 neurons, 16 channels, 8 epochs, learning rate
  0.0016, seeds 0–2) it reaches 0.549 / 0.505 / 0.546 of the planted ceiling, against 0.488 / 0.484 /
  0.517 before.
- CNN input padding, on the learning test's mice (``tests/test_v1t_learning.py``, 8 epochs), seeds 0–2:
  the baseline's unpadded input convolution (``pad_input=False``) reached single-trial correlation
  0.30 / 0.28 / 0.30 with aRFs at chance; 'same' padding 0.45 / 0.47 / 0.43 with aRFs 4–5 px from the
  planted centres; dense hidden layers (``depth_separable=False``) 0.40 / 0.45 / 0.27.

Speed after these changes, one epoch each in interleaved pairs (ours with this script's ``--epochs 1``,
theirs with ``--epochs 1``; 2 threads each, same folder, on a machine busy with other jobs, 2026-12-03):
V1T 17.0 / 19.5 s against their 43.6 / 40.5 s (2.1–2.6× faster, bfloat16 by ``precision='auto'``),
CNN 51.0 / 54.2 s against 58.7 / 64.6 s (1.15–1.19×): initialisation costs nothing per step.

    .venv/bin/python benchmarks/v1t_accuracy.py            # both models, 30 epochs (an hour on 2 cores)
    .venv/bin/python benchmarks/v1t_accuracy.py --quick    # 2 epochs, to check the script works
    .venv/bin/python benchmarks/v1t_accuracy.py --models v1t --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

#: The dataset of the comparison (arguments of ``write_synthetic_sensorium``).
DATASET = dict(
    mice=("A", "B"),
    n_neurons=1000,
    n_trials=1200,
    n_test_images=20,
    n_repeats=10,
    validation_fraction=0.1,
    images="noise",
    seed=0,
)
#: Model settings: (core options, learning rate).
MODELS = {
    "v1t": (dict(emb_dim=155, n_blocks=4, n_heads=4, mlp_dim=488, patch_size=8, stride=8), 0.0016),
    "cnn": (dict(channels=64, n_layers=4, pad_input=False), 0.009),
}
#: The authors' code on this dataset, seed 1234: best validation correlation in 30 epochs (see the docstring).
REFERENCE = {"v1t": 0.1935, "cnn": 0.2025}


def train_once(data: dict, model_name: str, seed: int, epochs: int) -> tuple[float, float]:
    """Best validation correlation and seconds per epoch of one run (each epoch's on stderr)."""
    import sys

    import torch

    from neuroalign_utils.v1t import pipeline, training
    from neuroalign_utils.v1t.models import build_encoder

    options, learning_rate = MODELS[model_name]
    torch.manual_seed(seed)
    model = build_encoder(
        pipeline.model_config(model_name, True, data, options), {k: m.coordinates for k, m in data.items()}
    )
    start = time.perf_counter()

    def report(epoch, record):
        print(
            f"{model_name} seed {seed} epoch {epoch}: validation correlation {record['validation_correlation']:.4f}, "
            f"learning rate {record['learning_rate']:.2g}",
            file=sys.stderr,
            flush=True,
        )

    history = training.train(
        model, data, learning_rate=learning_rate, max_epochs=epochs, seed=seed, progress=False, callback=report
    )
    return float(history["validation_correlation"].max()), (time.perf_counter() - start) / len(history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 epochs, to check that the script works")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--models", default="v1t,cnn", help="comma-separated: v1t, cnn")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (initialisation, trial order, dropout)")
    parser.add_argument("--data", help="folder for the dataset (default: a temporary folder)")
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"--models: unknown {unknown}; accepted: {', '.join(MODELS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    epochs = 2 if args.quick else args.epochs

    from neuroalign_utils.v1t import loading, synthetic

    with tempfile.TemporaryDirectory() as tmp:
        root = synthetic.write_synthetic_sensorium(Path(args.data or tmp), **DATASET)
        data = loading.load_sensorium(root, list(DATASET["mice"]))
        for name in models:
            runs = [train_once(data, name, seed, epochs) for seed in seeds]
            for seed, (best, seconds) in zip(seeds, runs):
                suffix = f"_seed{seed}" if len(seeds) > 1 else ""
                print(f"{name}{suffix}_val_corr: {best:.4f} corr")
                print(f"{name}{suffix}_time_per_epoch: {seconds:.1f} s")
            if len(seeds) > 1:
                print(f"{name}_mean_val_corr: {statistics.mean(b for b, _ in runs):.4f} corr")
            if name in REFERENCE and epochs == 30:  # the authors' numbers are best-in-30-epochs
                print(f"{name}_minus_reference: {statistics.mean(b for b, _ in runs) - REFERENCE[name]:+.4f} corr")


if __name__ == "__main__":
    main()
