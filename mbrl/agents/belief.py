"""An agent that filters a latent belief from observations and plans in latent space (PlaNet)."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor

from mbrl.models.rssm.model import RSSM, LatentState
from mbrl.planners.base import Planner
from mbrl.planners.deadline import PlanStats
from mbrl.spaces import ActionCodec


class BeliefAgent:
    """Keeps the RSSM belief ``(h, z)`` and the last action; plans from the feature vector.

    ``act(obs)`` filters ``obs`` with the posterior (the last action led into it), asks
    ``planner`` (built over :class:`~mbrl.models.rssm.latent.LatentDynamics`, so it sees an
    ordinary ``(F,)`` observation) for a plan, adds Gaussian exploration noise to its first
    action, clips it to the bounds and remembers it. It replans at every call, so before each
    plan but the first of an episode it calls ``planner.advance(1)``. With an
    :class:`~mbrl.envs.observation_wrappers.ActionRepeat` env each call covers ``R`` env steps.

    Args:
        rssm: the trained model (shared with the planner's latent view).
        planner: any planner over the RSSM's latent view.
        codec: the env's action codec (checked against the planner here).
        generator: randomness for posterior samples and exploration noise (model's device).
        exploration_noise: std of the action noise as a fraction of the half range of each
            action dimension (default 0.0; PlaNet: 0.3 while collecting).

    Attributes:
        plan_seconds: wall time of each ``plan`` call since the last :meth:`reset`.
        plan_stats: the planner's :class:`~mbrl.planners.deadline.PlanStats` (wall time,
            work done and deadline misses of each ``plan`` call; not cleared by :meth:`reset`).
        state: the current belief, ``h (1, D)``, ``z (1, S)``.
    """

    def __init__(
        self,
        rssm: RSSM,
        planner: Planner,
        codec: ActionCodec,
        generator: torch.Generator,
        exploration_noise: float = 0.0,
    ) -> None:
        planner.check_action_space(codec)
        if codec.discrete:
            raise TypeError("BeliefAgent acts in continuous (Box) action spaces only")
        if exploration_noise < 0:
            raise ValueError(f"exploration_noise must be >= 0, got {exploration_noise}")
        self.rssm = rssm
        self.planner = planner
        self.codec = codec
        self.generator = generator
        self.exploration_noise = float(exploration_noise)
        low, high = codec.bounds(rssm.device)
        self._low, self._high = low, high
        self.plan_seconds: list[float] = []
        self.reset()

    @property
    def plan_stats(self) -> PlanStats:
        """The planner's record of its ``plan`` calls (see :mod:`mbrl.planners.deadline`)."""
        return self.planner.plan_stats

    def reset(self) -> None:
        """New episode: zero belief and last action, planner warm start forgotten."""
        self.planner.reset()
        self.state: LatentState = self.rssm.initial_state(1)
        self._last_action = torch.zeros(1, self.rssm.action_dim, device=self.rssm.device)
        self.plan_seconds = []
        self._planned = False

    def observe(self, obs: np.ndarray | Tensor) -> Tensor:
        """Filter one observation ``(*obs_shape)`` into the belief; returns features ``(F,)``.

        Raises:
            TypeError / ValueError: wrong dtype (images must be uint8) or shape, naming both.
        """
        x = torch.as_tensor(np.asarray(obs) if not isinstance(obs, Tensor) else obs)
        if not self.rssm.is_image:
            x = x.to(torch.float32)
        with torch.no_grad():
            self.state = self.rssm.filter_step(
                self.state, self._last_action, x.to(self.rssm.device).unsqueeze(0), self.generator
            )
        return self.state.features[0]

    def act(self, obs: np.ndarray | Tensor) -> np.ndarray:
        """Env action for observation ``obs (*obs_shape)`` (Box array, clipped)."""
        features = self.observe(obs)
        start = time.perf_counter()
        if self._planned:
            self.planner.advance(1)
        action = self.planner.plan(features)[0]
        self._planned = True
        if self.exploration_noise > 0:
            half = (self._high - self._low) / 2
            noise = torch.randn(
                action.shape, generator=self.generator, device=action.device, dtype=action.dtype
            )
            action = action + self.exploration_noise * half * noise
        action = torch.minimum(torch.maximum(action, self._low), self._high)
        self._last_action = action.unsqueeze(0)
        decoded = self.codec.decode(action)  # host copy waits for the device
        self.plan_seconds.append(time.perf_counter() - start)
        return decoded
