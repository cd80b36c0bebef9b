"""Environments shipped with mbrl; their gymnasium ids (:mod:`mbrl.gym_ids`) are registered
when :mod:`mbrl` is imported, and their known task functions when :mod:`mbrl.task_fns` is.

- ``mbrl/AwakeSteering-v0``: :class:`AwakeSteeringEnv`, AWAKE electron-line trajectory steering
  with the real TT43 optics (obs ``(10,)`` mm, action ``(10,)`` in ``[-1, 1]``).
- ``mbrl/SpillControl-v0``: :class:`SpillControlEnv`, SPS spill 50 Hz ripple cancellation with
  a slowly drifting ripple (obs ``(4,)``, action ``(2,)`` in ``[-1, 1]``).

Both count their own steps and truncate after ``max_steps`` (no gymnasium ``TimeLimit``); their
known vectorised torch reward/termination functions are registered in :mod:`mbrl.task_fns`
under the same ids (for the default constructor arguments).
:class:`DomainRandomization` re-draws physical parameters per episode.

POMDP test envs (:mod:`mbrl.envs.observation_wrappers`): ``mbrl/PendulumNoVel-v0`` (Pendulum-v1
observing ``(cos, sin)`` only) and ``mbrl/PendulumPixels-v0`` (a ``(32, 32, 3) uint8`` image of
the rod; ``gymnasium.make(..., size=64)`` for 64 x 64).

``mbrl/PointMassGoal-v0`` (:mod:`mbrl.envs.point_mass`): a 2-D goal-reaching point mass
(obs ``(6,)``, action ``(2,)``) with no preset and no known task functions, for runs that
learn reward and termination as a new user's env would.

``mbrl/CartPoleSwingUp-v0`` (:mod:`mbrl.envs.cartpole_swingup`): a cart-pole swing-up from
hanging, never terminating (obs ``(5,)``, action ``(1,)``, 200 steps), no preset and no known
task functions, with a hand-written reference controller.

``mbrl/DictSteering-v0`` (:mod:`mbrl.envs.dict_steering`): beam steering observing a ``Dict``
``{"bpm": (3,), "setpoint": (3,)}`` (action ``(3,)``), no preset and no known task functions;
:func:`mbrl.agents.env_factory.make_env` flattens its observation to ``(6,)``.
"""

from __future__ import annotations

from mbrl.envs.awake import (
    AwakeSteeringEnv,
    awake_planning_reward,
    awake_reward,
    awake_termination,
    load_twiss,
    make_awake_task_fns,
    tt43_response_matrix,
)
from mbrl.envs.cartpole_swingup import CartPoleSwingUpEnv, swing_up_reference
from mbrl.envs.dict_steering import DICT_STEERING_ENV_ID, DictSteeringEnv
from mbrl.envs.observation_wrappers import (
    ActionRepeat,
    DropVelocity,
    PixelObservation,
    render_pendulum,
)
from mbrl.envs.point_mass import POINT_MASS_ENV_ID, PointMassGoalEnv
from mbrl.envs.randomization import DomainRandomization
from mbrl.envs.spill import SpillControlEnv, spill_reward
from mbrl.gym_ids import (
    AWAKE_ENV_ID,
    CARTPOLE_SWINGUP_ENV_ID,
    PENDULUM_NOVEL_ENV_ID,
    PENDULUM_PIXELS_ENV_ID,
    SPILL_ENV_ID,
    register_envs,
)
from mbrl.task_fns.registry import get_task_fns, register_task_fns

__all__ = [
    "AWAKE_ENV_ID",
    "CARTPOLE_SWINGUP_ENV_ID",
    "DICT_STEERING_ENV_ID",
    "PENDULUM_NOVEL_ENV_ID",
    "PENDULUM_PIXELS_ENV_ID",
    "POINT_MASS_ENV_ID",
    "SPILL_ENV_ID",
    "ActionRepeat",
    "AwakeSteeringEnv",
    "CartPoleSwingUpEnv",
    "DictSteeringEnv",
    "DomainRandomization",
    "DropVelocity",
    "PixelObservation",
    "PointMassGoalEnv",
    "SpillControlEnv",
    "awake_planning_reward",
    "awake_reward",
    "awake_termination",
    "load_twiss",
    "make_awake_task_fns",
    "render_pendulum",
    "spill_reward",
    "swing_up_reference",
    "tt43_response_matrix",
]


def _register() -> None:
    """Register the envs and their task functions (idempotent)."""
    register_envs()
    if get_task_fns(AWAKE_ENV_ID) is None:
        register_task_fns(
            AWAKE_ENV_ID,
            awake_reward,
            awake_termination,
            planning_reward=awake_planning_reward,
        )
    if get_task_fns(SPILL_ENV_ID) is None:
        register_task_fns(SPILL_ENV_ID, spill_reward)


_register()
