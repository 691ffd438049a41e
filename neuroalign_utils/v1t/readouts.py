"""Readouts: a feature grid ``(B, C, h', w')`` → one value per neuron of one mouse.

:class:`GaussianReadout` (Lurz et al. 2021, as used by V1T) reads every neuron at one point of the
grid: a per-neuron 2-D Gaussian whose mean comes from a small position network applied to the neuron's
cortical coordinates (sampled in training, the mean at evaluation), a per-neuron feature vector and a
bias. :class:`Shifter` moves all read positions of a trial according to the pupil centre.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._validation import check_float, check_int


def normalise_coordinates(coordinates: np.ndarray) -> np.ndarray:
    """Cortical (x, y) centred on their mean and divided by the largest absolute value → [−1, 1]."""
    xy = np.asarray(coordinates, dtype=np.float32)[:, :2]
    xy = xy - xy.mean(0)
    return xy / max(float(np.abs(xy).max()), 1e-6)


def bilinear_sample(grid: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Bilinear values of ``grid`` ``(B, C, h, w)`` at ``positions`` ``(B, N, 2)`` → ``(B, C, N)``.

    Same result as ``F.grid_sample(grid, positions[:, :, None], align_corners=True)`` (zeros outside),
    computed with gathers: on CPU its backward is several times faster than ``grid_sample``'s.
    """
    b, c, h, w = grid.shape
    x = (positions[..., 0] + 1) * (w - 1) / 2
    y = (positions[..., 1] + 1) * (h - 1) / 2
    x0, y0 = torch.floor(x), torch.floor(y)
    flat = grid.reshape(b, c, h * w)
    out = 0
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        xi, yi = x0 + dx, y0 + dy
        weight = (1 - (x - xi).abs()) * (1 - (y - yi).abs())
        inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
        index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long()
        values = torch.gather(flat, 2, index[:, None, :].expand(b, c, -1))
        out = out + values * (weight * inside)[:, None, :]
    return out


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

    def __init__(self, in_shape, coordinates, *, position_hidden: int = 30, init_sigma: float = 0.1, l1: float = 0.0076):
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
        """``(B, C, h', w')`` → ``(B, n_neurons)`` (before the output nonlinearity)."""
        if tuple(grid.shape[1:]) != self.in_shape:
            raise ValueError(f"GaussianReadout expects features of shape {self.in_shape}; got {tuple(grid.shape[1:])}.")
        b = len(grid)
        mu = self.positions().expand(b, -1, -1)
        if self.training:
            noise = torch.randn(b, self.n_neurons, 2, device=grid.device, dtype=grid.dtype)
            mu = torch.clamp(mu + torch.einsum("nij,bnj->bni", self.sigma, noise), -1, 1)
        if shift is not None:
            mu = mu + shift[:, None, :]
        return torch.einsum("bcn,nc->bn", bilinear_sample(grid, mu), self.features) + self.bias

    def regularizer(self) -> torch.Tensor:
        return self.l1 * self.features.abs().sum()


class Shifter(nn.Module):
    """Pupil centre (z-scored x, y) → a shift of every read position: 2 → 5 → 5 → 2, tanh throughout."""

    def __init__(self, hidden: int = 5):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 2), nn.Tanh())

    def forward(self, pupil_center: torch.Tensor) -> torch.Tensor:
        return self.net(pupil_center)
