"""Tabular Dyna-Q (Sutton 1990; Sutton & Barto, Section 8.2): Q-learning plus ``n`` planning
updates per real step from a learned tabular model.

Works on any gymnasium env with ``Discrete`` observations and actions (the toy-text envs
``FrozenLake-v1``, ``CliffWalking-v1``, ``Taxi-v4`` and :class:`~mbrl.dyna.mazes.DynaMazeEnv`).
The model stores, per visited ``(s, a)``, the counts of observed outcomes
``(s', r, terminated)`` and samples outcomes in proportion to them: for deterministic envs this is
exactly Sutton & Barto's "last observed outcome" model, and it stays correct on stochastic ones
(slippery FrozenLake).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from mbrl.agents.episode import EpisodeStats
from mbrl.validation import check_fraction, check_positive_int


@dataclass(frozen=True)
class DynaQConfig:
    """Hyper-parameters of :class:`DynaQ` (defaults: Sutton & Barto's Dyna maze experiment).

    Attributes:
        planning_steps: model updates ``n`` per real step (default 50; 0 is Q-learning).
        alpha: step size (default 0.1).
        gamma: discount (default 0.95).
        epsilon: exploration rate of the epsilon-greedy behaviour policy (default 0.1).
        q_init: initial action value (default 0.0).
        max_episode_steps: cap on a training episode's length (default 100_000).
    """

    planning_steps: int = 50
    alpha: float = 0.1
    gamma: float = 0.95
    epsilon: float = 0.1
    q_init: float = 0.0
    max_episode_steps: int = 100_000

    def __post_init__(self) -> None:
        check_positive_int(self.planning_steps, "planning_steps", minimum=0)
        check_positive_int(self.max_episode_steps, "max_episode_steps")
        check_fraction(self.alpha, "alpha")
        check_fraction(self.gamma, "gamma", allow_zero=True)
        check_fraction(self.epsilon, "epsilon", allow_zero=True)


class DynaQ:
    """Dyna-Q agent over ``n_states`` x ``n_actions`` tables.

    Attributes:
        q: action values ``(S, A)`` float64.

    Args:
        n_states: ``S``; n_actions: ``A``.
        config: hyper-parameters (default :class:`DynaQConfig`).
        seed: seeds the agent's ``numpy`` generator (exploration, tie-breaking, planning).
    """

    def __init__(
        self, n_states: int, n_actions: int, config: DynaQConfig | None = None, seed: int = 0
    ) -> None:
        check_positive_int(n_states, "n_states")
        check_positive_int(n_actions, "n_actions")
        self.config = config or DynaQConfig()
        self.n_states, self.n_actions = int(n_states), int(n_actions)
        self.q = np.full((self.n_states, self.n_actions), float(self.config.q_init))
        self.rng = np.random.default_rng(seed)
        self._keys: list[tuple[int, int]] = []
        self._model: dict[tuple[int, int], tuple[list[tuple[int, float, bool]], list[int]]] = {}
        self.real_updates = 0
        self.planning_updates = 0

    @classmethod
    def for_env(cls, env: gym.Env, config: DynaQConfig | None = None, seed: int = 0) -> DynaQ:
        """An agent sized for ``env``'s ``Discrete`` spaces.

        Raises:
            TypeError: if either space is not ``Discrete``.
        """
        obs_space, act_space = env.observation_space, env.action_space
        if not isinstance(obs_space, gym.spaces.Discrete) or not isinstance(
            act_space, gym.spaces.Discrete
        ):
            raise TypeError(
                "DynaQ needs Discrete observation and action spaces, got "
                f"{obs_space} and {act_space}"
            )
        return cls(int(obs_space.n), int(act_space.n), config, seed)

    # ------------------------------------------------------------------ acting
    def _check_state(self, state: int) -> int:
        s = int(state)
        if not 0 <= s < self.n_states:
            raise ValueError(f"state {state!r} is outside 0..{self.n_states - 1}")
        return s

    def act(self, state: int) -> int:
        """Epsilon-greedy action with random tie-breaking."""
        s = self._check_state(state)
        if self.rng.random() < self.config.epsilon:
            return int(self.rng.integers(self.n_actions))
        row = self.q[s]
        best = np.flatnonzero(row == row.max())
        return int(best[0] if best.size == 1 else self.rng.choice(best))

    def greedy(self, state: int) -> int:
        """Greedy action (lowest index among ties: deterministic, consumes no randomness)."""
        return int(np.argmax(self.q[self._check_state(state)]))

    # ------------------------------------------------------------------ learning
    def _q_update(self, s: int, a: int, r: float, s2: int, terminated: bool) -> None:
        target = r if terminated else r + self.config.gamma * self.q[s2].max()
        self.q[s, a] += self.config.alpha * (target - self.q[s, a])

    def update(
        self, state: int, action: int, reward: float, next_state: int, terminated: bool
    ) -> None:
        """One real transition: direct Q-learning update, model update, then ``n`` planning
        updates.

        Raises:
            ValueError: states or actions outside the tables.
        """
        s, s2 = self._check_state(state), self._check_state(next_state)
        a = int(action)
        if not 0 <= a < self.n_actions:
            raise ValueError(f"action {action!r} is outside 0..{self.n_actions - 1}")
        r, term = float(reward), bool(terminated)
        self._q_update(s, a, r, s2, term)
        self.real_updates += 1
        outcome = (s2, r, term)
        entry = self._model.get((s, a))
        if entry is None:
            self._model[(s, a)] = ([outcome], [1])
            self._keys.append((s, a))
        else:
            outcomes, counts = entry
            try:
                counts[outcomes.index(outcome)] += 1
            except ValueError:
                outcomes.append(outcome)
                counts.append(1)
        self.plan(self.config.planning_steps)

    def plan(self, n: int) -> None:
        """``n`` Q-learning updates on transitions sampled from the model: a previously visited
        ``(s, a)`` uniformly, then an outcome in proportion to its observed count."""
        if n <= 0 or not self._keys:
            return
        keys, model, rng = self._keys, self._model, self.rng
        picks = rng.integers(len(keys), size=n)
        for i in picks:
            s, a = keys[i]
            outcomes, counts = model[(s, a)]
            if len(outcomes) == 1:
                s2, r, term = outcomes[0]
            else:
                j = int(rng.choice(len(outcomes), p=np.asarray(counts) / sum(counts)))
                s2, r, term = outcomes[j]
            self._q_update(s, a, r, s2, term)
        self.planning_updates += n


@dataclass
class DynaQResult:
    """What :func:`train_dyna_q` returns.

    Attributes:
        episode_lengths / episode_returns: per training episode (behaviour policy).
        greedy_lengths: after each episode, the greedy policy's episode length when it ends by
            termination with a positive return (reaches the goal), else ``None``.
        agent: the trained agent.
    """

    episode_lengths: list[int] = field(default_factory=list)
    episode_returns: list[float] = field(default_factory=list)
    greedy_lengths: list[int | None] = field(default_factory=list)
    agent: DynaQ | None = None

    def episodes_to_optimal(self, optimal_length: int) -> int | None:
        """First episode (1-based) after which the greedy path has ``optimal_length`` steps
        and keeps it after every later episode of the run; ``None`` if that never happens."""
        first = None
        for i, g in enumerate(self.greedy_lengths):
            if g == optimal_length:
                if first is None:
                    first = i + 1
            else:
                first = None
        return first


def greedy_episode(
    env: gym.Env, agent: DynaQ, max_steps: int = 1000, seed: int | None = None
) -> EpisodeStats:
    """Run the greedy policy for one episode (at most ``max_steps`` steps, counted as
    truncation); nothing is learned."""
    state, _ = env.reset(seed=seed)
    total, steps, terminated, truncated = 0.0, 0, False, False
    while not (terminated or truncated):
        state, reward, terminated, truncated, _ = env.step(agent.greedy(state))
        total += float(reward)
        steps += 1
        if steps >= max_steps:
            truncated = True
    return EpisodeStats(total, steps, bool(terminated), bool(truncated))


def greedy_episode_length(
    env: gym.Env, agent: DynaQ, max_steps: int = 1000, seed: int | None = None
) -> int | None:
    """Steps the greedy policy needs to end an episode by termination with a positive return
    (reach the goal), or ``None`` if it fails (loops, falls in a hole, is truncated)."""
    stats = greedy_episode(env, agent, max_steps, seed)
    return stats.steps if stats.terminated and stats.episode_return > 0 else None


def train_dyna_q(
    env: gym.Env,
    episodes: int,
    config: DynaQConfig | None = None,
    seed: int = 0,
    *,
    eval_env: gym.Env | None = None,
    eval_max_steps: int = 1000,
    agent: DynaQ | None = None,
) -> DynaQResult:
    """Train Dyna-Q on ``env`` for ``episodes`` episodes.

    Args:
        env: a gymnasium env with ``Discrete`` spaces; reset with ``seed`` once, then continues.
        episodes: number of training episodes.
        config: hyper-parameters (ignored when ``agent`` is given).
        seed: seeds the env and the agent.
        eval_env: if given, the greedy policy is run on it after every episode
            (``greedy_lengths``); deterministic envs make this the greedy path length.
        eval_max_steps: step cap of those greedy episodes.
        agent: continue training an existing agent.

    Raises:
        TypeError: non-``Discrete`` spaces.
    """
    check_positive_int(episodes, "episodes")
    agent = agent or DynaQ.for_env(env, config, seed)
    cap = agent.config.max_episode_steps
    result = DynaQResult(agent=agent)
    state, _ = env.reset(seed=seed)
    for _ in range(episodes):
        total, steps = 0.0, 0
        terminated = truncated = False
        while not (terminated or truncated):
            action = agent.act(state)
            next_state, reward, terminated, truncated, _ = env.step(action)
            agent.update(state, action, float(reward), next_state, bool(terminated))
            total += float(reward)
            steps += 1
            state = next_state
            if steps >= cap:
                truncated = True
        result.episode_lengths.append(steps)
        result.episode_returns.append(total)
        if eval_env is not None:
            result.greedy_lengths.append(greedy_episode_length(eval_env, agent, eval_max_steps))
        state, _ = env.reset()
    return result


def make_toy_text_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gymnasium.make`` for tabular envs, with ``is_slippery=False`` for FrozenLake unless
    given (the deterministic version has a unique shortest path)."""
    if env_id.startswith("FrozenLake") and "is_slippery" not in kwargs:
        kwargs["is_slippery"] = False
    from mbrl.agents.env_factory import make_env

    return make_env(env_id, **kwargs)
