"""Coordinates a delta model learns in: angles as ``(sin, cos)``, phasors as Cartesian pairs.

Observations of accelerator and RF systems often hold angles (wrapping at ``+-pi``) and
phasors: an amplitude with a phase, such as a ripple or a cavity field. A network predicting
``next_obs - obs`` in those raw coordinates sees jumps of ``2 pi`` at the wrap and, worse, a
phase that is meaningless (and jumps wildly) whenever its amplitude is near zero, which is
exactly where a controller cancelling the phasor keeps it. :class:`StateCoordinates` maps an
observation to the coordinates the network works in and back:

- an *angle* dimension stays an angle, is fed to the network as ``(sin, cos)``, and its delta
  is wrapped to ``[-pi, pi)``;
- a *phasor* ``(amplitude, phase)`` pair becomes ``(A cos phi, A sin phi)``, where adding
  phasors is adding vectors and a small amplitude is a small vector whatever its phase; the
  prediction is mapped back with ``hypot`` and ``atan2``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _check_dims(dims: tuple[int, ...], obs_dim: int, name: str) -> None:
    if any(not isinstance(d, int) or isinstance(d, bool) or not 0 <= d < obs_dim for d in dims):
        raise ValueError(f"{name} must hold observation indices in [0, {obs_dim}), got {dims}")


class StateCoordinates(nn.Module):
    """Maps observations ``(..., O)`` to model coordinates ``(..., O)`` and back.

    Args:
        obs_dim: observation size ``O``.
        angle_dims: dimensions that are angles in ``[-pi, pi)``.
        phasor_dims: ``(amplitude, phase)`` index pairs; the amplitude must be ``>= 0`` and the
            phase an angle in rad. A dimension may appear only once across both arguments.

    Raises:
        ValueError: an index outside ``[0, O)``, a repeated index, or a malformed pair.
    """

    def __init__(
        self,
        obs_dim: int,
        angle_dims: tuple[int, ...] = (),
        phasor_dims: tuple[tuple[int, int], ...] = (),
    ) -> None:
        super().__init__()
        angle_dims = tuple(angle_dims)
        if any(len(tuple(pair)) != 2 for pair in phasor_dims):
            raise ValueError(
                f"phasor_dims must be (amplitude, phase) index pairs, got {phasor_dims}"
            )
        flat = tuple(d for pair in phasor_dims for d in pair)
        _check_dims(angle_dims, obs_dim, "angle_dims")
        _check_dims(flat, obs_dim, "phasor_dims")
        if len(set(angle_dims + flat)) != len(angle_dims + flat):
            raise ValueError(
                f"angle_dims {angle_dims} and phasor_dims {phasor_dims} must not repeat a dimension"
            )
        self.obs_dim = obs_dim
        self.register_buffer("angle_idx", torch.tensor(angle_dims, dtype=torch.long))
        self.register_buffer("amp_idx", torch.tensor(flat[0::2], dtype=torch.long))
        self.register_buffer("phase_idx", torch.tensor(flat[1::2], dtype=torch.long))

    @property
    def feature_dim(self) -> int:
        """Network input size for the state part: ``O`` plus one per angle (its cosine)."""
        return self.obs_dim + int(self.angle_idx.numel())

    def to_model(self, obs: Tensor) -> Tensor:
        """``obs (..., O)`` -> model coordinates ``(..., O)``: phasors become ``(x, y)``."""
        if self.amp_idx.numel() == 0:
            return obs
        amp = obs.index_select(-1, self.amp_idx)
        phase = obs.index_select(-1, self.phase_idx)
        z = obs.index_copy(-1, self.amp_idx, amp * torch.cos(phase))
        return z.index_copy(-1, self.phase_idx, amp * torch.sin(phase))

    def from_model(self, z: Tensor) -> Tensor:
        """Inverse of :meth:`to_model`: ``(x, y)`` pairs back to ``(hypot, atan2)``."""
        if self.amp_idx.numel() == 0:
            return z
        x = z.index_select(-1, self.amp_idx)
        y = z.index_select(-1, self.phase_idx)
        obs = z.index_copy(-1, self.amp_idx, torch.hypot(x, y))
        return obs.index_copy(-1, self.phase_idx, torch.atan2(y, x))

    def features(self, z: Tensor) -> Tensor:
        """Network state input ``(..., feature_dim)``: angles replaced by ``sin``, ``cos`` appended."""
        if self.angle_idx.numel() == 0:
            return z
        angles = z.index_select(-1, self.angle_idx)
        z = z.index_copy(-1, self.angle_idx, torch.sin(angles))
        return torch.cat([z, torch.cos(angles)], dim=-1)

    def wrap(self, z: Tensor) -> Tensor:
        """Wrap the angle dimensions of ``z (..., O)`` into ``[-pi, pi)``."""
        if self.angle_idx.numel() == 0:
            return z
        angles = z.index_select(-1, self.angle_idx)
        return z.index_copy(
            -1, self.angle_idx, torch.remainder(angles + math.pi, 2 * math.pi) - math.pi
        )
