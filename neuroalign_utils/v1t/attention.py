"""Attention and dropout of the V1T core: multi-head self-attention, and dropout masks drawn fast on the CPU.

- :func:`attention`: ``dropout(softmax(Q·Kᵀ/√d)) · V`` by the cheapest exact route for what is asked
  (weights returned or not, dropout or not, CPU or GPU).
- :class:`DropoutAttention`: the blockwise, memory-efficient route for many tokens with dropout.
- :class:`MultiHeadAttention`: the layer the V1T blocks use; it can return its weights and take given ones.
- :class:`Dropout`: ``nn.Dropout`` with masks from :func:`dropout_mask` (same distribution).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_float

#: Elements of one block of attention scores in :class:`DropoutAttention` (4 MiB in float32): small
#: enough to stay in cache, where the softmax and dropout passes over it are faster.
ATTENTION_BLOCK_ELEMENTS = 2**20
_DRAW_LEVELS = 2**15  # dropout draws are 15-bit integers


def dropout_bits(seed: int | None = None) -> np.random.SFC64:
    """The random-bit stream of dropout masks: numpy's SFC64, seeded from the torch RNG by default.

    SFC64 makes random bits faster than torch's CPU generator (``random_`` on int64), which matters
    in V1T training at stride 1 (``benchmarks/README.md`` gives the measurement). With ``seed=None``
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
    product unchanged and makes MKL's products faster at V1T's odd head width of 155
    (``benchmarks/README.md``).

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
            out, weights = attention(
                q, k, v, dropout=self.dropout if self.training else 0.0, return_weights=return_attention
            )
        else:  # weights given (analysis): used as they are, without dropout
            out = weights.to(v.dtype) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, -1)), weights
