"""Per-feature standardisation stored as module buffers (saved with the model's state)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Normalizer(nn.Module):
    """Standardises features of size ``D``: ``(x - mean) / std``.

    Buffers ``mean (D,)`` and ``std (D,)`` live in the owning model's ``state_dict``, so a
    save/load round trip reproduces predictions exactly.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: Tensor) -> None:
        """Set statistics from data ``x (N, D)``; near-constant features keep unit scale."""
        x = x.reshape(-1, self.mean.shape[0]).to(self.mean)
        self.mean.copy_(x.mean(0))
        std = x.std(0, unbiased=False) if x.shape[0] > 1 else torch.ones_like(self.std)
        self.std.copy_(torch.where(std < self.eps, torch.ones_like(std), std))

    def normalize(self, x: Tensor) -> Tensor:
        """``x (..., D) -> (x - mean) / std`` in ``x``'s dtype."""
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def denormalize(self, x: Tensor) -> Tensor:
        """Inverse of :meth:`normalize`."""
        return x * self.std.to(x.dtype) + self.mean.to(x.dtype)
