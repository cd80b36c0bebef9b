"""Gymnasium ids of the envs mbrl ships, registered by entry-point string.

Registering by string imports nothing but gymnasium: an env's module (and torch) loads on its
first ``gymnasium.make``. ``import mbrl`` calls :func:`register_envs`, so every id below works
after it although :mod:`mbrl.envs` and :mod:`mbrl.dyna` are imported only when used.
"""

from __future__ import annotations

from typing import Any

AWAKE_ENV_ID = "mbrl/AwakeSteering-v0"
SPILL_ENV_ID = "mbrl/SpillControl-v0"
PENDULUM_NOVEL_ENV_ID = "mbrl/PendulumNoVel-v0"
PENDULUM_PIXELS_ENV_ID = "mbrl/PendulumPixels-v0"
POINT_MASS_ENV_ID = "mbrl/PointMassGoal-v0"
CARTPOLE_SWINGUP_ENV_ID = "mbrl/CartPoleSwingUp-v0"
SURROGATE_ENV_ID = "mbrl/Surrogate-v0"
DYNA_MAZE_ENV_ID = "mbrl/DynaMaze-v0"

ENV_SPECS: dict[str, dict[str, Any]] = {
    AWAKE_ENV_ID: {"entry_point": "mbrl.envs.awake:AwakeSteeringEnv"},
    SPILL_ENV_ID: {"entry_point": "mbrl.envs.spill:SpillControlEnv"},
    PENDULUM_NOVEL_ENV_ID: {
        "entry_point": "mbrl.envs.observation_wrappers:make_pendulum_no_velocity"
    },
    PENDULUM_PIXELS_ENV_ID: {"entry_point": "mbrl.envs.observation_wrappers:make_pendulum_pixels"},
    POINT_MASS_ENV_ID: {"entry_point": "mbrl.envs.point_mass:PointMassGoalEnv"},
    CARTPOLE_SWINGUP_ENV_ID: {
        "entry_point": "mbrl.envs.cartpole_swingup:CartPoleSwingUpEnv",
        "max_episode_steps": 200,
    },
    SURROGATE_ENV_ID: {
        "entry_point": "mbrl.dyna.surrogate.io:make_surrogate_env",
        "vector_entry_point": "mbrl.dyna.surrogate.vector_env:make_surrogate_vector_env",
    },
    DYNA_MAZE_ENV_ID: {"entry_point": "mbrl.dyna.mazes:DynaMazeEnv"},
}
"""``gymnasium.register`` keyword arguments of each id."""


def register_envs() -> None:
    """Register every id of :data:`ENV_SPECS` with gymnasium (idempotent)."""
    import gymnasium

    for env_id, spec in ENV_SPECS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, **spec)
