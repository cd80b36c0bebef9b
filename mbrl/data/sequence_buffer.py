"""Episode replay for sequence models (RSSM): whole episodes in, ``B`` chunks of length ``L`` out.

Step layout ("into" convention): an episode of ``T`` transitions is stored as ``T + 1`` steps.
Step ``t`` holds observation ``o_t``, the action ``a_{t-1}`` that led *into* it and the reward
``r_{t-1}`` paid for that action; step 0 holds zeros there and ``first = True``. A chunk is ``L``
consecutive steps of one episode, so a model filters ``o_0..o_{L-1}`` feeding ``action[t]``
before seeing ``obs[t]``, and predicts ``reward[t]`` wherever ``first[t]`` is False.

Image observations are stored as ``uint8`` (4x less memory than float32); vector observations
as float32.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor

from mbrl.data.buffer import TransitionBuffer, _check_int, _check_tensor, _read_state
from mbrl.validation import check_positive_int

_FORMAT = "mbrl-sequence-buffer"
_VERSION = 1


@dataclass(frozen=True)
class SequenceBatch:
    """``B`` chunks of ``L`` steps.

    Attributes:
        obs: ``(B, L, *obs_shape)`` observations (uint8 images or float32 vectors).
        action: ``(B, L, A)`` float32, the action that led into each step (zeros at ``first``).
        reward: ``(B, L)`` float32, the reward paid for that action (0 at ``first``).
        first: ``(B, L)`` bool, the step starts its episode (no action/reward led into it).
        terminated: ``(B, L)`` bool, the MDP ended at this step.
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    first: Tensor
    terminated: Tensor

    @property
    def batch_size(self) -> int:
        """``B``."""
        return int(self.obs.shape[0])

    @property
    def length(self) -> int:
        """``L``."""
        return int(self.obs.shape[1])

    def to(self, device: torch.device | str) -> SequenceBatch:
        """The same batch on ``device``."""
        return SequenceBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


