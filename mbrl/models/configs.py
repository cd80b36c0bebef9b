"""Registry of model config dataclasses, so checkpoints can rebuild them by name."""

from __future__ import annotations

_CONFIGS: dict[str, type] = {}


def register_config(cls: type) -> type:
    """Class decorator: make a config dataclass rebuildable from a checkpoint."""
    _CONFIGS[cls.__name__] = cls
    return cls


def get(name: str) -> type:
    """The registered config dataclass called ``name``.

    Raises:
        ValueError: for an unknown name.
    """
    try:
        return _CONFIGS[name]
    except KeyError as err:
        raise ValueError(f"unknown model config {name!r}; known: {sorted(_CONFIGS)}") from err
