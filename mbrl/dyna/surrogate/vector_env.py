"""``N`` copies of a surrogate env stepped as one batched tensor call (a ``gymnasium.vector.VectorEnv``).

Each :meth:`SurrogateVectorEnv.step` is one ``model.step`` on ``(N, O)`` rows plus one reward and
one termination call, instead of ``N`` Python-level env steps. Autoreset mode is
``SAME_STEP`` (declared in ``metadata["autoreset_mode"]``): a copy that terminates or truncates
is reset within the same ``step`` call, the returned observation is its new start state, and its
last observation is in ``infos["final_obs"]`` (a dense ``(N, O)`` array; rows where
``infos["_final_obs"]`` is True are valid). Copies get a random ensemble member per step (rows
are permuted before each model step). See :mod:`mbrl.dyna.surrogate.core` for clipping, penalties and
divergence handling, which are the same as the single env's.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from torch import Tensor

from mbrl.data.buffer import TransitionBuffer
from mbrl.dyna.surrogate.env import SurrogateEnv, SurrogateHandle
from mbrl.dyna.surrogate.io import loaded_surrogate
from mbrl.models.base import DynamicsModel
from mbrl.task_fns import RewardFn, TerminationFn
from mbrl.validation import check_positive_int


class SurrogateVectorEnv(SurrogateHandle, gym.vector.VectorEnv):
    """``num_envs`` surrogate copies as one batched ``gymnasium.vector.VectorEnv``.

    ``reset(seed=, options=) -> (obs (N, O), infos)``; options: ``{"states": (N, O)}`` starts
    every copy from given states, ``{"reset_mask": (N,) bool}`` resets only those copies.
    ``step(actions (N, A) or (N,) ints) -> (obs (N, O), rewards (N,) float64,
    terminated (N,) bool, truncated (N,) bool, infos)``.

    Args:
        model, observation_space, action_space, reward_fn, termination_fn, start_states,
        uncertainty_penalty, clip_observations: as :class:`~mbrl.dyna.surrogate.core.SurrogateCore`
            (``observation_space``/``action_space`` are the *single* copy's spaces).
        num_envs: number of copies ``N``.
        max_episode_steps: per-copy truncation (default 1000; ``None``: never).
        info: extra metadata kept as ``surrogate_info``.

    Raises:
        TypeError / ValueError: as :class:`~mbrl.dyna.surrogate.core.SurrogateCore`, plus a
            non-positive ``num_envs`` or ``max_episode_steps``.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        model: DynamicsModel,
        observation_space: gym.Space,
        action_space: gym.Space,
        reward_fn: RewardFn,
        termination_fn: TerminationFn | None,
        start_states: Tensor | np.ndarray | TransitionBuffer,
        num_envs: int,
        *,
        max_episode_steps: int | None = 1000,
        uncertainty_penalty: float = 0.0,
        clip_observations: bool = True,
        info: dict[str, Any] | None = None,
    ) -> None:
        check_positive_int(num_envs, "num_envs")
        core_args = (model, observation_space, action_space, reward_fn, termination_fn)
        self._init_surrogate(
            (*core_args, start_states),
            max_episode_steps,
            uncertainty_penalty,
            clip_observations,
            info,
        )
        self.num_envs = int(num_envs)
        self.single_observation_space = observation_space
        self.single_action_space = action_space
        self.observation_space = batch_space(observation_space, self.num_envs)
        self.action_space = batch_space(action_space, self.num_envs)
        self._steps = np.zeros(self.num_envs, dtype=np.int64)

    @classmethod
    def from_env(cls, env: SurrogateEnv, num_envs: int) -> SurrogateVectorEnv:
        """``num_envs`` batched copies of a single :class:`SurrogateEnv` (same model and parts)."""
        env = env.unwrapped if isinstance(env, gym.Wrapper) else env
        if not isinstance(env, SurrogateEnv):
            raise TypeError(f"env must be a SurrogateEnv, got {type(env).__name__}")
        core = env.core
        return cls(
            core.model,
            core.observation_space,
            core.action_space,
            core.reward_fn,
            core.termination_fn,
            core.start_states,
            num_envs,
            max_episode_steps=env.max_episode_steps,
            uncertainty_penalty=core.uncertainty_penalty,
            clip_observations=core.clip_observations,
            info=env.surrogate_info,
        )

    def _numpy_obs(self, obs: Tensor) -> np.ndarray:
        return obs.cpu().numpy().astype(self.core.obs_dtype, copy=True)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all copies (or those in ``options["reset_mask"]``).

        Returns:
            ``(obs (N, O), infos)``.
        """
        super().reset(seed=seed)
        self._seed_generator(seed)
        options = options or {}
        n = self.num_envs
        mask = options.get("reset_mask")
        if mask is not None and self._obs is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (n,):
                raise ValueError(f"options['reset_mask'] must have shape ({n},), got {mask.shape}")
            self._reset_rows(mask)
            return self._numpy_obs(self._obs), {}
        if options.get("states") is not None:
            obs = self.core.check_state(options["states"], n)
        else:
            obs = self.core.sample_starts(n, self._gen)
        self._obs = obs
        self._state = self.core.initial_state(obs, self._gen)
        self._steps[:] = 0
        return self._numpy_obs(obs), {}

    def _reset_rows(self, mask: np.ndarray) -> None:
        """Give the copies in ``mask (N,)`` fresh start states and zero step counters."""
        rows = torch.as_tensor(np.nonzero(mask)[0], device=self.core.device)
        if rows.numel() == 0:
            return
        fresh = self.core.sample_starts(int(rows.numel()), self._gen)
        self._obs = self._obs.index_copy(0, rows, fresh)
        if self.core.is_observation_state(self._state):
            self._state = self._obs
        else:
            # Latent-state models: states cannot be reset row-wise in general; re-initialise all.
            self._state = self.core.initial_state(self._obs, self._gen)
        self._steps[mask] = 0

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One batched model step of all copies, resetting finished copies (SAME_STEP).

        Raises:
            ValueError: actions of the wrong shape or outside the action space.
            RuntimeError: ``step`` before ``reset``.
        """
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        act = self.core.encode_actions(actions, self.num_envs)
        self._state, next_obs, reward, terminated_t, diverged = self.core.transition(
            self._state, self._obs, act, self._gen, shuffle_members=True
        )
        self._obs = next_obs
        self._steps += 1
        terminated = terminated_t.cpu().numpy()
        if self.max_episode_steps is not None:
            truncated = self._steps >= self.max_episode_steps
        else:
            truncated = np.zeros(self.num_envs, dtype=bool)
        done = terminated | truncated
        infos: dict[str, Any] = {}
        diverged_np = diverged.cpu().numpy()
        if diverged_np.any():
            infos["model_diverged"], infos["_model_diverged"] = diverged_np, diverged_np.copy()
        if done.any():
            infos["final_obs"] = self._numpy_obs(next_obs)
            infos["_final_obs"] = done.copy()
            self._reset_rows(done)
        obs = self._numpy_obs(self._obs)
        return obs, reward.cpu().numpy().astype(np.float64), terminated, truncated, infos


def load_surrogate_vector(
    directory: str | os.PathLike,
    num_envs: int,
    *,
    device: str | torch.device = "cpu",
    max_episode_steps: int | None | str = "saved",
    uncertainty_penalty: float | None = None,
    clip_observations: bool = True,
) -> SurrogateVectorEnv:
    """Rebuild a saved surrogate (:func:`~mbrl.dyna.surrogate.io.save_surrogate`) as ``num_envs``
    batched copies; arguments as :func:`~mbrl.dyna.surrogate.io.load_surrogate`."""
    args, options = loaded_surrogate(
        directory, device, max_episode_steps, uncertainty_penalty, clip_observations
    )
    return SurrogateVectorEnv(*args, num_envs, **options)


def make_surrogate_vector_env(
    path: str | os.PathLike, num_envs: int = 1, **overrides: Any
) -> SurrogateVectorEnv:
    """Vector entry point: ``gymnasium.make_vec("mbrl/Surrogate-v0", num_envs=N, path=DIR,
    vectorization_mode="vector_entry_point")``."""
    return load_surrogate_vector(path, num_envs, **overrides)