class SequenceBuffer:
    """Stores whole episodes in one flat step array; samples chunks uniformly over valid starts.

    Args:
        obs_shape: observation shape, ``(O,)`` for vectors or ``(H, W, C)`` / ``(C, H, W)`` for
            images.
        action_dim: encoded action size ``A``.
        capacity: most steps kept; the oldest whole episodes are dropped beyond it
            (default 1_000_000).
        obs_dtype: ``torch.uint8`` for images, ``torch.float32`` for vectors (default float32).
        device: where the storage lives (samples come back there).
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        action_dim: int,
        capacity: int = 1_000_000,
        obs_dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ) -> None:
        obs_shape = tuple(int(s) for s in obs_shape)
        if not obs_shape or any(s < 1 for s in obs_shape):
            raise ValueError(
                f"obs_shape must be a non-empty tuple of positive ints, got {obs_shape}"
            )
        check_positive_int(action_dim, "action_dim")
        check_positive_int(capacity, "capacity", minimum=2)
        if obs_dtype not in (torch.uint8, torch.float32):
            raise TypeError(f"obs_dtype must be torch.uint8 or torch.float32, got {obs_dtype}")
        self.obs_shape = obs_shape
        self.action_dim = int(action_dim)
        self.capacity = int(capacity)
        self.obs_dtype = obs_dtype
        self.device = torch.device(device)
        self._obs = torch.zeros((0, *obs_shape), dtype=obs_dtype, device=self.device)
        self._action = torch.zeros(0, action_dim, device=self.device)
        self._reward = torch.zeros(0, device=self.device)
        self._first = torch.zeros(0, dtype=torch.bool, device=self.device)
        self._terminated = torch.zeros(0, dtype=torch.bool, device=self.device)
        self.episode_lengths: list[int] = []
        self.total_steps_added = 0

    def __len__(self) -> int:
        """Steps stored (``T + 1`` per episode)."""
        return int(self._obs.shape[0])

    @property
    def num_episodes(self) -> int:
        """Episodes stored."""
        return len(self.episode_lengths)

    def _as_obs(self, obs: Tensor | np.ndarray, steps: int) -> Tensor:
        expected = (steps, *self.obs_shape)
        if isinstance(obs, np.ndarray):
            if self.obs_dtype == torch.uint8 and obs.dtype != np.uint8:
                raise TypeError(f"obs must be uint8 images for this buffer, got dtype {obs.dtype}")
            obs = torch.from_numpy(np.ascontiguousarray(obs))
        if not isinstance(obs, Tensor):
            raise TypeError(f"obs must be a tensor or numpy array, got {type(obs).__name__}")
        if self.obs_dtype == torch.uint8 and obs.dtype != torch.uint8:
            raise TypeError(f"obs must be uint8 images for this buffer, got dtype {obs.dtype}")
        if tuple(obs.shape) != expected:
            raise ValueError(
                f"obs must have shape {expected} (T + 1 steps), got {tuple(obs.shape)}"
            )
        obs = obs.to(self.device, self.obs_dtype)
        if obs.is_floating_point() and not bool(torch.isfinite(obs).all()):
            raise ValueError("obs contains NaN or inf; refusing to store it")
        return obs

    def add_episode(
        self,
        obs: Tensor | np.ndarray,
        action: Tensor | np.ndarray,
        reward: Tensor | np.ndarray,
        terminated: bool = False,
    ) -> None:
        """Append one whole episode of ``T`` transitions.

        Args:
            obs: ``(T + 1, *obs_shape)`` observations ``o_0..o_T``.
            action: ``(T, A)`` actions ``a_0..a_{T-1}`` (encoded).
            reward: ``(T,)`` rewards ``r_0..r_{T-1}``.
            terminated: the episode ended in a terminal state (not a time limit).

        Raises:
            ValueError / TypeError: wrong shapes, dtype (uint8 buffers need uint8 images),
                non-finite values, or an episode with no transition; nothing is stored then.
        """
        action_t = torch.as_tensor(np.asarray(action, np.float32)).to(self.device)
        if action_t.ndim != 2 or action_t.shape[1] != self.action_dim or action_t.shape[0] < 1:
            raise ValueError(
                f"action must have shape (T, {self.action_dim}) with T >= 1, "
                f"got {tuple(action_t.shape)}"
            )
        steps = int(action_t.shape[0])
        reward_t = torch.as_tensor(np.asarray(reward, np.float32)).to(self.device)
        if tuple(reward_t.shape) != (steps,):
            raise ValueError(f"reward must have shape ({steps},), got {tuple(reward_t.shape)}")
        if not (bool(torch.isfinite(action_t).all()) and bool(torch.isfinite(reward_t).all())):
            raise ValueError("action or reward contains NaN or inf; refusing to store them")
        obs_t = self._as_obs(obs, steps + 1)
        zero_a = torch.zeros(1, self.action_dim, device=self.device)
        first = torch.zeros(steps + 1, dtype=torch.bool, device=self.device)
        first[0] = True
        term = torch.zeros(steps + 1, dtype=torch.bool, device=self.device)
        term[-1] = bool(terminated)
        self._obs = torch.cat([self._obs, obs_t])
        self._action = torch.cat([self._action, zero_a, action_t])
        self._reward = torch.cat([self._reward, reward_t.new_zeros(1), reward_t])
        self._first = torch.cat([self._first, first])
        self._terminated = torch.cat([self._terminated, term])
        self.episode_lengths.append(steps + 1)
        self.total_steps_added += steps
        self._evict()

    def _evict(self) -> None:
        drop = 0
        while len(self) - drop > self.capacity and len(self.episode_lengths) > 1:
            drop += self.episode_lengths.pop(0)
        if drop:
            for name in ("_obs", "_action", "_reward", "_first", "_terminated"):
                setattr(self, name, getattr(self, name)[drop:])

    def _valid_starts(self, length: int) -> Tensor:
        starts, offset = [], 0
        for n in self.episode_lengths:
            if n >= length:
                starts.append(torch.arange(offset, offset + n - length + 1))
            offset += n
        if not starts:
            longest = max(self.episode_lengths, default=0)
            raise ValueError(
                f"chunk length {length} is longer than every stored episode (longest has "
                f"{longest} steps incl. the first observation); use a shorter chunk_length or "
                "collect longer episodes"
            )
        return torch.cat(starts).to(self.device)

    def sample(self, batch_size: int, length: int, generator: torch.Generator) -> SequenceBatch:
        """``batch_size`` chunks of ``length`` consecutive steps of one episode each.

        Chunk starts are uniform over all valid positions (with replacement) using ``generator``.

        Raises:
            ValueError: empty buffer, or no episode with at least ``length`` steps.
        """
        check_positive_int(batch_size, "batch_size")
        check_positive_int(length, "length")
        if not self.episode_lengths:
            raise ValueError("cannot sample from an empty SequenceBuffer")
        valid = self._valid_starts(length)
        pick = torch.randint(
            0, valid.shape[0], (batch_size,), generator=generator, device=generator.device
        ).to(self.device)
        idx = valid[pick].unsqueeze(1) + torch.arange(length, device=self.device)  # (B, L)
        return SequenceBatch(
            self._obs[idx],
            self._action[idx],
            self._reward[idx],
            self._first[idx],
            self._terminated[idx],
        )

    def episode(self, index: int) -> SequenceBatch:
        """Stored episode ``index`` (negative counts from the newest) as a batch with ``B = 1``."""
        n = self.num_episodes
        if not -n <= index < n:
            raise IndexError(f"episode index {index} out of range for {n} stored episodes")
        index %= n
        start = sum(self.episode_lengths[:index])
        sl = slice(start, start + self.episode_lengths[index])
        return SequenceBatch(
            self._obs[sl][None],
            self._action[sl][None],
            self._reward[sl][None],
            self._first[sl][None],
            self._terminated[sl][None],
        )

    def observations_and_rewards(self) -> tuple[Tensor, Tensor]:
        """All stored observations ``(N, *obs_shape)`` and the real rewards ``(N - E,)`` (the
        first step of each of the ``E`` episodes has none), e.g. for normaliser statistics."""
        return self._obs, self._reward[~self._first]

    def state_dict(self) -> dict:
        """Contents and bookkeeping (CPU tensors), for :meth:`save`."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "obs_shape": list(self.obs_shape),
            "action_dim": self.action_dim,
            "capacity": self.capacity,
            "obs_dtype": str(self.obs_dtype).removeprefix("torch."),
            "episode_lengths": list(self.episode_lengths),
            "total_steps_added": self.total_steps_added,
            # clone: after an eviction the tensors are views of a larger storage
            **{name: getattr(self, "_" + name).cpu().clone() for name in _FIELDS},
        }

    save = TransitionBuffer.save  # writes self.state_dict() to one file atomically

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> SequenceBuffer:
        """Read a buffer written by :meth:`save`, with ``torch.load(weights_only=True)``:
        nothing in the file is executed.

        Raises:
            ValueError: the file is missing, corrupt, not an mbrl sequence buffer, or holds
                keys, shapes, dtypes, episode lengths or values other than a buffer writes
                (the message names the file and what was expected).
        """
        state = _read_state(path, _FORMAT, "sequence buffer")
        where = f"buffer file {str(path)!r}"
        if state.get("version") != _VERSION:
            raise ValueError(f"{where} has version {state.get('version')!r}, expected {_VERSION}")
        missing = sorted(set(_HEADER + _FIELDS) - set(state))
        if missing:
            raise ValueError(f"{where} lacks the key(s) {missing} of a sequence buffer")
        shape = state["obs_shape"]
        if not (
            isinstance(shape, list | tuple)
            and shape
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)
        ):
            raise ValueError(f"{where}: obs_shape must be a list of positive ints, found {shape!r}")
        action_dim = _check_int(state, "action_dim", where, 1)
        capacity = _check_int(state, "capacity", where, 2)
        dtypes = {"uint8": torch.uint8, "float32": torch.float32}
        if state["obs_dtype"] not in dtypes:
            raise ValueError(
                f"{where}: obs_dtype must be one of {sorted(dtypes)}, found {state['obs_dtype']!r}"
            )
        lengths = state["episode_lengths"]
        if not isinstance(lengths, list | tuple) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 2 for n in lengths
        ):
            raise ValueError(
                f"{where}: episode_lengths must be a list of ints >= 2 (steps incl. the first "
                f"observation), found {lengths!r}"
            )
        steps = sum(lengths)
        _check_int(state, "total_steps_added", where, steps - len(lengths))
        obs_dtype = dtypes[state["obs_dtype"]]
        expected = {
            "obs": ((steps, *shape), obs_dtype),
            "action": ((steps, action_dim), torch.float32),
            "reward": ((steps,), torch.float32),
            "first": ((steps,), torch.bool),
            "terminated": ((steps,), torch.bool),
        }
        for name, (want_shape, dtype) in expected.items():
            _check_tensor(state, name, tuple(want_shape), dtype, where)
        starts = torch.zeros(steps, dtype=torch.bool)
        starts[[0, *itertools.accumulate(lengths[:-1])] if lengths else []] = True
        if not torch.equal(state["first"], starts):
            raise ValueError(f"{where}: 'first' does not mark the starts of its episode_lengths")
        floats = [state["action"], state["reward"]] + (
            [state["obs"]] if obs_dtype == torch.float32 else []
        )
        if not all(bool(torch.isfinite(x).all()) for x in floats):
            raise ValueError(f"{where}: observations, actions or rewards hold NaN or inf")
        buf = cls(tuple(shape), action_dim, capacity, obs_dtype, device)
        for name in _FIELDS:
            setattr(buf, "_" + name, state[name].to(buf.device))
        buf.episode_lengths = list(lengths)
        buf.total_steps_added = int(state["total_steps_added"])
        return buf


