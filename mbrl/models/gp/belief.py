"""Gaussian beliefs as an ordinary model, so belief planning runs on the rollout core.

:class:`BeliefDynamics` wraps a model with the ``gaussian_belief`` capability (a
:class:`~mbrl.models.gp.model.GPDynamics`): its state is the belief after a step together with
the cross-covariance of that step (:class:`BeliefStep`), its ``step`` is ``model.propagate``,
and its observation is the belief flattened into one vector ``[mean (O), cov (O * O),
cov[s_prev, s] (O * O)]``. Reward and termination functions of that vector
(:class:`ExpectedReward`, :class:`ExpectedTermination`) take expectations over the joint
Gaussian of ``(s_t, s_t+1)``, so :func:`mbrl.rollout.core.simulate` accumulates expected
discounted returns, with its termination (``soft_termination=True``: ``alive`` multiplied by
``1 - P(end)``) and divergence rule (a non-finite belief or expected reward ends the row,
pays nothing, and ranks the sequence last), exactly as for any other model. GP-MPC is this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mbrl.models.base import DETERMINISTIC, GAUSSIAN_BELIEF, DynamicsModel
from mbrl.models.gp.moments import GaussianState, cubature_points
from mbrl.task_fns import RewardFn, TerminationFn

EXPECTATIONS = ("cubature", "mean")
_DTYPE = torch.float64


@dataclass(frozen=True)
class BeliefStep:
    """State of :class:`BeliefDynamics`: ``M`` beliefs and how the last step correlated them.

    Attributes:
        belief: :class:`GaussianState` ``N(mean (M, O), cov (M, O, O))``.
        cross: ``(M, O, O)`` ``cov[s_prev, s]`` of the step that led here (zero at the start).
    """

    belief: GaussianState
    cross: Tensor


def unpack_belief(flat: Tensor, obs_dim: int) -> tuple[Tensor, Tensor, Tensor]:
    """``flat (M, O + 2 O^2)`` -> ``mean (M, O)``, ``cov (M, O, O)``, ``cross (M, O, O)``."""
    o = obs_dim
    m = flat.shape[0]
    return flat[:, :o], flat[:, o : o + o * o].view(m, o, o), flat[:, o + o * o :].view(m, o, o)


def call_task_fn(fn: Any, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Call a task function in its own dtype (learned models) and return float64 ``(M,)``."""
    if isinstance(fn, nn.Module):
        params = list(fn.parameters())
        if params and params[0].dtype != obs.dtype:
            dt = params[0].dtype
            return fn(obs.to(dt), action.to(dt), next_obs.to(dt)).to(_DTYPE)
    return fn(obs, action, next_obs).to(_DTYPE)


class BeliefDynamics(DynamicsModel):
    """``model``'s Gaussian belief propagation as a :class:`DynamicsModel`.

    ``initial_state(obs (B, O), P)`` is a point mass per row; ``step(BeliefStep, action (M,
    A))`` is ``model.propagate(belief, action, method)``; ``observe`` is the flattened belief
    ``(M, O + 2 O^2)`` (see the module docstring). Parameters are the model's (a submodule).

    Args:
        model: a model declaring the ``gaussian_belief`` capability.
        method: ``moment_matching``, ``linearization`` or ``mean`` (see ``model.propagate``).

    Raises:
        TypeError: ``model`` does not declare ``gaussian_belief``.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({DETERMINISTIC})

    def __init__(self, model: DynamicsModel, method: str) -> None:
        super().__init__()
        if GAUSSIAN_BELIEF not in model.capabilities:
            raise TypeError(
                f"belief propagation needs a model with the {GAUSSIAN_BELIEF!r} capability "
                f"(e.g. --model gp); {type(model).__name__} has {sorted(model.capabilities)}"
            )
        self.model = model
        self.method = method
        self.state_dim = model.obs_dim
        self.obs_dim = model.obs_dim * (1 + 2 * model.obs_dim)
        self.action_dim = model.action_dim

    def initial_state(
        self, obs: Tensor, n_particles: int = 1, generator: torch.Generator | None = None
    ) -> BeliefStep:
        """Point masses at ``obs (B, O)`` (float64), tiled to ``P * B`` rows."""
        belief = GaussianState.certain(obs.to(_DTYPE).repeat(n_particles, 1))
        return BeliefStep(belief, torch.zeros_like(belief.cov))

    def step(
        self, state: BeliefStep, action: Tensor, generator: torch.Generator | None = None
    ) -> BeliefStep:
        """Propagate every row's belief under ``action (M, A)``; deterministic."""
        nxt, cross = self.model.propagate(state.belief, action, self.method)
        return BeliefStep(nxt, cross)

    def observe(self, state: BeliefStep) -> Tensor:
        """The flattened belief ``(M, O + 2 O^2)``: mean, covariance, step cross-covariance."""
        b = state.belief
        return torch.cat([b.mean, b.cov.flatten(1), state.cross.flatten(1)], dim=-1)


