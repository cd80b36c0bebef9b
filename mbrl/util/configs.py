"""Building config dataclasses from user-supplied option dicts."""

from __future__ import annotations

import dataclasses
from typing import Any


def config_from_options(config_cls: type, options: dict[str, Any], base: Any | None = None) -> Any:
    """``base`` (or ``config_cls()``) with ``options`` replacing fields.

    Raises:
        ValueError: for option names that are not fields of ``config_cls`` (the message lists
            the valid ones).
    """
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for {config_cls.__name__}; valid: {sorted(names)}"
        )
    return dataclasses.replace(base if base is not None else config_cls(), **options)