_FIELDS = ("obs", "action", "reward", "first", "terminated")
_HEADER = (
    "obs_shape",
    "action_dim",
    "capacity",
    "obs_dtype",
    "episode_lengths",
    "total_steps_added",
)


def random_sequence_batch(
    obs_shape: tuple[int, ...],
    action_dim: int,
    batch_size: int,
    length: int,
    generator: torch.Generator,
) -> SequenceBatch:
    """Synthetic chunks ``(B, L, ...)`` for tests and benchmarks: uint8 images when
    ``obs_shape`` has 3 dims, else standard-normal vectors; actions uniform in ``[-1, 1]``;
    ``first`` only at ``t = 0`` (on the generator's device)."""
    dev = generator.device
    b = batch_size
    if len(obs_shape) == 3:
        obs = torch.randint(
            0, 256, (b, length, *obs_shape), generator=generator, dtype=torch.uint8, device=dev
        )
    else:
        obs = torch.randn(b, length, *obs_shape, generator=generator, device=dev)
    first = torch.zeros(b, length, dtype=torch.bool, device=dev)
    first[:, 0] = True
    return SequenceBatch(
        obs,
        torch.rand(b, length, action_dim, generator=generator, device=dev) * 2 - 1,
        torch.randn(b, length, generator=generator, device=dev),
        first,
        torch.zeros(b, length, dtype=torch.bool, device=dev),
    )
