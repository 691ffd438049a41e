"""Similarity engine: all-pairs 1 − RMSE between neural and artificial kernels, aggregates, and nulls.

Definitions (Jalil et al., "Artificial & Neural kernel similarity analysis")
---------------------------------------------------------------------------
Every kernel is resized to the neural kernel size and z-scored with the *population* standard deviation
(``ddof=0``), so each flattened kernel ``a`` of ``n`` pixels has mean 0 and ``⟨a, a⟩ = n``. Then

    RMSE(a, b)² = (1/n)·Σ(aᵢ − bᵢ)² = 2 − 2·⟨a, b⟩/n = 2·(1 − r),

where ``r = ⟨a, b⟩/n`` is exactly the Pearson correlation of the two kernels. So the whole table of
``1 − RMSE = 1 − √(2·(1 − r))`` is one matrix product of the z-scored kernels, computed in chunks of
artificial kernels: the working memory is bounded by ``chunk_size``, never by the number of pairs
(:func:`iter_similarity_blocks` lets a caller reduce each block without keeping the table). Because
1 − RMSE is a monotone function of r, every ranking by 1 − RMSE is a ranking by r; 1 − RMSE ranges
from 1 − 2 = −1 (r = −1) through 1 − √2 ≈ −0.414 (r = 0, unrelated kernels) to 1 (r = 1).

The products run where ``device`` says (:func:`neuroalign_utils.devices.resolve_device`; ``"auto"``:
a CUDA GPU, else Apple's MPS, else the CPU). The neural kernels go to the device once, each chunk of
artificial kernels as its turn comes, and every block of r comes back as a NumPy array on the CPU.
Apple's MPS has no float64, so ``"auto"`` keeps float64 products on the CPU there. Resizing and
z-scoring stay on the CPU in float64, so the kept kernels and their z-scores do not depend on the device.

Resizing uses bilinear interpolation (``torch.nn.functional.interpolate``, ``align_corners=False``)
with anti-aliasing, so downsampling averages over the source pixels instead of skipping them and
upsampling a small convolution kernel (3×3 → 32×32) gives a smooth map. Bilinear interpolation is
linear, so resizing and z-scoring commute up to the final z-score, which is applied after resizing.

Kernels that are constant or contain NaN/inf (before or after resizing) have no z-score; they are
dropped with a warning that gives the count, and the tables only hold the kept kernels.

Null baselines: :func:`phase_randomize` keeps each kernel's 2-D power spectrum and scrambles its
phases; :func:`permutation_test` compares two sets of per-kernel scores against label permutations.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .._validation import check_float, check_in_allowed, check_int, check_shape2d

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 8192
"""Artificial kernels per matrix-product block (the block of r is n_neural × chunk_size floats)."""


# --------------------------------------------------------------------------- preparation
def resize_kernels(kernels, size) -> np.ndarray:
    """Resize kernels (n, h, w) to ``size`` with anti-aliased bilinear interpolation.

    Parameters
    ----------
    kernels : array-like, shape (n, h, w)
    size : int or (int, int)
        Target (height, width).

    Returns
    -------
    numpy.ndarray, shape (n, *size), float64
    """
    size = check_shape2d(size, "size")
    values = _as_kernel_array(kernels, "kernels")
    return _resize(values, size)


def zscore_kernels(kernels) -> np.ndarray:
    """Z-score each kernel over its pixels with the population standard deviation (``ddof=0``).

    Constant kernels give NaN (no z-score exists); :func:`prepare_kernels` drops them.
    """
    values = np.asarray(getattr(kernels, "values", kernels), dtype=np.float64)
    axes = tuple(range(1, values.ndim))
    mean = values.mean(axis=axes, keepdims=True)
    std = values.std(axis=axes, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(std > 0, (values - mean) / std, np.nan)


def prepare_kernels(kernels, size, *, name: str = "kernels") -> tuple[np.ndarray, np.ndarray]:
    """Resize to ``size``, z-score (population std) and flatten; drop constant or non-finite kernels.

    Parameters
    ----------
    kernels : array-like or xarray.DataArray, shape (n, h, w)
    size : int or (int, int)
        Target (height, width) — the neural kernel size.
    name : str
        Used in the warning about dropped kernels.

    Returns
    -------
    flat : numpy.ndarray, shape (n_kept, h·w), float64
        Z-scored kernels: each row has mean 0 and mean square 1.
    kept : numpy.ndarray of int
        Positions of the kept kernels in the input.
    """
    size = check_shape2d(size, "size")
    values = _as_kernel_array(kernels, name)
    flat_input = values.reshape(values.shape[0], -1).astype(np.float64)
    valid = np.isfinite(flat_input).all(axis=1)
    valid[valid] = _has_spread(flat_input[valid])
    resized = _resize(values[valid], size).reshape(int(valid.sum()), -1).astype(np.float64)
    # resizing can flatten a kernel (e.g. a checkerboard averaged away): check again after resizing
    still_valid = _has_spread(resized)
    kept = np.flatnonzero(valid)[still_valid]
    n_dropped = values.shape[0] - kept.size
    if n_dropped:
        warnings.warn(
            f"Dropped {n_dropped} of {values.shape[0]} {name} that are constant or contain NaN/inf "
            f"(before or after resizing to {size[0]}×{size[1]}); they have no z-score.",
            stacklevel=2,
        )
    return np.ascontiguousarray(zscore_kernels(resized[still_valid])), kept


# --------------------------------------------------------------------------- the product
def iter_similarity_blocks(
    neural_flat: np.ndarray,
    artificial_flat: np.ndarray,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    dtype: str = "float64",
    device="auto",
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(artificial_slice, r_block)`` for prepared (z-scored, flattened) kernels.

    ``r_block`` has shape (n_neural, len(slice)) and holds Pearson r = ⟨a, b⟩ / n for the artificial
    kernels in ``artificial_slice``; 1 − RMSE follows from :func:`one_minus_rmse_from_r`. Working
    memory is one block, so any reduction (max, sum, histogram) can run over arbitrarily many pairs.
    The arguments are checked when this is called, before the first block is computed.

    Parameters
    ----------
    neural_flat, artificial_flat : numpy.ndarray, shapes (n_neural, d) and (n_artificial, d)
        Outputs of :func:`prepare_kernels` (same ``d``).
    chunk_size : int
        Artificial kernels per block.
    dtype : {"float64", "float32"}
        Precision of the product. float32 is about twice as fast but 1 − RMSE = 1 − √(2(1 − r)) loses
        precision for near-identical kernels (an error δ in r becomes δ/√(2(1 − r))).
    device : str or torch.device, default="auto"
        Where the products run: ``"auto"`` (a CUDA GPU, else Apple's MPS, else the CPU; float64 stays
        on the CPU instead of MPS, which has no float64), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
        ``"mps"`` (float32 only). The blocks are always NumPy arrays on the CPU; on a CUDA GPU float32
        products are full float32 (TF32 off, see :mod:`neuroalign_utils.devices`).
    """
    chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    dtype = check_in_allowed(dtype, "dtype", ["float64", "float32"])
    if neural_flat.ndim != 2 or artificial_flat.ndim != 2 or neural_flat.shape[1] != artificial_flat.shape[1]:
        raise ValueError(
            "'neural_flat' and 'artificial_flat' must be 2-D with the same number of pixels; shapes "
            f"{neural_flat.shape} and {artificial_flat.shape} were provided."
        )
    return _similarity_blocks(neural_flat, artificial_flat, chunk_size, dtype, _product_device(device, dtype))


