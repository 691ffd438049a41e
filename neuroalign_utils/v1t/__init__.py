"""V1T: Sensorium-format data, V1T / CNN / linear-nonlinear encoders, training and metrics.

Modules, each with one job:

- :mod:`~neuroalign_utils.v1t.sensorium`: synthetic mice written in the Sensorium 2022 layout, and the
  loader that reads that layout (synthetic or real).
- :mod:`~neuroalign_utils.v1t.cores`: image (+ behaviour) → feature grid ``(B, C, h', w')``.
- :mod:`~neuroalign_utils.v1t.readouts`: feature grid → neurons (Gaussian readout, shifter).
- :mod:`~neuroalign_utils.v1t.models`: composes one core with per-mouse readouts and shifters.
- :mod:`~neuroalign_utils.v1t.training`: Poisson loss, AdamW, plateau schedule, checkpoints.
- :mod:`~neuroalign_utils.v1t.metrics`: single-trial correlation, correlation to average, ceilings.
- :mod:`~neuroalign_utils.v1t.experiment`: the training chapter's loop over models, its tables and figures.
- :mod:`~neuroalign_utils.v1t.analysis`: attention rollout, pupil sweeps, aRFs, kernel export.
- :mod:`~neuroalign_utils.v1t.findings`: the chapters' result sentences, worded from the numbers.
"""
