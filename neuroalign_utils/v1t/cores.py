"""Cores: images (and behaviour) → a feature grid ``(batch, channels, h', w')``.

Every core is a :class:`Core`, whose contract the encoder, the training loop and the analyses rely on
instead of the concrete class: ``output_shape`` (from its geometry, never from a forward pass),
``behaviour_width`` (behaviour values it takes when built with behaviour) and ``behaviour_dim`` (what
this one takes; 0 = none), ``regularizer()``, the pixel geometry of its feature grid (``grid_stride``,
``grid_offset``, :meth:`Core.grid_to_pixels`) and optional attention (``has_attention``).

- :class:`V1TCore`: the V1T vision transformer with a behaviour MLP (B-MLP) in every block.
- :class:`CNNCore`: the Lurz et al. (2021) baseline of Sensorium 2022: stacked convolutions with
  depth-separable hidden layers, behaviour as extra channels.
- :class:`LinearCore`: one linear convolution, so core + Gaussian readout + ELU+1 is a
  linear-nonlinear model.
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_float, check_int, check_shape2d
from .attention import Dropout, MultiHeadAttention


def patch_grid(image_size, patch_size: int, stride: int) -> tuple[int, int]:
    """Token grid ``(h', w')`` of sliding-window patches, from the geometry.

    ``h' = (h − p) // s + 1`` (same for width). E.g. 36×64, patch 8: stride 1 → 29×57 (1,653 tokens),
    stride 4 → 8×15 (the reference code guesses 10×12 from the token count).
    """
    h, w = check_shape2d(image_size, "image_size")
    patch_size = check_int(patch_size, "patch_size", minimum=1, maximum=min(h, w))
    stride = check_int(stride, "stride", minimum=1, maximum=patch_size)
    return (h - patch_size) // stride + 1, (w - patch_size) // stride + 1


def _l1(module: nn.Module) -> torch.Tensor:
    # one multi-tensor norm instead of an abs and a sum per parameter: faster, with its backward
    return torch.stack(torch._foreach_norm(list(module.parameters()), 1)).sum()


def _init_linear(module: nn.Module) -> None:
    # the paper: dense weights ~ truncated normal(0, 0.02), biases 0, LayerNorm 1 / 0
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class Core(nn.Module, metaclass=abc.ABCMeta):
    """The contract of a core: images ``(B, 1, h, w)`` (and behaviour ``(B, behaviour_dim)``) → a feature grid.

    A subclass sets ``image_size`` and ``behaviour_dim`` in its constructor (which takes
    ``behaviour_dim=``) and implements :meth:`forward`, :meth:`regularizer`, ``output_shape``,
    ``grid_stride`` and ``grid_offset``. The class attributes say what the encoder and the training
    loop need to know without asking for the class:

    - ``behaviour_width``: how many behaviour values the core takes when it is built with behaviour
      (the encoder's ``core_inputs`` gives it the first ``behaviour_dim`` of behaviour and pupil centre);
    - ``has_attention``: its forward also takes ``return_attention=True`` (then returns
      ``(grid, [per-block weights (B, heads, tokens, tokens)])``) and ``attention_weights=`` (weights
      used instead of computing them), and :meth:`attention_modules` lists its attention layers;
    - ``mixed_precision``: training may run its products in bfloat16 / float16 under autocast
      (see :func:`~neuroalign_utils.v1t.training.resolve_precision`).
    """

    behaviour_width: ClassVar[int]
    has_attention: ClassVar[bool] = False
    mixed_precision: ClassVar[bool] = False

    image_size: tuple[int, int]
    behaviour_dim: int

    @property
    @abc.abstractmethod
    def output_shape(self) -> tuple[int, int, int]:
        """``(channels, h', w')`` of the feature grid for the core's ``image_size``."""

    @property
    @abc.abstractmethod
    def grid_stride(self) -> tuple[int, int]:
        """Input pixels ``(y, x)`` between neighbouring cells of the feature grid."""

    @property
    @abc.abstractmethod
    def grid_offset(self) -> tuple[float, float]:
        """Input pixel ``(y, x)`` at the centre of feature cell ``(0, 0)``."""

    @abc.abstractmethod
    def forward(self, images: torch.Tensor, behaviour: torch.Tensor | None = None):
        """Feature grid ``(B, *output_shape)``."""

    @abc.abstractmethod
    def regularizer(self) -> torch.Tensor:
        """The core's penalty, added to the loss (weighted by its own coefficient)."""

    def attention_modules(self) -> list[nn.Module]:
        """The layers whose weights ``forward(..., return_attention=True)`` returns, in order (none here)."""
        return []

    def grid_to_pixels(self, grid_x, grid_y) -> tuple[np.ndarray, np.ndarray]:
        """Readout grid units (−1…1 over the feature grid, ``align_corners=True``) → input pixels ``(x, y)``."""
        (gh, gw), stride, offset = self.output_shape[1:], self.grid_stride, self.grid_offset
        x = (np.asarray(grid_x) + 1) / 2 * (gw - 1) * stride[1] + offset[1]
        y = (np.asarray(grid_y) + 1) / 2 * (gh - 1) * stride[0] + offset[0]
        return x, y


class BehaviourMLP(nn.Module):
    """B-MLP: behaviour (+ pupil centre) → a per-sample embedding added to every token.

    Linear(in → d/2) → Tanh → Linear(d/2 → d) → Tanh, as in the reference code (tanh lets the
    adjustment be positive or negative).
    """

    def __init__(self, in_dim: int, emb_dim: int):
        super().__init__()
        hidden = max(1, emb_dim // 2)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, emb_dim), nn.Tanh())

    def forward(self, behaviour: torch.Tensor) -> torch.Tensor:
        return self.net(behaviour)


class TransformerBlock(nn.Module):
    """z ← z + B-MLP(behaviour); z ← z + MHA(LN(z)); z ← z + MLP(LN(z))  (pre-norm, paper eqs 1–3)."""

    def __init__(self, emb_dim, n_heads, head_dim, mlp_dim, attention_dropout, mlp_dropout, behaviour_dim):
        super().__init__()
        self.behaviour_mlp = BehaviourMLP(behaviour_dim, emb_dim) if behaviour_dim else None
        self.attention_norm = nn.LayerNorm(emb_dim)
        self.attention = MultiHeadAttention(emb_dim, n_heads, head_dim, attention_dropout)
        self.mlp = nn.Sequential(
            nn.LayerNorm(emb_dim),
            nn.Linear(emb_dim, mlp_dim),
            nn.GELU(),
            Dropout(mlp_dropout),
            nn.Linear(mlp_dim, emb_dim),
            Dropout(mlp_dropout),
        )

    def forward(self, z, behaviour=None, return_attention=False, weights=None):
        if self.behaviour_mlp is not None:
            z = z + self.behaviour_mlp(behaviour)[:, None, :]
        attended, weights = self.attention(self.attention_norm(z), return_attention, weights)
        z = z + attended
        return z + self.mlp(z), weights


class V1TCore(Core):
    """V1T core: sliding-window patches → tokens (+ class token, learned positions) → blocks → grid.

    The tokenizer is a sliding ``patch_size`` window with ``stride`` followed by a linear layer to
    ``emb_dim``; it is computed as the equivalent convolution (kernel ``patch_size``, stride
    ``stride``), whose weights ``(emb_dim, 1, p, p)`` are the patch-embedding kernels. After the last
    block the class token is dropped and the patch tokens are reshaped to the true
    :func:`patch_grid` ``(h', w')``; a feature cell sits at the centre of its patch.
    With behaviour, the B-MLPs see behaviour and pupil centre (``behaviour_width`` 5).

    Defaults follow the paper's Table A.2 (4 blocks, 4 heads, emb 155, MLP 488, dropouts, L1 0.5379)
    except ``stride`` (paper: 1; 1,653 tokens), which is a CPU-budget choice measured in the
    "V1T training" chapter and ``benchmarks/v1t_train.py --stride-sweep``.

    ``position_init_std`` is the standard deviation of the initial position embedding and class token:
    1 as in the reference code, where the positions are as large as the patch embeddings; the
    ViT habit of 0.02 makes them about 1 % of a token. Which learns more depends on the setting
    (``benchmarks/v1t_accuracy.py`` and the "V1T training" chapter's parameters say where each won).
    """

    def __init__(
        self,
        image_size=(36, 64),
        *,
        patch_size: int = 8,
        stride: int = 8,
        emb_dim: int = 155,
        n_blocks: int = 4,
        n_heads: int = 4,
        head_dim: int | None = None,
        mlp_dim: int = 488,
        patch_dropout: float = 0.0229,
        attention_dropout: float = 0.2544,
        mlp_dropout: float = 0.2544,
        behaviour_dim: int = 5,
        l1: float = 0.5379,
        position_init_std: float = 1.0,
    ):
        super().__init__()
        self.image_size = check_shape2d(image_size, "image_size")
        self.grid = patch_grid(self.image_size, patch_size, stride)
        self.position_init_std = check_float(position_init_std, "position_init_std", minimum=0.0)
        emb_dim = check_int(emb_dim, "emb_dim", minimum=1)
        check_int(n_blocks, "n_blocks", minimum=1)
        check_int(n_heads, "n_heads", minimum=1)
        self.behaviour_dim = check_int(behaviour_dim, "behaviour_dim", minimum=0)
        self.l1 = check_float(l1, "l1", minimum=0.0)
        for name, p in [
            ("patch_dropout", patch_dropout),
            ("attention_dropout", attention_dropout),
            ("mlp_dropout", mlp_dropout),
        ]:
            check_float(p, name, minimum=0.0, maximum=1.0)
        self.tokenizer = nn.Conv2d(1, emb_dim, patch_size, stride=stride)
        n_tokens = self.grid[0] * self.grid[1]
        self.class_token = nn.Parameter(torch.zeros(1, 1, emb_dim))
        self.position_embedding = nn.Parameter(torch.empty(1, n_tokens + 1, emb_dim))
        self.patch_dropout = Dropout(patch_dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(emb_dim, n_heads, head_dim, mlp_dim, attention_dropout, mlp_dropout, self.behaviour_dim)
            for _ in range(n_blocks)
        )
        self.apply(_init_linear)
        # Positions and class token ~ N(0, position_init_std²) and patch embedding ~ U(±1/√fan-in)
        # (weights and bias), as the reference code. With the ViT habit (std 0.02, patch weights 1.7×
        # larger) the paper's V1T learned less on benchmarks/v1t_accuracy.py's data (numbers there).
        nn.init.normal_(self.position_embedding, std=self.position_init_std)
        nn.init.normal_(self.class_token, std=self.position_init_std)
        bound = 1 / math.sqrt(patch_size * patch_size)
        nn.init.uniform_(self.tokenizer.weight, -bound, bound)
        nn.init.uniform_(self.tokenizer.bias, -bound, bound)

    behaviour_width = 5  # behaviour (3) and pupil centre (2)
    has_attention = True
    mixed_precision = True

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return (self.tokenizer.out_channels, *self.grid)

    @property
    def grid_stride(self) -> tuple[int, int]:
        return self.tokenizer.stride

    @property
    def grid_offset(self) -> tuple[float, float]:
        patch = self.tokenizer.kernel_size
        return ((patch[0] - 1) / 2, (patch[1] - 1) / 2)

    def attention_modules(self) -> list[nn.Module]:
        return [block.attention for block in self.blocks]

    def behaviour_embeddings(self, behaviour: torch.Tensor) -> torch.Tensor:
        """Every block's B-MLP output for ``behaviour`` ``(B, behaviour_dim)``: ``(block, B, emb_dim)``."""
        if not self.behaviour_dim:
            raise ValueError("This V1T core was built without behaviour (behaviour_dim=0): it has no B-MLPs.")
        return torch.stack([block.behaviour_mlp(behaviour) for block in self.blocks])

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Patch embeddings with the class token first and positions added: ``(B, 1 + h'w', d)``."""
        patches = self.tokenizer(images).flatten(2).transpose(1, 2)
        cls = self.class_token.expand(len(images), -1, -1)
        return self.patch_dropout(torch.cat([cls, patches], dim=1) + self.position_embedding)

    def forward(self, images, behaviour=None, *, return_attention: bool = False, attention_weights=None):
        """Feature grid ``(B, d, h', w')``; with ``return_attention`` also the per-block weights.

        ``attention_weights`` (one ``(B, heads, tokens, tokens)`` tensor per block, e.g. those returned
        by a pass with other inputs) replaces the weights the blocks would compute; the values, MLPs
        and B-MLPs still see ``images`` and ``behaviour``. For analysis: no dropout is applied to them.
        """
        if attention_weights is not None and len(attention_weights) != len(self.blocks):
            raise ValueError(
                f"'attention_weights' must hold one tensor per block ({len(self.blocks)}); "
                f"got {len(attention_weights)}."
            )
        z = self.tokens(images)
        attention = []
        for i, block in enumerate(self.blocks):
            z, weights = block(
                z, behaviour, return_attention, None if attention_weights is None else attention_weights[i]
            )
            attention.append(weights)
        grid = z[:, 1:].transpose(1, 2).reshape(len(images), -1, *self.grid)
        return (grid, attention) if return_attention else grid

    def regularizer(self) -> torch.Tensor:
        """L1 on all core parameters, weighted by ``l1`` (the paper's core regulariser)."""
        return self.l1 * _l1(self)


def _behaviour_channels(images, behaviour, n):
    if not n:
        return images
    b, _, h, w = images.shape
    return torch.cat([images, behaviour[:, :n, None, None].expand(b, n, h, w)], dim=1)


#: The 3×3 Laplace filter of the CNN's input smoothness penalty.
LAPLACE_3X3 = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


def laplace_smoothness(weight: torch.Tensor) -> torch.Tensor:
    """``Σ (L ∗ w)² / Σ w²`` over the 2-D kernels of a conv ``weight`` ``(out, in, k, k)``, L = 3×3 Laplace.

    Scale-free (a kernel and its multiple score the same); small for smooth kernels.
    """
    kernels = weight.reshape(-1, 1, *weight.shape[-2:])
    laplace = F.conv2d(kernels, LAPLACE_3X3.to(weight)[None, None], padding=1)
    return laplace.pow(2).sum() / kernels.pow(2).sum()


class CNNCore(Core):
    """The Lurz et al. (2021) CNN core of the Sensorium 2022 baseline; behaviour as extra channels.

    An input convolution (``input_kernel``) and ``n_layers − 1`` hidden layers (``hidden_kernel``,
    'same' padding), each followed by BatchNorm and ELU. Hidden layers are depth-separable by default,
    as in the baseline: 1×1 → depthwise k×k → 1×1 (64 channels: 11 k weights a layer instead of 200 k).
    The first ``behaviour_dim`` behaviour values (pupil dilation, its derivative, running speed) are
    broadcast to constant image channels. The regulariser is the baseline's smoothness penalty on the
    input kernels, ``input_smoothness ·`` :func:`laplace_smoothness` (its ``gamma_input``, 6.3831).
    The input and 1×1 convolutions start Glorot-normal, as the baseline's; the depthwise ones from
    PyTorch's default (``benchmarks/v1t_accuracy.py`` gives the measurements behind both).

    ``pad_input=False`` is the baseline's unpadded input convolution (grid ``h − k + 1`` by
    ``w − k + 1``: 28×56 for 36×64 images, as the V1T paper describes it). It is not the default
    because at the chapter's budget (8 epochs, a few hundred trials) its readout positions barely
    spread out, and the model learns less than with 'same' padding (``benchmarks/v1t_accuracy.py``
    gives the measurements).
    """

    def __init__(
        self,
        image_size=(36, 64),
        *,
        channels: int = 64,
        n_layers: int = 4,
        input_kernel: int = 9,
        hidden_kernel: int = 7,
        pad_input: bool = True,
        depth_separable: bool = True,
        behaviour_dim: int = 3,
        input_smoothness: float = 6.3831,
    ):
        super().__init__()
        self.image_size = check_shape2d(image_size, "image_size")
        channels = check_int(channels, "channels", minimum=1)
        n_layers = check_int(n_layers, "n_layers", minimum=1)
        input_kernel = check_int(input_kernel, "input_kernel", minimum=1, maximum=min(self.image_size))
        hidden_kernel = check_int(hidden_kernel, "hidden_kernel", minimum=1)
        self.behaviour_dim = check_int(behaviour_dim, "behaviour_dim", minimum=0)
        self.input_smoothness = check_float(input_smoothness, "input_smoothness", minimum=0.0)
        #: pixels of the image lost on each side before the feature grid (unpadded input convolution)
        self.margin = 0 if pad_input else (input_kernel - 1) // 2
        self.grid = tuple(n if pad_input else n - input_kernel + 1 for n in self.image_size)
        layers = [
            nn.Conv2d(
                1 + self.behaviour_dim,
                channels,
                input_kernel,
                padding=input_kernel // 2 if pad_input else 0,
                bias=False,
            )
        ]
        for _ in range(n_layers - 1):
            layers += [nn.BatchNorm2d(channels), nn.ELU()]
            spatial = nn.Conv2d(
                channels,
                channels,
                hidden_kernel,
                padding=hidden_kernel // 2,
                bias=False,
                groups=channels if depth_separable else 1,
            )
            layers.append(
                nn.Sequential(
                    nn.Conv2d(channels, channels, 1, bias=False), spatial, nn.Conv2d(channels, channels, 1, bias=False)
                )
                if depth_separable
                else spatial
            )
        self.layers = nn.Sequential(*layers, nn.BatchNorm2d(channels), nn.ELU())
        # Dense convolutions Glorot-normal, as the baseline: with PyTorch's default (uniform ±1/√fan-in)
        # the paper-sized CNN barely learns at the baseline's learning rate 0.009. Depthwise ones keep
        # PyTorch's default: Glorot counts every group in their fan-out (std 0.025 for 64 channels of
        # 7×7), and all-Glorot learned less. Measurements: benchmarks/v1t_accuracy.py.
        for module in self.layers.modules():
            if isinstance(module, nn.Conv2d) and module.groups == 1:
                nn.init.xavier_normal_(module.weight)

    behaviour_width = 3  # pupil dilation, its derivative, running speed

    @property
    def output_shape(self):
        return (self.layers[0].out_channels, *self.grid)

    @property
    def grid_stride(self) -> tuple[int, int]:
        return (1, 1)

    @property
    def grid_offset(self) -> tuple[int, int]:
        return (self.margin, self.margin)

    def forward(self, images, behaviour=None):
        return self.layers(_behaviour_channels(images, behaviour, self.behaviour_dim))

    def regularizer(self):
        return self.input_smoothness * laplace_smoothness(self.layers[0].weight)


class LinearCore(Core):
    """One linear convolution ('same' padding, no nonlinearity): the linear stage of an LN model.

    'Same' padding: the feature grid is the image grid (``grid_stride`` 1, ``grid_offset`` 0).
    """

    behaviour_width = 3  # pupil dilation, its derivative, running speed

    def __init__(
        self, image_size=(36, 64), *, channels: int = 16, kernel: int = 13, behaviour_dim: int = 3, l1: float = 0.0
    ):
        super().__init__()
        self.image_size = check_shape2d(image_size, "image_size")
        self.behaviour_dim = check_int(behaviour_dim, "behaviour_dim", minimum=0)
        self.l1 = check_float(l1, "l1", minimum=0.0)
        kernel = check_int(kernel, "kernel", minimum=1)
        self.conv = nn.Conv2d(
            1 + self.behaviour_dim, check_int(channels, "channels", minimum=1), kernel, padding=kernel // 2
        )

    @property
    def output_shape(self):
        return (self.conv.out_channels, *self.image_size)

    @property
    def grid_stride(self) -> tuple[int, int]:
        return (1, 1)

    @property
    def grid_offset(self) -> tuple[int, int]:
        return (0, 0)

    def forward(self, images, behaviour=None):
        return self.conv(_behaviour_channels(images, behaviour, self.behaviour_dim))

    def regularizer(self):
        return self.l1 * self.conv.weight.abs().sum()


#: Registry of core names → :class:`Core` classes (the chapter's ``cores`` parameter).
CORES = {"v1t": V1TCore, "cnn": CNNCore, "linear": LinearCore}
