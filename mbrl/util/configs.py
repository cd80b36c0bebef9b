"""Config dataclasses: declared ranges, checked fields, and building them from option dicts.

A config declares each field's valid range once, where the field is defined, with
:func:`bounded`, and calls :func:`check_config` in ``__post_init__``::

    @dataclass(frozen=True)
    class FitConfig:
        lr: float = bounded(1e-3, gt=0)
        max_steps: int = bounded(1500, ge=1)

        def __post_init__(self) -> None:
            check_config(self)

:func:`check_config` checks every field against its annotation (``int``, ``float``, ``bool``,
``str``, ``Literal[...]``, ``X | None``, ``tuple``) and its range, and refuses NaN in any float
field (and infinities unless the range allows them), with one ``TypeError``/``ValueError``
that names the config, the field, what was expected and what was given.

:func:`config_from_options` builds a config from user options (``--planner-opt KEY=VALUE``,
``--model-opt ...``): unknown names are refused, and each value is coerced to its field's type
(``"0.5"`` -> ``0.5``, ``"true"`` -> ``True``) or refused with a message naming the option.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from typing import Any, Literal, Union

_RANGE_KEY = "mbrl_range"


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds of a numeric config field (``None``: unbounded on that side).

    Attributes:
        gt / ge: exclusive / inclusive lower bound.
        lt / le: exclusive / inclusive upper bound.
        allow_inf: whether +-inf is a valid value (NaN never is); default False.
    """

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    allow_inf: bool = False

    def violation(self, value: float) -> str | None:
        """What ``value`` breaks (e.g. ``"> 0"``), or ``None`` when it is in range."""
        for bound, ok, text in (
            (self.gt, lambda b: value > b, "> {}"),
            (self.ge, lambda b: value >= b, ">= {}"),
            (self.lt, lambda b: value < b, "< {}"),
            (self.le, lambda b: value <= b, "<= {}"),
        ):
            if bound is not None and not ok(bound):
                return text.format(bound)
        return None

    def describe(self) -> str:
        """The bounds in words, e.g. ``">= 0 and <= 1"`` (empty when unbounded)."""
        parts = [
            text.format(bound)
            for bound, text in (
                (self.gt, "> {}"),
                (self.ge, ">= {}"),
                (self.lt, "< {}"),
                (self.le, "<= {}"),
            )
            if bound is not None
        ]
        return " and ".join(parts)