def _similarity_blocks(neural_flat, artificial_flat, chunk_size, dtype, device) -> Iterator[tuple[slice, np.ndarray]]:
    import torch

    n_pixels = neural_flat.shape[1]
    neural_t = torch.from_numpy(np.ascontiguousarray(neural_flat, dtype=dtype)).to(device) / n_pixels
    for start in range(0, artificial_flat.shape[0], chunk_size):
        stop = min(start + chunk_size, artificial_flat.shape[0])
        block = torch.from_numpy(np.ascontiguousarray(artificial_flat[start:stop], dtype=dtype)).to(device)
        yield slice(start, stop), (neural_t @ block.T).clamp_(-1.0, 1.0).cpu().numpy()


def _product_device(device, dtype: str):
    """The torch device of the products: ``device`` resolved, with float64 kept off MPS (no float64 there)."""
    from ..devices import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "mps" and dtype == "float64":
        if isinstance(device, str) and device.strip().lower() == "auto":
            return resolve_device("cpu")
        raise ValueError(
            f"'device'={device!r} cannot run dtype='float64' products: Apple's MPS has no float64; "
            "use dtype='float32', or device='cpu' or 'auto' (which keeps float64 on the CPU)."
        )
    return resolved


def one_minus_rmse_from_r(r):
    """1 − RMSE of z-scored kernels from their Pearson r: ``1 − √(2·(1 − r))`` (same dtype as ``r``)."""
    out = np.subtract(1.0, r, dtype=np.result_type(np.asarray(r).dtype, np.float32))
    out *= 2.0
    np.maximum(out, 0.0, out=out)
    np.sqrt(out, out=out)
    return np.subtract(1.0, out, out=out)


