"""The statistics and sampling helpers shared by the lenses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neuroalign_utils.sampling import bilinear_corners
from neuroalign_utils.statistics import pearson_r


def test_pearson_r_matches_numpy_and_states_its_constant_policy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)), rng.normal(size=(40, 5))
    y[:, 1] += 2 * x[:, 1]
    expected = [np.corrcoef(x[:, i], y[:, i])[0, 1] for i in range(5)]
    np.testing.assert_allclose(pearson_r(x, y), expected, rtol=1e-12)
    np.testing.assert_allclose(pearson_r(x.T, y.T, axis=1), expected, rtol=1e-12)
    x[:, 2] = 3.0  # constant along the axis
    assert np.isnan(pearson_r(x, y)[2]) and not np.isnan(pearson_r(x, y)[[0, 1, 3, 4]]).any()
    assert pearson_r(x, y, constant=0.0)[2] == 0.0
    assert abs(pearson_r(x, y, eps=1e-8)[2]) < 1e-6  # eps: a constant input scores about 0
    assert np.ndim(pearson_r(x[:, 0], y[:, 0])) == 0
    with pytest.raises(ValueError, match="'constant'"):
        pearson_r(x, y, constant=1.0)
    with pytest.raises(ValueError, match="same shape"):
        pearson_r(x, y[:-1])


def test_bilinear_corners_reproduce_grid_sample():
    torch.manual_seed(0)
    h, w = 5, 7
    grid = torch.randn(1, 3, h, w)
    positions = torch.rand(1, 50, 2) * 2.6 - 1.3  # some outside the grid
    x, y = (positions[..., 0] + 1) * (w - 1) / 2, (positions[..., 1] + 1) * (h - 1) / 2
    index, weight = bilinear_corners(x, y, h, w)
    assert index.shape == weight.shape == (1, 50, 4) and int(index.max()) < h * w and int(index.min()) >= 0
    values = grid.flatten(2)[0][:, index[0]]  # (C, N, 4)
    sampled = (values * weight[0]).sum(-1)
    expected = F.grid_sample(grid, positions[:, :, None], align_corners=True)[0, :, :, 0]
    torch.testing.assert_close(sampled, expected)
    inside = (positions.abs() <= 1).all(-1)[0]
    torch.testing.assert_close(weight[0, inside].sum(-1), torch.ones(int(inside.sum())))
    far = bilinear_corners(torch.tensor([-5.0]), torch.tensor([2.0]), h, w)[1]
    assert torch.equal(far, torch.zeros(1, 4))
