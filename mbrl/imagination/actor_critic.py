"""Actor-critic learned entirely from imagined rollouts of any ``DynamicsModel`` (Dreamer-style).

One update (:meth:`ActorCritic.update`):

1. **Imagine** (:func:`imagine`): from ``N`` real start observations, ``P`` particles each,
   roll ``H`` steps through the model with the actor choosing every action, on the rollout
   core's policy path (:func:`mbrl.rollout.core.simulate` with ``policy=`` and
   ``record=True``). ``simulate`` itself keeps the autograd graph, so the same call serves
   both objectives below; the divergence rule, reward and termination are the core's.
2. **Targets**: lambda-returns (:func:`~mbrl.imagination.returns.lambda_returns`) of the
   imagined rewards with the *target* critic's values, continuation ``c_t`` = the row is still
   alive after step ``t`` (boolean termination), each step weighted by ``gamma^t * alive_t``
   (the core's ``weights``), as Dreamer weights by the cumulative discount.
3. **Actor**: maximise the weighted lambda-returns plus ``entropy_coef`` times the policy's
   entropy (its Gaussian spread, state-independent in :class:`LearnedPolicy`):

   - ``actor_grad="dynamics"`` (Dreamer's dynamics backprop, PILCO-like): actions are
     reparameterised (``mean + spread * noise``, clipped to the bounds), and the returns are
     differentiated through the model, the reward and the target critic's values of the
     imagined states. Needs a model with the ``differentiable`` capability (MLP / ensemble,
     known physics, GP means).
   - ``actor_grad="reinforce"``: the likelihood-ratio objective ``log pi(a_t | s_t) *
     (R_t - V(s_t))``, the rollout run without gradients; any model.
   - ``"auto"`` (default): ``dynamics`` when the model is differentiable, else ``reinforce``.

4. **Critic**: regress ``V(s_t)`` onto the (detached) lambda-returns, weighted the same way;
   the target critic follows it by Polyak averaging (``target_tau``).

Gradients reach only the network being trained (``torch.autograd.grad`` on its parameters):
the model, the reward and the target critic are never changed by an update.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mbrl.imagination.critic import Critic
from mbrl.imagination.returns import lambda_returns
from mbrl.models.base import DIFFERENTIABLE, DynamicsModel
from mbrl.models.policy_model import LearnedPolicy
from mbrl.rollout.core import simulate
from mbrl.task_fns import RewardFn, TerminationFn
from mbrl.validation import check_fraction, check_positive_int

ACTOR_GRADS = ("auto", "dynamics", "reinforce")


@dataclass(frozen=True)
class ImaginationConfig:
    """Settings of :class:`ActorCritic` (defaults: Dreamer's where they apply).

    Attributes:
        horizon: imagined steps per rollout ``H`` (default 15, Dreamer).
        gamma: discount (default 0.99); lam: lambda of the returns (default 0.95, Dreamer).
        n_particles: model particles per start state (default 1).
        batch_size: start states per update (default 256).
        actor_lr / critic_lr: Adam learning rates (default 3e-4 / 3e-4).
        entropy_coef: weight of the policy entropy in the actor objective (default 1e-3).
        target_tau: Polyak step of the target critic per update (default 0.02).
        actor_grad: ``auto``, ``dynamics`` or ``reinforce`` (see the module docstring).
        grad_clip: max gradient norm per network (default 100, Dreamer).
        init_std: initial action spread as a fraction of half the action range (default 0.3).
        hidden_size / num_layers: actor and critic MLPs (default 128 x 2).
    """

    horizon: int = 15
    gamma: float = 0.99
    lam: float = 0.95
    n_particles: int = 1
    batch_size: int = 256
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    entropy_coef: float = 1e-3
    target_tau: float = 0.02
    actor_grad: str = "auto"
    grad_clip: float = 100.0
    init_std: float = 0.3
    hidden_size: int = 128
    num_layers: int = 2

    def __post_init__(self) -> None:
        for name in ("horizon", "n_particles", "batch_size", "hidden_size", "num_layers"):
            check_positive_int(getattr(self, name), name)
        for name in ("gamma", "lam"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        check_fraction(self.target_tau, "target_tau")
        for name in ("actor_lr", "critic_lr", "grad_clip", "init_std"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value}")
        if not (math.isfinite(self.entropy_coef) and self.entropy_coef >= 0):
            raise ValueError(f"entropy_coef must be finite and >= 0, got {self.entropy_coef}")
        if self.actor_grad not in ACTOR_GRADS:
            raise ValueError(f"actor_grad must be one of {ACTOR_GRADS}, got {self.actor_grad!r}")


@dataclass(frozen=True)
class Imagined:
    """Imagined trajectories of ``M = P * N`` rows (particle-major, as the rollout core).

    Attributes:
        obs: ``(H + 1, M, O)`` observations (row 0: the start).
        actions: ``(H, M, A)`` the actions taken.
        rewards: ``(H, M)`` rewards as counted (0 after an ending).
        weights: ``(H, M)`` ``gamma^t * alive_t`` of each step.
        continues: ``(H, M)`` 1 where the row is still alive after the step, else 0.
    """

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    weights: Tensor
    continues: Tensor


def policy_spread(actor: LearnedPolicy) -> Tensor:
    """The actor's Gaussian standard deviation ``(A,)`` in action units."""
    return actor.log_std.exp() * actor.action_half


def policy_entropy(actor: LearnedPolicy) -> Tensor:
    """Entropy (nats, a scalar) of the actor's Gaussian before clipping (state-independent)."""
    return (torch.log(policy_spread(actor)) + 0.5 * math.log(2 * math.pi * math.e)).sum()


def imagine(
    model: DynamicsModel,
    actor: LearnedPolicy,
    start_obs: Tensor,
    reward_fn: RewardFn,
    termination_fn: TerminationFn | None,
    *,
    horizon: int,
    gamma: float,
    n_particles: int = 1,
    generator: torch.Generator | None = None,
    differentiable: bool = False,
) -> Imagined:
    """Roll the actor's actions through ``model`` from ``start_obs (N, O)``: :class:`Imagined`.

    Actions are ``clip(actor.mode(obs) + spread * noise)`` with standard normal noise from
    ``generator``. With ``differentiable`` the autograd graph is kept through the actions,
    the model and the reward (dynamics backprop); otherwise nothing is recorded for autograd.

    Raises:
        TypeError: ``actor`` is a Discrete policy (imagination needs Box actions).
    """
    if actor.discrete:
        raise TypeError("imagination actor-critic needs a Box action space (a Gaussian actor)")
    low = actor.action_mid - actor.action_half
    high = actor.action_mid + actor.action_half

    def policy(t: int, state: object, obs: Tensor) -> Tensor:
        mean = actor.mode(obs)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        return torch.minimum(torch.maximum(mean + policy_spread(actor) * noise, low), high)

    with torch.set_grad_enabled(differentiable):
        out = simulate(
            model,
            start_obs,
            reward_fn,
            termination_fn,
            policy=policy,
            horizon=horizon,
            n_particles=n_particles,
            gamma=gamma,
            generator=generator,
            record=True,
        )
    m = n_particles * start_obs.shape[0]
    weights = out.weights.reshape(horizon, m)
    alive = torch.cat([weights[1:] > 0, out.alive.reshape(1, m)]).to(weights.dtype)
    return Imagined(
        out.observations.reshape(horizon + 1, m, -1),
        out.actions.reshape(horizon, m, -1),
        out.rewards.reshape(horizon, m),
        weights,
        alive,
    )


class ActorCritic:
    """The actor (a :class:`LearnedPolicy`, exportable with ``mbrl export --what policy``), the
    critic, its target and their optimisers; :meth:`update` is one imagination step.

    Args:
        obs_dim: ``O``; low / high: Box action bounds ``(A,)``.
        config: :class:`ImaginationConfig`.
        device: where the networks live (default cpu).
    """

    def __init__(
        self,
        obs_dim: int,
        low: Tensor,
        high: Tensor,
        config: ImaginationConfig | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.config = cfg = config or ImaginationConfig()
        low = torch.as_tensor(low, dtype=torch.float32).reshape(-1)
        high = torch.as_tensor(high, dtype=torch.float32).reshape(-1)
        self.actor = LearnedPolicy(
            obs_dim,
            int(low.shape[0]),
            False,
            low.tolist(),
            high.tolist(),
            cfg.hidden_size,
            cfg.num_layers,
        ).to(device)
        with torch.no_grad():
            self.actor.log_std.fill_(math.log(cfg.init_std))
        self.critic = Critic(obs_dim, cfg.hidden_size, cfg.num_layers).to(device)
        self.target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.updates = 0

    def fit_normalizers(self, obs: Tensor) -> None:
        """Set the actor's and the critics' input statistics from real observations
        ``(N, O)`` (once, before training: moving them later would shift the actor)."""
        self.actor.input_norm.fit(obs)
        self.critic.fit_normalizer(obs)
        self.target.fit_normalizer(obs)

    def gradient_mode(self, model: DynamicsModel) -> str:
        """The actor objective used with ``model``: ``dynamics`` or ``reinforce``.

        Raises:
            ValueError: ``actor_grad="dynamics"`` with a model that is not differentiable.
        """
        differentiable = DIFFERENTIABLE in model.capabilities
        mode = self.config.actor_grad
        if mode == "auto":
            return "dynamics" if differentiable else "reinforce"
        if mode == "dynamics" and not differentiable:
            raise ValueError(
                f"actor_grad='dynamics' back-propagates through the model, but "
                f"{type(model).__name__} is not differentiable; use 'reinforce' or 'auto'"
            )
        return mode

    def update(
        self,
        model: DynamicsModel,
        start_obs: Tensor,
        reward_fn: RewardFn,
        termination_fn: TerminationFn | None,
        generator: torch.Generator | None = None,
    ) -> dict[str, float]:
        """One actor and one critic step on rollouts imagined from ``start_obs (N, O)``.

        Returns:
            ``actor_loss``, ``critic_loss``, ``imagined_return`` (mean weighted lambda-return
            of the first step), ``entropy`` and ``action_std`` (mean spread).
        """
        cfg = self.config
        mode = self.gradient_mode(model)
        im = imagine(
            model,
            self.actor,
            start_obs,
            reward_fn,
            termination_fn,
            horizon=cfg.horizon,
            gamma=cfg.gamma,
            n_particles=cfg.n_particles,
            generator=generator,
            differentiable=mode == "dynamics",
        )
        weights = im.weights.detach()
        with torch.set_grad_enabled(mode == "dynamics"):
            values = self.target(im.obs)
            returns = lambda_returns(im.rewards, values, im.continues, cfg.gamma, cfg.lam)
        entropy = policy_entropy(self.actor)
        if mode == "dynamics":
            objective = returns[0].mean()
        else:
            obs, actions = im.obs[:-1].detach(), im.actions.detach()
            advantage = (returns - values[:-1]).detach()
            objective = (weights * self.actor.log_prob(obs, actions) * advantage).mean()
        actor_loss = -(objective + cfg.entropy_coef * entropy)
        _step(self.actor_opt, actor_loss, list(self.actor.parameters()), cfg.grad_clip)

        predicted = self.critic(im.obs[:-1].detach())
        critic_loss = 0.5 * (weights * (predicted - returns.detach()).square()).mean()
        _step(self.critic_opt, critic_loss, list(self.critic.parameters()), cfg.grad_clip)
        with torch.no_grad():
            for target, source in zip(
                self.target.parameters(), self.critic.parameters(), strict=True
            ):
                target.lerp_(source, cfg.target_tau)
        self.updates += 1
        return {
            "actor_loss": float(actor_loss.detach()),
            "critic_loss": float(critic_loss.detach()),
            "imagined_return": float(returns[0].detach().mean()),
            "entropy": float(entropy.detach()),
            "action_std": float(policy_spread(self.actor).detach().mean()),
        }


def _step(opt: torch.optim.Optimizer, loss: Tensor, params: list[Tensor], clip: float) -> None:
    """One optimiser step on ``params`` only (nothing else receives a gradient)."""
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    for p, g in zip(params, grads, strict=True):
        p.grad = g if g is not None else torch.zeros_like(p)
    torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()
