"""Encoders: one shared core, and per mouse a Gaussian readout and (with behaviour) a shifter.

``Encoder.forward(images, mouse, behaviour, pupil_center)`` returns ELU + 1 of the readout, a positive
predicted response per neuron. The encoder holds no maths of its own; it composes the parts. A model
is rebuilt from its plain-dict ``config`` (see :func:`build_encoder`), which is what checkpoints store.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_in_allowed
from .cores import CORES, Core
from .readouts import GaussianReadout, Shifter


class Encoder(nn.Module):
    """Core → feature grid → per-mouse Gaussian readout (+ shifter) → ELU + 1."""

    def __init__(
        self, core: Core, readouts: dict[str, GaussianReadout], shifters: dict[str, Shifter] | None, config: dict
    ):
        super().__init__()
        self.core = core
        self.readouts = nn.ModuleDict(readouts)
        self.shifters = nn.ModuleDict(shifters or {})
        self.config = config

    @property
    def use_behaviour(self) -> bool:
        return bool(self.config["use_behaviour"])

    def core_inputs(self, behaviour, pupil_center):
        """The behaviour vector the core takes: the first ``core.behaviour_dim`` of behaviour (3), pupil centre (2)."""
        if not self.core.behaviour_dim:
            return None
        return torch.cat([behaviour, pupil_center], dim=1)[:, : self.core.behaviour_dim]

    def forward(self, images, mouse: str, behaviour=None, pupil_center=None, *, attention_weights=None):
        """Predicted responses ``(B, n_neurons)`` of ``mouse``.

        ``attention_weights`` replaces the core's attention weights, for a core with attention
        (``core.has_attention``; see :class:`~neuroalign_utils.v1t.cores.Core`).
        """
        if self.use_behaviour and (behaviour is None or pupil_center is None):
            raise ValueError("This encoder was built with use_behaviour=True: pass behaviour and pupil_center.")
        inputs = self.core_inputs(behaviour, pupil_center)
        if attention_weights is None:
            grid = self.core(images, inputs)
        elif self.core.has_attention:
            grid = self.core(images, inputs, attention_weights=attention_weights)
        else:
            raise ValueError(
                f"'attention_weights' needs a core with attention; this encoder's core "
                f"({self.config['core']!r}) has none."
            )
        shift = self.shifters[mouse](pupil_center) if mouse in self.shifters else None
        return F.elu(self.readouts[mouse](grid, shift)) + 1

    def regularizer(self, mouse: str, core_scale: float = 1.0) -> torch.Tensor:
        """Core L1 × ``core_scale`` + the mouse's readout L1.

        ``core_scale`` matches the core penalty to the size of the mouse's data term; see
        :func:`~neuroalign_utils.v1t.training.core_penalty_scale`.
        """
        return core_scale * self.core.regularizer() + self.readouts[mouse].regularizer()


def build_encoder(config: dict, coordinates: dict[str, np.ndarray] | None = None) -> Encoder:
    """Build an :class:`Encoder` from a plain config.

    Parameters
    ----------
    config : dict
        ``core`` ('v1t', 'cnn' or 'linear'), ``core_options`` (keyword arguments of the core class),
        ``readout_options`` (of :class:`GaussianReadout`), ``use_behaviour`` (bool), ``image_size``
        and ``mice``: mouse name → number of neurons.
    coordinates : dict of mouse name → array (n_neurons, ≥2), optional
        Cortical coordinates per mouse; zeros when rebuilding a model whose state (which holds the
        coordinates as buffers) is loaded afterwards.
    """
    check_in_allowed(config["core"], "core", list(CORES))
    core_class = CORES[config["core"]]
    behaviour_dim = core_class.behaviour_width if config["use_behaviour"] else 0
    core = core_class(tuple(config["image_size"]), behaviour_dim=behaviour_dim, **config.get("core_options", {}))
    readouts, shifters = {}, {}
    for mouse, n_neurons in config["mice"].items():
        coords = coordinates[mouse] if coordinates is not None else np.zeros((n_neurons, 2), np.float32)
        readouts[mouse] = GaussianReadout(core.output_shape, coords, **config.get("readout_options", {}))
        if config["use_behaviour"]:
            shifters[mouse] = Shifter()
    return Encoder(core, readouts, shifters, dict(config))
