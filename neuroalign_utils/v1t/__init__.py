"""V1T: Sensorium-format data, V1T / CNN / linear-nonlinear encoders, training, metrics and analyses.

Modules, each with one job:

- :mod:`~neuroalign_utils.v1t.loading`: the loader of the Sensorium 2022 layout (synthetic or real mice).
- :mod:`~neuroalign_utils.v1t.synthetic`: synthetic mice with planted ground truth, written in that layout.
- :mod:`~neuroalign_utils.v1t.cores`: the core contract (:class:`~neuroalign_utils.v1t.cores.Core`) and the
  V1T, CNN and linear cores: image (+ behaviour) → feature grid ``(B, C, h', w')``.
- :mod:`~neuroalign_utils.v1t.attention`: multi-head self-attention and the dropout it and V1T use.
- :mod:`~neuroalign_utils.v1t.readouts`: feature grid → neurons (Gaussian readout, shifter).
- :mod:`~neuroalign_utils.v1t.models`: composes one core with per-mouse readouts and shifters (:func:`build_encoder`).
- :mod:`~neuroalign_utils.v1t.training`: Poisson loss, AdamW, plateau schedule, checkpoints.
- :mod:`~neuroalign_utils.v1t.metrics`: single-trial correlation, correlation to average, ceilings.
- :mod:`~neuroalign_utils.v1t.pipeline`: what the training chapter runs (data, the loop over models, tables)
  and how the analysis chapter reads a finished run back.
- :mod:`~neuroalign_utils.v1t.figures`: every ``plot_*`` of the lens.
- :mod:`~neuroalign_utils.v1t.analysis`: attention rollout, pupil sweeps, aRFs, kernel export.
- :mod:`~neuroalign_utils.v1t.findings`: the chapters' result sentences, worded from the numbers.
- :mod:`~neuroalign_utils.v1t.results`: the chapters' headline results and their files.
"""
