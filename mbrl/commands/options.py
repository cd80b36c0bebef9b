"""Parsing ``KEY=VALUE`` option flags of the CLI."""

from __future__ import annotations

import argparse
import json
from typing import Any


def parse_key_values(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``["population=300", "noise_beta=2.0"]`` -> ``{"population": 300, "noise_beta": 2.0}``.

    Values are read as JSON (numbers, booleans, lists, null) and fall back to plain strings.

    Raises:
        argparse.ArgumentTypeError: for an item without ``=``.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{flag} expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out
