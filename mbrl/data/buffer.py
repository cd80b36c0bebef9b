"""Preallocated ring buffer of transitions with explicit-generator sampling and lossless save/load."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from mbrl.util.files import atomic_torch_save
from mbrl.validation import as_float_tensor, check_fraction, check_positive_int

_FORMAT = "mbrl-transition-buffer"
_VERSION = 2  # 2: only the filled rows are stored (1: the whole preallocated capacity)
_ROW_FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated")

_Rows = TypeVar("_Rows", bound="RowBatch")


class RowBatch:
    """Mixin for frozen dataclasses whose fields are all tensors with the same leading ``N``:
    ``len``, row indexing and device moves, as :func:`mbrl.models.fit` uses them."""

    def __len__(self) -> int:
        return int(getattr(self, fields(self)[0].name).shape[0])  # type: ignore[arg-type]

    def index(self: _Rows, idx: Tensor) -> _Rows:
        """Rows ``idx`` (any integer index tensor shape ``S``) -> batch with leading dims ``S``."""
        return type(self)(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})  # type: ignore[arg-type]

    def to(self: _Rows, device: torch.device | str) -> _Rows:
        """The same batch on ``device``."""
        return type(self)(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class TransitionBatch(RowBatch):
    """A batch of ``B`` transitions.

    Attributes:
        obs: ``(B, O)`` float32 observations.
        action: ``(B, A)`` float32 encoded actions.
        reward: ``(B,)`` float32 rewards.
        next_obs: ``(B, O)`` float32 next observations.
        terminated: ``(B,)`` bool, the MDP ended (no bootstrapping past it).
        truncated: ``(B,)`` bool, the episode was cut (time limit); the MDP did not end.
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    terminated: Tensor
    truncated: Tensor

    def episodes(self) -> list[slice]:
        """Row ranges of the episodes in a batch stored in time order (e.g. ``buffer.all()``).

        An episode ends at a ``terminated`` or ``truncated`` row; rows after the last end (an
        episode still running) form a final slice.
        """
        ends = torch.nonzero(self.terminated | self.truncated).flatten().tolist()
        starts = [0] + [e + 1 for e in ends]
        stops = [e + 1 for e in ends] + ([len(self)] if starts[-1] < len(self) else [])
        return [slice(a, b) for a, b in zip(starts, stops, strict=False)]