class _BeliefExpectation:
    """Shared evaluation of a task function over the joint Gaussian of one belief step."""

    def __init__(self, fn: Any, obs_dim: int, expectation: str) -> None:
        if expectation not in EXPECTATIONS:
            raise ValueError(f"expectation must be one of {EXPECTATIONS}, got {expectation!r}")
        self.fn = fn
        self.obs_dim = obs_dim
        self.expectation = expectation

    def expect(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """``E[fn(s_t, a_t, s_t+1)]`` ``(M,)`` (float64) from flattened beliefs ``(M, O')``."""
        o = self.obs_dim
        mean, cov, _ = unpack_belief(obs, o)
        next_mean, next_cov, cross = unpack_belief(next_obs, o)
        if self.expectation == "mean":
            return call_task_fn(self.fn, mean, action, next_mean)
        k = mean.shape[0]
        joint_mean = torch.cat([mean, next_mean], dim=-1)
        joint_cov = torch.cat(
            [torch.cat([cov, cross], -1), torch.cat([cross.transpose(-1, -2), next_cov], -1)],
            -2,
        )
        pts = cubature_points(joint_mean, joint_cov)  # (4 O, M, 2 O)
        n_pts = pts.shape[0]
        flat = pts.reshape(n_pts * k, 2 * o)
        acts = action.unsqueeze(0).expand(n_pts, -1, -1).reshape(n_pts * k, -1)
        values = call_task_fn(self.fn, flat[:, :o], acts, flat[:, o:])
        return values.view(n_pts, k).mean(0)


class ExpectedReward(_BeliefExpectation):
    """A reward function of flattened beliefs: ``E[r(s_t, a_t, s_t+1)]`` ``(M,)``.

    ``cubature``: the mean over the ``4 O`` spherical-cubature points of the joint Gaussian of
    ``(s_t, s_t+1)`` (exact for cubic rewards; any reward works as a black box); ``mean``: the
    reward at the means.

    Args:
        reward_fn: ``(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)``.
        obs_dim: ``O``.
        expectation: ``cubature`` or ``mean``.
    """

    def __init__(self, reward_fn: RewardFn, obs_dim: int, expectation: str = "cubature") -> None:
        super().__init__(reward_fn, obs_dim, expectation)

    def __call__(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """Expected reward ``(M,)`` of the step between flattened beliefs ``(M, O')``."""
        return self.expect(obs, action, next_obs)


class ExpectedTermination(_BeliefExpectation):
    """A termination function of flattened beliefs whose ``probability`` is ``P(end)``.

    ``probability`` is the fraction of cubature points (or, with ``mean``, the 0/1 value at
    the means) for which ``termination_fn`` ends; read by the rollout core with
    ``soft_termination=True``. Calling it gives ``P(end) >= 0.5``.

    Args:
        termination_fn: ``(obs, action, next_obs) -> bool (M,)``.
        obs_dim: ``O``.
        expectation: ``cubature`` or ``mean``.
    """

    def __init__(
        self, termination_fn: TerminationFn, obs_dim: int, expectation: str = "cubature"
    ) -> None:
        super().__init__(termination_fn, obs_dim, expectation)

    def probability(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """``P(end)`` ``(M,)`` (float64) of the step between flattened beliefs ``(M, O')``."""
        return self.expect(obs, action, next_obs)

    def __call__(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """``P(end) >= 0.5`` ``(M,)`` bool."""
        return self.probability(obs, action, next_obs) >= 0.5


__all__ = [
    "EXPECTATIONS",
    "BeliefDynamics",
    "BeliefStep",
    "ExpectedReward",
    "ExpectedTermination",
    "call_task_fn",
    "unpack_belief",
]
