"""Gaussian-process dynamics: one independent GP per output dimension, batched in torch.

- :mod:`~mbrl.models.gp.model`: :class:`GPDynamics`, the :class:`~mbrl.models.base.DynamicsModel`
  (config, fitting, sample / moment-matching / linearised propagation);
- :mod:`~mbrl.models.gp.core`: kernels and the exact / sparse posteriors;
- :mod:`~mbrl.models.gp.exact`: exact marginal-likelihood hyperparameter fitting;
- :mod:`~mbrl.models.gp.sparse`: sparse variational fitting for large buffers;
- :mod:`~mbrl.models.gp.moments`: Gaussian beliefs (:class:`GaussianState`) and moment matching;
- :mod:`~mbrl.models.gp.belief`: belief propagation as a model (:class:`BeliefDynamics`) with
  expected rewards (and PILCO's saturating cost, :class:`SaturatingReward`), so GP-MPC and
  PILCO (:mod:`mbrl.planners.pilco`) run on the rollout core.
"""

import warnings

# gpytorch is imported here, before any module of this package, and only here: importing it
# runs ``torch.jit.script`` in its dependency linear_operator, which recent torch releases answer with
# a FutureWarning ("`torch.jit.script` is deprecated") that users can do nothing about. Only that
# warning, and only during this import, is ignored; every other warning still shows.
with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
    )
    import gpytorch  # noqa: F401

from mbrl.models.gp.belief import (
    BeliefDynamics,
    ExpectedReward,
    ExpectedTermination,
    SaturatingReward,
)
from mbrl.models.gp.model import GPConfig, GPDynamics, GPFitError, GPFitInfo, GPFitWarning
from mbrl.models.gp.moments import GaussianState

__all__ = [
    "BeliefDynamics",
    "ExpectedReward",
    "ExpectedTermination",
    "GPConfig",
    "GPDynamics",
    "GPFitError",
    "GPFitInfo",
    "GPFitWarning",
    "GaussianState",
    "SaturatingReward",
]
