"""Observation wrappers that make partially observed versions of classic envs, and action repeat.

- :class:`DropVelocity` keeps only chosen entries of a vector observation (Pendulum-v1: keep
  ``cos theta, sin theta``, drop ``thetadot``), turning an MDP into a POMDP.
- :class:`PixelObservation` replaces the observation by a small rendered ``uint8`` image
  ``(H, W, 3)`` (or ``(3, H, W)``), either from ``env.render()`` or from a shipped numpy renderer
  (:func:`render_pendulum`, no pygame needed).
- :class:`ActionRepeat` repeats each action ``R`` times and sums the rewards (PlaNet).
- :class:`FlattenDictObservation` flattens a ``Dict`` / ``Tuple`` observation into a float32
  vector ``(O,)`` and records where each entry went (:class:`~mbrl.spaces.ObservationLayout`);
  :func:`mbrl.agents.env_factory.make_env` applies it to every such env.

Registered ids (see :mod:`mbrl.envs`): ``mbrl/PendulumNoVel-v0`` and ``mbrl/PendulumPixels-v0``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from mbrl.spaces import ObservationLayout
from mbrl.validation import check_positive_int

Renderer = Callable[[gym.Env, int], np.ndarray]
"""``renderer(env, size) -> (size, size, 3) uint8`` image of ``env``'s current state."""

PENDULUM_KEEP = (0, 1)
"""Pendulum-v1 observation entries kept by :class:`DropVelocity`: ``cos theta, sin theta``."""


class DropVelocity(gym.ObservationWrapper):
    """Keep only the observation entries ``keep`` of a 1-D ``Box`` observation ``(O,) -> (K,)``.

    Args:
        env: env with a 1-D ``Box`` observation space.
        keep: indices to keep (default: Pendulum-v1's ``cos, sin``).

    Raises:
        TypeError: observation space is not a 1-D Box; ValueError: bad or repeated indices.
    """

    def __init__(self, env: gym.Env, keep: Sequence[int] = PENDULUM_KEEP) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise TypeError(f"DropVelocity needs a 1-D Box observation space, got {space}")
        keep = tuple(int(i) for i in keep)
        if (
            not keep
            or len(set(keep)) != len(keep)
            or not all(0 <= i < space.shape[0] for i in keep)
        ):
            raise ValueError(f"keep must be distinct indices in [0, {space.shape[0]}), got {keep}")
        self.keep = keep
        idx = list(keep)
        self.observation_space = gym.spaces.Box(space.low[idx], space.high[idx], dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """``(O,) -> (K,)``: the kept entries."""
        return np.asarray(observation)[list(self.keep)]


def render_pendulum(env: gym.Env, size: int) -> np.ndarray:
    """Anti-aliased ``(size, size, 3) uint8`` image of Pendulum-v1's rod (no pygame needed).

    White background, red rod from the centre (upright = pointing up), dark pivot; the image
    holds the angle only, not the velocity.
    """
    theta = float(env.unwrapped.state[0])
    c = (size - 1) / 2.0
    length = 0.42 * size
    tip = np.array([c - length * np.cos(theta), c + length * np.sin(theta)])  # (row, col)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    pts = np.stack([rows - c, cols - c], -1)
    seg = tip - c
    t = np.clip((pts @ seg) / float(seg @ seg), 0.0, 1.0)
    dist = np.linalg.norm(pts - t[..., None] * seg, axis=-1)
    rod = np.clip(0.08 * size + 0.5 - dist, 0.0, 1.0)[..., None]
    pivot = np.clip(0.04 * size + 0.5 - np.hypot(rows - c, cols - c), 0.0, 1.0)[..., None]
    img = 255.0 * (1 - rod) + np.array([204.0, 77.0, 77.0]) * rod
    img = img * (1 - pivot) + 40.0 * pivot
    return img.round().astype(np.uint8)


def render_env(env: gym.Env, size: int) -> np.ndarray:
    """``env.render()`` (``render_mode="rgb_array"``) resized to ``(size, size, 3) uint8``."""
    from PIL import Image

    frame = env.render()
    if frame is None:
        raise ValueError("env.render() returned None; make the env with render_mode='rgb_array'")
    image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    return np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.uint8)


