"""Sampling shared by the lenses.

- :func:`bilinear_corners`: the four grid cells around each point and their bilinear weights, as
  flat indices and weights, so that a model can gather and weight them itself (e.g. with
  ``torch.nn.functional.embedding_bag``) instead of calling ``grid_sample``.
"""

from __future__ import annotations

import torch


def bilinear_corners(x: torch.Tensor, y: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices ``(..., 4)`` of the four cells around each point ``(x, y)`` and their bilinear weights.

    ``x`` and ``y`` are in cell units (column and row, 0 … width − 1 and 0 … height − 1 inside the
    grid); converting from ``grid_sample`` units is the caller's, as it depends on ``align_corners``.
    Corners come in the order (x₀, y₀), (x₀ + 1, y₀), (x₀, y₀ + 1), (x₀ + 1, y₀ + 1), with
    ``x₀ = floor(x)``; a corner's weight is ``(1 − |x − xᵢ|)(1 − |y − yᵢ|)``, and 0 for a corner
    outside the grid (``grid_sample``'s ``padding_mode='zeros'``), whose index is clamped into the
    grid. Indices are row-major: ``row · width + column``. Gradients flow to ``x`` and ``y`` through
    the weights.
    """
    x0, y0 = torch.floor(x), torch.floor(y)
    index, weight = [], []
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)
        weight.append((1 - (x - xi).abs()) * (1 - (y - yi).abs()) * inside)
        index.append((yi.clamp(0, height - 1) * width + xi.clamp(0, width - 1)).long())
    return torch.stack(index, -1), torch.stack(weight, -1)
