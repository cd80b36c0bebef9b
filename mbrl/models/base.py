"""The one batched state-space interface every dynamics model offers and every planner uses.

Row layout convention (shared by models, the rollout engine and planners): a model state for
``B`` start observations and ``P`` particles has ``M = P * B`` rows ordered *particle-major*:
row ``p * B + b`` is particle ``p`` of start ``b``. Actions for a step are tiled the same way
(``actions (B, A) -> (P * B, A)``), and per-row results fold back with ``.view(P, B)``.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mbrl.data.buffer import TransitionBatch

ModelState = Any
"""A model's rollout state: a tensor ``(M, S)`` or a small dataclass of tensors with ``M`` rows."""

DIFFERENTIABLE = "differentiable"
"""Capability: ``step`` is differentiable w.r.t. state and action (iLQR, GP-MPC)."""
PARTICLES = "particles"
"""Capability: ``step`` samples, so several particles per start state are meaningful."""
DETERMINISTIC = "deterministic"
"""Capability: ``step`` is deterministic (MCTS may cache transitions)."""


class DynamicsModel(nn.Module, ABC):
    """Base class of all dynamics models.

    Subclasses set ``obs_dim``, ``action_dim`` and ``capabilities`` and implement
    :meth:`initial_state`, :meth:`step` and :meth:`observe`. Models that learn from a
    :class:`~mbrl.data.TransitionBuffer` also implement the training hooks used by
    :func:`mbrl.models.fit`.

    Attributes:
        obs_dim: observation size ``O``.
        action_dim: encoded action size ``A``.
        capabilities: the optional capabilities this model declares (see module constants).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset()
    obs_dim: int
    action_dim: int

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters/buffers (cpu for a model with neither)."""
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def check_obs(self, obs: Tensor, name: str = "obs") -> None:
        """Raise ``ValueError`` unless ``obs`` is ``(B, obs_dim)`` and finite."""
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(
                f"{name} must have shape (B, {self.obs_dim}) for {type(self).__name__}, "
                f"got {tuple(obs.shape)}"
            )
        if not bool(torch.isfinite(obs).all()):
            raise ValueError(
                f"{name} contains NaN or inf; {type(self).__name__} cannot roll it out"
            )

    def initial_state(
        self, obs: Tensor, n_particles: int = 1, generator: torch.Generator | None = None
    ) -> ModelState:
        """State for ``obs (B, O)`` with ``n_particles`` particles each: ``M = P * B`` rows.

        The default tiles the observation (observation-space models).
        """
        self.check_obs(obs)
        return obs.repeat(n_particles, 1)

    @abstractmethod
    def step(
        self, state: ModelState, action: Tensor, generator: torch.Generator | None = None
    ) -> ModelState:
        """One transition of all ``M`` rows: ``action (M, A)``; noise drawn from ``generator``."""

    def observe(self, state: ModelState) -> Tensor:
        """What reward/termination functions read: ``(M, O)`` (the state itself by default)."""
        return state

    # Training hooks (learned models). ``E`` is ``ensemble_size``; 1 for single networks.
    ensemble_size: int = 1

    def update_normalizers(self, batch: TransitionBatch) -> None:
        """Refresh input/output statistics from training data ``batch (N, ...)``."""

    def training_loss(self, batch: TransitionBatch) -> Tensor:
        """Per-member training loss ``(E,)`` on a batch whose fields have leading dims ``(E, B)``."""
        raise NotImplementedError(f"{type(self).__name__} is not trainable from transitions")

    def validation_score(self, batch: TransitionBatch) -> Tensor:
        """Per-member held-out error ``(E,)`` (lower is better) on a batch of ``N`` rows."""
        raise NotImplementedError(f"{type(self).__name__} is not trainable from transitions")

    def on_fit_end(self, validation_scores: Tensor) -> None:
        """Called after fitting with the final per-member scores ``(E,)`` (e.g. to pick elites)."""


@contextlib.contextmanager
def propagation_mode(model: DynamicsModel, mode: str | None) -> Iterator[DynamicsModel]:
    """Within the block, a model with ``propagation`` modes (ensembles) propagates with ``mode``.

    Sets ``model.propagation = mode`` and restores the previous mode afterwards, also on error.
    ``mode=None``, and models without a ``propagation`` attribute, are used as they are.
    """
    previous = getattr(model, "propagation", None)
    if mode is None or previous is None or previous == mode:
        yield model
        return
    model.propagation = mode
    try:
        yield model
    finally:
        model.propagation = previous


def mean_dynamics(model: DynamicsModel) -> contextlib.AbstractContextManager[DynamicsModel]:
    """Within the block, an ensemble steps through its member mean (``"expectation"``:
    deterministic and differentiable); see :func:`propagation_mode`."""
    return propagation_mode(model, "expectation")
