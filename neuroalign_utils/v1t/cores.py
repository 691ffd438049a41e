"""Cores: images (and behaviour) → a feature grid ``(batch, channels, h', w')``.

Every core exposes ``output_shape`` (computed from its geometry, never from a forward pass),
``behaviour_dim`` (how many behaviour values its forward takes; 0 = none) and ``regularizer()``.

- :class:`V1TCore`: the V1T vision transformer with a behaviour MLP (B-MLP) in every block.
- :class:`CNNCore`: the Lurz et al. (2021) baseline of Sensorium 2022: stacked convolutions with
  depth-separable hidden layers, behaviour as extra channels.
- :class:`LinearCore`: one linear convolution, so core + Gaussian readout + ELU+1 is a
  linear-nonlinear model.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_float, check_int, check_shape2d


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
    # one multi-tensor norm instead of an abs and a sum per parameter (1.5× faster with its backward)
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


#: Elements of one block of attention scores in :class:`DropoutAttention` (4 MiB in float32): small
#: enough to stay in cache, where the softmax and dropout passes over it are several times faster.
ATTENTION_BLOCK_ELEMENTS = 2**20
_DRAW_LEVELS = 2**15  # dropout draws are 15-bit integers


def dropout_bits(seed: int | None = None) -> np.random.SFC64:
    """The random-bit stream of dropout masks: numpy's SFC64, seeded from the torch RNG by default.

    SFC64 makes 64 random bits 2.5× faster than torch's CPU generator (``random_`` on int64), which
    was the largest cost after the matrix products in V1T training at stride 1. With ``seed=None``
    the seed is drawn from the global torch RNG, so ``torch.manual_seed`` seeds the masks.
    """
    if seed is None:
        seed = int(torch.randint(2**62, (1,)))
    return np.random.SFC64(seed)


def dropout_mask(shape, p: float, bits: np.random.SFC64 | None = None) -> tuple[torch.Tensor, float]:
    """Dropout as a 0/1 keep-mask (int16) and the factor ``1 / (1 − p')`` for the kept values.

    Four 15-bit draws are cut from every 64 random bits of ``bits`` (a fresh :func:`dropout_bits`
    stream by default), so ``p`` is applied as ``p' = round(p · 2¹⁵) / 2¹⁵`` (within 1.6e-5 of
    ``p``); the factor uses ``p'``, so ``x · mask · factor`` has exactly the expectation of ``x``.
    On CPU this is cheaper than ``F.dropout``'s per-element Bernoulli draws: :class:`Dropout`
    forward + backward is faster than ``nn.Dropout`` (``benchmarks/v1t_train.py`` measures it).
    """
    threshold, factor = _dropout_threshold(p)
    if not factor:
        return torch.zeros(shape, dtype=torch.int16), 0.0
    bits = dropout_bits() if bits is None else bits
    n = math.prod(shape)
    draws = torch.from_numpy(bits.random_raw((n + 3) // 4).view(np.int16)[:n])
    # 1 where the draw ≥ threshold, else 0, by integer arithmetic (boolean masks are slow on CPU)
    keep = (draws & (_DRAW_LEVELS - 1)).sub_(threshold).clamp_(-1, 0).add_(1)
    return keep.view(shape), factor


def _apply_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """``x`` with dropout ``p``: masks from :func:`dropout_mask` on the CPU (where they are faster),
    ``F.dropout`` on a GPU (whose own generator draws on the device)."""
    if x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    keep, factor = dropout_mask(x.shape, p)
    return x * keep.to(x.dtype) * factor


def _dropout_threshold(p: float) -> tuple[int, float]:
    """The 15-bit draw below which a value is dropped, and the factor ``1 / (1 − p')`` (0 if all drop)."""
    threshold = round(p * _DRAW_LEVELS)
    return threshold, (_DRAW_LEVELS / (_DRAW_LEVELS - threshold) if threshold < _DRAW_LEVELS else 0.0)


class Dropout(nn.Module):
    """``nn.Dropout`` with its masks from :func:`dropout_mask` (same distribution, faster on CPU)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = check_float(p, "p", minimum=0.0, maximum=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return _apply_dropout(x, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _attention_blocks(batch_heads: int, n_queries: int, n_keys: int):
    """Slices ``(batch·head group, query rows)`` covering the scores in blocks of ≤ ATTENTION_BLOCK_ELEMENTS."""
    group = max(1, ATTENTION_BLOCK_ELEMENTS // (n_queries * n_keys))
    rows = n_queries if group > 1 else max(1, ATTENTION_BLOCK_ELEMENTS // n_keys)
    for g in range(0, batch_heads, group):
        for r in range(0, n_queries, rows):
            yield slice(g, g + group), slice(r, r + rows)


#: Head widths are padded with zeros to a multiple of this in :class:`DropoutAttention`.
HEAD_DIM_ALIGNMENT = 16


def _padded_heads(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``factor · x`` for ``(B, heads, tokens, d)`` as ``(B·heads, tokens, d')``, zero-padded to d' ≥ d."""
    b, h, n, d = x.shape
    padded = x.new_zeros(b, h, n, -(-d // HEAD_DIM_ALIGNMENT) * HEAD_DIM_ALIGNMENT)
    torch.mul(x, factor, out=padded[..., :d])
    return padded.view(b * h, n, -1)


class DropoutAttention(torch.autograd.Function):
    """``dropout(softmax(Q·Kᵀ·scale), p) · V`` in cache-sized blocks, without storing the weights.

    The forward pass keeps Q, K, V, the output, each row's log-sum-exp and the dropout mask (one byte
    per weight); the backward pass recomputes each block's weights from the log-sum-exp (the
    memory-efficient attention recipe of FlashAttention, in PyTorch operations). At V1T's paper
    setting (1,653 tokens, batch 16, 4 heads) that is 175 MB per block where the float32 weights and
    a float mask would take 1.4 GB. The dropout factor ``1 / (1 − p)`` multiplies the whole
    gradients once instead of every block, and the softmax backward needs two passes over a block:
    ``dS = dP ∘ D − P ∘ rowsum(dO ∘ O)`` with ``D`` the dropped weights.

    Heads are zero-padded to a multiple of :data:`HEAD_DIM_ALIGNMENT` channels, which leaves every
    product unchanged and makes MKL's products 1.2–1.5× faster at V1T's odd head width of 155.

    ``apply(q, k, v, scale, p, seed)`` with ``q, k, v`` of shape ``(B, heads, tokens, head_dim)``;
    ``seed`` seeds the masks (:func:`dropout_bits`). Matrix products run in the inputs' dtype
    (bfloat16 under autocast), the softmax and the gradient sums in at least float32.
    """

    @staticmethod
    def forward(ctx, q, k, v, scale: float, p: float, seed: int):
        b, h, n, d = q.shape
        q, k, v = (_padded_heads(t, by) for t, by in ((q, scale), (k, 1.0), (v, 1.0)))
        bits, factor = dropout_bits(seed), _dropout_threshold(p)[1]
        softmax_dtype = torch.promote_types(q.dtype, torch.float32)
        out = torch.empty_like(v)
        logsumexp = torch.empty(b * h, n, 1, dtype=softmax_dtype)
        mask = torch.empty(b * h, n, k.shape[1], dtype=torch.uint8)
        for g, r in _attention_blocks(b * h, n, k.shape[1]):
            # in place on one float block: exp(s − max), its row sums; dropout and 1/sum go on the output
            weights = torch.bmm(q[g, r], k[g].transpose(1, 2)).to(softmax_dtype)
            row_max = weights.amax(-1, keepdim=True)
            weights.sub_(row_max).exp_()
            row_sum = weights.sum(-1, keepdim=True)
            logsumexp[g, r] = row_max + row_sum.log()
            keep = dropout_mask(weights.shape, p, bits)[0]
            mask[g, r] = keep
            out[g, r] = torch.bmm(weights.mul_(keep).to(v.dtype), v[g]) * (factor / row_sum)
        ctx.save_for_backward(q, k, v, out, logsumexp, mask)
        ctx.settings = (b, h, d, scale, factor)
        return out.view(b, h, n, -1)[..., :d]

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, logsumexp, mask = ctx.saved_tensors  # q is already scaled
        b, h, d, scale, factor = ctx.settings
        n = q.shape[1]
        grad_out = _padded_heads(grad_out.to(v.dtype), 1.0)
        softmax_dtype = logsumexp.dtype
        grad_q = torch.empty(q.shape, dtype=softmax_dtype)
        grad_k, grad_v = (torch.zeros(t.shape, dtype=softmax_dtype) for t in (k, v))
        # rowsum(dP ∘ P) = rowsum(dO ∘ O): the softmax backward's correction term, from the outputs;
        # divided by the dropout factor, which multiplies the gradients once at the end
        delta = (grad_out.to(softmax_dtype) * out).sum(-1, keepdim=True).mul_(1 / factor if factor else 0.0)
        for g, r in _attention_blocks(b * h, n, k.shape[1]):
            weights = torch.bmm(q[g, r], k[g].transpose(1, 2)).to(softmax_dtype).sub_(logsumexp[g, r]).exp_()
            dropped = weights * mask[g, r].to(softmax_dtype)
            grad_v[g] += torch.bmm(dropped.to(v.dtype).transpose(1, 2), grad_out[g, r])
            grad_scores = torch.bmm(grad_out[g, r], v[g].transpose(1, 2)).to(softmax_dtype)
            grad_scores = grad_scores.mul_(dropped).addcmul_(weights, delta[g, r], value=-1).to(q.dtype)
            grad_q[g, r] = torch.bmm(grad_scores, k[g])
            grad_k[g] += torch.bmm(grad_scores.transpose(1, 2), q[g, r])
        shape = (b, h, n, -1)
        grads = ((grad_q, scale * factor, q), (grad_k, factor, k), (grad_v, factor, v))
        return (*((grad.view(shape)[..., :d] * f).to(t.dtype) for grad, f, t in grads), None, None, None)


def attention(q, k, v, *, dropout: float = 0.0, return_weights: bool = False):
    """``dropout(softmax(Q·Kᵀ/√head_dim)) · V`` for ``(B, heads, tokens, head_dim)`` tensors.

    Four routes to the same maths, chosen by what is asked and where it runs:

    - ``return_weights=True``, or dropout with all weights within :data:`ATTENTION_BLOCK_ELEMENTS`:
      explicit softmax with :class:`Dropout`'s masks; the weights ``(B, heads, tokens, tokens)``
      (before dropout) are returned for analysis;
    - dropout with more weights than that (many tokens, e.g. V1T at stride 1):
      :class:`DropoutAttention`, blockwise, weights recomputed in the backward pass;
    - no dropout (evaluation): ``F.scaled_dot_product_attention``;
    - on a GPU, unless the weights are asked for: ``F.scaled_dot_product_attention`` with its own
      dropout (:func:`_fused_attention`), the GPU's fused kernels, with or without dropout.

    On the CPU, dropout masks are seeded from the global torch RNG (:func:`dropout_bits`), so seeding
    that seeds them; on a GPU, from the device's generator (seeded by ``torch.manual_seed`` too).

    Returns
    -------
    out : tensor ``(B, heads, tokens, head_dim)``
    weights : tensor or None
    """
    b, h, n, d = q.shape
    if q.device.type != "cpu" and not return_weights:
        return _fused_attention(q, k, v, dropout), None
    if dropout and not return_weights and b * h * n * k.shape[2] > ATTENTION_BLOCK_ELEMENTS:
        seed = int(torch.randint(2**62, (1,)))
        return DropoutAttention.apply(q, k, v, d**-0.5, dropout, seed), None
    if dropout or return_weights:
        weights = torch.softmax(q @ k.transpose(-2, -1) * d**-0.5, dim=-1)
        dropped = _apply_dropout(weights, dropout) if dropout else weights
        return dropped.to(v.dtype) @ v, (weights if return_weights else None)
    return F.scaled_dot_product_attention(q, k, v), None


#: Head widths are padded with zeros to a multiple of this for the GPU's fused attention kernels.
FUSED_HEAD_DIM_ALIGNMENT = 8


def _fused_attention(q, k, v, dropout: float):
    """``F.scaled_dot_product_attention`` (flash / memory-efficient kernels on a GPU, dropout drawn on
    the device) with heads zero-padded to a multiple of :data:`FUSED_HEAD_DIM_ALIGNMENT` channels, which
    those kernels need (V1T's head width is 155); the scale stays ``1/√head_dim`` of the true width."""
    d = q.shape[-1]
    pad = -d % FUSED_HEAD_DIM_ALIGNMENT
    if pad:
        q, k, v = (F.pad(t, (0, pad)) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=d**-0.5)[..., :d]


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention through :func:`attention`, with attention dropout in training.

    ``head_dim`` defaults to ``emb_dim`` (each head has the full embedding width, as in the reference
    code); QKV have no bias and the scale is ``head_dim ** -0.5``. ``forward(x, return_attention=True)``
    also returns the weights ``(batch, heads, tokens, tokens)`` (before dropout), for analysis;
    ``forward(x, weights=w)`` uses ``w`` instead of computing them.
    """

    def __init__(self, emb_dim: int, n_heads: int, head_dim: int | None = None, dropout: float = 0.0):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = head_dim or emb_dim
        inner = n_heads * self.head_dim
        self.qkv = nn.Linear(emb_dim, 3 * inner, bias=False)
        self.dropout = check_float(dropout, "dropout", minimum=0.0, maximum=1.0)
        self.proj = nn.Sequential(nn.Linear(inner, emb_dim), Dropout(dropout))

    def forward(self, x: torch.Tensor, return_attention: bool = False, weights: torch.Tensor | None = None):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if weights is None:
            out, weights = attention(q, k, v, dropout=self.dropout if self.training else 0.0, return_weights=return_attention)
        else:  # weights given (analysis): used as they are, without dropout
            out = weights.to(v.dtype) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, -1)), weights


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


class V1TCore(nn.Module):
    """V1T core: sliding-window patches → tokens (+ class token, learned positions) → blocks → grid.

    The tokenizer is a sliding ``patch_size`` window with ``stride`` followed by a linear layer to
    ``emb_dim``; it is computed as the equivalent convolution (kernel ``patch_size``, stride
    ``stride``), whose weights ``(emb_dim, 1, p, p)`` are the patch-embedding kernels. After the last
    block the class token is dropped and the patch tokens are reshaped to the true
    :func:`patch_grid` ``(h', w')``.

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
        for name, p in [("patch_dropout", patch_dropout), ("attention_dropout", attention_dropout), ("mlp_dropout", mlp_dropout)]:
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

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return (self.tokenizer.out_channels, *self.grid)

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
            raise ValueError(f"'attention_weights' must hold one tensor per block ({len(self.blocks)}); got {len(attention_weights)}.")
        z = self.tokens(images)
        attention = []
        for i, block in enumerate(self.blocks):
            z, weights = block(z, behaviour, return_attention, None if attention_weights is None else attention_weights[i])
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


class CNNCore(nn.Module):
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
    spread out: on the learning test's mice, seeds 0–2, single-trial correlation 0.30 / 0.28 / 0.30 and
    aRFs at chance, against 0.45 / 0.47 / 0.43 and aRFs 4–5 px from the planted centres with 'same'
    padding (the dense hidden layers of earlier versions: 0.40 / 0.45 / 0.27).
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
        layers = [nn.Conv2d(1 + self.behaviour_dim, channels, input_kernel, padding=input_kernel // 2 if pad_input else 0, bias=False)]
        for _ in range(n_layers - 1):
            layers += [nn.BatchNorm2d(channels), nn.ELU()]
            spatial = nn.Conv2d(channels, channels, hidden_kernel, padding=hidden_kernel // 2, bias=False,
                                groups=channels if depth_separable else 1)
            layers.append(nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), spatial,
                                        nn.Conv2d(channels, channels, 1, bias=False)) if depth_separable else spatial)
        self.layers = nn.Sequential(*layers, nn.BatchNorm2d(channels), nn.ELU())
        # Dense convolutions Glorot-normal, as the baseline: with PyTorch's default (uniform ±1/√fan-in)
        # the paper-sized CNN barely learned at the baseline's learning rate 0.009. Depthwise ones keep
        # PyTorch's default: Glorot counts every group in their fan-out (std 0.025 for 64 channels of
        # 7×7); on the learning test's mice all-Glorot reached 0.34 / 0.50 of the planted ceiling (seeds
        # 0 / 1), this 0.49 / 0.54.
        # Measurements: benchmarks/v1t_accuracy.py.
        for module in self.layers.modules():
            if isinstance(module, nn.Conv2d) and module.groups == 1:
                nn.init.xavier_normal_(module.weight)

    @property
    def output_shape(self):
        return (self.layers[0].out_channels, *self.grid)

    def forward(self, images, behaviour=None):
        return self.layers(_behaviour_channels(images, behaviour, self.behaviour_dim))

    def regularizer(self):
        return self.input_smoothness * laplace_smoothness(self.layers[0].weight)


class LinearCore(nn.Module):
    """One linear convolution ('same' padding, no nonlinearity): the linear stage of an LN model."""

    margin = 0  # 'same' padding: the feature grid is the image grid

    def __init__(self, image_size=(36, 64), *, channels: int = 16, kernel: int = 13, behaviour_dim: int = 3, l1: float = 0.0):
        super().__init__()
        self.image_size = check_shape2d(image_size, "image_size")
        self.behaviour_dim = check_int(behaviour_dim, "behaviour_dim", minimum=0)
        self.l1 = check_float(l1, "l1", minimum=0.0)
        kernel = check_int(kernel, "kernel", minimum=1)
        self.conv = nn.Conv2d(1 + self.behaviour_dim, check_int(channels, "channels", minimum=1), kernel, padding=kernel // 2)

    @property
    def output_shape(self):
        return (self.conv.out_channels, *self.image_size)

    def forward(self, images, behaviour=None):
        return self.conv(_behaviour_channels(images, behaviour, self.behaviour_dim))

    def regularizer(self):
        return self.l1 * self.conv.weight.abs().sum()


#: Registry of core names → classes (the chapter's ``cores`` parameter).
CORES = {"v1t": V1TCore, "cnn": CNNCore, "linear": LinearCore}
