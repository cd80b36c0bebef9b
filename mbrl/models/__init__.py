"""Dynamics models (one batched state-space interface) and their training.

Plug-in axis: every model subclasses :class:`DynamicsModel`; see :mod:`mbrl.models.base` for
the row-layout convention shared with the rollout engine and planners.
"""

from mbrl.models.base import (
    CONDITIONING,
    DETERMINISTIC,
    DIFFERENTIABLE,
    ENSEMBLE,
    EXPECTATION,
    GAUSSIAN_BELIEF,
    PARTICLES,
    DynamicsModel,
    ModelState,
    PropagationView,
)
from mbrl.models.box_termination import BoxFit, BoxTermination
from mbrl.models.checkpoint import (
    load_checkpoint,
    load_weights,
    register_checkpointable,
    save_checkpoint,
)
from mbrl.models.checkpoint import register_lazy_checkpointable as _register_lazy_checkpointable
from mbrl.models.delta_model import DeltaModel, DeltaModelConfig
from mbrl.models.ensemble import GaussianEnsemble
from mbrl.models.layers import EnsembleLinear, EnsembleMLP
from mbrl.models.mlp import MLPDynamics
from mbrl.models.normalization import Normalizer
from mbrl.models.policy_model import LearnedPolicy, fit_policy
from mbrl.models.registry import ModelContext, register_model
from mbrl.models.rssm import (
    RSSM,
    LatentDynamics,
    LatentReward,
    LatentState,
    RSSMConfig,
    RSSMTrainConfig,
    RSSMTrainer,
)
from mbrl.models.task_models import LearnedReward, LearnedTermination
from mbrl.models.training import FitConfig, FitReport, fit
from mbrl.models.value_model import LearnedValue, fit_value

__all__ = [
    "DETERMINISTIC",
    "CONDITIONING",
    "ENSEMBLE",
    "EXPECTATION",
    "GAUSSIAN_BELIEF",
    "PropagationView",
    "BoxFit",
    "BoxTermination",
    "DIFFERENTIABLE",
    "PARTICLES",
    "DeltaModel",
    "DeltaModelConfig",
    "DynamicsModel",
    "EnsembleLinear",
    "EnsembleMLP",
    "FitConfig",
    "FitReport",
    "GaussianEnsemble",
    "LatentDynamics",
    "LatentReward",
    "LatentState",
    "LearnedPolicy",
    "LearnedReward",
    "LearnedTermination",
    "LearnedValue",
    "MLPDynamics",
    "ModelContext",
    "ModelState",
    "Normalizer",
    "RSSM",
    "RSSMConfig",
    "RSSMTrainConfig",
    "RSSMTrainer",
    "fit",
    "fit_policy",
    "fit_value",
    "load_checkpoint",
    "load_weights",
    "register_model",
    "register_checkpointable",
    "save_checkpoint",
]


def _build_gp(ctx: ModelContext) -> DynamicsModel:
    # The GP package imports gpytorch and scipy, so it is imported when a GP is first built or
    # loaded, not with this package (importing it registers the same builder under "gp").
    from mbrl.models.gp.model import GPConfig, GPDynamics
    from mbrl.util.configs import config_from_options

    return GPDynamics(ctx.obs_dim, ctx.action_dim, config_from_options(GPConfig, ctx.options))


register_model("gp", _build_gp, "Gaussian-process dynamics (gpytorch; exact or sparse)")
_register_lazy_checkpointable("GPDynamics", "mbrl.models.gp.model")
_register_lazy_checkpointable("LinearPolicy", "mbrl.planners.pilco")
_register_lazy_checkpointable("RBFPolicy", "mbrl.planners.pilco")

from mbrl.models import known as _known  # noqa: E402,F401  (registers the "known" model)
