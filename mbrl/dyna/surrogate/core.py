"""The validated, batched transition every surrogate env steps: :class:`SurrogateCore`."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from mbrl.data.buffer import TransitionBuffer
from mbrl.models.base import ENSEMBLE, DynamicsModel
from mbrl.rollout.transition import transition
from mbrl.spaces import ActionCodec, observation_dim
from mbrl.task_fns import RewardFn, TerminationFn

ACTION_TOLERANCE = 1e-5
"""Box actions up to this far outside the bounds (float round-off) are clipped, not rejected."""


def _start_state_tensor(
    start_states: Tensor | np.ndarray | TransitionBuffer, obs_dim: int, device: torch.device
) -> Tensor:
    """Start states as a float32 ``(N, O)`` tensor on ``device`` (every ``obs`` of a buffer)."""
    if isinstance(start_states, TransitionBuffer):
        if len(start_states) == 0:
            raise ValueError(
                "start_states buffer is empty: the surrogate needs at least one observed state "
                "to start episodes from"
            )
        states = start_states.all().obs
    elif isinstance(start_states, Tensor | np.ndarray):
        states = torch.as_tensor(start_states, dtype=torch.float32)
    else:
        raise TypeError(
            "start_states must be a TransitionBuffer, a tensor or an array (N, O), "
            f"got {type(start_states).__name__}"
        )
    if states.ndim == 1 and states.shape[0] == obs_dim:
        states = states.reshape(1, obs_dim)
    if states.ndim != 2 or states.shape[1] != obs_dim:
        raise ValueError(
            f"start_states must have shape (N, {obs_dim}) for this observation space, "
            f"got {tuple(states.shape)}"
        )
    if states.shape[0] == 0:
        raise ValueError("start_states is empty: need at least one start state")
    if not bool(torch.isfinite(states).all()):
        raise ValueError("start_states contains NaN or inf")
    return states.to(device=device, dtype=torch.float32).contiguous()


class SurrogateCore:
    """The validated parts of a surrogate env and its batched transition, shared by
    :class:`SurrogateEnv` and :class:`~mbrl.dyna.surrogate.vector_env.SurrogateVectorEnv`.

    Args:
        model: the dynamics model (put in eval mode); ``model.obs_dim`` must equal the
            observation size ``O`` and ``model.action_dim`` the encoded action size ``A``
            (one-hot size for ``Discrete``).
        observation_space: the real env's observation space (1-D ``Box``).
        action_space: the real env's action space (1-D finite ``Box`` or ``Discrete``).
        reward_fn: ``(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)``.
        termination_fn: same signature, bool ``(M,)``; ``None`` never terminates.
        start_states: ``(N, O)`` states to start episodes from (uniformly), or a
            :class:`~mbrl.data.TransitionBuffer` (all its ``obs``).
        uncertainty_penalty: ``lambda >= 0`` of the MOPO penalty (default 0: none).
        clip_observations: clip observations to the space's bounds (default True).

    Raises:
        TypeError: wrong argument types or unsupported spaces.
        ValueError: size mismatches between model and spaces, empty or malformed start states,
            a negative penalty, or a penalty for a model without ``member_disagreement``.
    """

    def __init__(
        self,
        model: DynamicsModel,
        observation_space: gym.Space,
        action_space: gym.Space,
        reward_fn: RewardFn,
        termination_fn: TerminationFn | None,
        start_states: Tensor | np.ndarray | TransitionBuffer,
        *,
        uncertainty_penalty: float = 0.0,
        clip_observations: bool = True,
    ) -> None:
        if not isinstance(model, DynamicsModel):
            raise TypeError(f"model must be a DynamicsModel, got {type(model).__name__}")
        self.obs_dim = observation_dim(observation_space)
        self.codec = ActionCodec.from_space(action_space)
        if model.obs_dim != self.obs_dim:
            raise ValueError(
                f"model observation size {model.obs_dim} does not match the observation space "
                f"{observation_space} (size {self.obs_dim})"
            )
        if model.action_dim != self.codec.dim:
            raise ValueError(
                f"model action size {model.action_dim} does not match the action space "
                f"{action_space} (encoded size {self.codec.dim})"
            )
        if not callable(reward_fn):
            raise TypeError(f"reward_fn must be callable, got {type(reward_fn).__name__}")
        if termination_fn is not None and not callable(termination_fn):
            raise TypeError(
                f"termination_fn must be callable or None, got {type(termination_fn).__name__}"
            )
        penalty = float(uncertainty_penalty)
        if not penalty >= 0.0:
            raise ValueError(f"uncertainty_penalty must be >= 0, got {uncertainty_penalty}")
        if penalty > 0 and ENSEMBLE not in model.capabilities:
            raise ValueError(
                f"uncertainty_penalty > 0 needs an ensemble with member_disagreement(); "
                f"{type(model).__name__} has none"
            )
        self.model = model.eval()
        self.observation_space = observation_space
        self.action_space = action_space
        self.reward_fn = reward_fn
        self.termination_fn = termination_fn
        self.uncertainty_penalty = penalty
        self.clip_observations = bool(clip_observations)
        self.device = model.device
        self.start_states = _start_state_tensor(start_states, self.obs_dim, self.device)
        self.obs_dtype = np.dtype(observation_space.dtype)
        low = torch.as_tensor(observation_space.low.astype(np.float32), device=self.device)
        high = torch.as_tensor(observation_space.high.astype(np.float32), device=self.device)
        self.obs_low, self.obs_high = low, high
        self._act_low = self.codec.low
        self._act_high = self.codec.high

    # ------------------------------------------------------------------ starts and actions
    def sample_starts(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` start states ``(n, O)`` drawn uniformly (with replacement) from the start set."""
        idx = torch.randint(
            0, self.start_states.shape[0], (n,), generator=generator, device=generator.device
        )
        return self.clip(self.start_states[idx.to(self.device)])

    def check_state(self, state: Any, n: int) -> Tensor:
        """A user-given start state ``(O,)`` or ``(n, O)`` as a float32 ``(n, O)`` tensor.

        Raises:
            ValueError: wrong shape or non-finite values.
        """
        t = torch.as_tensor(np.asarray(state, dtype=np.float32), device=self.device)
        if t.ndim == 1 and n == 1:
            t = t.reshape(1, -1)
        if tuple(t.shape) != (n, self.obs_dim):
            raise ValueError(
                f"start state must have shape {(n, self.obs_dim) if n > 1 else (self.obs_dim,)}, "
                f"got {tuple(t.shape)}"
            )
        if not bool(torch.isfinite(t).all()):
            raise ValueError("start state contains NaN or inf")
        return self.clip(t)

    def encode_actions(self, actions: Any, n: int) -> Tensor:
        """Env actions for ``n`` copies -> encoded float32 ``(n, A)`` on the model's device.

        ``Box``: an array ``(n, A)`` (``(A,)`` when ``n == 1``); ``Discrete``: ints ``(n,)``.

        Raises:
            ValueError: wrong shape, non-finite values, or actions outside the action space.
        """
        codec = self.codec
        if codec.discrete:
            space, first = self.action_space, int(codec.space.start)
            arr = np.asarray(actions)
            if arr.size != n:
                raise ValueError(f"action must be {n} integer(s) of {space}, got {actions!r}")
            arr = arr.reshape(n)
            if not np.issubdtype(arr.dtype, np.integer):
                whole = np.issubdtype(arr.dtype, np.floating) and bool(
                    np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
                )
                if not whole:
                    raise ValueError(f"action {actions!r} is not an integer of {space}")
            idx = arr.astype(np.int64) - first
            bad = (idx < 0) | (idx >= codec.dim)
            if bad.any():
                raise ValueError(
                    f"action {arr[bad].tolist()} is outside the action space {space} "
                    f"(valid: {first}..{first + codec.dim - 1})"
                )
            out = torch.zeros(n, codec.dim, device=self.device)
            out[torch.arange(n, device=self.device), torch.as_tensor(idx, device=self.device)] = 1.0
            return out
        try:
            arr = np.asarray(actions, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise ValueError(f"action must be numeric, got {actions!r}") from err
        if arr.size != n * codec.dim:
            expected = (n, codec.dim) if n > 1 else (codec.dim,)
            raise ValueError(f"action must have shape {expected}, got {arr.shape}")
        arr = arr.reshape(n, codec.dim)
        if not np.isfinite(arr).all():
            rows = np.nonzero(~np.isfinite(arr).all(axis=1))[0]
            what = arr[0].tolist() if n == 1 else f"rows {rows[:5].tolist()}"
            raise ValueError(f"action contains NaN or inf: {what}")
        low, high = self._act_low, self._act_high
        outside = (arr < low - ACTION_TOLERANCE) | (arr > high + ACTION_TOLERANCE)
        if outside.any():
            rows = np.nonzero(outside.any(axis=1))[0]
            what = (
                arr[0].tolist()
                if n == 1
                else f"rows {rows[:5].tolist()} (e.g. {arr[rows[0]].tolist()})"
            )
            raise ValueError(
                f"action {what} is outside the action space bounds low={low.tolist()} "
                f"high={high.tolist()}"
            )
        arr = np.clip(arr, low, high)
        return torch.from_numpy(arr).to(self.device)

    # ------------------------------------------------------------------ transition
    def clip(self, obs: Tensor) -> Tensor:
        """Observations ``(N, O)`` clipped to the observation bounds (when clipping is on)."""
        if not self.clip_observations:
            return obs
        return torch.maximum(torch.minimum(obs, self.obs_high), self.obs_low)

    def initial_state(self, obs: Tensor, generator: torch.Generator) -> Any:
        """The model state for observations ``(N, O)`` (one particle each)."""
        return self.model.initial_state(obs, 1, generator)

    def is_observation_state(self, state: Any) -> bool:
        """True when the model state *is* the observation (observation-space models)."""
        return isinstance(state, Tensor) and self.model.observe(state) is state

    @torch.no_grad()
    def transition(
        self,
        state: Any,
        obs: Tensor,
        action: Tensor,
        generator: torch.Generator,
        shuffle_members: bool = False,
    ) -> tuple[Any, Tensor, Tensor, Tensor, Tensor]:
        """One model step of ``N`` rows.

        Args:
            state: the model state of the rows (``(N, O)`` for observation-space models).
            obs: current observations ``(N, O)``; action: encoded actions ``(N, A)``.
            generator: randomness (ensemble members, model noise).
            shuffle_members: permute the rows before the step, so a model that assigns members
                to contiguous row blocks gives each row a random member (vector env).

        Returns:
            ``(next_state, next_obs (N, O), reward (N,), terminated (N,) bool,
            diverged (N,) bool)`` from :func:`mbrl.rollout.transition.transition`: diverged
            rows keep ``obs``, pay 0 and are terminated (the one divergence rule).
        """
        bounds = (self.obs_low, self.obs_high) if self.clip_observations else None
        tr = transition(
            self.model,
            state,
            obs,
            action,
            self.reward_fn,
            self.termination_fn,
            generator,
            obs_bounds=bounds,
            uncertainty_penalty=self.uncertainty_penalty,
            shuffle_members=shuffle_members,
        )
        reward = tr.reward.to(torch.float32)
        return tr.state, tr.obs, reward, tr.done, ~tr.finite