class TransitionBuffer:
    """Ring buffer of ``capacity`` transitions in preallocated tensors.

    ``add`` takes one transition (``obs (O,)``) or a batch from a vector env (``obs (B, O)``).
    When full, the oldest transitions are overwritten.

    Args:
        obs_dim: observation size ``O``.
        action_dim: encoded action size ``A``.
        capacity: maximum number of stored transitions.
        device: where the storage lives (sampling returns tensors there).
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        capacity: int = 100_000,
        device: str | torch.device = "cpu",
    ) -> None:
        check_positive_int(obs_dim, "obs_dim")
        check_positive_int(action_dim, "action_dim")
        check_positive_int(capacity, "capacity")
        self.obs_dim = int(obs_dim)
        self.action_dim = int(action_dim)
        self.capacity = int(capacity)
        self.device = torch.device(device)
        f32 = {"dtype": torch.float32, "device": self.device}
        self._obs = torch.zeros(capacity, obs_dim, **f32)
        self._action = torch.zeros(capacity, action_dim, **f32)
        self._reward = torch.zeros(capacity, **f32)
        self._next_obs = torch.zeros(capacity, obs_dim, **f32)
        self._terminated = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self._truncated = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self._size = 0
        self._ptr = 0
        self.total_added = 0

    def __len__(self) -> int:
        return self._size

    def add(
        self,
        obs: Tensor | np.ndarray,
        action: Tensor | np.ndarray,
        reward: Tensor | np.ndarray | float,
        next_obs: Tensor | np.ndarray,
        terminated: Tensor | np.ndarray | bool,
        truncated: Tensor | np.ndarray | bool,
    ) -> None:
        """Append one transition (``obs (O,)``) or a batch (``obs (B, O)``, ``reward (B,)``...).

        Raises:
            ValueError: on mismatched shapes or non-finite observations, actions or rewards
                (nothing is written then).
        """
        dev = self.device
        obs_t = as_float_tensor(obs, "obs", device=dev)
        single = obs_t.ndim == 1
        obs_t = obs_t.reshape(1, -1) if single else obs_t
        batch = obs_t.shape[0]
        next_t = as_float_tensor(next_obs, "next_obs", device=dev).reshape(batch, -1)
        act_t = as_float_tensor(action, "action", device=dev).reshape(batch, -1)
        rew_t = as_float_tensor(reward, "reward", device=dev).reshape(-1)
        term_t = torch.as_tensor(np.asarray(terminated), dtype=torch.bool, device=dev).reshape(-1)
        trunc_t = torch.as_tensor(np.asarray(truncated), dtype=torch.bool, device=dev).reshape(-1)
        expected = {
            "obs": (obs_t, (batch, self.obs_dim)),
            "next_obs": (next_t, (batch, self.obs_dim)),
            "action": (act_t, (batch, self.action_dim)),
            "reward": (rew_t, (batch,)),
            "terminated": (term_t, (batch,)),
            "truncated": (trunc_t, (batch,)),
        }
        for name, (value, shape) in expected.items():
            if tuple(value.shape) != shape:
                raise ValueError(
                    f"{name} must have shape {shape} for this buffer, got {tuple(value.shape)}"
                )
        for name in ("obs", "next_obs", "action", "reward"):
            if not bool(torch.isfinite(expected[name][0]).all()):
                raise ValueError(f"{name} contains NaN or inf; refusing to store it")
        if batch > self.capacity:
            obs_t, act_t, rew_t, next_t, term_t, trunc_t = (
                x[-self.capacity :] for x in (obs_t, act_t, rew_t, next_t, term_t, trunc_t)
            )
            batch = self.capacity
        idx = (self._ptr + torch.arange(batch, device=dev)) % self.capacity
        self._obs[idx] = obs_t
        self._action[idx] = act_t
        self._reward[idx] = rew_t
        self._next_obs[idx] = next_t
        self._terminated[idx] = term_t
        self._truncated[idx] = trunc_t
        self._ptr = (self._ptr + batch) % self.capacity
        self._size = min(self._size + batch, self.capacity)
        self.total_added += batch

    def all(self) -> TransitionBatch:
        """Every stored transition, oldest first, as a batch of ``len(self)`` rows."""
        if self._size < self.capacity:
            order = torch.arange(self._size, device=self.device)
        else:
            order = (self._ptr + torch.arange(self.capacity, device=self.device)) % self.capacity
        return self._gather(order)

    def latest(self, k: int) -> TransitionBatch:
        """The ``k`` most recently added transitions (at most ``len(self)``), oldest first, as
        a batch of ``min(k, len(self))`` rows; reads only those rows."""
        check_positive_int(k, "k", minimum=0)
        k = min(k, self._size)
        idx = (self._ptr - k + torch.arange(k, device=self.device)) % self.capacity
        return self._gather(idx)

    def _gather(self, idx: Tensor) -> TransitionBatch:
        return TransitionBatch(
            self._obs[idx],
            self._action[idx],
            self._reward[idx],
            self._next_obs[idx],
            self._terminated[idx],
            self._truncated[idx],
        )

    def sample(self, batch_size: int, generator: torch.Generator) -> TransitionBatch:
        """``batch_size`` transitions drawn uniformly with replacement using ``generator``.

        Raises:
            ValueError: if the buffer is empty.
        """
        check_positive_int(batch_size, "batch_size")
        if self._size == 0:
            raise ValueError("cannot sample from an empty TransitionBuffer")
        idx = torch.randint(
            0, self._size, (batch_size,), generator=generator, device=generator.device
        )
        return self._gather(idx.to(self.device))

    def split(
        self, holdout_frac: float, generator: torch.Generator
    ) -> tuple[TransitionBatch, TransitionBatch]:
        """Random train / validation split of all data: ``(train, val)`` batches.

        ``val`` holds ``round(holdout_frac * len)`` transitions (at least 1 when ``holdout_frac > 0``
        and there are at least 2 transitions).
        """
        check_fraction(holdout_frac, "holdout_frac", allow_zero=True)
        data = self.all()
        n = len(data)
        n_val = int(round(holdout_frac * n))
        if holdout_frac > 0 and n >= 2:
            n_val = max(1, min(n_val, n - 1))
        perm = torch.randperm(n, generator=generator, device=generator.device).to(self.device)
        return data.index(perm[n_val:]), data.index(perm[:n_val])

    def state_dict(self) -> dict:
        """Contents and bookkeeping, for :meth:`load` or :meth:`save`: the filled rows only
        (``size`` rows in storage order, so a loaded buffer samples the same rows), on CPU."""
        rows = slice(0, self._size)
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "obs_dim": self.obs_dim,
            "action_dim": self.action_dim,
            "capacity": self.capacity,
            "size": self._size,
            "ptr": self._ptr,
            "total_added": self.total_added,
            # clone: a slice shares (and torch.save would write) the whole preallocated storage
            **{name: getattr(self, "_" + name)[rows].cpu().clone() for name in _ROW_FIELDS},
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the buffer to one file, atomically (temp file, fsync, rename: a crash never
        leaves half a file, and a failed write leaves no temp file).

        Raises:
            OSError: the file could not be written (the old file, if any, is kept).
        """
        atomic_torch_save(self.state_dict(), path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = "cpu",
        capacity: int | None = None,
    ) -> TransitionBuffer:
        """Read a buffer written by :meth:`save` (either file version), with
        ``torch.load(weights_only=True)``: nothing in the file is executed.

        Args:
            path: the file. device: where the storage lives.
            capacity: capacity of the loaded buffer (default: the saved one); at least the
                number of stored transitions. With the saved capacity the ring is restored
                exactly (sampling draws the same rows); with another the transitions are
                stored oldest first.

        Raises:
            ValueError: the file is missing, corrupt, not an mbrl transition buffer, or holds
                keys, shapes, dtypes, sizes or values other than a buffer writes (the message
                names the file and what was expected).
        """
        state = _read_state(path, _FORMAT, "transition buffer")
        where = f"buffer file {str(path)!r}"
        dims = _check_buffer_header(state, where)
        obs_dim, action_dim, saved_capacity, size, ptr = dims
        stored = saved_capacity if state["version"] == 1 else size
        shapes = {
            "obs": (stored, obs_dim),
            "action": (stored, action_dim),
            "reward": (stored,),
            "next_obs": (stored, obs_dim),
            "terminated": (stored,),
            "truncated": (stored,),
        }
        for name, shape in shapes.items():
            dtype = torch.bool if name in ("terminated", "truncated") else torch.float32
            _check_tensor(state, name, shape, dtype, where)
        for name in ("obs", "action", "reward", "next_obs"):
            if not bool(torch.isfinite(state[name][:size]).all()):
                raise ValueError(f"{where}: {name} holds NaN or inf values; a buffer never does")
        if capacity is None:
            capacity = saved_capacity
        check_positive_int(capacity, "capacity")
        if capacity < size:
            raise ValueError(
                f"capacity must be >= the {size} transitions stored in {where}, got {capacity}"
            )
        try:
            buf = cls(obs_dim, action_dim, capacity, device)
        except RuntimeError as err:  # a capacity no memory can hold
            raise ValueError(f"{where}: cannot allocate capacity {capacity} ({err})") from err
        if capacity == saved_capacity:
            order, buf._ptr = torch.arange(size), ptr
        else:  # oldest first: rows ptr.. then ..ptr-1 once the saved ring had wrapped
            start = ptr if size == saved_capacity else 0
            order, buf._ptr = (start + torch.arange(size)) % max(size, 1), size % capacity
        for name in _ROW_FIELDS:
            getattr(buf, "_" + name)[:size] = state[name][:size][order].to(buf.device)
        buf._size, buf.total_added = size, state["total_added"]
        return buf


