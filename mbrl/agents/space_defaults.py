"""Defaults that follow from the env's spaces, applied after the env preset.

The run's default planner (``cem``) samples continuous action sequences, so an env with a
``Discrete`` action space and no planner chosen gets ``mcts``, the registered planner that
searches discrete actions, instead of an error. Planner options given without a planner
name count as choosing the default planner (they are its options), so they keep it.
"""

from __future__ import annotations

import dataclasses

from mbrl.agents.config import RunConfig
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
