"""Early, explicit input checks with error messages that name the argument and expected shape."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def as_float_tensor(
    x: Tensor | np.ndarray | Sequence[float],
    name: str,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Convert array-likes to a float tensor on ``device``.

    Raises:
        TypeError: if ``x`` cannot be converted to a numeric tensor.
    """
    if isinstance(x, Tensor):
        return x.to(device=device, dtype=dtype)
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be numeric array-like, got {type(x).__name__}") from err
    return torch.as_tensor(arr, dtype=dtype, device=device)


def check_shape(x: Tensor, name: str, expected: Sequence[int | None]) -> None:
    """Check ``x.shape`` against ``expected`` (``None`` = any size).

    Raises:
        ValueError: naming ``name``, the expected and the actual shape.
    """
    shape = tuple(x.shape)
    ok = len(shape) == len(expected) and all(
        e is None or e == s for e, s in zip(expected, shape, strict=True)
    )
    if not ok:
        pretty = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name} must have shape {pretty}, got {shape}")


def check_finite(x: Tensor, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if ``x`` holds NaN or inf."""
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf): {x}")


def check_positive_int(value: int, name: str, *, minimum: int = 1) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``value`` is an int ``>= minimum``."""
    if not isinstance(value, int | np.integer) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def check_fraction(value: float, name: str, *, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` lies in (0, 1] (or [0, 1] with ``allow_zero``)."""
    lo_ok = value >= 0 if allow_zero else value > 0
    if not (lo_ok and value <= 1):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise ValueError(f"{name} must lie in {interval}, got {value}")
