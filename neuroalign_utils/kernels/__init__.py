"""Kernel-alignment lens (chapters 02–04): neural and artificial kernels, their selection and similarity.

Modules
-------
neural
    Neural kernels from Allen responses (spike-triggered averages over scenes), the balanced selection,
    planted receptive-field recovery and their sentences.
artificial
    Artificial kernels of zoo models: weight kernels and attention maps in the shared kernel format.
selection
    Representative kernels by UMAP + K-means (:class:`~.selection.SelectionSettings`), and their diversity.
similarity
    The similarity engine: all-pairs 1 − RMSE and Pearson r, aggregation with bootstrap intervals,
    phase-randomised nulls and permutation tests.
trained_random
    Trained models against their random twins: filter spectra and attention spread.
pipeline
    The alignment computation chapter 04 runs (:func:`~.pipeline.alignment_summary`).
analysis
    Verdicts, model tables and the sentences chosen from the alignment numbers.
figures
    Every ``plot_*`` of the lens.
"""
