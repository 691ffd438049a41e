"""Allen Brain Observatory (Visual Coding 2P, natural scenes): the data of the kernel-alignment lens.

Modules
-------
loading
    Reads a Brain Observatory cache (allensdk, or :mod:`~.observatory` when allensdk does not import):
    experiments, cells and natural-scene responses.
observatory
    This package's own reader of the folder allensdk writes (manifest, NWB v1 files), and the download.
synthetic
    Writes the planted default: a synthetic cache in the release's formats, with planted receptive fields.
responses
    Responses per scene and trial, times to peak, and agreement with allensdk's ``NaturalScenes``.
metadata
    Areas, Cre lines and genotypes (the paper's Table S1).
figures
    Every ``plot_*`` of the Allen chapter.
"""
