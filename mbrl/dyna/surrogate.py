"""Surrogate environments: a learned dynamics model as a ``gymnasium.Env``.

A :class:`SurrogateEnv` steps a :class:`~mbrl.models.base.DynamicsModel` instead of a simulator:
``next_obs = model.step(obs, action)``, the reward and termination come from task functions with
the signature ``fn(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)`` (known ones from
:mod:`mbrl.task_fns`, or :class:`~mbrl.models.LearnedReward` /
:class:`~mbrl.models.LearnedTermination`), and episodes start from states drawn from a buffer.
It has the real env's observation and action spaces, so any model-free learner that trains on
the real env trains on the surrogate unchanged (the seeds' "Dyna-style" recipe).

Behaviour shared by :class:`SurrogateEnv` and
:class:`~mbrl.dyna.vector_surrogate.SurrogateVectorEnv` (both built on :class:`SurrogateCore`):

- **Ensembles:** every step uses a random ensemble member per row (MBPO). A single row through
  a :class:`~mbrl.models.delta_model.DeltaModel` gets a random member from the model itself;
  the vector env permutes its rows before each step so each copy gets a random member.
- **Observations** are clipped to the observation space's bounds (a model can drift outside
  them, e.g. ``|thdot| > 8`` on Pendulum) and cast to the space's dtype (float32 for nearly all
  envs). For observation-space models (the model state *is* the observation) the clipped
  observation is also the state the next step starts from.
- **Reward** is the reward function's value on the (clipped) transition minus
  ``uncertainty_penalty * model.member_disagreement(obs, action)`` (MOPO's penalty; needs an
  ensemble).
- **Termination** comes from the termination function (``None``: never); **truncation** after
  ``max_episode_steps`` steps (``None``: never). If the model produces NaN/inf, the episode
  terminates, the last finite observation is returned and ``info["model_diverged"]`` is True.
- **Actions** outside the action space raise ``ValueError`` naming the action and the bounds
  (a tolerance of ``ACTION_TOLERANCE`` absorbs float round-off; such actions are clipped).
- **Seeding:** ``reset(seed=s)`` seeds the env's own ``torch.Generator`` (start states, ensemble
  members, model noise) and ``np_random``; the same seed and actions give the same episode.

Saved surrogates (:func:`save_surrogate` / :func:`load_surrogate`) are directories that
``gymnasium.make("mbrl/Surrogate-v0", path=DIR)`` opens after ``import mbrl`` (or, without
importing mbrl first, ``gymnasium.make("mbrl.dyna:mbrl/Surrogate-v0", path=DIR)``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from mbrl.data.buffer import TransitionBuffer
from mbrl.models.base import DynamicsModel
from mbrl.models.checkpoint import load_checkpoint, save_checkpoint
from mbrl.models.task_models import LearnedReward, LearnedTermination
from mbrl.spaces import ActionCodec, observation_dim
from mbrl.task_fns import get_task_fns
from mbrl.validation import check_positive_int

RewardFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``reward(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)``."""
TerminationFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``terminated(obs (M, O), action (M, A), next_obs (M, O)) -> (M,)`` bool."""

ACTION_TOLERANCE = 1e-5
"""Box actions up to this far outside the bounds (float round-off) are clipped, not rejected."""

SURROGATE_FORMAT = "mbrl-surrogate"
SURROGATE_VERSION = 1
_META_FILE = "surrogate.json"
_MODEL_FILE = "model.pt"
_REWARD_FILE = "reward_model.pt"
_TERMINATION_FILE = "termination_model.pt"
_STARTS_FILE = "start_states.pt"


# --------------------------------------------------------------------------- spaces as JSON
def space_to_dict(space: gym.Space) -> dict[str, Any]:
    """A JSON-able description of a ``Box`` or ``Discrete`` space (see :func:`space_from_dict`).

    Raises:
        TypeError: for other spaces.
    """
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "low": space.low.astype(np.float64).tolist(),
            "high": space.high.astype(np.float64).tolist(),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    raise TypeError(f"only Box and Discrete spaces can be saved, got {space}")


def space_from_dict(data: dict[str, Any]) -> gym.Space:
    """Rebuild the space described by :func:`space_to_dict`.

    Raises:
        ValueError: for a description that is not a Box or Discrete space.
    """
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "Box":
        dtype = np.dtype(data["dtype"])
        shape = tuple(data["shape"])
        low = np.asarray(data["low"], dtype=np.float64).reshape(shape).astype(dtype)
        high = np.asarray(data["high"], dtype=np.float64).reshape(shape).astype(dtype)
        return gym.spaces.Box(low, high, shape, dtype)
    if kind == "Discrete":
        return gym.spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    raise ValueError(f"space description must be a Box or Discrete dict, got {data!r}")


# --------------------------------------------------------------------------- shared core
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
    :class:`SurrogateEnv` and :class:`~mbrl.dyna.vector_surrogate.SurrogateVectorEnv`.

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
        if penalty > 0 and not hasattr(model, "member_disagreement"):
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
        self._n_members = int(getattr(model, "num_active", getattr(model, "ensemble_size", 1)))

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
            diverged (N,) bool)``; diverged rows keep ``obs`` and are terminated.
        """
        model = self.model
        perm = None
        if shuffle_members and self._n_members > 1 and isinstance(state, Tensor):
            perm = torch.randperm(obs.shape[0], generator=generator, device=generator.device)
            perm = perm.to(self.device)
            next_state = model.step(state[perm], action[perm], generator)
            next_state = torch.empty_like(next_state).index_copy_(0, perm, next_state)
        else:
            next_state = model.step(state, action, generator)
        raw = model.observe(next_state)
        obs_space_model = raw is next_state
        finite = torch.isfinite(raw).all(dim=1)
        diverged = ~finite
        if bool(diverged.any()):
            raw = torch.where(finite.unsqueeze(1), raw, obs)
        next_obs = self.clip(raw)
        if obs_space_model:
            # The state is the observation: continue from the clipped (finite) observation.
            next_state = next_obs
        reward = self.reward_fn(obs, action, next_obs).reshape(-1).to(torch.float32)
        if self.uncertainty_penalty > 0:
            reward = reward - self.uncertainty_penalty * model.member_disagreement(obs, action)
        if self.termination_fn is not None:
            terminated = self.termination_fn(obs, action, next_obs).reshape(-1).to(torch.bool)
        else:
            terminated = torch.zeros(obs.shape[0], dtype=torch.bool, device=obs.device)
        terminated = terminated | diverged
        return next_state, next_obs, reward, terminated, diverged


