"""Mapping between gymnasium spaces and the flat float tensors models and planners work in.

Models see every action as a float vector ``(A,)``: a ``Box`` action as itself, a ``Discrete(n)``
action as a one-hot vector of size ``n``. :class:`ActionCodec` does that translation at the env
boundary, so nothing on the hot path knows which space it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class ActionCodec:
    """Encodes env actions as float vectors and decodes them back.

    Attributes:
        space: the env's action space (``Box`` of rank 1, or ``Discrete``).
        dim: size ``A`` of the encoded action vector.
        discrete: True for ``Discrete`` spaces (one-hot encoding).
        low: lower bounds ``(A,)`` of the encoded action (0 for one-hot).
        high: upper bounds ``(A,)`` of the encoded action (1 for one-hot).
    """

    space: gym.Space
    dim: int
    discrete: bool
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_space(cls, space: gym.Space) -> ActionCodec:
        """Build the codec for ``space``.

        Raises:
            TypeError: for spaces other than a rank-1 finite ``Box`` or ``Discrete``.
        """
        if isinstance(space, gym.spaces.Box):
            if len(space.shape) != 1:
                raise TypeError(f"action space must be a 1-D Box, got Box with shape {space.shape}")
            if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
                raise TypeError(f"action space Box must have finite bounds, got {space}")
            return cls(
                space,
                int(space.shape[0]),
                False,
                space.low.astype(np.float32),
                space.high.astype(np.float32),
            )
        if isinstance(space, gym.spaces.Discrete):
            n = int(space.n)
            return cls(space, n, True, np.zeros(n, np.float32), np.ones(n, np.float32))
        raise TypeError(
            f"action space {space} is not supported: mbrl handles 1-D Box and Discrete action spaces"
        )

    def encode(self, action: np.ndarray | int) -> np.ndarray:
        """Env action -> float32 vector ``(A,)``."""
        if self.discrete:
            out = np.zeros(self.dim, np.float32)
            out[int(action) - int(self.space.start)] = 1.0
            return out
        return np.asarray(action, dtype=np.float32).reshape(self.dim)

    def decode(self, vector: Tensor | np.ndarray) -> np.ndarray | int:
        """Float vector ``(A,)`` -> env action (clipped ``Box`` array, or ``Discrete`` int)."""
        if isinstance(vector, Tensor):
            vector = vector.detach().to("cpu", torch.float32).numpy()
        vector = np.asarray(vector, dtype=np.float32).reshape(self.dim)
        if self.discrete:
            return int(np.argmax(vector)) + int(self.space.start)
        return np.clip(vector, self.low, self.high).astype(self.space.dtype)

    def bounds(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """Encoded action bounds as tensors ``(low (A,), high (A,))`` on ``device``."""
        return (
            torch.as_tensor(self.low, device=device),
            torch.as_tensor(self.high, device=device),
        )


def observation_dim(space: gym.Space) -> int:
    """Size ``O`` of a flat observation.

    Raises:
        TypeError: for anything but a rank-1 ``Box`` observation space.
    """
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise TypeError(
            f"observation space must be a 1-D Box for vector models, got {space}; "
            "wrap image or dict observations first"
        )
    return int(space.shape[0])
