"""Dyna-style model-based RL: surrogate environments, branched rollouts, MBPO with SAC, Dyna-Q.

Two gymnasium ids (:mod:`mbrl.gym_ids`, registered by ``import mbrl``) open envs of this package:

- ``mbrl/Surrogate-v0``: a saved surrogate (``mbrl surrogate --env ID --steps N --out DIR``)
  as an env: ``gymnasium.make("mbrl/Surrogate-v0", path=DIR)``, and batched with
  ``gymnasium.make_vec("mbrl/Surrogate-v0", num_envs=N, path=DIR,
  vectorization_mode="vector_entry_point")``. In a process that has not imported mbrl,
  ``gymnasium.make("mbrl.dyna:mbrl/Surrogate-v0", path=DIR)`` imports it first. Keyword
  overrides (``uncertainty_penalty=``, ``device=``, ``clip_observations=``) reach
  :func:`load_surrogate`; ``max_episode_steps=`` is taken by gymnasium, which then adds its
  ``TimeLimit`` on top of the saved episode length.
- ``mbrl/DynaMaze-v0``: Sutton & Barto's 6 x 9 Dyna maze (:class:`DynaMazeEnv`).

stable-baselines3 (the ``sb3`` extra) is imported only by the MBPO functions that need it.
"""

from __future__ import annotations

from mbrl.dyna.branched import RolloutSchedule, branched_rollouts
from mbrl.dyna.dyna_q import DynaQ, DynaQConfig, DynaQResult, greedy_episode_length, train_dyna_q
from mbrl.dyna.job import SurrogateJobConfig, SurrogateJobResult, build_surrogate
from mbrl.dyna.mazes import DYNA_MAZE, DynaMazeEnv
from mbrl.dyna.mbpo import MBPOConfig, MBPOResult, run_mbpo
from mbrl.dyna.surrogate import (
    SurrogateCore,
    SurrogateEnv,
    SurrogateVectorEnv,
    load_surrogate,
    load_surrogate_vector,
    read_surrogate_metadata,
    save_surrogate,
    space_from_dict,
    space_to_dict,
)
from mbrl.gym_ids import DYNA_MAZE_ENV_ID, SURROGATE_ENV_ID

__all__ = [
    "DYNA_MAZE",
    "DYNA_MAZE_ENV_ID",
    "SURROGATE_ENV_ID",
    "DynaMazeEnv",
    "DynaQ",
    "DynaQConfig",
    "DynaQResult",
    "MBPOConfig",
    "MBPOResult",
    "RolloutSchedule",
    "SurrogateCore",
    "SurrogateEnv",
    "SurrogateJobConfig",
    "SurrogateJobResult",
    "SurrogateVectorEnv",
    "branched_rollouts",
    "build_surrogate",
    "greedy_episode_length",
    "load_surrogate",
    "load_surrogate_vector",
    "read_surrogate_metadata",
    "run_mbpo",
    "save_surrogate",
    "space_from_dict",
    "space_to_dict",
    "train_dyna_q",
]