# --------------------------------------------------------------------------- single env
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


# --------------------------------------------------------------------------- save / load
def save_surrogate(
    directory: str | os.PathLike,
    model: DynamicsModel,
    observation_space: gym.Space,
    action_space: gym.Space,
    start_states: Tensor | np.ndarray | TransitionBuffer,
    *,
    env_id: str,
    reward: str | LearnedReward = "known",
    termination: str | LearnedTermination = "known",
    max_episode_steps: int | None = 1000,
    uncertainty_penalty: float = 0.0,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write a surrogate to ``directory`` so :func:`load_surrogate` (and
    ``gymnasium.make("mbrl/Surrogate-v0", path=directory)``) rebuilds it in any process.

    Files: ``surrogate.json`` (format, env id, spaces, episode length, reward/termination kind,
    penalty, ``info``), ``model.pt`` (model checkpoint, the same metadata inside),
    ``start_states.pt`` (tensor ``(N, O)``), and ``reward_model.pt`` /
    ``termination_model.pt`` for learned ones.

    Args:
        directory: created if missing.
        model: the dynamics model (must be checkpointable).
        observation_space / action_space: the real env's spaces (1-D Box / Box or Discrete).
        start_states: ``(N, O)`` start states, or a buffer (all its ``obs``).
        env_id: the gymnasium id the model was learned on; ``known`` task functions are looked
            up by it (:func:`mbrl.task_fns.get_task_fns`) when loading.
        reward: ``"known"`` or a fitted :class:`~mbrl.models.LearnedReward`.
        termination: ``"known"`` (the env's known termination, possibly none), ``"none"`` or a
            fitted :class:`~mbrl.models.LearnedTermination`.
        max_episode_steps / uncertainty_penalty: defaults of the loaded env.
        info: extra JSON-able metadata (e.g. how the data was collected).

    Returns:
        The directory path.

    Raises:
        ValueError / TypeError: as :class:`SurrogateCore`, or ``known`` task functions that
            are not registered for ``env_id``.
    """
    known = get_task_fns(env_id)
    reward_fn, reward_kind = _resolve_reward(reward, known, env_id)
    term_fn, term_kind = _resolve_termination(termination, known, env_id)
    # Build once: validates sizes, start states and the penalty before anything is written.
    env = SurrogateEnv(
        model,
        observation_space,
        action_space,
        reward_fn,
        term_fn,
        start_states,
        max_episode_steps=max_episode_steps,
        uncertainty_penalty=uncertainty_penalty,
    )
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": SURROGATE_FORMAT,
        "version": SURROGATE_VERSION,
        "env_id": env_id,
        "observation_space": space_to_dict(observation_space),
        "action_space": space_to_dict(action_space),
        "max_episode_steps": None if max_episode_steps is None else int(max_episode_steps),
        "reward": reward_kind,
        "termination": term_kind,
        "uncertainty_penalty": float(uncertainty_penalty),
        "model_class": type(model).__name__,
        "n_start_states": int(env.core.start_states.shape[0]),
        "info": dict(info or {}),
    }
    save_checkpoint(path / _MODEL_FILE, model, meta)
    if isinstance(reward, LearnedReward):
        save_checkpoint(path / _REWARD_FILE, reward, {"env_id": env_id})
    if isinstance(termination, LearnedTermination):
        save_checkpoint(path / _TERMINATION_FILE, termination, {"env_id": env_id})
    starts = env.core.start_states.cpu()
    tmp = path / (_STARTS_FILE + ".tmp")
    torch.save(starts, tmp)
    os.replace(tmp, path / _STARTS_FILE)
    (path / _META_FILE).write_text(json.dumps(meta, indent=2))
    return path


def _resolve_reward(reward: Any, known: Any, env_id: str) -> tuple[RewardFn, str]:
    if isinstance(reward, LearnedReward):
        return reward, "learned"
    if reward == "known":
        if known is None:
            raise ValueError(
                f"reward='known' but no task functions are registered for {env_id!r}; "
                "pass a fitted LearnedReward"
            )
        return known.reward, "known"
    raise ValueError(f"reward must be 'known' or a LearnedReward, got {reward!r}")


def _resolve_termination(
    termination: Any, known: Any, env_id: str
) -> tuple[TerminationFn | None, str]:
    if isinstance(termination, LearnedTermination):
        return termination, "learned"
    if termination == "none":
        return None, "none"
    if termination == "known":
        if known is None:
            raise ValueError(
                f"termination='known' but no task functions are registered for {env_id!r}; "
                "pass a fitted LearnedTermination or 'none'"
            )
        return known.termination, "known"
    raise ValueError(
        f"termination must be 'known', 'none' or a LearnedTermination, got {termination!r}"
    )


def read_surrogate_metadata(directory: str | os.PathLike) -> dict[str, Any]:
    """The ``surrogate.json`` of a saved surrogate.

    Raises:
        ValueError: missing directory/file, or not an mbrl surrogate of a known version.
    """
    path = Path(directory)
    meta_path = path / _META_FILE
    if not meta_path.is_file():
        raise ValueError(
            f"{str(path)!r} is not a saved surrogate (no {_META_FILE}); create one with "
            "`mbrl surrogate --env ID --steps N --out DIR`"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(meta_path)!r} is not valid JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != SURROGATE_FORMAT:
        raise ValueError(f"{str(meta_path)!r} is not an mbrl surrogate description")
    if meta.get("version") != SURROGATE_VERSION:
        raise ValueError(
            f"{str(meta_path)!r} has version {meta.get('version')}, expected {SURROGATE_VERSION}"
        )
    return meta


def _known_fns_for(env_id: str) -> Any:
    known = get_task_fns(env_id)
    if known is None and ":" in env_id:
        # Third-party ids ``module:Env-v0``: importing the module registers its task functions.
        import importlib

        importlib.import_module(env_id.split(":", 1)[0])
        known = get_task_fns(env_id.split(":", 1)[1]) or get_task_fns(env_id)
    if known is None:
        raise ValueError(
            f"the surrogate uses the known task functions of {env_id!r}, but none are registered "
            "in this process (import the package that registers them first)"
        )
    return known


def load_surrogate(
    directory: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    max_episode_steps: int | None | str = "saved",
    uncertainty_penalty: float | None = None,
    clip_observations: bool = True,
) -> SurrogateEnv:
    """Rebuild the :class:`SurrogateEnv` saved by :func:`save_surrogate`.

    Args:
        directory: the saved surrogate.
        device: where the model runs (default cpu).
        max_episode_steps: override the saved episode length (``"saved"``: keep it).
        uncertainty_penalty: override the saved penalty (``None``: keep it).
        clip_observations: clip observations to the space's bounds (default True).

    Raises:
        ValueError: a missing or malformed surrogate directory or file.
    """
    parts = _load_parts(directory, device)
    meta = parts["meta"]
    return SurrogateEnv(
        parts["model"],
        parts["observation_space"],
        parts["action_space"],
        parts["reward_fn"],
        parts["termination_fn"],
        parts["start_states"],
        max_episode_steps=meta["max_episode_steps"]
        if max_episode_steps == "saved"
        else max_episode_steps,
        uncertainty_penalty=meta["uncertainty_penalty"]
        if uncertainty_penalty is None
        else uncertainty_penalty,
        clip_observations=clip_observations,
        info=meta,
    )


def _load_parts(directory: str | os.PathLike, device: str | torch.device) -> dict[str, Any]:
    """Everything a surrogate env needs, read from ``directory``."""
    path = Path(directory)
    meta = read_surrogate_metadata(path)
    model, _ = load_checkpoint(path / _MODEL_FILE, device=device, expected_class=DynamicsModel)
    env_id = meta["env_id"]
    if meta["reward"] == "learned":
        reward_fn, _ = load_checkpoint(
            path / _REWARD_FILE, device=device, expected_class=LearnedReward
        )
    else:
        reward_fn = _known_fns_for(env_id).reward
    if meta["termination"] == "learned":
        term_fn, _ = load_checkpoint(
            path / _TERMINATION_FILE, device=device, expected_class=LearnedTermination
        )
    elif meta["termination"] == "known":
        term_fn = _known_fns_for(env_id).termination
    else:
        term_fn = None
    starts_path = path / _STARTS_FILE
    try:
        starts = torch.load(starts_path, map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise ValueError(f"surrogate start states {str(starts_path)!r} are missing") from err
    except Exception as err:
        raise ValueError(
            f"surrogate start states {str(starts_path)!r} are corrupt ({err})"
        ) from err
    return {
        "meta": meta,
        "model": model,
        "observation_space": space_from_dict(meta["observation_space"]),
        "action_space": space_from_dict(meta["action_space"]),
        "reward_fn": reward_fn,
        "termination_fn": term_fn,
        "start_states": starts,
    }


def make_surrogate_env(path: str | os.PathLike, **overrides: Any) -> SurrogateEnv:
    """Entry point of ``gymnasium.make("mbrl/Surrogate-v0", path=DIR, **overrides)``.

    ``overrides`` are the keyword arguments of :func:`load_surrogate` (``device``,
    ``max_episode_steps``, ``uncertainty_penalty``, ``clip_observations``).
    """
    return load_surrogate(path, **overrides)
