"""What a state-space run learns besides its dynamics: task models and search aids.

:class:`TaskModels` are the reward / termination models of ``reward="learned"`` runs (or of
envs without known task functions); :class:`SearchAids` the value and rollout policy handed to
planners that accept them. Both are built by :func:`mbrl.agents.setup.build_run` and refitted
by the loop before every MPC episode.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import torch

from mbrl.agents.exploration import ExplorationReward, flat_rewards, reward_scale, sparse_reward
from mbrl.data.buffer import TransitionBuffer
from mbrl.models.box_termination import BoxTermination
from mbrl.models.policy_model import LearnedPolicy, fit_policy
from mbrl.models.task_models import LearnedReward, LearnedTermination, TaskNetConfig
from mbrl.models.training import FitConfig, fit
from mbrl.models.value_model import LearnedValue, fit_value
from mbrl.spaces import ActionCodec

TERMINATION_KINDS = {"mlp": LearnedTermination, "box": BoxTermination}
"""``RunConfig.termination`` -> the learned termination model class."""


class TaskModels:
    """Learned reward ``(obs, action, next_obs) -> (M,)`` and, optionally, termination models.

    Args:
        obs_dim / action_dim: sizes ``O`` / ``A``; device: where they live.
        termination: a :data:`TERMINATION_KINDS` key, or None for envs that never terminate.
        net: size of the reward network and of an ``mlp`` termination classifier (default
            :class:`TaskNetConfig`: 200 x 3).
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        device: torch.device,
        termination: str | None,
        net: TaskNetConfig | None = None,
    ) -> None:
        net = net or TaskNetConfig()
        sizes = (net.hidden_size, net.num_layers)
        self.reward = LearnedReward(obs_dim, action_dim, *sizes).to(device)
        self.termination: LearnedTermination | BoxTermination | None = None
        if termination == "mlp":
            self.termination = LearnedTermination(obs_dim, action_dim, *sizes).to(device)
        elif termination:
            self.termination = TERMINATION_KINDS[termination](obs_dim, action_dim).to(device)
        self.explorer: ExplorationReward | None = None
        """The planner's reward when the run explores (``RunConfig.explore``); set by
        :func:`~mbrl.agents.setup.build_run`, switched by :meth:`fit`."""

    @property
    def exploring(self) -> bool:
        """Whether the planner currently adds the disagreement bonus."""
        return self.explorer is not None and self.explorer.exploring

    def fit(self, buffer: TransitionBuffer, config: FitConfig, gen: torch.Generator) -> None:
        """Fit both to every transition in ``buffer``.

        When every reward in ``buffer`` is the same and no episode ended, every plan scores
        alike under the learned reward: without an :attr:`explorer` MPC then acts at random,
        and this warns (``RuntimeWarning``, once per fit). An explorer (``explore="auto"``)
        is switched on for the next episode exactly when
        :func:`~mbrl.agents.exploration.sparse_reward` holds for ``buffer``.
        """
        fit(self.reward, buffer, config, gen)
        data = buffer.all()
        seen = bool(data.terminated.any())
        flat = not seen and flat_rewards(data.reward)
        if self.explorer is not None:
            self.explorer.update(sparse_reward(data), reward_scale(data.reward))
        if flat and self.explorer is None:
            warnings.warn(
                f"reward='learned': all {len(buffer)} rewards in the data equal "
                f"{float(data.reward[0]):g} and no episode ended, so the planner sees no "
                "reward signal and acts at random; explore with an ensemble (--model "
                "ensemble, --explore auto), pass known task functions (register_task_fns, "
                "reward='known') or seed data that reaches the goal",
                RuntimeWarning,
                stacklevel=2,
            )
        if isinstance(self.termination, BoxTermination):
            self.termination.fit_bounds(buffer)
        elif self.termination is not None:
            # No ending in the data: nothing to classify, and predicting none costs nothing.
            self.termination.note_endings(seen)
            if seen:
                fit(self.termination, buffer, config, gen)

    def checkpoints(self) -> dict[str, torch.nn.Module]:
        """File name -> model, for the run's output directory."""
        out: dict[str, torch.nn.Module] = {"reward_model.pt": self.reward}
        if self.termination is not None:
            out["termination_model.pt"] = self.termination
        return out


class SearchAids:
    """The learned value ``(M, O) -> (M,)`` (``value="learned"``) and rollout policy
    (``policy="learned"``) handed to planners that accept them (None where not asked for).

    Args:
        value / policy: build them; gamma: discount of the value's targets.
        obs_dim: ``O``; codec: the action space (the policy's output); device: where they live.
    """

    def __init__(
        self,
        value: bool,
        policy: bool,
        gamma: float,
        obs_dim: int,
        codec: ActionCodec,
        device: torch.device,
    ) -> None:
        self.gamma = gamma
        self.value: LearnedValue | None = LearnedValue(obs_dim).to(device) if value else None
        self.policy: LearnedPolicy | None = None
        if policy:
            low, high = (None, None) if codec.discrete else (codec.low, codec.high)
            self.policy = LearnedPolicy(obs_dim, codec.dim, codec.discrete, low, high).to(device)

    @property
    def policy_fn(self) -> Callable | None:
        """``sample(obs (M, O), generator) -> (M, A)`` of the policy, or None."""
        return self.policy.sample if self.policy is not None else None

    def fit(self, buffer: TransitionBuffer, config: FitConfig, gen: torch.Generator) -> None:
        """Fit the value to the discounted real returns and the policy to the agent's actions."""
        if len(buffer) < 2:
            return
        if self.value is not None:
            fit_value(self.value, buffer, self.gamma, config, gen)
        if self.policy is not None:
            fit_policy(self.policy, buffer, config, gen)

    def checkpoints(self) -> Mapping[str, torch.nn.Module]:
        """File name -> model, for the run's output directory."""
        named = {"value_model.pt": self.value, "policy_model.pt": self.policy}
        return {name: model for name, model in named.items() if model is not None}
