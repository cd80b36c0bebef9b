"""Per-episode domain randomisation of physical parameters, for policies and models that transfer."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

ParamValue = float | np.ndarray
"""A sampled parameter: a Python float for scalar parameters, else a float64 array."""

_SEED_SPAWN_KEY = (0xD0A1,)
"""Spawn key separating the wrapper's random stream from the env's own for the same seed."""


class DomainRandomization(gym.Wrapper):
    """Re-draw physical parameters of the wrapped env uniformly from given ranges at every reset.

    ``ranges`` maps a parameter name to ``(low, high)``. The parameter must already exist as an
    attribute of ``env.unwrapped``; its current value fixes the shape of the draw: a scalar
    attribute gets a Python float, an array attribute (e.g. AWAKE's ``monitor_gains (10,)``)
    gets an independent draw per element, with ``low``/``high`` scalars or arrays broadcastable
    to that shape.

    How values reach the env: if ``env.unwrapped`` has a ``set_physics`` method, it is called
    once per reset as ``set_physics(**params)`` (the names must be keyword arguments of it);
    otherwise each parameter is set with ``setattr(env.unwrapped, name, value)``. Parameters
    are applied *before* the wrapped env's ``reset``, so the start state already sees them.

    Examples:
        - Pendulum-v1: ``{"m": (0.8, 1.2), "l": (0.8, 1.2), "g": (9.0, 11.0)}`` (attributes).
        - ``mbrl/AwakeSteering-v0``: ``{"response_scale": (0.9, 1.1),
          "monitor_gains": (0.95, 1.05), "noise_mm": (0.0, 0.1)}`` (via ``set_physics``).

    Seeding: ``reset(seed=s)`` re-seeds the wrapper's own generator from ``s`` (a stream
    independent of the env's ``np_random``) and passes ``s`` on to the env, so a seeded reset
    reproduces both the parameters and the start state; unseeded resets continue the stream.

    The drawn values are returned in ``info["physics"]`` and kept in :attr:`params`.
    """

    def __init__(self, env: gym.Env, ranges: Mapping[str, tuple[Any, Any]]) -> None:
        """Wrap ``env`` with parameter ``ranges`` (``name -> (low, high)``).

        Raises:
            TypeError: if ``ranges`` is not a mapping with string keys.
            ValueError: naming the parameter, if it is unknown to ``env.unwrapped`` (or not a
                keyword of its ``set_physics``), not numeric, its range is not a pair of finite
                numbers/arrays broadcastable to the parameter's shape, or ``low > high``.
        """
        super().__init__(env)
        if not isinstance(ranges, Mapping):
            raise TypeError(f"ranges must be a mapping name -> (low, high), got {type(ranges)}")
        target = env.unwrapped
        self._setter = self._physics_setter(target)
        self.ranges: dict[str, tuple[np.ndarray, np.ndarray, tuple[int, ...]]] = {
            name: self._checked_range(target, name, bounds) for name, bounds in ranges.items()
        }
        self.params: dict[str, ParamValue] = {}
        self._rng: np.random.Generator | None = None

    # ---------------------------------------------------------------- validation

    @staticmethod
    def _physics_setter(target: gym.Env) -> Any:
        """``target.set_physics`` when it is callable, else ``None`` (attribute setting)."""
        setter = getattr(target, "set_physics", None)
        return setter if callable(setter) else None

    def _checked_range(
        self, target: gym.Env, name: Any, bounds: Any
    ) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        """Validate one entry of ``ranges``; returns ``(low, high, shape)`` of the draw."""
        if not isinstance(name, str):
            raise TypeError(f"parameter names must be strings, got {name!r}")
        shape = self._parameter_shape(target, name)
        try:
            low, high = (np.asarray(b, dtype=np.float64) for b in bounds)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"range of parameter {name!r} must be a (low, high) pair of numbers, got {bounds!r}"
            ) from err
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise ValueError(f"range of parameter {name!r} must be finite, got {bounds!r}")
        try:
            broadcast = np.broadcast_shapes(low.shape, high.shape, shape)
        except ValueError:
            broadcast = None
        if broadcast != shape:
            raise ValueError(
                f"range of parameter {name!r} must broadcast to its shape {shape}, "
                f"got low {low.shape} and high {high.shape}"
            )
        if (low > high).any():
            raise ValueError(f"range of parameter {name!r} has low > high: {bounds!r}")
        return low, high, shape

    def _parameter_shape(self, target: gym.Env, name: str) -> tuple[int, ...]:
        """Shape of the existing numeric parameter ``name`` of ``target``."""
        if not hasattr(target, name):
            raise ValueError(
                f"unknown parameter {name!r}: {type(target).__name__} has no attribute {name!r}"
            )
        if self._setter is not None:
            accepted = inspect.signature(self._setter).parameters
            if name not in accepted:
                raise ValueError(
                    f"unknown parameter {name!r}: not a keyword of "
                    f"{type(target).__name__}.set_physics({', '.join(accepted)})"
                )
        try:
            current = np.asarray(getattr(target, name), dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"parameter {name!r} of {type(target).__name__} is not numeric"
            ) from err
        return current.shape

    # ---------------------------------------------------------------- sampling

    def sample_params(self, rng: np.random.Generator) -> dict[str, ParamValue]:
        """Draw every parameter uniformly in its range with ``rng`` (floats or arrays)."""
        out: dict[str, ParamValue] = {}
        for name, (low, high, shape) in self.ranges.items():
            value = rng.uniform(low, high, size=shape)
            out[name] = float(value) if shape == () else np.asarray(value, dtype=np.float64)
        return out

    def apply_params(self, params: Mapping[str, ParamValue]) -> None:
        """Push ``params`` to ``env.unwrapped`` (``set_physics`` or attribute setting)."""
        if self._setter is not None:
            self._setter(**params)
        else:
            for name, value in params.items():
                setattr(self.env.unwrapped, name, value)
        self.params = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in params.items()}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Draw and apply new parameters, then reset the wrapped env.

        Returns:
            The env's ``(obs, info)`` with ``info["physics"]`` = the drawn parameters.
        """
        if seed is not None:
            self._rng = np.random.default_rng(
                np.random.SeedSequence(seed, spawn_key=_SEED_SPAWN_KEY)
            )
        elif self._rng is None:
            self._rng = np.random.default_rng()
        self.apply_params(self.sample_params(self._rng))
        obs, info = self.env.reset(seed=seed, options=options)
        info = dict(info)
        info["physics"] = dict(self.params)
        return obs, info
