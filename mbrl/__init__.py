"""mbrl: model-based planning and reinforcement learning on batched torch tensors.

The public API is re-exported here; see the README for the architecture. Re-exports are lazy
(:mod:`mbrl.util.lazy`): ``import mbrl`` registers the gymnasium ids of mbrl's envs and imports
nothing heavy; each name loads its module (torch and friends) on first access, so the CLI's
``--help`` starts at once and gpytorch, scipy, matplotlib and ray load only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mbrl._version import __version__
from mbrl.gym_ids import register_envs as _register_envs
from mbrl.util import log as _log  # noqa: F401  (installs the mbrl logger's NullHandler)
from mbrl.util.lazy import install_lazy_exports as _install_lazy_exports

if TYPE_CHECKING:
    from mbrl.agents import (
        MPCAgent,
        RunConfig,
        RunOutputError,
        RunResult,
        make_env,
        resume,
        run,
        run_episode,
    )
    from mbrl.data import TransitionBatch, TransitionBuffer
    from mbrl.dyna import SurrogateEnv, load_surrogate
    from mbrl.models import (
        BoxTermination,
        DeltaModelConfig,
        DynamicsModel,
        FitConfig,
        GaussianEnsemble,
        LearnedPolicy,
        LearnedReward,
        LearnedTermination,
        LearnedValue,
        MLPDynamics,
        fit,
        fit_policy,
        fit_value,
        load_checkpoint,
        register_model,
        save_checkpoint,
    )
    from mbrl.planners import (
        MCTS,
        CEMConfig,
        CEMOptimizer,
        MCTSConfig,
        MPPIConfig,
        MPPIOptimizer,
        Planner,
        PlannerContext,
        RandomShootingConfig,
        RandomShootingOptimizer,
        SamplingPlanner,
        build_planner,
        register_planner,
    )
    from mbrl.rollout import RolloutResult, rollout
    from mbrl.spaces import ActionCodec
    from mbrl.task_fns import TaskFns, get_task_fns, register_task_fns

__all__ = [
    "__version__",
    "ActionCodec",
    "BoxTermination",
    "CEMConfig",
    "CEMOptimizer",
    "DeltaModelConfig",
    "DynamicsModel",
    "FitConfig",
    "GaussianEnsemble",
    "LearnedPolicy",
    "LearnedReward",
    "LearnedTermination",
    "LearnedValue",
    "MCTS",
    "MCTSConfig",
    "MLPDynamics",
    "MPCAgent",
    "MPPIConfig",
    "MPPIOptimizer",
    "Planner",
    "RandomShootingConfig",
    "RandomShootingOptimizer",
    "RolloutResult",
    "RunConfig",
    "RunOutputError",
    "RunResult",
    "SamplingPlanner",
    "SurrogateEnv",
    "TaskFns",
    "TransitionBatch",
    "TransitionBuffer",
    "build_planner",
    "fit",
    "fit_policy",
    "fit_value",
    "get_task_fns",
    "load_checkpoint",
    "load_surrogate",
    "make_env",
    "register_model",
    "register_planner",
    "register_task_fns",
    "PlannerContext",
    "resume",
    "rollout",
    "run",
    "run_episode",
    "save_checkpoint",
]


_install_lazy_exports(
    __name__,
    __file__,
    submodules=(
        "agents",
        "bench",
        "cli",
        "commands",
        "data",
        "dyna",
        "envs",
        "models",
        "planners",
        "rollout",
        "seeding",
        "spaces",
        "task_fns",
        "util",
        "validation",
    ),
)
_register_envs()
