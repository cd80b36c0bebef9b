"""Clipping whose derivative does not depend on the torch version."""

from __future__ import annotations

import torch
from torch import Tensor


def clip(x: Tensor, low: float, high: float) -> Tensor:
    """``x (...)`` clipped to ``[low, high]``, with derivative 1 on the closed interval and 0
    strictly outside it.

    torch 2.14 changed ``clamp``'s derivative *at* a bound from 1 to 0. A control-limited
    optimiser such as iLQR keeps actions exactly on their bound; with a zero derivative there
    the action appears to have no effect, so the solver never moves it back inside and settles
    in a bang-bang local optimum (the Pendulum swing-up failed). Differentiable physics and
    rewards use this instead, for the same result on every torch version.
    """
    inside = (x >= low) & (x <= high)
    return torch.where(inside, x, x.clamp(low, high).detach())
