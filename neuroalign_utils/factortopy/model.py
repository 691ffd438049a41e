"""The FactorTopy encoding model (Yang, Gee & Shi 2024, Listing 1), without (B, N, D, L) tensors.

Per vertex n, three selector MLPs read a sinusoidal encoding of its sphere coordinates: space
u_n ∈ [−1, 1]² (tanh), layer weights ω_n (softmax over L layers) and scale s_n ∈ [0, 1] (sigmoid). With
layer-unique bottlenecks P_l (C → D) applied to local tokens F_l (8×8 grid) and global tokens g_l,

    v_n = Σ_l ω_nl [(1 − s_n) · bilinear(P_l F_l, u_n) + s_n · P_l g_l],    y_n = mean_d(v_n ⊙ w_n) + b_n.

Bilinear sampling touches 4 grid cells, so v_n is a weighted sum of 5·L rows of a per-image table of
bottlenecked tokens (4 corners and the global token per layer). The model builds those indices and
weights (N, 5L) once per step and evaluates v with ``torch.nn.functional.embedding_bag`` over a table
whose rows hold the whole batch: memory grows as N·B·D, time as N·5L·B·D, never a (B, N, D, L) tensor.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .._validation import check_in_allowed, check_int
from ..sampling import bilinear_corners

N_FREQUENCIES = 32
TOKENS = ("both", "class", "patch")


def hemisphere_separated_coordinates(xyz: np.ndarray, hemisphere) -> np.ndarray:
    """Sphere coordinates with the right hemisphere shifted along x so the hemispheres do not overlap."""
    xyz = np.asarray(xyz, dtype=np.float64).copy()
    right = np.asarray(hemisphere) == "rh"
    if right.any() and (~right).any():
        xyz[right, 0] += xyz[~right, 0].max() - xyz[right, 0].min() + 0.1 * np.ptp(xyz[:, 0])
    return xyz


def positional_encoding(coords: torch.Tensor, n_frequencies: int = N_FREQUENCIES) -> torch.Tensor:
    """Sinusoidal encoding of (N, 3) coordinates → (N, 6·n_frequencies) (192 at the default).

    Coordinates are shifted and scaled so the longest axis spans 0–100 over the vertices given; the
    frequencies are log-spaced from 1/100 to 1 radian per unit, so the coarsest varies smoothly over the
    whole region and the finest over a few units.
    """
    coords = coords - coords.min(0).values
    coords = coords * (100.0 / coords.max().clamp_min(1e-12))
    freqs = torch.logspace(-2, 0, n_frequencies, dtype=coords.dtype, device=coords.device)
    angles = coords[:, :, None] * freqs  # (N, 3, K)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).reshape(len(coords), -1)


def normalised_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Entropy of each row of (N, L) selector weights divided by log L (1 uniform, 0 one-hot)."""
    n_layers = weights.shape[-1]
    if n_layers < 2:
        return torch.zeros(weights.shape[:-1], dtype=weights.dtype, device=weights.device)
    entropy = -(weights * weights.clamp_min(1e-12).log()).sum(-1)
    return entropy / math.log(n_layers)


def entropy_regulariser(weights: torch.Tensor) -> torch.Tensor:
    """Appendix E.3 term: −mean over vertices of the normalised entropy (−1 uniform, 0 one-hot)."""
    return -normalised_entropy(weights).mean()


class _Selector(nn.Module):
    """Encoding → Linear(·, 128) → GELU → Linear(128, 128) → GELU → Linear(128, k), last layer zero."""

    def __init__(self, n_in: int, n_out: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, n_out)
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x):
        return self.net(x)


