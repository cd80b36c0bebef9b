"""A 2-D goal-reaching point mass with no preset and no known task functions (a test env).

``mbrl/PointMassGoal-v0`` is the smallest env that exercises the ``--reward learned`` path with
a goal in the observation: ``mbrl run --env mbrl.envs.point_mass:mbrl/PointMassGoal-v0``
(or just ``--env mbrl/PointMassGoal-v0``, since :mod:`mbrl.envs` registers it). Nothing is
registered in :mod:`mbrl.task_fns` and :mod:`mbrl.agents.presets` has no entry for it, so a
run learns reward and termination models from data, as it would for a new user's env.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

POINT_MASS_ENV_ID = "mbrl/PointMassGoal-v0"

DEFAULT_MAX_STEPS = 100
"""Episode step limit (truncation)."""


class PointMassGoalEnv(gym.Env[np.ndarray, np.ndarray]):
    """Point mass in the box ``[-1, 1]^2`` pushed towards a goal drawn per episode.

    - Observation ``(6,)`` float32 ``[x, y, vx, vy, gx, gy]``: position, velocity, goal.
    - Action ``(2,)`` in ``[-1, 1]``: force; out-of-box actions are clipped.
    - Dynamics (``dt = 0.1``, damping 0.1): ``v' = 0.9 v + dt * a``, ``p' = p + dt * v'``;
      positions leaving the box are clipped to it and the velocity across the wall is zeroed.
    - Reward: ``-|p' - g| - 0.01 |a|^2``. Never terminates; truncated after ``max_steps``.
    - Start: ``p, g ~ U(-0.8, 0.8)^2`` independently, ``v = 0``.

    Args:
        max_steps: episode length (default 100).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, max_steps: int = DEFAULT_MAX_STEPS) -> None:
        if not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
        self.max_steps = max_steps
        self.dt, self.damping = 0.1, 0.1
        high = np.array([1.0, 1.0, np.inf, np.inf, 1.0, 1.0], dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._state = np.zeros(6)
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        """New start position and goal; ``(obs (6,), info)``."""
        super().reset(seed=seed)
        pos = self.np_random.uniform(-0.8, 0.8, size=2)
        goal = self.np_random.uniform(-0.8, 0.8, size=2)
        self._state = np.concatenate([pos, np.zeros(2), goal])
        self._t = 0
        return self._state.astype(np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Apply force ``action (2,)``; ``(obs (6,), reward, terminated, truncated, info)``."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (2,) or not np.isfinite(a).all():
            raise ValueError(f"action must be a finite array of shape (2,), got {action!r}")
        a = np.clip(a, -1.0, 1.0)
        pos, vel, goal = self._state[:2], self._state[2:4], self._state[4:]
        vel = (1.0 - self.damping) * vel + self.dt * a
        pos = pos + self.dt * vel
        wall = np.abs(pos) > 1.0
        pos, vel = np.clip(pos, -1.0, 1.0), np.where(wall, 0.0, vel)
        self._state = np.concatenate([pos, vel, goal])
        self._t += 1
        reward = -float(np.linalg.norm(pos - goal)) - 0.01 * float(a @ a)
        truncated = self._t >= self.max_steps
        return self._state.astype(np.float32), reward, False, truncated, {}


def register() -> None:
    """Register :data:`POINT_MASS_ENV_ID` with gymnasium (idempotent)."""
    if POINT_MASS_ENV_ID not in gym.registry:
        gym.register(id=POINT_MASS_ENV_ID, entry_point="mbrl.envs.point_mass:PointMassGoalEnv")


register()
