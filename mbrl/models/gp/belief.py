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

Model coordinates: a GP with ``phasor_dims`` / ``angle_dims`` keeps its beliefs in its model
coordinates (phasors as Cartesian pairs, :meth:`~mbrl.models.gp.model.GPDynamics.to_model`),
so the flattened belief is in those coordinates too; the expectations map every cubature point
back to an observation (``to_obs``) before calling the task function.
:meth:`BeliefDynamics.expected_reward` / :meth:`BeliefDynamics.expected_termination` build
them with the model's map.

Policies (PILCO): with a ``policy`` (:class:`BeliefPolicy`), :meth:`BeliefDynamics.step`
ignores the given action and propagates the joint Gaussian of the state and the policy's
moment-matched action; :class:`SaturatingReward` is PILCO's saturating cost, expected in closed
form under the belief.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from mbrl.models.base import DETERMINISTIC, GAUSSIAN_BELIEF, DynamicsModel
from mbrl.models.gp.moments import GaussianState, cubature_points
from mbrl.task_fns import RewardFn, TerminationFn

EXPECTATIONS = ("cubature", "mean")
_DTYPE = torch.float64


class BeliefPolicy(Protocol):
    """A policy whose action distribution at a Gaussian state is moment-matched (PILCO)."""

    def moments(self, mean: Tensor, cov: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Action moments at ``z ~ N(mean (M, O), cov (M, O, O))``: ``u_mean (M, A)``,
        ``u_cov (M, A, A)`` and ``gain (M, O, A)`` with ``cov[z, u] = cov @ gain``."""
        ...


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
        policy: a :class:`BeliefPolicy` (default ``None``): when given, ``step`` ignores its
            ``action`` argument and propagates the joint Gaussian of the state and the policy's
            action (the rollout core still passes an action to the task functions: give it the
            policy's mean, see :meth:`policy_mean`).

    Attributes:
        to_obs: maps model coordinates ``(..., O)`` to observations (the model's
            ``from_model``; identity for a model without one).

    Raises:
        TypeError: ``model`` does not declare ``gaussian_belief``.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({DETERMINISTIC})

    def __init__(
        self, model: DynamicsModel, method: str, policy: BeliefPolicy | None = None
    ) -> None:
        super().__init__()
        if GAUSSIAN_BELIEF not in model.capabilities:
            raise TypeError(
                f"belief propagation needs a model with the {GAUSSIAN_BELIEF!r} capability "
                f"(e.g. --model gp); {type(model).__name__} has {sorted(model.capabilities)}"
            )
        self.model = model
        self.method = method
        self.policy = policy
        self.to_obs: Callable[[Tensor], Tensor] = getattr(model, "from_model", _identity)
        self.state_dim = model.obs_dim
        self.obs_dim = model.obs_dim * (1 + 2 * model.obs_dim)
        self.action_dim = model.action_dim

    def initial_state(
        self, obs: Tensor, n_particles: int = 1, generator: torch.Generator | None = None
    ) -> BeliefStep:
        """Point masses at ``obs (B, O)`` (float64, model coordinates), tiled to ``P * B`` rows."""
        rows = obs.to(_DTYPE).repeat(n_particles, 1)
        certain = getattr(self.model, "certain_belief", GaussianState.certain)
        belief = certain(rows)
        return BeliefStep(belief, torch.zeros_like(belief.cov))

    def step(
        self, state: BeliefStep, action: Tensor, generator: torch.Generator | None = None
    ) -> BeliefStep:
        """Propagate every row's belief under ``action (M, A)`` (or, with a policy, under the
        policy's moment-matched action distribution); deterministic."""
        if self.policy is None:
            nxt, cross = self.model.propagate(state.belief, action, self.method)
            return BeliefStep(nxt, cross)
        b = state.belief
        u_mean, u_cov, gain = self.policy.moments(b.mean, b.cov)
        nxt, cross = self.model.propagate(b, u_mean, self.method, u_cov, b.cov @ gain)
        return BeliefStep(nxt, cross)

    def policy_mean(self, t: int, state: BeliefStep, obs: Tensor) -> Tensor:
        """The policy's mean action ``(M, A)`` at ``state``: a :data:`~mbrl.rollout.core.Policy`
        for :func:`~mbrl.rollout.core.simulate` (what the task functions see as the action).

        Raises:
            RuntimeError: without a policy.
        """
        if self.policy is None:
            raise RuntimeError("BeliefDynamics.policy_mean needs a policy")
        return self.policy.moments(state.belief.mean, state.belief.cov)[0]

    def expected_reward(self, reward_fn: RewardFn, expectation: str = "cubature") -> ExpectedReward:
        """:class:`ExpectedReward` of ``reward_fn`` over this model's beliefs (observations
        from the model coordinates)."""
        return ExpectedReward(reward_fn, self.state_dim, expectation, to_obs=self.to_obs)

    def expected_termination(
        self, termination_fn: TerminationFn, expectation: str = "cubature"
    ) -> ExpectedTermination:
        """:class:`ExpectedTermination` of ``termination_fn`` over this model's beliefs."""
        return ExpectedTermination(termination_fn, self.state_dim, expectation, to_obs=self.to_obs)

    def observe(self, state: BeliefStep) -> Tensor:
        """The flattened belief ``(M, O + 2 O^2)``: mean, covariance, step cross-covariance."""
        b = state.belief
        return torch.cat([b.mean, b.cov.flatten(1), state.cross.flatten(1)], dim=-1)


def _identity(x: Tensor) -> Tensor:
    return x


class _BeliefExpectation:
    """Shared evaluation of a task function over the joint Gaussian of one belief step."""

    def __init__(
        self,
        fn: Any,
        obs_dim: int,
        expectation: str,
        to_obs: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if expectation not in EXPECTATIONS:
            raise ValueError(f"expectation must be one of {EXPECTATIONS}, got {expectation!r}")
        self.fn = fn
        self.obs_dim = obs_dim
        self.expectation = expectation
        self.to_obs = to_obs if to_obs is not None else _identity

    def expect(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """``E[fn(s_t, a_t, s_t+1)]`` ``(M,)`` (float64) from flattened beliefs ``(M, O')``."""
        o = self.obs_dim
        mean, cov, _ = unpack_belief(obs, o)
        next_mean, next_cov, cross = unpack_belief(next_obs, o)
        to_obs = self.to_obs
        if self.expectation == "mean":
            return call_task_fn(self.fn, to_obs(mean), action, to_obs(next_mean))
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
        values = call_task_fn(self.fn, to_obs(flat[:, :o]), acts, to_obs(flat[:, o:]))
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
        to_obs: map of the beliefs' coordinates to observations, applied to every point
            (default identity; :meth:`BeliefDynamics.expected_reward` passes the model's).
    """

    def __init__(
        self,
        reward_fn: RewardFn,
        obs_dim: int,
        expectation: str = "cubature",
        to_obs: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__(reward_fn, obs_dim, expectation, to_obs)

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
        to_obs: as for :class:`ExpectedReward`.
    """

    def __init__(
        self,
        termination_fn: TerminationFn,
        obs_dim: int,
        expectation: str = "cubature",
        to_obs: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__(termination_fn, obs_dim, expectation, to_obs)

    def probability(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """``P(end)`` ``(M,)`` (float64) of the step between flattened beliefs ``(M, O')``."""
        return self.expect(obs, action, next_obs)

    def __call__(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """``P(end) >= 0.5`` ``(M,)`` bool."""
        return self.probability(obs, action, next_obs) >= 0.5


def saturating_cost(x: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """PILCO's saturating cost ``1 - exp(-(x - t)^T W (x - t) / 2)`` at points ``x (..., O)``.

    ``target (O,)``, ``weights (O,)`` (``W = diag(weights)``, >= 0): in ``[0, 1)``, zero at the
    target, quadratic near it and saturating far away. Returns ``(...)``.
    """
    d = x - target.to(x)
    return 1.0 - torch.exp(-0.5 * (weights.to(x) * d.square()).sum(-1))


def expected_saturating_cost(mean: Tensor, cov: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """``E[saturating_cost(x)]`` ``(M,)`` for ``x ~ N(mean (M, O), cov (M, O, O))``, exact.

    ``E[exp(-d^T W d / 2)] = |I + S W|^-1/2 exp(-e^T (I + W^1/2 S W^1/2)^-1 e / 2)`` with
    ``d = x - t``, ``e = W^1/2 (mean - t)``; evaluated with the Cholesky factor of the
    symmetric ``I + W^1/2 S W^1/2`` (Deisenroth 2010, sec. 3.6; PILCO's ``lossSat``).
    """
    root = weights.to(mean).clamp_min(0.0).sqrt()
    eye = torch.eye(mean.shape[-1], dtype=mean.dtype, device=mean.device)
    a = eye + root.unsqueeze(-1) * cov * root.unsqueeze(-2)
    chol = torch.linalg.cholesky(0.5 * (a + a.transpose(-1, -2)))
    e = (root * (mean - target.to(mean))).unsqueeze(-1)
    w = torch.linalg.solve_triangular(chol, e, upper=False).squeeze(-1)
    log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return 1.0 - torch.exp(-0.5 * log_det - 0.5 * w.square().sum(-1))


class SaturatingReward:
    """PILCO's saturating cost as a reward of flattened beliefs: ``-E[cost(s_t+1)]`` ``(M,)``.

    The cost (:func:`saturating_cost`) is on the next state, in the beliefs' coordinates (the
    model coordinates: with ``phasor_dims`` a phasor target is a Cartesian point, e.g. the
    origin for a cancelled ripple); its expectation is exact (:func:`expected_saturating_cost`).

    Args:
        target: ``t (O,)``.
        weights: ``diag(W) (O,)``, finite and ``>= 0`` (0: the dimension does not count).

    Raises:
        ValueError: shapes that differ, or negative / non-finite weights.
    """

    def __init__(self, target: Tensor, weights: Tensor) -> None:
        target = torch.as_tensor(target, dtype=_DTYPE)
        weights = torch.as_tensor(weights, dtype=_DTYPE)
        if target.ndim != 1 or weights.shape != target.shape:
            raise ValueError(
                f"target and weights must be vectors of the same length (O,), got "
                f"{tuple(target.shape)} and {tuple(weights.shape)}"
            )
        if not bool(torch.isfinite(target).all()):
            raise ValueError(f"target must be finite, got {target.tolist()}")
        if not bool((torch.isfinite(weights) & (weights >= 0)).all()):
            raise ValueError(f"weights must be finite and >= 0, got {weights.tolist()}")
        self.target, self.weights = target, weights
        self.obs_dim = int(target.shape[0])

    def __call__(self, obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
        """``-E[cost]`` ``(M,)`` of the next belief in the flattened ``next_obs (M, O')``."""
        mean, cov, _ = unpack_belief(next_obs, self.obs_dim)
        t, w = self.target.to(mean.device), self.weights.to(mean.device)
        return -expected_saturating_cost(mean, cov, t, w)


__all__ = [
    "EXPECTATIONS",
    "BeliefDynamics",
    "BeliefPolicy",
    "BeliefStep",
    "ExpectedReward",
    "ExpectedTermination",
    "SaturatingReward",
    "expected_saturating_cost",
    "saturating_cost",
    "call_task_fn",
    "unpack_belief",
]