def _read_state(path: str | os.PathLike, fmt: str, what: str) -> dict[str, Any]:
    """The dict a buffer file holds, read without executing anything; checks its header."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError as err:
        raise ValueError(f"buffer file {str(path)!r} does not exist") from err
    except IsADirectoryError as err:
        raise ValueError(f"buffer file {str(path)!r} is a directory, not a file") from err
    except Exception as err:
        raise ValueError(
            f"buffer file {str(path)!r} is corrupt, not a torch file, or holds objects other "
            f"than tensors and plain data (refused without running them): {_reason(err)}"
        ) from err
    if not isinstance(state, dict) or state.get("format") != fmt:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"{str(path)!r} is not an mbrl {what} file (expected format {fmt!r}, found {found!r})"
        )
    return state


def _reason(err: Exception) -> str:
    """The gist of a ``torch.load`` error in one line (the weights-only unpickler's message
    spans paragraphs, and suggests turning the weights-only check off: never do that here)."""
    text = str(err)
    found = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(\n\n|$)", text, re.S)
    lines = (found.group(1) if found else text).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def _check_int(state: dict[str, Any], key: str, where: str, minimum: int) -> int:
    value = state.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{where}: {key!r} must be an integer >= {minimum}, found {value!r}")
    return value


def _check_buffer_header(state: dict[str, Any], where: str) -> tuple[int, int, int, int, int]:
    """``(obs_dim, action_dim, capacity, size, ptr)`` of a transition buffer file, checked."""
    if state.get("version") not in (1, _VERSION):
        raise ValueError(
            f"{where} has version {state.get('version')!r}; this mbrl reads versions 1 and "
            f"{_VERSION}"
        )
    missing = sorted(
        {"obs_dim", "action_dim", "capacity", "size", "ptr", "total_added", *_ROW_FIELDS}
        - set(state)
    )
    if missing:
        raise ValueError(f"{where} lacks the key(s) {missing} of a transition buffer")
    obs_dim, action_dim, capacity = (
        _check_int(state, k, where, 1) for k in ("obs_dim", "action_dim", "capacity")
    )
    size, ptr = _check_int(state, "size", where, 0), _check_int(state, "ptr", where, 0)
    _check_int(state, "total_added", where, size)
    if size > capacity:
        raise ValueError(f"{where}: size {size} exceeds its capacity {capacity}")
    if ptr >= capacity or (size < capacity and ptr != size % capacity):
        raise ValueError(
            f"{where}: write position ptr={ptr} does not fit size={size}, capacity={capacity}"
        )
    return obs_dim, action_dim, capacity, size, ptr


def _check_tensor(
    state: dict[str, Any], name: str, shape: tuple[int, ...], dtype: torch.dtype, where: str
) -> None:
    value = state[name]
    if not isinstance(value, Tensor):
        raise ValueError(f"{where}: {name!r} must be a tensor, found {type(value).__name__}")
    if tuple(value.shape) != shape or value.dtype != dtype:
        raise ValueError(
            f"{where}: {name!r} must be a {dtype} tensor of shape {shape}, found "
            f"{value.dtype} {tuple(value.shape)}"
        )
