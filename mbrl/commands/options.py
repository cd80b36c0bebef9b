"""Parsing CLI flags: ``KEY=VALUE`` options, and argparse ``type=`` checks for numbers and
output directories, so bad input stops at parse time with ``mbrl CMD: error: argument --flag:
...`` (exit code 2) before any work."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any

from mbrl.util.paths import check_output_dir


def parse_key_values(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``["population=300", "noise_beta=2.0"]`` -> ``{"population": 300, "noise_beta": 2.0}``.

    Values are read as JSON (numbers, booleans, lists, null) and fall back to plain strings;
    the config they go to checks their types (:func:`mbrl.util.configs.config_from_options`).

    Raises:
        ValueError: for an item without ``=`` or without a key, naming ``flag`` (the CLI
            prints it as one line and exits with code 2).
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type=``: the text as an int ``>= minimum``.

    The returned function raises ``argparse.ArgumentTypeError`` ("expected an int >= 0, got
    '-1'"), which argparse prints after the flag's name.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an int >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"int >= {minimum}"
    return parse


def finite_float(*, minimum: float | None = None) -> Callable[[str], float]:
    """An argparse ``type=``: the text as a finite float (``>= minimum`` when given).

    The returned function raises ``argparse.ArgumentTypeError`` for text that is not a number,
    NaN, an infinity or a value below ``minimum``.
    """
    wanted = "a finite number" + (f" >= {minimum}" if minimum is not None else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or (minimum is not None and value < minimum):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    parse.__name__ = wanted
    return parse


def output_dir(text: str) -> str:
    """An argparse ``type=`` for ``--out DIR``: refuses a file, a path under a file and an
    unwritable place (:func:`mbrl.util.paths.check_output_dir`) before any work is done."""
    try:
        check_output_dir(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text
