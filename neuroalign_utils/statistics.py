"""Statistics shared by the lenses.

- :func:`pearson_r`: Pearson correlation along an axis, with a stated policy for constant inputs.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_float

#: What :func:`pearson_r` may return where an input is constant: NaN, or 0.0.
CONSTANT_POLICIES = ("nan", 0.0)


def pearson_r(x, y, *, axis: int = 0, constant="nan", eps: float = 0.0) -> np.ndarray:
    """Pearson correlation of ``x`` and ``y`` along ``axis``.

    ``mean((x − x̄)(y − ȳ)) / (σ_x σ_y + eps)`` with population standard deviations (``ddof=0``),
    in float64.

    Parameters
    ----------
    x, y : array-like of the same shape
    axis : int, default=0
        The axis the correlation runs along (e.g. trials); the others are kept.
    constant : {'nan', 0.0}, default='nan'
        Value where the denominator is zero, i.e. where ``x`` or ``y`` is constant along ``axis``
        (only possible with ``eps=0``).
    eps : float, default=0.0
        Added to ``σ_x σ_y`` (the V1T reference code's convention uses 1e-8, under which a constant
        input gives a correlation of about 0 rather than a zero denominator).

    Returns
    -------
    numpy.ndarray
        ``x``'s shape without ``axis`` (a NumPy scalar for 1-D inputs).
    """
    if constant not in CONSTANT_POLICIES or isinstance(constant, bool):
        raise ValueError(f"'constant' must be one of {CONSTANT_POLICIES}; got {constant!r}.")
    eps = check_float(eps, "eps", minimum=0.0)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"'x' and 'y' must have the same shape; got {x.shape} and {y.shape}.")
    xc = x - x.mean(axis, keepdims=True)
    yc = y - y.mean(axis, keepdims=True)
    denominator = xc.std(axis) * yc.std(axis) + eps
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).mean(axis) / denominator
    return np.where(denominator > 0, r, np.nan if constant == "nan" else 0.0)[()]
