"""Argument checks shared by the public functions.

Every public function validates its arguments at the top, before any heavy work, and raises an error
that names the parameter, what was given and what is accepted (nilearn's style).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import Any


def check_in_allowed(value: Any, name: str, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise ``ValueError`` naming both."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"'{name}' must be one of {allowed}; {value!r} was provided.")
    return value


def check_subset(values: Any, name: str, allowed: Sequence[Any]) -> list:
    """Return ``values`` as a list (a single value is wrapped) if all are in ``allowed``."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        values = [values]
    values = list(values)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"'{name}' has unknown value(s) {unknown}; accepted values are {list(allowed)}.")
    return values


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as ``int`` if it is an integer (not a bool) within the bounds."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"'{name}' must be an integer; {value!r} ({type(value).__name__}) was provided.")
    _check_bounds(value, name, minimum, maximum)
    return int(value)


def check_float(value: Any, name: str, *, minimum: float | None = None, maximum: float | None = None) -> float:
    """Return ``value`` as ``float`` if it is a real number (not a bool) within the bounds."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"'{name}' must be a number; {value!r} ({type(value).__name__}) was provided.")
    _check_bounds(value, name, minimum, maximum)
    return float(value)


def check_shape2d(value: Any, name: str) -> tuple[int, int]:
    """Return a ``(height, width)`` tuple of positive integers."""
    if isinstance(value, Integral) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"'{name}' must be an int or a (height, width) pair; {value!r} was provided.")
    return tuple(check_int(v, name, minimum=1) for v in value)  # type: ignore[return-value]


def check_float_pair(
    value: Any, name: str, *, minimum: float | None = None, maximum: float | None = None
) -> tuple[float, float]:
    """Return a pair of numbers within the bounds; a single number is used for both."""
    if isinstance(value, Real) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"'{name}' must be a number or a pair of numbers; {value!r} was provided.")
    return tuple(check_float(v, name, minimum=minimum, maximum=maximum) for v in value)  # type: ignore[return-value]


def _check_bounds(value, name, minimum, maximum):
    if minimum is not None and value < minimum:
        raise ValueError(f"'{name}' must be >= {minimum}; {value!r} was provided.")
    if maximum is not None and value > maximum:
        raise ValueError(f"'{name}' must be <= {maximum}; {value!r} was provided.")


def sized_arguments(size: Any, presets: dict, arguments: dict, *, scaled: Sequence[str]) -> dict:
    """Fill a synthetic writer's size arguments from its ``size`` (a preset name or a positive factor).

    Parameters
    ----------
    size : str or float
        A key of ``presets`` (``'book'`` must be one) or a positive number ``f``: the ``'book'`` preset with
        the arguments named in ``scaled`` multiplied by ``f`` (rounded, at least 1).
    presets : dict
        Preset name → default of every argument in ``arguments``.
    arguments : dict
        The caller's values; None takes the preset's. With a preset other than ``'book'`` every value
        must be None (the preset sets them; a mix would be ambiguous).
    scaled : sequence of str
        The integer arguments a numeric ``size`` multiplies.
    """
    accepted = f"one of {list(presets)} or a positive number"
    if isinstance(size, str):
        if size not in presets:
            raise ValueError(f"'size' must be {accepted}; {size!r} was provided.")
        given = [name for name, value in arguments.items() if value is not None]
        if size != "book" and given:
            raise ValueError(f"'size'={size!r} sets {given}; leave them at None, or use size='book' or a number.")
        factor, preset = 1.0, presets[size]
    elif isinstance(size, Real) and not isinstance(size, bool) and size > 0:
        factor, preset = float(size), presets["book"]
    else:
        raise ValueError(f"'size' must be {accepted}; {size!r} was provided.")
    out = {name: preset[name] if value is None else value for name, value in arguments.items()}
    for name in scaled:
        out[name] = max(1, int(round(factor * out[name])))
    return out
