"""FactorTopy (Yang, Gee & Shi 2024): which layer, where and at what scale each vertex reads.

Modules, each with one job:

- :mod:`~neuroalign_utils.factortopy.loading`: reads an NSD subject, in the Algonauts 2023 layout (real
  or synthetic) or as raw NSD betas, into an ``NSDSubject``.
- :mod:`~neuroalign_utils.factortopy.synthetic`: writes the planted default subject in the Algonauts
  2023 layout, with its ground truth beside it.
- :mod:`~neuroalign_utils.factortopy.features`: backbones and their per-layer local and global tokens,
  cached on disk; cross-layer predictability.
- :mod:`~neuroalign_utils.factortopy.model`: the FactorTopy encoding model (space, layer and scale
  selectors, vertex-wise read-out).
- :mod:`~neuroalign_utils.factortopy.training`: image split, loss, AdamW and early stopping.
- :mod:`~neuroalign_utils.factortopy.analysis`: selector tables, hierarchy slope, channel clusters,
  layer distinctness, and the chapter's result sentences, worded from the numbers.
- :mod:`~neuroalign_utils.factortopy.maps`: fsaverage5 meshes and per-vertex colours of the surface maps.
- :mod:`~neuroalign_utils.factortopy.figures`: every figure of the lens (``plot_*``: ``axes=`` in, Figure out).
- :mod:`~neuroalign_utils.factortopy.results`: the chapter's headline and tables, typed, saved and loaded.
- :mod:`~neuroalign_utils.factortopy.pipeline`: the lens's top module, what the chapter calls: subject →
  features → trained model → per-vertex tables, for one backbone or several.
"""