def bounded(
    default: Any,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    allow_inf: bool = False,
) -> Any:
    """A dataclass field with ``default`` whose value :func:`check_config` keeps in the range
    (see :class:`Range` for the bounds)."""
    rng = Range(gt=gt, ge=ge, lt=lt, le=le, allow_inf=allow_inf)
    return dataclasses.field(default=default, metadata={_RANGE_KEY: rng})


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """Resolved annotations of a dataclass's fields (string annotations evaluated once)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation naming something unimportable: check nothing by type
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) is Union or isinstance(tp, types.UnionType)


def _type_name(tp: Any) -> str:
    if tp is float:
        return "a float"
    if tp is int:
        return "an int"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(tp))
    if _is_union(tp):
        return " or ".join(
            "None" if a is type(None) else _type_name(a) for a in typing.get_args(tp)
        )
    origin = typing.get_origin(tp) or tp
    if origin in (tuple, list):
        return "a list"
    return getattr(tp, "__name__", str(tp))


class _Mismatch(Exception):
    """``value`` does not fit the annotation (internal: turned into a TypeError/ValueError)."""


def _coerce(value: Any, tp: Any, *, from_text: bool) -> Any:
    """``value`` as type ``tp``; strings are parsed only when ``from_text`` (user options).

    Raises:
        _Mismatch: when it does not fit.
    """
    if tp is Any or tp is object:
        return value
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, from_text=from_text)
            except _Mismatch:
                continue
        raise _Mismatch
    if typing.get_origin(tp) is Literal:
        if value in typing.get_args(tp):
            return value
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _Mismatch
    if tp is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        if from_text and isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
        if from_text and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    origin = typing.get_origin(tp) or tp
    if origin is tuple:
        if isinstance(value, tuple | list):
            return tuple(value) if from_text else value
        raise _Mismatch
    if origin is list:
        if isinstance(value, tuple | list):
            return list(value) if from_text else value
        raise _Mismatch
    return value  # other annotations (tensors, callables, nested configs) are not checked here


def _check_number(owner: str, name: str, value: Any, rng: Range | None) -> None:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return
    number = float(value)
    if math.isnan(number) or (math.isinf(number) and not (rng is not None and rng.allow_inf)):
        wanted = " ".join(filter(None, ("a finite number", rng.describe() if rng else "")))
        raise ValueError(f"{owner}.{name} must be {wanted}, got {value}")
    problem = rng.violation(number) if rng is not None else None
    if problem is not None:
        raise ValueError(f"{owner}.{name} must be {problem}, got {value}")


def check_config(config: Any) -> None:
    """Check every field of the dataclass instance ``config`` against its annotation and its
    declared :func:`bounded` range; float fields must not be NaN (nor inf, unless allowed).

    Raises:
        TypeError: a value of the wrong type, e.g. ``FitConfig.max_steps must be an int, got
            'abc' (str)``.
        ValueError: a value out of range, NaN or a refused infinity, e.g. ``FitConfig.lr must
            be > 0, got -1.0`` or ``FitConfig.lr must be a finite number > 0, got nan``.
    """
    cls = type(config)
    owner = cls.__name__
    types_ = _field_types(cls)
    for f in dataclasses.fields(cls):
        value = getattr(config, f.name)
        tp = types_[f.name]
        try:
            _coerce(value, tp, from_text=False)
        except _Mismatch:
            raise TypeError(
                f"{owner}.{f.name} must be {_type_name(tp)}, got {value!r} ({type(value).__name__})"
            ) from None
        _check_number(owner, f.name, value, f.metadata.get(_RANGE_KEY))


def config_from_options(
    config_cls: type, options: dict[str, Any], base: Any | None = None, source: str = ""
) -> Any:
    """``base`` (or ``config_cls()``) with ``options`` replacing fields.

    Each value is coerced to its field's annotated type first (options given as text, such as
    ``--planner-opt temperature=0.5``, arrive as strings or JSON values) and NaN is refused;
    ranges are the config's own ``__post_init__`` checks (:func:`check_config`), which
    ``dataclasses.replace`` runs.

    Args:
        config_cls: the config dataclass.
        options: ``{field name: value}``.
        base: the config whose other fields are kept (default ``config_cls()``).
        source: how the user gave the options, e.g. ``"--planner-opt"``, for the messages
            (default: ``"option"``).

    Raises:
        ValueError: option names that are not fields of ``config_cls`` (the message lists the
            valid ones), a value that does not fit its field's type, e.g. ``--planner-opt
            temperature (MPPIConfig.temperature): expected a float, got 'abc'``, or NaN; and
            whatever the config's ``__post_init__`` raises.
    """
    names = {f.name for f in dataclasses.fields(config_cls)}
    label = source or "option"
    unknown = sorted(set(options) - names)
    if unknown:
        raise ValueError(
            f"unknown {label}(s) {unknown} for {config_cls.__name__}; valid: {sorted(names)}"
        )
    types_ = _field_types(config_cls)
    coerced = {}
    for key, value in options.items():
        tp = types_[key]
        try:
            coerced[key] = _coerce(value, tp, from_text=True)
        except _Mismatch:
            raise ValueError(
                f"{label} {key} ({config_cls.__name__}.{key}): expected {_type_name(tp)}, "
                f"got {value!r}"
            ) from None
        if isinstance(coerced[key], float) and math.isnan(coerced[key]):
            raise ValueError(
                f"{label} {key} ({config_cls.__name__}.{key}): expected a number, got NaN"
            )
    return dataclasses.replace(base if base is not None else config_cls(), **coerced)
