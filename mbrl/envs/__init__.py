"""Environments shipped with mbrl, registered with gymnasium when :mod:`mbrl` is imported.

- ``mbrl/AwakeSteering-v0``: :class:`AwakeSteeringEnv`, AWAKE electron-line trajectory steering
  with the real TT43 optics (obs ``(10,)`` mm, action ``(10,)`` in ``[-1, 1]``).
- ``mbrl/SpillControl-v0``: :class:`SpillControlEnv`, SPS spill 50 Hz ripple cancellation with
  a slowly drifting ripple (obs ``(4,)``, action ``(2,)`` in ``[-1, 1]``).

Both count their own steps and truncate after ``max_steps`` (no gymnasium ``TimeLimit``); their
known vectorised torch reward/termination functions are registered in :mod:`mbrl.task_fns`
under the same ids (for the default constructor arguments).
:class:`DomainRandomization` re-draws physical parameters per episode.
"""

from __future__ import annotations

import gymnasium

from mbrl.envs.awake import (
    AwakeSteeringEnv,
    awake_reward,
    awake_termination,
    load_twiss,
    make_awake_task_fns,
    tt43_response_matrix,
)
from mbrl.envs.randomization import DomainRandomization
from mbrl.envs.spill import SpillControlEnv, spill_reward
from mbrl.task_fns.registry import get_task_fns, register_task_fns

AWAKE_ENV_ID = "mbrl/AwakeSteering-v0"
SPILL_ENV_ID = "mbrl/SpillControl-v0"

__all__ = [
    "AWAKE_ENV_ID",
    "SPILL_ENV_ID",
    "AwakeSteeringEnv",
    "DomainRandomization",
    "SpillControlEnv",
    "awake_reward",
    "awake_termination",
    "load_twiss",
    "make_awake_task_fns",
    "spill_reward",
    "tt43_response_matrix",
]


def _register() -> None:
    """Register both envs and their task functions (idempotent)."""
    entry_points = {
        AWAKE_ENV_ID: "mbrl.envs.awake:AwakeSteeringEnv",
        SPILL_ENV_ID: "mbrl.envs.spill:SpillControlEnv",
    }
    for env_id, entry_point in entry_points.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point)
    if get_task_fns(AWAKE_ENV_ID) is None:
        register_task_fns(AWAKE_ENV_ID, awake_reward, awake_termination)
    if get_task_fns(SPILL_ENV_ID) is None:
        register_task_fns(SPILL_ENV_ID, spill_reward)


_register()
