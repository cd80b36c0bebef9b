"""Pendulum-v1 dynamics written in torch: the true model, for planning without learning noise.

Mirrors :meth:`gymnasium.envs.classic_control.pendulum.PendulumEnv.step` on the observation
``[cos th, sin th, thdot]``: the torque is clipped to ``[-max_torque, max_torque]``, then

    newthdot = clip(thdot + (3 g / (2 l) sin th + 3 / (m l^2) u) dt, -max_speed, max_speed)
    newth    = th + newthdot dt

The angle is recovered from the observation with ``atan2``, so the model works in observation
space (state = observation) and is differentiable w.r.t. observation and action almost
everywhere (the two clips, :func:`mbrl.util.clip.clip`, have derivative 1 up to and including
their bounds and 0 beyond).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from mbrl.models.base import DETERMINISTIC, DIFFERENTIABLE, ModelState
from mbrl.models.checkpoint import register_checkpointable
from mbrl.models.configs import register_config
from mbrl.models.known import KnownModel, register_known_model
from mbrl.util.clip import clip


@register_config
@dataclass(frozen=True)
class PendulumConfig:
    """Physical constants of Pendulum-v1 (defaults: gymnasium's).

    Attributes:
        g: gravity (default 10.0).
        m: mass (default 1.0).
        l: length (default 1.0).
        dt: time step (default 0.05).
        max_speed: angular velocity clip (default 8.0).
        max_torque: torque clip (default 2.0).
    """

    g: float = 10.0
    m: float = 1.0
    l: float = 1.0  # noqa: E741 (gymnasium's name)
    dt: float = 0.05
    max_speed: float = 8.0
    max_torque: float = 2.0

    def __post_init__(self) -> None:
        for name in ("m", "l", "dt", "max_speed", "max_torque"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


@register_checkpointable
class KnownPendulum(KnownModel):
    """Exact Pendulum-v1 dynamics: ``step(obs (M, 3), action (M, 1)) -> next obs (M, 3)``.

    Observations are ``[cos th, sin th, thdot]``; computation runs in the observation's dtype on
    its device. The model has no parameters, so :func:`mbrl.models.fit` leaves it untouched.

    Args:
        config: physical constants; see :class:`PendulumConfig`.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({DIFFERENTIABLE, DETERMINISTIC})
    config_class: ClassVar[type] = PendulumConfig

    def __init__(self, config: PendulumConfig | None = None) -> None:
        super().__init__(config)
        self.obs_dim, self.action_dim = 3, 1

    def step(
        self, state: ModelState, action: Tensor, generator: torch.Generator | None = None
    ) -> ModelState:
        """``state (M, 3)`` observations, ``action (M, 1)`` torques -> next observations ``(M, 3)``.

        Deterministic; ``generator`` is unused.
        """
        c = self.config
        th = torch.atan2(state[:, 1], state[:, 0])
        thdot = state[:, 2]
        u = clip(action[:, 0].to(state.dtype), -c.max_torque, c.max_torque)
        accel = 3.0 * c.g / (2.0 * c.l) * torch.sin(th) + 3.0 / (c.m * c.l**2) * u
        newthdot = clip(thdot + accel * c.dt, -c.max_speed, c.max_speed)
        newth = th + newthdot * c.dt
        return torch.stack([torch.cos(newth), torch.sin(newth), newthdot], dim=1)


register_known_model("Pendulum-v1", KnownPendulum)
