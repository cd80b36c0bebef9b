"""Mapping between gymnasium spaces and the flat float tensors models and planners work in.

Models see every action as a float vector ``(A,)``: a ``Box`` action as itself, a ``Discrete(n)``
action as a one-hot vector of size ``n``. :class:`ActionCodec` does that translation at the env
boundary, so nothing on the hot path knows which space it came from.

Observations are flat float vectors ``(O,)`` too. A ``Dict`` / ``Tuple`` observation space (of
``Box``, ``Discrete``, ``MultiBinary``, ``MultiDiscrete``, nested in any depth) is flattened
by :class:`ObservationLayout`, which records which slice of the flat vector holds each entry
(``layout.slice("bpm")``), is JSON-serialisable (``to_json`` / ``from_json``) and flattens
observations (:meth:`ObservationLayout.flatten`) and splits flat ones back
(:meth:`ObservationLayout.split`). :func:`mbrl.agents.env_factory.make_env` applies it
(:class:`~mbrl.envs.observation_wrappers.FlattenDictObservation`) to every such env.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class ActionCodec:
    """Encodes env actions as float vectors and decodes them back.

    Attributes:
        space: the env's action space (``Box`` of rank 1, or ``Discrete``).
        dim: size ``A`` of the encoded action vector.
        discrete: True for ``Discrete`` spaces (one-hot encoding).
        low: lower bounds ``(A,)`` of the encoded action (0 for one-hot).
        high: upper bounds ``(A,)`` of the encoded action (1 for one-hot).
    """

    space: gym.Space
    dim: int
    discrete: bool
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_space(cls, space: gym.Space) -> ActionCodec:
        """Build the codec for ``space``.

        Raises:
            TypeError: for spaces other than a rank-1 finite ``Box`` or ``Discrete``.
        """
        if isinstance(space, gym.spaces.Box):
            if len(space.shape) != 1:
                raise TypeError(f"action space must be a 1-D Box, got Box with shape {space.shape}")
            if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
                raise TypeError(f"action space Box must have finite bounds, got {space}")
            return cls(
                space,
                int(space.shape[0]),
                False,
                space.low.astype(np.float32),
                space.high.astype(np.float32),
            )
        if isinstance(space, gym.spaces.Discrete):
            n = int(space.n)
            return cls(space, n, True, np.zeros(n, np.float32), np.ones(n, np.float32))
        raise TypeError(
            f"action space {space} is not supported: mbrl handles 1-D Box and Discrete action spaces"
        )

    def encode(self, action: np.ndarray | int) -> np.ndarray:
        """Env action -> float32 vector ``(A,)``."""
        if self.discrete:
            out = np.zeros(self.dim, np.float32)
            out[int(action) - int(self.space.start)] = 1.0
            return out
        return np.asarray(action, dtype=np.float32).reshape(self.dim)

    def decode(self, vector: Tensor | np.ndarray) -> np.ndarray | int:
        """Float vector ``(A,)`` -> env action (clipped ``Box`` array, or ``Discrete`` int)."""
        if isinstance(vector, Tensor):
            vector = vector.detach().to("cpu", torch.float32).numpy()
        vector = np.asarray(vector, dtype=np.float32).reshape(self.dim)
        if self.discrete:
            return int(np.argmax(vector)) + int(self.space.start)
        return np.clip(vector, self.low, self.high).astype(self.space.dtype)

    def bounds(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """Encoded action bounds as tensors ``(low (A,), high (A,))`` on ``device``."""
        return (
            torch.as_tensor(self.low, device=device),
            torch.as_tensor(self.high, device=device),
        )


def observation_dim(space: gym.Space) -> int:
    """Size ``O`` of a flat observation.

    Raises:
        TypeError: for anything but a rank-1 ``Box`` observation space.
    """
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise TypeError(
            f"observation space must be a 1-D Box for vector models, got {space}; "
            "wrap image observations first (Dict / Tuple spaces are flattened by "
            "mbrl.agents.env_factory.make_env, or FlattenDictObservation)"
        )
    return int(space.shape[0])


LEAF_SPACES = (
    gym.spaces.Box,
    gym.spaces.Discrete,
    gym.spaces.MultiBinary,
    gym.spaces.MultiDiscrete,
)
"""Sub-spaces :class:`ObservationLayout` can flatten (inside ``Dict`` / ``Tuple``)."""

KEY_SEPARATOR = "/"
"""Joins the keys of nested entries: ``{"a": Dict({"b": ...})}`` -> ``"a/b"``; ``Tuple``
entries are keyed by their index (``"0"``, ``"a/1"``)."""


@dataclass(frozen=True)
class LayoutEntry:
    """One leaf of a flattened observation.

    Attributes:
        key: its path (see :data:`KEY_SEPARATOR`).
        start / stop: its slice ``[start, stop)`` of the flat vector.
        kind: ``Box``, ``Discrete``, ``MultiBinary`` or ``MultiDiscrete``.
        shape: the leaf's own shape (``()`` for ``Discrete``).
        encoding: ``raw`` (values, row-major) or ``one_hot`` (``Discrete`` /
            ``MultiDiscrete``: one block of ``n`` per component).
        sizes: one-hot block sizes (``(n,)`` for ``Discrete(n)``, ``nvec`` flattened for
            ``MultiDiscrete``; ``()`` for raw entries).
        starts: the value of each block's first slot (the space's ``start``; ``()`` for raw).
    """

    key: str
    start: int
    stop: int
    kind: str
    shape: tuple[int, ...]
    encoding: str
    sizes: tuple[int, ...] = ()
    starts: tuple[int, ...] = ()

    @property
    def slice(self) -> slice:
        """``slice(start, stop)``."""
        return slice(self.start, self.stop)

    def flatten(self, value: Any) -> np.ndarray:
        """``value`` of this leaf -> float32 ``(stop - start,)``.

        Raises:
            ValueError: a value of the wrong size or outside a one-hot's range, naming the key.
        """
        arr = np.asarray(value)
        expected = int(np.prod(self.shape)) if self.shape else 1
        if arr.size != expected:
            raise ValueError(
                f"observation entry {self.key!r} must have shape {self.shape}, got {arr.shape}"
            )
        flat = arr.reshape(-1)
        if self.encoding == "raw":
            return flat.astype(np.float32)
        out = np.zeros(self.stop - self.start, np.float32)
        offset = 0
        for v, n, first in zip(flat.tolist(), self.sizes, self.starts, strict=True):
            index = int(v) - first
            if not 0 <= index < n:
                raise ValueError(
                    f"observation entry {self.key!r}: value {v} is outside [{first}, {first + n})"
                )
            out[offset + index] = 1.0
            offset += n
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON object (lists for tuples)."""
        return {
            "key": self.key,
            "start": self.start,
            "stop": self.stop,
            "kind": self.kind,
            "shape": list(self.shape),
            "encoding": self.encoding,
            "sizes": list(self.sizes),
            "starts": list(self.starts),
        }


