"""The RSSM seen as an ordinary :class:`DynamicsModel`, so every planner plans in latent space.

Its "observation" is the belief feature vector ``f = [h, z] (F,)`` the agent filtered from the
real observations; ``step`` is the RSSM prior (GRU + transition), and :class:`LatentReward` is
the reward head with the task-function signature. The rollout engine, CEM, MPPI and random
shooting use them unchanged.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from mbrl.models.base import (
    DETERMINISTIC,
    DIFFERENTIABLE,
    EXPECTATION,
    PARTICLES,
    DynamicsModel,
)
from mbrl.models.rssm.model import RSSM, LatentState


class LatentDynamics(DynamicsModel):
    """``DynamicsModel`` over RSSM features: obs ``(M, F)``, action ``(M, A)``, state ``(M, F)``.

    Propagations: ``sample`` (draw the stochastic prior state) and ``expectation`` (its mean);
    the default follows ``sample``, the other is a :meth:`propagating` view. Both are
    differentiable in the state and the action (the sample is reparameterised), which the
    latent actor-critic's dynamics backprop uses (:mod:`mbrl.imagination.latent`).

    Args:
        rssm: the (trained) :class:`RSSM`; shared, not copied.
        sample: sample the prior at each step (default: ``rssm.config.sample_latent_plans``).
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({DIFFERENTIABLE, PARTICLES})
    propagations: ClassVar[tuple[str, ...]] = ("sample", EXPECTATION)

    def __init__(self, rssm: RSSM, sample: bool | None = None) -> None:
        super().__init__()
        self.rssm = rssm
        self.obs_dim = rssm.feature_dim
        self.action_dim = rssm.action_dim
        self.sample = rssm.config.sample_latent_plans if sample is None else bool(sample)
        self.capabilities = self.capabilities_with(self.propagation)  # type: ignore[misc]

    @property
    def propagation(self) -> str:
        """``sample`` or ``expectation``, from ``sample``."""
        return "sample" if self.sample else EXPECTATION

    def capabilities_with(self, propagation: str) -> frozenset[str]:
        """Sampled priors make particles meaningful; the prior mean is deterministic."""
        kind = PARTICLES if propagation == "sample" else DETERMINISTIC
        return frozenset({DIFFERENTIABLE, kind})

    def _split(self, state: Tensor) -> LatentState:
        d = self.rssm.config.deter_size
        return LatentState(state[:, :d], state[:, d:])

    def step(
        self, state: Tensor, action: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Prior step of all ``M`` rows: ``state (M, F)``, ``action (M, A)`` -> ``(M, F)``."""
        return self.step_with(state, action, generator, self.propagation)

    def step_with(
        self,
        state: Tensor,
        action: Tensor,
        generator: torch.Generator | None,
        propagation: str,
    ) -> Tensor:
        """Prior step with ``propagation`` (``sample`` or ``expectation``): ``(M, F)``."""
        if propagation not in self.propagations:
            raise ValueError(
                f"LatentDynamics supports propagation modes {self.propagations}, got {propagation!r}"
            )
        sample = propagation == "sample"
        return self.rssm.prior_step(self._split(state), action, generator, sample).features


class LatentReward:
    """The RSSM reward head as a task function: ``(obs, action, next_obs (M, F)) -> (M,)``.

    Reads the features of the state the action led into (as the RSSM is trained).
    """

    def __init__(self, rssm: RSSM) -> None:
        self.rssm = rssm

    def __call__(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """Predicted rewards ``(M,)`` in env units."""
        return self.rssm.reward(next_obs)
