"""Readouts: a feature grid ``(B, C, h', w')`` → one value per neuron of one mouse.

:class:`GaussianReadout` (Lurz et al. 2021, as used by V1T) reads every neuron at one point of the
grid: a per-neuron 2-D Gaussian whose mean comes from a small position network applied to the neuron's
cortical coordinates (sampled in training, the mean at evaluation), a per-neuron feature vector and a
bias. :class:`Shifter` moves all read positions of a trial according to the pupil centre.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_float, check_int
from ..sampling import bilinear_corners


def normalise_coordinates(coordinates: np.ndarray) -> np.ndarray:
    """Cortical (x, y) centred on their mean and divided by the largest absolute value → [−1, 1]."""
    xy = np.asarray(coordinates, dtype=np.float32)[:, :2]
    xy = xy - xy.mean(0)
    return xy / max(float(np.abs(xy).max()), 1e-6)


#: Grids of at most this many positions are read by projecting first (see :func:`bilinear_readout`).
PROJECTION_MAX_POSITIONS = 64


def _bilinear_corners(positions: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices ``(B, N, 4)`` of the four grid points around each position and their weights.

    Positions are ``grid_sample`` units (x, y in −1 … 1, ``align_corners=True``); a corner outside the
    grid gets weight 0 (``padding_mode='zeros'``). See :func:`~neuroalign_utils.sampling.bilinear_corners`.
    """
    x = (positions[..., 0] + 1) * (w - 1) / 2
    y = (positions[..., 1] + 1) * (h - 1) / 2
    return bilinear_corners(x, y, h, w)


def bilinear_readout(grid: torch.Tensor, positions: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """``Σ_c features[n, c] · grid[b, c]`` read bilinearly at ``positions[b, n]`` → ``(B, N)``.

    Equal (values and gradients) to ``grid_sample(grid, positions[:, :, None], align_corners=True)``
    followed by the per-neuron feature product, but without gathering channel-first ``(B, C, N)``
    samples, whose backward is slow on CPU. Two exact routes, chosen by
    the grid size:

    - small grids (≤ :data:`PROJECTION_MAX_POSITIONS` positions, e.g. V1T at stride 8: 4×8): project
      the grid on every neuron's features first (one matrix product, ``(B, N, h·w)``), then
      interpolate the projections;
    - larger grids: gather the four neighbouring feature vectors of each neuron from the channel-last
      grid with ``embedding_bag`` (bilinear weights as per-sample weights), then take the dot product.

    Parameters
    ----------
    grid : tensor ``(B, C, h, w)``
    positions : tensor ``(B, N, 2)``
        x, y in ``grid_sample`` units.
    features : tensor ``(N, C)``
    """
    b, c, h, w = grid.shape
    n = positions.shape[1]
    index, weight = _bilinear_corners(positions, h, w)
    if h * w <= PROJECTION_MAX_POSITIONS:
        projected = torch.einsum("bcp,nc->bnp", grid.reshape(b, c, h * w), features)
        return (torch.gather(projected, 2, index) * weight).sum(-1)
    table = grid.permute(0, 2, 3, 1).reshape(b * h * w, c)
    index = index + (torch.arange(b, device=grid.device) * (h * w))[:, None, None]
    sampled = F.embedding_bag(index.reshape(b * n, 4), table, per_sample_weights=weight.reshape(b * n, 4), mode="sum")
    return (sampled.view(b, n, c) * features).sum(-1)


class GaussianReadout(nn.Module):
    """Per-neuron Gaussian readout with a position network from cortical coordinates.

    Parameters
    ----------
    in_shape : (int, int, int)
        ``(channels, h', w')`` of the core's feature grid (``core.output_shape``).
    coordinates : array ``(n_neurons, 2 or 3)``
        Cortical coordinates (``cell_motor_coordinates``); only x and y are used, normalised by
        :func:`normalise_coordinates`.
    position_hidden : int, default=30
        Hidden units of the position network Linear(2 → h) → ELU → Linear(h → 2) → Tanh.
    init_sigma : float, default=0.1
        The 2×2 per-neuron σ starts uniform in (−init_sigma, init_sigma).
    l1 : float, default=0.0076
        Weight of the L1 penalty on the feature weights (the paper's readout regulariser).

    Notes
    -----
    Grid positions are in ``grid_sample`` units (x then y, −1 … 1, ``align_corners=True``). In
    training the position is ``clamp(μ + σ·ε, −1, 1)``; in evaluation it is ``μ``. A shift (from the
    :class:`Shifter`) is added after the clamp.
    """

    def __init__(
        self, in_shape, coordinates, *, position_hidden: int = 30, init_sigma: float = 0.1, l1: float = 0.0076
    ):
        super().__init__()
        channels = check_int(in_shape[0], "in_shape[0]", minimum=1)
        self.in_shape = tuple(int(v) for v in in_shape)
        self.l1 = check_float(l1, "l1", minimum=0.0)
        coordinates = normalise_coordinates(coordinates)
        n = len(coordinates)
        self.register_buffer("coordinates", torch.as_tensor(coordinates))
        hidden = check_int(position_hidden, "position_hidden", minimum=1)
        self.position_network = nn.Sequential(nn.Linear(2, hidden), nn.ELU(), nn.Linear(hidden, 2), nn.Tanh())
        self.sigma = nn.Parameter(torch.empty(n, 2, 2).uniform_(-init_sigma, init_sigma))
        self.features = nn.Parameter(torch.full((n, channels), 1.0 / channels))
        self.bias = nn.Parameter(torch.zeros(n))

    @property
    def n_neurons(self) -> int:
        return len(self.bias)

    def positions(self) -> torch.Tensor:
        """Mean read positions ``(n_neurons, 2)`` (x, y) in grid units."""
        return self.position_network(self.coordinates)

    def forward(self, grid: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C, h', w')`` → ``(B, n_neurons)`` (before the output nonlinearity).

        Runs in the readout's own dtype (float32) even under autocast: read positions need more
        precision than bfloat16's 8 bits (1/256 of the grid).
        """
        if tuple(grid.shape[1:]) != self.in_shape:
            raise ValueError(f"GaussianReadout expects features of shape {self.in_shape}; got {tuple(grid.shape[1:])}.")
        with torch.autocast(grid.device.type, enabled=False):
            grid = grid.to(self.features.dtype)
            b = len(grid)
            mu = self.positions().expand(b, -1, -1)
            if self.training:
                noise = torch.randn(b, self.n_neurons, 2, device=grid.device, dtype=grid.dtype)
                mu = torch.clamp(mu + torch.einsum("nij,bnj->bni", self.sigma, noise), -1, 1)
            if shift is not None:
                mu = mu + shift.to(grid.dtype)[:, None, :]
            return bilinear_readout(grid, mu, self.features) + self.bias

    def regularizer(self) -> torch.Tensor:
        return self.l1 * self.features.abs().sum()


class Shifter(nn.Module):
    """Pupil centre (z-scored x, y) → a shift of every read position: 2 → 5 → 5 → 2, tanh throughout."""

    def __init__(self, hidden: int = 5):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 2), nn.Tanh()
        )

    def forward(self, pupil_center: torch.Tensor) -> torch.Tensor:
        return self.net(pupil_center)
