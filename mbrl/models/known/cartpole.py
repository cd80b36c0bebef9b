"""CartPole-v1 dynamics written in torch: the true model, for planning without learning noise.

Mirrors :meth:`gymnasium.envs.classic_control.cartpole.CartPoleEnv.step` (Euler integrator) on the
observation ``[x, x_dot, theta, theta_dot]``. The discrete action arrives one-hot encoded
(``(M, 2)``, see :class:`mbrl.spaces.ActionCodec`); the force is ``+force_mag`` where
``argmax == 1`` and ``-force_mag`` otherwise, exactly as the env's ``action == 1`` test::

    temp     = (force + m_p l theta_dot^2 sin theta) / (m_c + m_p)
    theta_acc = (g sin theta - cos theta temp) / (l (4/3 - m_p cos^2 theta / (m_c + m_p)))
    x_acc    = temp - m_p l theta_acc cos theta / (m_c + m_p)
    x' = x + tau x_dot,  x_dot' = x_dot + tau x_acc,  theta' = theta + tau theta_dot,
    theta_dot' = theta_dot + tau theta_acc

Termination (``|x| > 2.4`` or ``|theta| > 12 deg``) is the task function
:func:`mbrl.task_fns.classic.cartpole_termination`, not part of the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from mbrl.models.base import DETERMINISTIC, ModelState
from mbrl.models.checkpoint import register_checkpointable
from mbrl.models.configs import register_config
from mbrl.models.known import KnownModel, register_known_model


@register_config
@dataclass(frozen=True)
class CartPoleConfig:
    """Physical constants of CartPole-v1 (defaults: gymnasium's).

    Attributes:
        gravity: gravitational acceleration (default 9.8).
        masscart: cart mass (default 1.0).
        masspole: pole mass (default 0.1).
        length: half the pole's length (default 0.5).
        force_mag: magnitude of the push (default 10.0).
        tau: time step in seconds (default 0.02).
        semi_implicit: use the semi-implicit Euler integrator instead of gymnasium's default
            explicit ``euler`` (default False).
    """

    gravity: float = 9.8
    masscart: float = 1.0
    masspole: float = 0.1
    length: float = 0.5
    force_mag: float = 10.0
    tau: float = 0.02
    semi_implicit: bool = False

    def __post_init__(self) -> None:
        for name in ("masscart", "masspole", "length", "force_mag", "tau"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not (isinstance(self.gravity, int | float) and math.isfinite(self.gravity)):
            raise ValueError(f"gravity must be a finite number, got {self.gravity!r}")


@register_checkpointable
class KnownCartPole(KnownModel):
    """Exact CartPole-v1 dynamics: ``step(obs (M, 4), action (M, 2) one-hot) -> next obs (M, 4)``.

    Computation runs in the observation's dtype on its device (pass float64 observations for
    bit-level agreement with the env, which integrates in float64). The model has no
    parameters, so :func:`mbrl.models.fit` leaves it untouched. Not differentiable w.r.t. the
    action (the force is chosen by ``argmax``).

    Args:
        config: physical constants; see :class:`CartPoleConfig`.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({DETERMINISTIC})
    config_class: ClassVar[type] = CartPoleConfig

    def __init__(self, config: CartPoleConfig | None = None) -> None:
        super().__init__(config)
        self.obs_dim, self.action_dim = 4, 2

    def step(
        self, state: ModelState, action: Tensor, generator: torch.Generator | None = None
    ) -> ModelState:
        """``state (M, 4)`` observations, ``action (M, 2)`` one-hot pushes -> next ``(M, 4)``.

        Deterministic; ``generator`` is unused.

        Raises:
            ValueError: ``action`` is not ``(M, 2)`` with the state's ``M`` rows.
        """
        if action.ndim != 2 or action.shape != (state.shape[0], 2):
            raise ValueError(
                f"action must have shape ({state.shape[0]}, 2) (one-hot push left/right), "
                f"got {tuple(action.shape)}"
            )
        c = self.config
        total_mass = c.masspole + c.masscart
        polemass_length = c.masspole * c.length
        x, x_dot, theta, theta_dot = state.unbind(dim=1)
        push_right = action[:, 1] > action[:, 0]  # argmax == 1 (ties -> index 0, as argmax)
        force = torch.where(push_right, c.force_mag, -c.force_mag).to(state.dtype)
        costheta, sintheta = torch.cos(theta), torch.sin(theta)
        temp = (force + polemass_length * theta_dot.square() * sintheta) / total_mass
        thetaacc = (c.gravity * sintheta - costheta * temp) / (
            c.length * (4.0 / 3.0 - c.masspole * costheta.square() / total_mass)
        )
        xacc = temp - polemass_length * thetaacc * costheta / total_mass
        if c.semi_implicit:
            x_dot = x_dot + c.tau * xacc
            x = x + c.tau * x_dot
            theta_dot = theta_dot + c.tau * thetaacc
            theta = theta + c.tau * theta_dot
        else:
            x = x + c.tau * x_dot
            x_dot = x_dot + c.tau * xacc
            theta = theta + c.tau * theta_dot
            theta_dot = theta_dot + c.tau * thetaacc
        return torch.stack([x, x_dot, theta, theta_dot], dim=1)


register_known_model("CartPole-v1", KnownCartPole)
