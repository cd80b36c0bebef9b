"""Explicit randomness: every stochastic piece of mbrl takes a ``torch.Generator`` made here."""

from __future__ import annotations

import random

import numpy as np
import torch


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Turn ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``None`` (cpu) into a :class:`torch.device`.

    Raises:
        ValueError: when CUDA is asked for but not available, or the string is not a device.
    """
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available here")
    return dev


def make_generator(seed: int, device: str | torch.device | None = None) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    gen = torch.Generator(device=resolve_device(device))
    gen.manual_seed(int(seed))
    return gen


def derive_seed(generator: torch.Generator) -> int:
    """Draw a fresh 63-bit seed from ``generator`` (for seeding sub-components)."""
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global RNGs.

    mbrl itself never draws from global RNGs; this is for third-party code (e.g. torch's
    default weight initialisation, SB3) that does.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (third-party code reads the global RNG)
    torch.manual_seed(seed)
