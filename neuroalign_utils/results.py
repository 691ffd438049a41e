"""Typed results that one chapter saves and later chapters read: the base of each lens's ``results`` module.

A chapter's headline is a dataclass derived from :class:`Headline` (``kernels.results``,
``v1t.results``, ``factortopy.results``). Its fields are typed; building one checks every value
against its field's type, :meth:`Headline.save` writes it as ``headline.json`` (atomically, through
:mod:`neuroalign_utils.storage`) and :meth:`Headline.load` reads it back, refusing a missing, unknown or
mistyped field with an error that names it. :class:`TrainedVsRandom` is the one entry type every lens
uses for its trained-versus-random comparisons.

Type rules: a ``float`` field takes any real number and reads JSON ``null`` as NaN (JSON has no NaN);
``X | None`` keeps ``None``; dictionary keys become strings (as in JSON); a dataclass-typed value may be
given as a mapping of its fields; numpy scalars become Python ones.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from . import storage

HEADLINE_FILE = "headline.json"


class ResultsError(ValueError):
    """Saved results that do not match their schema; the message names the field."""


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _check(value, hint, where: str):
    """``value`` checked against the type ``hint`` (and made plain); raise :class:`ResultsError` naming ``where``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _check(value, arg, where)
            except ResultsError:
                pass
        raise ResultsError(f"{where}: expected {_type_name(hint)}, got {type(value).__name__} {value!r:.80}.")
    if isinstance(value, np.generic):
        value = value.item()
    if hint is float:
        if value is None:
            return math.nan
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint in (str, bool):
        if isinstance(value, hint):
            return value
    elif hint is list or origin is list:
        if isinstance(value, (list, tuple)):
            item = args[0] if args else Any
            return [_check(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    elif hint is dict or origin is dict:
        if isinstance(value, Mapping):
            item = args[1] if args else Any
            return {str(k): _check(v, item, f"{where}[{str(k)!r}]") for k, v in value.items()}
    elif dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping):
            return hint.from_dict(value, where=where)
    else:
        raise TypeError(f"{where}: the field type {hint!r} is not one a headline can hold.")
    raise ResultsError(f"{where}: expected {_type_name(hint)}, got {type(value).__name__} {value!r:.80}.")


def _plain(value):
    if dataclasses.is_dataclass(value):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclasses.dataclass
class Record:
    """A dataclass whose fields are checked against their types when it is built or read."""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            where = f"{type(self).__name__}.{field.name}"
            setattr(self, field.name, _check(getattr(self, field.name), hints[field.name], where))

    @classmethod
    def field_names(cls) -> list[str]:
        return [field.name for field in dataclasses.fields(cls)]

    def to_dict(self) -> dict:
        """The fields as plain Python values (nested records as dicts), in declaration order."""
        return {name: _plain(getattr(self, name)) for name in self.field_names()}

    @classmethod
    def from_dict(cls, data: Mapping, *, where: str | None = None):
        """Build from a mapping of exactly the fields; a missing or unknown field is named in the error."""
        where = where or cls.__name__
        if not isinstance(data, Mapping):
            raise ResultsError(f"{where}: expected a mapping of {cls.__name__}'s fields, got {type(data).__name__}.")
        names = cls.field_names()
        missing = [name for name in names if name not in data]
        unknown = sorted(str(key) for key in data if key not in names)
        if missing:
            raise ResultsError(f"{where} lacks the field(s) {missing}.")
        if unknown:
            raise ResultsError(f"{where} has unknown field(s) {unknown}; accepted: {names}.")
        hints = typing.get_type_hints(cls)
        checked = {name: _check(data[name], hints[name], f"{where}.{name}") for name in names}
        return cls(**checked)


@dataclasses.dataclass
class Headline(Record):
    """A chapter's headline figures, saved as ``headline.json`` in its results folder.

    Subclasses set :attr:`CHAPTER` (the chapter that writes it) and declare typed fields.
    """

    CHAPTER: ClassVar[str] = ""
    FILE: ClassVar[str] = HEADLINE_FILE

    @classmethod
    def path(cls, results_dir: str | os.PathLike) -> Path:
        return Path(results_dir) / cls.FILE

    def save(self, results_dir: str | os.PathLike) -> Path:
        """Write ``headline.json`` into ``results_dir`` atomically (NaN as ``null``); return its path."""
        return storage.write_json(self.path(results_dir), self.to_dict())

    @classmethod
    def load(cls, results_dir: str | os.PathLike):
        """Read ``headline.json`` from ``results_dir`` (a folder of a ``CHAPTER`` run) and check it.

        Raises
        ------
        FileNotFoundError
            When the file is not there.
        ResultsError
            When it is not JSON, or a field is missing, unknown or of the wrong type (named).
        """
        path = cls.path(results_dir)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; the '{cls.CHAPTER}' run did not save its headline.")
        try:
            data = json.loads(path.read_text())
        except ValueError as err:
            raise ResultsError(f"{path} is not valid JSON ({err}).") from None
        return cls.from_dict(data, where=f"{cls.__name__} ({path})")


@dataclasses.dataclass
class OverviewHeadline(Headline):
    """Chapter 00 (overview): the size of the book's natural-image set and how natural its photographs are."""

    CHAPTER = "overview"

    n_images: int
    photograph_median_spectral_slope: float


@dataclasses.dataclass
class TrainedVsRandom(Record):
    """One trained-versus-random comparison: ``margin`` is trained − random, with its 95 % interval.

    ``lens`` is the lens's name in the synthesis (``synthesis.LENS_CHAPTERS``).
    """

    lens: str
    model: str
    quantity: str
    trained: float
    random: float
    margin: float
    ci_low: float
    ci_high: float

    def __post_init__(self):
        super().__post_init__()
        for name in ("trained", "random", "margin", "ci_low", "ci_high"):  # whole numbers too, as floats
            setattr(self, name, float(getattr(self, name)))
