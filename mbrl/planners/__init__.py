"""Planners: ``plan(obs (O,)) -> actions (H, A)``. Plug-in axis of mbrl.

Sampling planners combine a model-agnostic :class:`TrajectoryOptimizer` (CEM/iCEM, MPPI, random
shooting) with the rollout engine; see :mod:`mbrl.planners.registry` for building by name.
Every planner is anytime under its config's ``plan_budget_ms`` and records each plan call in
``planner.plan_stats`` (:mod:`mbrl.planners.deadline`).
"""

from mbrl.planners.base import Planner, PlanningNonFiniteError
from mbrl.planners.cem import CEMConfig, CEMOptimizer
from mbrl.planners.deadline import AnytimeConfig, Deadline, PlanRecord, PlanStats
from mbrl.planners.mppi import MPPIConfig, MPPIOptimizer
from mbrl.planners.optimizer import Objective, SamplingConfig, TrajectoryOptimizer
from mbrl.planners.policy import PolicyPlanner
from mbrl.planners.random_shooting import RandomShootingConfig, RandomShootingOptimizer
from mbrl.planners.registry import (
    ICEM_DEFAULTS,
    PlannerContext,
    build_planner,
    planner_names,
    register_planner,
)
from mbrl.planners.sampling import SamplingPlanner

__all__ = [
    "ICEM_DEFAULTS",
    "AnytimeConfig",
    "CEMConfig",
    "CEMOptimizer",
    "Deadline",
    "MPPIConfig",
    "MPPIOptimizer",
    "Objective",
    "PlanRecord",
    "PlanStats",
    "Planner",
    "PlannerContext",
    "PlanningNonFiniteError",
    "PolicyPlanner",
    "RandomShootingConfig",
    "RandomShootingOptimizer",
    "SamplingConfig",
    "SamplingPlanner",
    "TrajectoryOptimizer",
    "build_planner",
    "planner_names",
    "register_planner",
]
from mbrl.planners import ilqr as _ilqr  # noqa: E402,F401  (registers the "ilqr" planner)
from mbrl.planners import mcts as _mcts  # noqa: E402,F401  (registers the "mcts" planner)
from mbrl.planners.mcts import MCTS, MCTSConfig, SearchOutput  # noqa: E402

__all__ += ["MCTS", "MCTSConfig", "SearchOutput"]
