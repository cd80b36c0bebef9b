"""A learned model as a single ``gymnasium.Env``: :class:`SurrogateEnv` (and the handle the
vector env shares)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from mbrl.data.buffer import TransitionBuffer
from mbrl.dyna.surrogate.core import SurrogateCore
from mbrl.models.base import DynamicsModel
from mbrl.task_fns import RewardFn, TerminationFn
from mbrl.validation import check_positive_int


class SurrogateHandle:
    """What :class:`SurrogateEnv` and the vector env share: the core, the episode cap, the
    metadata and the env's own ``torch.Generator`` (seeded through ``reset(seed=)``)."""

    core: SurrogateCore
    np_random: np.random.Generator

    def _init_surrogate(
        self,
        core_args: tuple,
        max_episode_steps: int | None,
        uncertainty_penalty: float,
        clip_observations: bool,
        info: dict[str, Any] | None,
    ) -> None:
        """Build the core from ``core_args`` (:class:`SurrogateCore`'s positional arguments)."""
        if max_episode_steps is not None:
            check_positive_int(max_episode_steps, "max_episode_steps")
        self.core = SurrogateCore(
            *core_args,
            uncertainty_penalty=uncertainty_penalty,
            clip_observations=clip_observations,
        )
        self.max_episode_steps = max_episode_steps
        self.surrogate_info = dict(info or {})
        self._gen = torch.Generator(device=self.core.device)
        self._gen_seeded = False
        self._state: Any = None
        self._obs: Tensor | None = None

    @property
    def model(self) -> DynamicsModel:
        """The dynamics model."""
        return self.core.model

    @property
    def generator(self) -> torch.Generator:
        """The env's own ``torch.Generator`` (seeded by ``reset(seed=)``)."""
        return self._gen

    def _seed_generator(self, seed: int | None) -> None:
        """Seed the generator from ``reset(seed=)``, or once from ``np_random`` if never seeded."""
        if seed is not None:
            self._gen.manual_seed(int(seed))
            self._gen_seeded = True
        elif not self._gen_seeded:
            self._gen.manual_seed(int(self.np_random.integers(0, 2**62)))
            self._gen_seeded = True


class SurrogateEnv(SurrogateHandle, gym.Env):
    """A learned model of an env as a ``gymnasium.Env`` (see the module docstring for details).

    ``reset(seed=, options=) -> (obs (O,), info)``; ``options={"state": obs (O,)}`` starts from
    a given state instead of a sampled one. ``step(action) -> (obs (O,), reward float,
    terminated bool, truncated bool, info)``.

    Args:
        model, observation_space, action_space, reward_fn, termination_fn, start_states,
        uncertainty_penalty, clip_observations: as :class:`SurrogateCore`.
        max_episode_steps: truncate after this many steps (default 1000; ``None``: never).
        info: extra JSON-like metadata kept on the env (``env.surrogate_info``), e.g. the env id
            the model was learned from.

    Raises:
        TypeError / ValueError: as :class:`SurrogateCore`, plus a non-positive
            ``max_episode_steps``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        model: DynamicsModel,
        observation_space: gym.Space,
        action_space: gym.Space,
        reward_fn: RewardFn,
        termination_fn: TerminationFn | None,
        start_states: Tensor | np.ndarray | TransitionBuffer,
        *,
        max_episode_steps: int | None = 1000,
        uncertainty_penalty: float = 0.0,
        clip_observations: bool = True,
        info: dict[str, Any] | None = None,
    ) -> None:
        core_args = (model, observation_space, action_space, reward_fn, termination_fn)
        self._init_surrogate(
            (*core_args, start_states),
            max_episode_steps,
            uncertainty_penalty,
            clip_observations,
            info,
        )
        self.observation_space = observation_space
        self.action_space = action_space
        self._steps = 0

    def _to_numpy(self, obs: Tensor) -> np.ndarray:
        return obs.reshape(-1).cpu().numpy().astype(self.core.obs_dtype, copy=True)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode from a sampled start state (or ``options["state"]``).

        Returns:
            ``(obs (O,), info)``.
        """
        super().reset(seed=seed)
        self._seed_generator(seed)
        options = options or {}
        if options.get("state") is not None:
            obs = self.core.check_state(options["state"], 1)
        else:
            obs = self.core.sample_starts(1, self._gen)
        self._obs = obs
        self._state = self.core.initial_state(obs, self._gen)
        self._steps = 0
        return self._to_numpy(obs), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One model step from the current state.

        Raises:
            ValueError: an action outside the action space (or of the wrong shape).
            RuntimeError: ``step`` before ``reset``.
        """
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        act = self.core.encode_actions(action, 1)
        self._state, next_obs, reward, terminated, diverged = self.core.transition(
            self._state, self._obs, act, self._gen
        )
        self._obs = next_obs
        self._steps += 1
        truncated = self.max_episode_steps is not None and self._steps >= self.max_episode_steps
        info: dict[str, Any] = {}
        if bool(diverged[0]):
            info["model_diverged"] = True
        return self._to_numpy(next_obs), float(reward[0]), bool(terminated[0]), truncated, info