def kernel_similarity(
    neural,
    artificial,
    *,
    size=None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    dtype: str = "float64",
    device="auto",
) -> xr.Dataset:
    """All-pairs 1 − RMSE and Pearson r between neural and artificial kernels.

    Parameters
    ----------
    neural, artificial : xarray.DataArray or array-like, shape (n, h, w)
        Kernels; with DataArrays, every 1-D coordinate along the first dimension (area, genotype,
        model, layer, layer_type, ...) is carried into the result. A coordinate name present on both
        sides is prefixed ``neural_`` / ``artificial_``.
    size : int or (int, int), optional
        Common kernel size; default the neural kernels' (h, w).
    chunk_size : int, default=8192
        Artificial kernels per matrix-product block (bounds the working memory of the product; the
        returned table itself holds every pair — reduce blocks of :func:`iter_similarity_blocks`
        instead when the pairs do not fit in memory).
    dtype : {"float64", "float32"}
        Precision of the product (see :func:`iter_similarity_blocks`).
    device : str or torch.device, default="auto"
        Where the products run (see :func:`iter_similarity_blocks`); checked before any work. The
        result holds NumPy arrays whatever the device.

    Returns
    -------
    xarray.Dataset
        Variables ``one_minus_rmse`` and ``pearson_r`` with dims ``(neural, artificial)`` over the
        kept kernels, coordinates ``neural_index`` / ``artificial_index`` (position in the input) and
        the carried metadata; attribute ``size``.
    """
    neural_values = _as_kernel_array(neural, "neural")
    size = neural_values.shape[1:] if size is None else check_shape2d(size, "size")
    chunk_size = check_int(chunk_size, "chunk_size", minimum=1)
    dtype = check_in_allowed(dtype, "dtype", ["float64", "float32"])
    device = _product_device(device, dtype)
    _as_kernel_array(artificial, "artificial")
    neural_flat, neural_kept = prepare_kernels(neural, size, name="neural kernels")
    artificial_flat, artificial_kept = prepare_kernels(artificial, size, name="artificial kernels")

    r = np.empty((neural_flat.shape[0], artificial_flat.shape[0]), dtype=dtype)
    blocks = iter_similarity_blocks(neural_flat, artificial_flat, chunk_size=chunk_size, dtype=dtype, device=device)
    for columns, block in blocks:
        r[:, columns] = block
    result = xr.Dataset(
        {
            "one_minus_rmse": (("neural", "artificial"), one_minus_rmse_from_r(r).astype(dtype)),
            "pearson_r": (("neural", "artificial"), r),
        },
        coords={"neural_index": ("neural", neural_kept), "artificial_index": ("artificial", artificial_kept)},
        attrs={"size": list(size), "definition": "1 - RMSE of z-scored (ddof=0) kernels = 1 - sqrt(2 (1 - r))"},
    )
    neural_coords = _kernel_coords(neural, neural_kept)
    artificial_coords = _kernel_coords(artificial, artificial_kept)
    shared = set(neural_coords) & set(artificial_coords)
    for prefix, dim, coords in (("neural_", "neural", neural_coords), ("artificial_", "artificial", artificial_coords)):
        for key, values in coords.items():
            result = result.assign_coords({(prefix + key if key in shared else key): (dim, values)})
    return result


