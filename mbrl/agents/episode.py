"""Running one episode of any policy in a gymnasium env, recording into a buffer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from mbrl.data.buffer import TransitionBuffer
from mbrl.spaces import ActionCodec

Policy = Callable[[np.ndarray], "np.ndarray | int"]
"""``policy(obs (O,)) -> env action``."""


@dataclass(frozen=True)
class EpisodeStats:
    """Outcome of one episode.

    Attributes:
        episode_return: undiscounted sum of rewards.
        steps: environment steps taken.
        terminated: the MDP ended; truncated: cut by a time/step limit.
    """

    episode_return: float
    steps: int
    terminated: bool
    truncated: bool


def run_episode(
    env: gym.Env,
    policy: Policy,
    codec: ActionCodec,
    buffer: TransitionBuffer | None = None,
    *,
    seed: int | None = None,
    max_steps: int | None = None,
    progress: str | None = None,
) -> EpisodeStats:
    """Roll ``policy`` for one episode, appending every transition to ``buffer``.

    Args:
        env: a gymnasium env; reset with ``seed`` (None continues its RNG stream).
        policy: ``obs (O,) -> action``.
        codec: encodes actions for the buffer.
        buffer: where transitions go (None: not recorded).
        max_steps: extra cap on steps (counted as truncation), on top of the env's own limit.
        progress: a tqdm description to show a per-step progress bar (None: no bar).
    """
    obs, _ = env.reset(seed=seed)
    total, steps = 0.0, 0
    terminated = truncated = False
    limit = max_steps or getattr(env.spec, "max_episode_steps", None)
    bar = tqdm(total=limit, desc=progress, disable=progress is None, leave=False)
    try:
        while not (terminated or truncated):
            action = policy(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            steps += 1
            if max_steps is not None and steps >= max_steps:
                truncated = True
            if buffer is not None:
                buffer.add(
                    obs, codec.encode(action), float(reward), next_obs, terminated, truncated
                )
            total += float(reward)
            obs = next_obs
            bar.update(1)
    finally:
        bar.close()
    return EpisodeStats(total, steps, bool(terminated), bool(truncated))
