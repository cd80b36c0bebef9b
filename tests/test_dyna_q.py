"""Tabular Dyna-Q: the maze, planning speeds learning up, toy-text envs, stochastic models."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from mbrl.cli import main as cli_main
from mbrl.dyna import (
    DYNA_MAZE_ENV_ID,
    DynaMazeEnv,
    DynaQ,
    DynaQConfig,
    DynaQResult,
    greedy_episode_length,
    train_dyna_q,
)
from mbrl.dyna.dyna_q import make_toy_text_env


def test_dyna_maze_is_sutton_bartos_and_a_valid_env():
    env = DynaMazeEnv()
    assert (env.rows, env.cols) == (6, 9) and env.shortest_path_length() == 14
    check_env(env)
    made = gym.make(DYNA_MAZE_ENV_ID)
    assert made.observation_space.n == 54 and made.action_space.n == 4
    state, _ = env.reset()
    assert state == 2 * 9  # start at row 2, column 0
    assert env.step(0)[0] == 9  # up
    assert env.step(2)[0] == 10  # right
    assert env.step(2)[0] == 10  # right into the wall at (1, 2): stays
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(4)
    with pytest.raises(ValueError, match="exactly one 'S'"):
        DynaMazeEnv(["..G", "..."])


def test_planning_learns_the_maze_in_a_third_of_the_episodes():
    needed = {}
    for n in (0, 50):
        runs = [
            train_dyna_q(
                DynaMazeEnv(), 40, DynaQConfig(planning_steps=n), seed, eval_env=DynaMazeEnv()
            )
            for seed in (1, 4)
        ]
        needed[n] = [r.episodes_to_optimal(14) for r in runs]
    # n=0 needs 17 and 20 episodes with these seeds; n=50 a handful
    assert all(e is not None and e <= 5 for e in needed[50]), needed
    assert all(e is not None and e >= 15 for e in needed[0]), needed
    assert np.mean(needed[50]) <= np.mean(needed[0]) / 3


def test_same_seed_same_run():
    a = train_dyna_q(DynaMazeEnv(), 5, DynaQConfig(planning_steps=5), 3)
    b = train_dyna_q(DynaMazeEnv(), 5, DynaQConfig(planning_steps=5), 3)
    assert a.episode_lengths == b.episode_lengths
    np.testing.assert_array_equal(a.agent.q, b.agent.q)


def test_frozen_lake_and_cliff_walking_reach_their_shortest_paths():
    lake = train_dyna_q(
        make_toy_text_env("FrozenLake-v1"),
        60,
        DynaQConfig(planning_steps=20, gamma=0.95),
        0,
        eval_env=make_toy_text_env("FrozenLake-v1"),
    )
    assert lake.greedy_lengths[-1] == 6
    cliff_env = make_toy_text_env("CliffWalking-v1")
    cliff = train_dyna_q(cliff_env, 30, DynaQConfig(planning_steps=20, epsilon=0.1), 0)
    # CliffWalking pays -1 per step: check the greedy path reaches the goal in 13 steps
    state, _ = cliff_env.reset()
    steps, done = 0, False
    while not done and steps < 100:
        state, _, done, _, _ = cliff_env.step(cliff.agent.greedy(state))
        steps += 1
    assert done and steps == 13


def test_stochastic_env_model_keeps_outcome_counts():
    env = make_toy_text_env("FrozenLake-v1", is_slippery=True)
    agent = DynaQ.for_env(env, DynaQConfig(planning_steps=2), seed=0)
    train_dyna_q(env, 30, seed=0, agent=agent)
    assert max(len(outcomes) for outcomes, _ in agent._model.values()) > 1
    assert agent.planning_updates == 2 * agent.real_updates


def test_episodes_to_optimal_requires_staying_optimal():
    r = DynaQResult(greedy_lengths=[None, 14, 16, 14, 14])
    assert r.episodes_to_optimal(14) == 4
    assert DynaQResult(greedy_lengths=[14, 14, None]).episodes_to_optimal(14) is None


def test_greedy_length_is_none_when_the_policy_loops():
    env = DynaMazeEnv()
    agent = DynaQ.for_env(env)
    assert greedy_episode_length(env, agent, max_steps=50) is None


def test_bad_input():
    with pytest.raises(TypeError, match="Discrete"):
        DynaQ.for_env(gym.make("Pendulum-v1"))
    with pytest.raises(ValueError, match="epsilon"):
        DynaQConfig(epsilon=1.5)
    with pytest.raises(ValueError, match="planning_steps"):
        DynaQConfig(planning_steps=-1)
    agent = DynaQ(4, 2)
    with pytest.raises(ValueError, match="state 7"):
        agent.update(7, 0, 0.0, 1, False)
    with pytest.raises(ValueError, match="action 3"):
        agent.update(0, 3, 0.0, 1, False)


def test_cli_dynaq_on_the_maze(capsys):
    assert (
        cli_main(["dyna", "--algo", "dynaq", "--env", DYNA_MAZE_ENV_ID, "--steps", "8", "--quiet"])
        == 0
    )
    assert "greedy path length 14" in capsys.readouterr().out