class PixelObservation(gym.ObservationWrapper):
    """Replace the observation by a rendered ``uint8`` image of the current state.

    Args:
        env: any env the renderer can draw.
        size: image side ``S`` (default 32); the encoder of :class:`~mbrl.models.rssm.RSSM`
            needs a power of two >= 8.
        renderer: ``(env, size) -> (S, S, 3) uint8`` (default :func:`render_env`, which uses
            ``env.render()``).
        channels_first: emit ``(3, S, S)`` instead of ``(S, S, 3)`` (default False).

    Observation space: ``Box(0, 255, (S, S, 3), uint8)`` (or ``(3, S, S)``).
    """

    def __init__(
        self,
        env: gym.Env,
        size: int = 32,
        renderer: Renderer | None = None,
        channels_first: bool = False,
    ) -> None:
        super().__init__(env)
        check_positive_int(size, "size", minimum=4)
        self.size = int(size)
        self.renderer = renderer or render_env
        self.channels_first = channels_first
        shape = (3, size, size) if channels_first else (size, size, 3)
        self.observation_space = gym.spaces.Box(0, 255, shape, dtype=np.uint8)

    def observation(self, observation: Any) -> np.ndarray:
        """Image ``(S, S, 3)`` (or ``(3, S, S)``) uint8 of the state after the last reset/step."""
        img = self.renderer(self.env, self.size)
        if img.shape != (self.size, self.size, 3) or img.dtype != np.uint8:
            raise ValueError(
                f"renderer must return ({self.size}, {self.size}, 3) uint8, got "
                f"{img.shape} {img.dtype}"
            )
        return np.ascontiguousarray(img.transpose(2, 0, 1)) if self.channels_first else img


class ActionRepeat(gym.Wrapper):
    """Repeat every action ``repeat`` times; reward is the sum, observation the last one.

    Stops early when the episode ends inside the repeat. ``env_steps`` counts the inner env's
    steps since the last reset.
    """

    def __init__(self, env: gym.Env, repeat: int) -> None:
        super().__init__(env)
        check_positive_int(repeat, "repeat")
        self.repeat = int(repeat)
        self.env_steps = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        """``env.reset(**kwargs)``; zeroes ``env_steps``."""
        self.env_steps = 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict]:
        """``env.step(action)`` ``repeat`` times: ``(obs, summed reward, terminated, truncated, info)``."""
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.env_steps += 1
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class FlattenDictObservation(gym.ObservationWrapper):
    """A ``Dict`` / ``Tuple`` observation (of ``Box``, ``Discrete``, ``MultiBinary``,
    ``MultiDiscrete``, nested) as one float32 vector ``(O,)``.

    Attributes:
        observation_layout: the :class:`~mbrl.spaces.ObservationLayout`: which slice holds
            each entry (``layout.slice("bpm")``), JSON via ``layout.to_json()``; reachable
            through any outer wrapper as ``env.get_wrapper_attr("observation_layout")``.

    Observation space: ``Box((O,), float32)`` with each entry's bounds (``[0, 1]`` for one-hot
    and binary entries).

    Raises:
        TypeError: the observation space is not a ``Dict`` / ``Tuple``, or holds a sub-space
            with no fixed-size vector form (``Text``, ``Graph``, ``Sequence``...; the message
            names its path).
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Dict | gym.spaces.Tuple):
            raise TypeError(
                f"FlattenDictObservation needs a Dict or Tuple observation space, got {space}"
            )
        self.observation_layout = ObservationLayout.from_space(space)
        self.observation_space = self.observation_layout.flat_space(space)

    def observation(self, observation: Any) -> np.ndarray:
        """Nested dict / tuple observation -> ``(O,)`` float32."""
        return self.observation_layout.flatten(observation)


def needs_flattening(space: gym.Space) -> bool:
    """True for the ``Dict`` / ``Tuple`` observation spaces :class:`FlattenDictObservation`
    handles."""
    return isinstance(space, gym.spaces.Dict | gym.spaces.Tuple)


def make_pendulum_no_velocity(**kwargs: Any) -> gym.Env:
    """Pendulum-v1 observing ``(cos theta, sin theta)`` only: obs ``(2,)``."""
    return DropVelocity(gym.make("Pendulum-v1", **kwargs))


def make_pendulum_pixels(size: int = 32, **kwargs: Any) -> gym.Env:
    """Pendulum-v1 observing a ``(size, size, 3) uint8`` image of the rod (shipped renderer)."""
    return PixelObservation(gym.make("Pendulum-v1", **kwargs), size, render_pendulum)
