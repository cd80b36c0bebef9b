"""A cart-pole swing-up without termination: the pole starts hanging and must be swung up and
balanced; the cart runs between walls. No preset and no known task functions are registered
for ``mbrl/CartPoleSwingUp-v0``, so ``mbrl run`` learns its reward as it would for a user's
env (a swing-up nobody tuned for; gymnasium's ``CartPole-v1`` only balances, and ends when
the pole falls).

:func:`swing_up_reference` is a hand-written controller for it (energy pumping, then LQR of the
linearised upright), the reference ``scripts/reference_controllers.py`` compares MPC against.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

CART_MASS, POLE_MASS, POLE_LENGTH, GRAVITY = 0.5, 0.5, 0.6, 9.81
"""Cart and pole-tip masses (kg), pole length (m), gravity (m/s^2)."""
MAX_FORCE = 10.0
"""Force (N) per unit action."""
TRACK = 2.0
"""The cart stays in ``[-TRACK, TRACK]`` m; at a wall its velocity is zeroed."""
DT, SUBSTEPS = 0.05, 10
"""Control period (s) and the integration substeps within it."""


def _accelerations(state: np.ndarray, force: float) -> tuple[float, float]:
    """``(x'', theta'')`` of the cart-pole (point mass at the pole's tip, theta from upright)."""
    _, x_dot, theta, theta_dot = state
    sin, cos = np.sin(theta), np.cos(theta)
    friction = 0.1 * x_dot
    x_acc = (force - friction + POLE_MASS * sin * (POLE_LENGTH * theta_dot**2 - GRAVITY * cos)) / (
        CART_MASS + POLE_MASS * sin**2
    )
    theta_acc = (GRAVITY * sin - x_acc * cos) / POLE_LENGTH
    return x_acc, theta_acc


class CartPoleSwingUpEnv(gym.Env[np.ndarray, np.ndarray]):
    """Swing the pole up from hanging and keep it upright with the cart near the centre.

    - State ``(x, x', theta, theta')``, theta from upright; start hanging, ``theta = pi``,
      plus ``U(-0.05, 0.05)`` on every component.
    - Observation ``(5,)`` float32 ``[x, x', cos theta, sin theta, theta']``.
    - Action ``(1,)`` in ``[-1, 1]``: cart force, ``MAX_FORCE`` N per unit.
    - Reward: ``cos theta - 0.1 x^2 - 0.01 a^2`` (about 1 upright at the centre, -1 hanging).
    - Never terminates; truncated after ``max_steps`` (default 200: 10 s).

    Args:
        max_steps: episode length (default 200).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, max_steps: int = 200) -> None:
        if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
            raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
        self.max_steps = max_steps
        high = np.array([TRACK, 20.0, 1.0, 1.0, 40.0], dtype=np.float32)
        self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._state = np.zeros(4)
        self._t = 0

    def _obs(self) -> np.ndarray:
        x, x_dot, theta, theta_dot = self._state
        obs = [x, x_dot, np.cos(theta), np.sin(theta), theta_dot]
        return np.clip(obs, self.observation_space.low, self.observation_space.high).astype(
            np.float32
        )

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict]:
        """The pole hanging, the cart near the centre; ``(obs, info)``."""
        super().reset(seed=seed)
        self._state = np.array([0.0, 0.0, np.pi, 0.0]) + self.np_random.uniform(-0.05, 0.05, 4)
        self._t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Push the cart with ``action (1,)``; ``(obs, reward, terminated, truncated, info)``."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (1,) or not np.isfinite(a).all():
            raise ValueError(f"action must be a finite array of shape (1,), got {action!r}")
        a = np.clip(a, -1.0, 1.0)
        force, h = MAX_FORCE * float(a[0]), DT / SUBSTEPS
        state = self._state.copy()
        for _ in range(SUBSTEPS):  # semi-implicit Euler
            x_acc, theta_acc = _accelerations(state, force)
            state[1] += h * x_acc
            state[3] += h * theta_acc
            state[0] += h * state[1]
            state[2] += h * state[3]
            if abs(state[0]) > TRACK:
                state[0], state[1] = np.clip(state[0], -TRACK, TRACK), 0.0
        state[2] = (state[2] + np.pi) % (2 * np.pi) - np.pi
        self._state = state
        self._t += 1
        reward = float(np.cos(state[2]) - 0.1 * state[0] ** 2 - 0.01 * a[0] ** 2)
        return self._obs(), reward, False, self._t >= self.max_steps, {}


@functools.cache
def upright_gain() -> np.ndarray:
    """LQR gain ``K (1, 4)`` of the cart-pole linearised upright (force ``-K s`` in N)."""
    from scipy.linalg import solve_continuous_are  # late: scipy loads only when used

    m, mc, length, g = POLE_MASS, CART_MASS, POLE_LENGTH, GRAVITY
    a = np.array(
        [
            [0, 1, 0, 0],
            [0, -0.1 / mc, -m * g / mc, 0],
            [0, 0, 0, 1],
            [0, 0.1 / (mc * length), (mc + m) * g / (mc * length), 0],
        ]
    )
    b = np.array([[0], [1 / mc], [0], [-1 / (mc * length)]])
    q, r = np.diag([1.0, 0.1, 10.0, 0.1]), np.array([[0.05]])
    p = solve_continuous_are(a, b, q, r)
    return np.linalg.solve(r, b.T @ p)


def swing_up_reference(obs: np.ndarray) -> np.ndarray:
    """Reference action ``(1,)`` from ``obs (5,)``: LQR within 0.5 rad of upright, else pump
    the pole's energy towards the upright's with a pull of the cart to the centre (gains the
    best of a small grid on 3 episodes; over 30 episodes it returns 148 of at most 200,
    random actions -152)."""
    x, x_dot, cos, sin, theta_dot = (float(v) for v in obs)
    theta = np.arctan2(sin, cos)
    if cos > np.cos(0.5):
        force = -float(upright_gain()[0] @ np.array([x, x_dot, theta, theta_dot]))
    else:
        m, length = POLE_MASS, POLE_LENGTH
        energy = 0.5 * m * length**2 * theta_dot**2 + m * GRAVITY * length * (cos - 1.0)
        # dE/dt = -m l theta' x'' cos theta: push against theta' cos theta while E < 0.
        pump = -10.0 * (0.0 - energy) * np.sign(theta_dot * cos + 1e-9)
        force = pump - 5.0 * x - 1.0 * x_dot
    return np.array([np.clip(force / MAX_FORCE, -1.0, 1.0)], dtype=np.float32)
