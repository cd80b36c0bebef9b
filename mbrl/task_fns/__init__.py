"""Known, vectorised reward and termination functions, looked up by gymnasium env id.

Every function here has the signature ``fn(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)``:
rewards return float tensors, terminations return bool tensors. They run on whatever device and
dtype their inputs have, so planners can call them inside batched rollouts.

Envs without an entry here fall back to learned reward / termination models
(:mod:`mbrl.models.task_models`).
"""

from __future__ import annotations

from mbrl.task_fns.registry import (
    RewardFn,
    TaskFns,
    TerminationFn,
    get_task_fns,
    known_env_ids,
    register_task_fns,
)

__all__ = [
    "RewardFn",
    "TaskFns",
    "TerminationFn",
    "get_task_fns",
    "known_env_ids",
    "register_task_fns",
]

# Importing the module registers the classic-control / mujoco functions.
# mbrl's own envs register their task functions when mbrl.envs is imported; importing it here
# makes them known wherever task functions are looked up, now that ``import mbrl`` no longer
# imports every subpackage. (When mbrl.envs is the one being imported, this is a no-op.)
import mbrl.envs  # noqa: E402,F401
from mbrl.task_fns import classic as _classic  # noqa: E402,F401