def _path_text(path: Sequence[str]) -> str:
    return "observation_space" + "".join(f"[{p!r}]" for p in path)


@dataclass(frozen=True)
class ObservationLayout:
    """Where each entry of a ``Dict`` / ``Tuple`` observation lies in the flat vector ``(O,)``.

    Entries follow the space's own order (gymnasium sorts the keys of a ``Dict`` built from a
    plain dict); ``Box`` entries are flattened row-major, ``Discrete`` / ``MultiDiscrete``
    one-hot (as :func:`gymnasium.spaces.flatten` does), ``MultiBinary`` as 0/1 values.

    Attributes:
        entries: the leaves, in order, back to back from 0.
        size: ``O``.
    """

    entries: tuple[LayoutEntry, ...]
    size: int

    @classmethod
    def from_space(cls, space: gym.Space) -> ObservationLayout:
        """The layout of ``space`` (a ``Dict`` / ``Tuple`` of leaves, or a single leaf).

        Raises:
            TypeError: a sub-space that has no fixed-size flat form (``Text``, ``Graph``,
                ``Sequence``, ``OneOf``, ...), naming its path, e.g.
                ``observation_space['camera']['caption']``.
            ValueError: two entries whose keys join to the same path.
        """
        entries: list[LayoutEntry] = []
        cls._walk(space, (), entries)
        keys = [e.key for e in entries]
        if len(set(keys)) != len(keys):
            dup = sorted({k for k in keys if keys.count(k) > 1})
            raise ValueError(f"observation entries {dup} have the same key path")
        return cls(tuple(entries), entries[-1].stop if entries else 0)

    @classmethod
    def _walk(cls, space: gym.Space, path: tuple[str, ...], out: list[LayoutEntry]) -> None:
        if isinstance(space, gym.spaces.Dict):
            for key, sub in space.spaces.items():
                if KEY_SEPARATOR in str(key):
                    raise ValueError(
                        f"{_path_text((*path, str(key)))}: a Dict key may not contain "
                        f"{KEY_SEPARATOR!r} (it separates the keys of nested entries)"
                    )
                cls._walk(sub, (*path, str(key)), out)
            return
        if isinstance(space, gym.spaces.Tuple):
            for i, sub in enumerate(space.spaces):
                cls._walk(sub, (*path, str(i)), out)
            return
        if not isinstance(space, LEAF_SPACES):
            raise TypeError(
                f"{_path_text(path)} is {space}, which has no fixed-size vector form: mbrl "
                "flattens Dict / Tuple observation spaces of Box, Discrete, MultiBinary and "
                "MultiDiscrete only. Drop or encode that entry with a gymnasium "
                "ObservationWrapper first."
            )
        start = out[-1].stop if out else 0
        key = KEY_SEPARATOR.join(path)
        kind = type(space).__name__
        if isinstance(space, gym.spaces.Discrete):
            n = int(space.n)
            out.append(
                LayoutEntry(key, start, start + n, kind, (), "one_hot", (n,), (int(space.start),))
            )
        elif isinstance(space, gym.spaces.MultiDiscrete):
            sizes = tuple(int(n) for n in np.asarray(space.nvec).reshape(-1))
            firsts = tuple(
                int(v) for v in np.broadcast_to(space.start, space.nvec.shape).reshape(-1)
            )
            out.append(
                LayoutEntry(
                    key,
                    start,
                    start + sum(sizes),
                    kind,
                    tuple(space.shape),
                    "one_hot",
                    sizes,
                    firsts,
                )
            )
        else:
            size = int(np.prod(space.shape)) if space.shape else 1
            out.append(LayoutEntry(key, start, start + size, kind, tuple(space.shape), "raw"))

    @property
    def keys(self) -> list[str]:
        """The entries' keys, in order."""
        return [e.key for e in self.entries]

    def entry(self, key: str) -> LayoutEntry:
        """The entry of ``key``.

        Raises:
            KeyError: an unknown key (the message lists the known ones).
        """
        for e in self.entries:
            if e.key == key:
                return e
        raise KeyError(f"no observation entry {key!r}; the layout has {self.keys}")

    def slice(self, key: str) -> slice:
        """The slice of the flat vector that holds ``key``."""
        return self.entry(key).slice

    def flatten(self, obs: Any) -> np.ndarray:
        """A ``Dict`` / ``Tuple`` observation (nested dicts / sequences) -> float32 ``(O,)``.

        Raises:
            ValueError: a missing entry or one of the wrong size, naming its key.
        """
        parts = [e.flatten(_lookup(obs, e.key)) for e in self.entries]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def split(self, flat: Tensor | np.ndarray) -> dict[str, Tensor | np.ndarray]:
        """Flat observations ``(..., O)`` -> ``{key: (..., stop - start)}`` (views).

        Raises:
            ValueError: the last dimension is not ``O``.
        """
        if flat.shape[-1] != self.size:
            raise ValueError(
                f"flat observations must have shape (..., {self.size}), got {tuple(flat.shape)}"
            )
        return {e.key: flat[..., e.start : e.stop] for e in self.entries}

    def flat_space(self, space: gym.Space) -> gym.spaces.Box:
        """The flat ``Box((O,), float32)`` of ``space`` (this layout's space): each entry's
        bounds (``[0, 1]`` for one-hot and binary entries)."""
        low = np.zeros(self.size, np.float32)
        high = np.ones(self.size, np.float32)
        for e in self.entries:
            sub = _lookup_space(space, e.key)
            if isinstance(sub, gym.spaces.Box):
                low[e.slice] = np.asarray(sub.low, np.float32).reshape(-1)
                high[e.slice] = np.asarray(sub.high, np.float32).reshape(-1)
        return gym.spaces.Box(low, high, dtype=np.float32)

    def to_json(self) -> dict[str, Any]:
        """A JSON object: ``{"size": O, "entries": [...]}``."""
        return {"size": self.size, "entries": [e.to_json() for e in self.entries]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ObservationLayout:
        """The layout :meth:`to_json` wrote.

        Raises:
            ValueError: a malformed object (missing fields, entries not back to back).
        """
        try:
            entries = tuple(
                LayoutEntry(
                    str(e["key"]),
                    int(e["start"]),
                    int(e["stop"]),
                    str(e["kind"]),
                    tuple(int(v) for v in e["shape"]),
                    str(e["encoding"]),
                    tuple(int(v) for v in e.get("sizes", ())),
                    tuple(int(v) for v in e.get("starts", ())),
                )
                for e in data["entries"]
            )
            size = int(data["size"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"not an observation layout object ({type(err).__name__}: {err})"
            ) from err
        stop = 0
        for e in entries:
            if e.start != stop or e.stop < e.start:
                raise ValueError(
                    f"observation layout entry {e.key!r} does not follow the previous one"
                )
            stop = e.stop
        if stop != size:
            raise ValueError(f"observation layout entries cover {stop} values, its size is {size}")
        return cls(entries, size)


def _lookup(obs: Any, key: str) -> Any:
    """The value at ``key`` (a :data:`KEY_SEPARATOR` path) in a nested dict / sequence."""
    value = obs
    for part in key.split(KEY_SEPARATOR) if key else ():
        try:
            value = value[part] if isinstance(value, Mapping) else value[int(part)]
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise ValueError(f"observation has no entry {key!r} (at {part!r})") from err
    return value


def _lookup_space(space: gym.Space, key: str) -> gym.Space:
    sub = space
    for part in key.split(KEY_SEPARATOR) if key else ():
        sub = sub[part] if isinstance(sub, gym.spaces.Dict) else sub[int(part)]
    return sub