# --------------------------------------------------------------------------- aggregation
def aggregate_similarity(
    similarity: xr.Dataset,
    by: Sequence[str],
    *,
    statistic: str = "mean",
    variable: str = "one_minus_rmse",
    n_bootstrap: int = 1000,
    ci: float = 0.95,
    random_state: int = 0,
) -> pd.DataFrame:
    """Mean or median similarity per group with a bootstrap confidence interval.

    Groups combine neural coordinates (e.g. area, genotype, excitatory/inhibitory class) and
    artificial coordinates (e.g. model, layer, layer_type) of ``similarity``. Within a group each
    neural kernel gets its mean (or median) over the group's artificial kernels; the group value is
    the mean (or median) of these per-neural-kernel values — for the mean this equals the mean over
    all pairs. The interval resamples neural kernels with replacement (they are the independent
    units; pairs sharing a neural kernel are not independent).

    Parameters
    ----------
    similarity : xarray.Dataset
        Output of :func:`kernel_similarity`.
    by : sequence of str
        Coordinate names to group by (may be empty: one overall row).
    statistic : {"mean", "median"}
    variable : {"one_minus_rmse", "pearson_r"}
    n_bootstrap : int
    ci : float
        Confidence level in (0, 1).
    random_state : int

    Returns
    -------
    pandas.DataFrame
        Columns: the ``by`` columns, ``value``, ``ci_low``, ``ci_high``, ``n_neural``,
        ``n_artificial``, ``statistic``, ``variable``.
    """
    by = list([by] if isinstance(by, str) else by)
    statistic = check_in_allowed(statistic, "statistic", ["mean", "median"])
    variable = check_in_allowed(variable, "variable", ["one_minus_rmse", "pearson_r"])
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", minimum=1)
    ci = check_float(ci, "ci", minimum=0.0, maximum=1.0)
    random_state = check_int(random_state, "random_state", minimum=0)
    neural_by = [c for c in by if c in similarity.coords and similarity[c].dims == ("neural",)]
    artificial_by = [c for c in by if c in similarity.coords and similarity[c].dims == ("artificial",)]
    unknown = [c for c in by if c not in neural_by + artificial_by]
    if unknown:
        available = [c for c in similarity.coords if similarity[c].ndim == 1]
        raise ValueError(f"'by' has unknown column(s) {unknown}; accepted values are {available}.")

    reduce = np.mean if statistic == "mean" else np.median
    values = similarity[variable].values
    rng = np.random.default_rng(random_state)
    rows = []
    for neural_key, neural_rows in _group_positions(similarity, "neural", neural_by):
        for artificial_key, artificial_cols in _group_positions(similarity, "artificial", artificial_by):
            per_neural = reduce(values[np.ix_(neural_rows, artificial_cols)], axis=1)
            draws = rng.integers(0, per_neural.size, size=(n_bootstrap, per_neural.size))
            boot = reduce(per_neural[draws], axis=1)
            low, high = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2])
            rows.append(
                {
                    **dict(zip(neural_by, neural_key)),
                    **dict(zip(artificial_by, artificial_key)),
                    "value": float(reduce(per_neural)),
                    "ci_low": float(low),
                    "ci_high": float(high),
                    "n_neural": int(neural_rows.size),
                    "n_artificial": int(artificial_cols.size),
                }
            )
    table = pd.DataFrame(rows)
    table["statistic"] = statistic
    table["variable"] = variable
    return table[by + ["value", "ci_low", "ci_high", "n_neural", "n_artificial", "statistic", "variable"]]


# --------------------------------------------------------------------------- null baselines
def phase_randomize(kernels, *, n_surrogates: int = 1, random_state: int = 0) -> np.ndarray:
    """Surrogate kernels with each kernel's 2-D power spectrum and random Fourier phases.

    The phases are those of the 2-D FFT of real white noise, so they have the Hermitian symmetry of a
    real image and the surrogate is real; the amplitude of every frequency (hence the power spectrum,
    the mean and the variance) is kept exactly, the spatial arrangement is destroyed.

    Parameters
    ----------
    kernels : array-like, shape (n, h, w)
    n_surrogates : int, default=1
        Surrogates per kernel.
    random_state : int

    Returns
    -------
    numpy.ndarray, shape (n_surrogates · n, h, w)
        Surrogate ``s`` of kernel ``i`` is row ``s · n + i``.
    """
    values = _as_kernel_array(kernels, "kernels").astype(np.float64)
    n_surrogates = check_int(n_surrogates, "n_surrogates", minimum=1)
    random_state = check_int(random_state, "random_state", minimum=0)
    rng = np.random.default_rng(random_state)
    amplitude = np.abs(np.fft.fft2(values))
    surrogates = []
    for _ in range(n_surrogates):
        noise_phase = np.angle(np.fft.fft2(rng.standard_normal(values.shape)))
        surrogates.append(np.fft.ifft2(amplitude * np.exp(1j * noise_phase)).real)
    return np.concatenate(surrogates, axis=0)


