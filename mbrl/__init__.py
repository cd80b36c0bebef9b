"""mbrl: model-based planning and reinforcement learning on batched torch tensors.

The public API is re-exported here; see the README for the architecture.
"""

from mbrl import envs  # noqa: F401  (registers mbrl/... gymnasium ids on import)
from mbrl._version import __version__
from mbrl.agents import MPCAgent, RunConfig, RunResult, make_env, run, run_episode
from mbrl.data import TransitionBatch, TransitionBuffer
from mbrl.dyna import SurrogateEnv, load_surrogate  # registers mbrl/Surrogate-v0
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
    "rollout",
    "run",
    "run_episode",
    "save_checkpoint",
]