class FactorTopy(nn.Module):
    """Factorised, topology-constrained layer / space / scale selection with a vertex-wise read-out.

    Parameters
    ----------
    coords : array-like, (N, 3)
        Vertex coordinates (hemispheres already separated, see :func:`hemisphere_separated_coordinates`).
    n_layers, n_channels : int
        L and C of the cached features.
    grid : int
        Side of the local-token grid (8).
    bottleneck : int
        D (128 in the paper).
    layer_selection, space_selection, scale_selection : bool
        Ablations of Table 16: off = uniform layer weights / spatial mean of the local tokens /
        scale fixed at 0.5.
    topology : bool
        Off = selectors read a free per-vertex embedding instead of the coordinate encoding.
    tokens : {"both", "class", "patch"}
        "class": global tokens only (s = 1), "patch": local tokens only (s = 0).
    seed : int
        Seed of the parameter initialisation (a local generator).
    """

    def __init__(
        self,
        coords,
        n_layers: int,
        n_channels: int,
        *,
        grid: int = 8,
        bottleneck: int = 128,
        layer_selection: bool = True,
        space_selection: bool = True,
        scale_selection: bool = True,
        topology: bool = True,
        tokens: str = "both",
        seed: int = 0,
    ):
        super().__init__()
        check_in_allowed(tokens, "tokens", TOKENS)
        self.n_layers = check_int(n_layers, "n_layers", minimum=1)
        self.grid = check_int(grid, "grid", minimum=1)
        n_channels = check_int(n_channels, "n_channels", minimum=1)
        bottleneck = check_int(bottleneck, "bottleneck", minimum=1)
        coords = torch.as_tensor(np.asarray(coords), dtype=torch.float32)
        if coords.ndim != 2 or coords.shape[1] != 3:
            raise ValueError(f"'coords' must be (n_vertices, 3); {tuple(coords.shape)} was provided.")
        self.n_vertices = len(coords)
        self.options = dict(
            layer_selection=layer_selection,
            space_selection=space_selection,
            scale_selection=scale_selection,
            topology=topology,
            tokens=tokens,
        )
        gen = torch.Generator().manual_seed(seed)
        encoding = positional_encoding(coords)
        self.register_buffer("encoding", encoding)
        if not topology:
            self.vertex_embedding = nn.Parameter(0.1 * torch.randn(encoding.shape, generator=gen))
        bound = 1 / math.sqrt(n_channels)
        self.local_bottleneck = nn.Parameter(
            (torch.rand(n_layers, n_channels, bottleneck, generator=gen) * 2 - 1) * bound
        )
        self.global_bottleneck = nn.Parameter(
            (torch.rand(n_layers, n_channels, bottleneck, generator=gen) * 2 - 1) * bound
        )
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.space_mlp = _Selector(encoding.shape[1], 2)
            self.layer_mlp = _Selector(encoding.shape[1], n_layers)
            self.scale_mlp = _Selector(encoding.shape[1], 1)
        self.readout_weight = nn.Parameter(torch.randn(self.n_vertices, bottleneck, generator=gen) * 0.1)
        self.readout_bias = nn.Parameter(torch.zeros(self.n_vertices))

    # --- selectors -------------------------------------------------------------------------------
    def selectors(self) -> dict:
        """Space (N, 2) in [−1, 1], layer weights (N, L), scale (N,) for the current parameters."""
        x = self.vertex_embedding if not self.options["topology"] else self.encoding
        n = self.n_vertices
        space = torch.tanh(self.space_mlp(x))
        layer = (
            torch.softmax(self.layer_mlp(x), dim=-1)
            if self.options["layer_selection"]
            else torch.full((n, self.n_layers), 1.0 / self.n_layers, device=x.device)
        )
        tokens = self.options["tokens"]
        if tokens == "class":
            scale = torch.ones(n, device=x.device)
        elif tokens == "patch":
            scale = torch.zeros(n, device=x.device)
        elif self.options["scale_selection"]:
            scale = torch.sigmoid(self.scale_mlp(x))[:, 0]
        else:
            scale = torch.full((n,), 0.5, device=x.device)
        return {"space": space, "layer": layer, "scale": scale}

    def _sampling_plan(self, sel: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Row indices into the per-image table and their weights, both (N, L·(K+1))."""
        g, n_layers = self.grid, self.n_layers
        n = self.n_vertices
        if self.options["space_selection"]:
            # grid_sample convention: align_corners=False, zero padding
            pix = ((sel["space"] + 1) * g - 1) / 2  # (N, 2) as (x, y)
            corner_idx, corner_w = bilinear_corners(pix[:, 0], pix[:, 1], g, g)  # (N, 4)
        else:
            corner_idx = torch.arange(g * g, device=sel["layer"].device).expand(n, -1)
            corner_w = torch.full((n, g * g), 1.0 / (g * g), device=sel["layer"].device)
        per_layer = g * g + 1  # table rows per layer: grid cells then the global token
        offsets = torch.arange(n_layers, device=corner_idx.device) * per_layer  # (L,)
        local_idx = offsets[None, :, None] + corner_idx[:, None, :]  # (N, L, K)
        global_idx = (offsets + g * g)[None, :, None].expand(n, -1, 1)
        omega, s = sel["layer"], sel["scale"]
        local_w = omega[:, :, None] * (1 - s)[:, None, None] * corner_w[:, None, :]
        global_w = (omega * s[:, None])[:, :, None]
        index = torch.cat([local_idx, global_idx], 2).reshape(n, -1)
        weight = torch.cat([local_w, global_w], 2).reshape(n, -1)
        return index, weight

    def token_table(self, local: torch.Tensor, global_: torch.Tensor) -> torch.Tensor:
        """Bottlenecked tokens (B, L·(grid²+1), D): per layer the grid cells, then the global token."""
        b = len(local)
        loc = torch.einsum("blcp,lcd->blpd", local.reshape(b, self.n_layers, local.shape[2], -1), self.local_bottleneck)
        glo = torch.einsum("blc,lcd->bld", global_, self.global_bottleneck)
        return torch.cat([loc, glo[:, :, None]], 2).reshape(b, -1, loc.shape[-1])

    def forward(self, local: torch.Tensor, global_: torch.Tensor, vertices: torch.Tensor | None = None):
        """Predict responses (B, N) from local (B, L, C, g, g) and global (B, L, C) tokens.

        ``vertices`` (optional index tensor) restricts the prediction to a subset of vertices.
        """
        sel = self.selectors()
        index, weight = self._sampling_plan(sel)
        w, bias = self.readout_weight, self.readout_bias
        if vertices is not None:
            index, weight, w, bias = index[vertices], weight[vertices], w[vertices], bias[vertices]
        table = self.token_table(local, global_)  # (B, R, D)
        b, rows, d = table.shape
        # one bag per vertex over a table whose rows hold all B images: the indices and weights are
        # shared by the batch, so they are built (and their gradients reduced) once, not B times
        v = F.embedding_bag(
            index, table.permute(1, 0, 2).reshape(rows, b * d), per_sample_weights=weight, mode="sum"
        ).reshape(len(index), b, d)  # (N, B, D)
        return (torch.bmm(v, w[:, :, None])[:, :, 0] / d + bias[:, None]).T