def permutation_test(
    scores_a,
    scores_b,
    *,
    n_permutations: int = 10000,
    alternative: str = "greater",
    random_state: int = 0,
) -> dict:
    """Two-sample permutation test on the difference of means, ``mean(a) − mean(b)``.

    Typical uses: per-neural-kernel 1 − RMSE against a model versus the same for phase-randomised
    neural kernels (is the alignment above chance?), or per-artificial-kernel scores of attention
    versus convolution kernels.

    Returns
    -------
    dict
        ``difference`` (observed), ``p_value`` (with the +1 correction, never 0), ``null_mean``,
        ``null_std``, ``n_permutations``, ``alternative``.
    """
    a = np.asarray(scores_a, dtype=np.float64).ravel()
    b = np.asarray(scores_b, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(
            f"'scores_a' and 'scores_b' must be non-empty and finite; sizes {a.size} and {b.size} were provided."
        )
    n_permutations = check_int(n_permutations, "n_permutations", minimum=1)
    alternative = check_in_allowed(alternative, "alternative", ["greater", "less", "two-sided"])
    random_state = check_int(random_state, "random_state", minimum=0)
    rng = np.random.default_rng(random_state)
    pooled = np.concatenate([a, b])
    observed = a.mean() - b.mean()
    null = np.empty(n_permutations)
    for i in range(n_permutations):
        shuffled = rng.permutation(pooled)
        null[i] = shuffled[: a.size].mean() - shuffled[a.size :].mean()
    if alternative == "greater":
        extreme = null >= observed
    elif alternative == "less":
        extreme = null <= observed
    else:
        extreme = np.abs(null) >= abs(observed)
    return {
        "difference": float(observed),
        "p_value": float((extreme.sum() + 1) / (n_permutations + 1)),
        "null_mean": float(null.mean()),
        "null_std": float(null.std()),
        "n_permutations": n_permutations,
        "alternative": alternative,
    }


# --------------------------------------------------------------------------- helpers
def _as_kernel_array(kernels, name) -> np.ndarray:
    values = np.asarray(getattr(kernels, "values", kernels))
    if values.ndim != 3 or 0 in values.shape:
        raise ValueError(f"'{name}' must have shape (n, h, w) with n, h, w > 0; shape {values.shape} was provided.")
    return values


def _has_spread(flat: np.ndarray) -> np.ndarray:
    """True for rows whose standard deviation is not negligible against their largest magnitude."""
    if flat.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    return flat.std(axis=1) > 1e-6 * np.abs(flat).max(axis=1)


def _resize(values: np.ndarray, size) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] == 0:
        return np.empty((0, *size), dtype=np.float64)
    if values.shape[1:] == tuple(size):
        return values
    tensor = torch.from_numpy(np.ascontiguousarray(values))[:, None]
    antialias = size[0] < values.shape[1] or size[1] < values.shape[2]
    resized = F.interpolate(tensor, size=tuple(size), mode="bilinear", align_corners=False, antialias=antialias)
    return resized[:, 0].numpy()


def _kernel_coords(kernels, kept) -> dict:
    if not isinstance(kernels, xr.DataArray):
        return {}
    dim = kernels.dims[0]
    return {
        str(name): coord.values[kept] for name, coord in kernels.coords.items() if coord.dims == (dim,) and name != dim
    }


def _group_positions(similarity, dim, columns) -> list[tuple[tuple, np.ndarray]]:
    n = similarity.sizes[dim]
    if not columns:
        return [((), np.arange(n))]
    frame = pd.DataFrame({c: similarity[c].values for c in columns})
    return [
        ((key,) if not isinstance(key, tuple) else key, np.asarray(index))
        for key, index in frame.groupby(columns, sort=True).indices.items()
    ]
