"""Defaults that follow from the env (its spaces and episode length) and the planner.

The run's default planner (``cem``) samples continuous action sequences, so an env with a
``Discrete`` action space and no planner chosen gets ``mcts``, the registered planner that
searches discrete actions, instead of an error. Planner options given without a planner
name count as choosing the default planner (they are its options), so they keep it.

A planner that optimises a policy for the whole episode (``horizon_is_episode``: PILCO)
gets the episode length as its horizon when neither the user nor the preset chose one: the
shared default of 15 steps is a replanning window, far too short for an episodic objective
(a Pendulum swing-up and its hold need about 100 steps).
"""

from __future__ import annotations

import dataclasses

from mbrl.agents.config import RunConfig
from mbrl.planners.base import Planner
from mbrl.spaces import ActionCodec

DISCRETE_PLANNER = "mcts"
"""The planner a ``Discrete`` action space gets when nobody chose one."""


def planner_for_actions(cfg: RunConfig, codec: ActionCodec) -> RunConfig:
    """``cfg`` with :data:`DISCRETE_PLANNER` when ``codec`` is discrete, ``cfg.planner`` is
    the built-in default that nobody set (not in ``cfg.explicit``) and no planner options are
    given; ``cfg`` otherwise. Applied before the env preset, which may then fill the
    options of the planner chosen."""
    chosen = "planner" in cfg.explicit or cfg.planner != RunConfig.planner
    if not codec.discrete or chosen or cfg.planner_options:
        return cfg
    return dataclasses.replace(cfg, planner=DISCRETE_PLANNER)


def horizon_for_planner(
    cfg: RunConfig, planner_class: type[Planner], env_limit: int | None
) -> RunConfig:
    """``cfg`` with ``horizon`` set to the episode length (``cfg.max_episode_steps``, else
    ``env_limit``, the env's own step limit) when ``planner_class.horizon_is_episode``, the
    horizon is still the built-in default and not typed (not in ``cfg.explicit``), and the
    planner options do not give a ``horizon`` of their own; ``cfg`` otherwise (also when
    the episode has no known length). Applied after the env preset, so a preset's horizon
    is kept."""
    limit = cfg.max_episode_steps or env_limit
    untouched = "horizon" not in cfg.explicit and cfg.horizon == RunConfig.horizon
    if (
        not planner_class.horizon_is_episode
        or not untouched
        or limit is None
        or cfg.planner_options.get("horizon") is not None
    ):
        return cfg
    return dataclasses.replace(cfg, horizon=int(limit))
