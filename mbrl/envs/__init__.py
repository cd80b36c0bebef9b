"""Environments shipped with mbrl, registered with gymnasium when :mod:`mbrl` is imported.

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
"""

from __future__ import annotations

import gymnasium

from mbrl.envs.awake import (
    AwakeSteeringEnv,
    awake_planning_reward,
    awake_reward,
    awake_termination,
    load_twiss,
    make_awake_task_fns,
    tt43_response_matrix,
)
from mbrl.envs.observation_wrappers import (
    ActionRepeat,
    DropVelocity,
    PixelObservation,
    render_pendulum,
)
from mbrl.envs.point_mass import POINT_MASS_ENV_ID, PointMassGoalEnv
from mbrl.envs.randomization import DomainRandomization
from mbrl.envs.spill import SpillControlEnv, spill_reward
from mbrl.task_fns.registry import get_task_fns, register_task_fns

AWAKE_ENV_ID = "mbrl/AwakeSteering-v0"
SPILL_ENV_ID = "mbrl/SpillControl-v0"
PENDULUM_NOVEL_ENV_ID = "mbrl/PendulumNoVel-v0"
PENDULUM_PIXELS_ENV_ID = "mbrl/PendulumPixels-v0"

__all__ = [
    "AWAKE_ENV_ID",
    "PENDULUM_NOVEL_ENV_ID",
    "PENDULUM_PIXELS_ENV_ID",
    "POINT_MASS_ENV_ID",
    "SPILL_ENV_ID",
    "ActionRepeat",
    "AwakeSteeringEnv",
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
    "tt43_response_matrix",
]


def _register() -> None:
    """Register both envs and their task functions (idempotent)."""
    entry_points = {
        AWAKE_ENV_ID: "mbrl.envs.awake:AwakeSteeringEnv",
        SPILL_ENV_ID: "mbrl.envs.spill:SpillControlEnv",
        PENDULUM_NOVEL_ENV_ID: "mbrl.envs.observation_wrappers:make_pendulum_no_velocity",
        PENDULUM_PIXELS_ENV_ID: "mbrl.envs.observation_wrappers:make_pendulum_pixels",
    }
    for env_id, entry_point in entry_points.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point)
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
