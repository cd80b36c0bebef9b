"""A beam-steering env with a ``Dict`` observation, as accelerator control-system envs have.

``mbrl/DictSteering-v0`` observes ``{"bpm": Box (3,), "setpoint": Box (3,)}``: the readings
of three beam position monitors and the positions they should read. Nothing is registered in
:mod:`mbrl.task_fns` or :mod:`mbrl.agents.presets` for it, so ``mbrl run --env
mbrl/DictSteering-v0`` flattens the observation to ``(6,)`` (gymnasium orders the keys:
``bpm`` at ``[0:3]``, ``setpoint`` at ``[3:6]``; see :class:`~mbrl.spaces.ObservationLayout`)
and learns reward and termination from data, as it would for a user's machine.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

DICT_STEERING_ENV_ID = "mbrl/DictSteering-v0"

RESPONSE = np.array([[1.0, 0.5, 0.2], [0.3, 1.0, 0.5], [0.1, 0.4, 1.0]])
"""BPM reading per unit corrector kick ``(3 BPMs, 3 correctors)`` (well conditioned)."""

KICK_STEP = 0.2
"""Kick change per unit action."""
KICK_LIMIT = 2.0
"""Corrector kicks stay in ``[-KICK_LIMIT, KICK_LIMIT]``."""
BPM_LIMIT = 5.0
"""Observation bounds of the BPM readings (``|RESPONSE| @ KICK_LIMIT`` is below it)."""


class DictSteeringEnv(gym.Env[dict, np.ndarray]):
    """Steer the beam so that three BPMs read their set-points.

    - Observation ``{"bpm": (3,), "setpoint": (3,)}`` float32: ``bpm = RESPONSE @ kicks``
      plus reading noise (std ``noise``), and the episode's set-points.
    - Action ``(3,)`` in ``[-1, 1]``: corrector kick changes, ``kicks' = clip(kicks +
      KICK_STEP * a, -KICK_LIMIT, KICK_LIMIT)``.
    - Reward: ``-|bpm' - setpoint| - 0.01 |a|^2`` (noise-free readings). Never terminates;
      truncated after ``max_steps``.
    - Start: ``kicks ~ U(-1, 1)^3``, ``setpoint ~ U(-0.5, 0.5)^3``.

    Args:
        max_steps: episode length (default 50).
        noise: std of the BPM reading noise (default 0.01).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, max_steps: int = 50, noise: float = 0.01) -> None:
        if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
            raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
        if not (isinstance(noise, int | float) and np.isfinite(noise) and noise >= 0):
            raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
        self.max_steps, self.noise = max_steps, float(noise)
        self.observation_space = spaces.Dict(
            {
                "bpm": spaces.Box(-BPM_LIMIT, BPM_LIMIT, (3,), np.float32),
                "setpoint": spaces.Box(-1.0, 1.0, (3,), np.float32),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
        self._kicks = np.zeros(3)
        self._setpoint = np.zeros(3)
        self._t = 0

    def _obs(self) -> dict[str, np.ndarray]:
        reading = RESPONSE @ self._kicks + self.noise * self.np_random.standard_normal(3)
        return {
            "bpm": np.clip(reading, -BPM_LIMIT, BPM_LIMIT).astype(np.float32),
            "setpoint": self._setpoint.astype(np.float32),
        }

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, np.ndarray], dict]:
        """New kicks and set-points; ``(obs, info)``."""
        super().reset(seed=seed)
        self._kicks = self.np_random.uniform(-1.0, 1.0, 3)
        self._setpoint = self.np_random.uniform(-0.5, 0.5, 3)
        self._t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict]:
        """Change the kicks by ``action (3,)``; ``(obs, reward, terminated, truncated, info)``."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (3,) or not np.isfinite(a).all():
            raise ValueError(f"action must be a finite array of shape (3,), got {action!r}")
        a = np.clip(a, -1.0, 1.0)
        self._kicks = np.clip(self._kicks + KICK_STEP * a, -KICK_LIMIT, KICK_LIMIT)
        self._t += 1
        error = RESPONSE @ self._kicks - self._setpoint
        reward = -float(np.linalg.norm(error)) - 0.01 * float(a @ a)
        return self._obs(), reward, False, self._t >= self.max_steps, {}


def register() -> None:
    """Register :data:`DICT_STEERING_ENV_ID` with gymnasium (idempotent)."""
    if DICT_STEERING_ENV_ID not in gym.registry:
        gym.register(id=DICT_STEERING_ENV_ID, entry_point="mbrl.envs.dict_steering:DictSteeringEnv")


register()
