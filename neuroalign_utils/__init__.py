"""neuroalign_utils: the computation behind the neuroalign book."""

__version__ = "0.1.0"
