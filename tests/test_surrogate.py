"""Surrogate envs: both env checkers, saved surrogates via gymnasium.make, reward/termination,
seeding, the batched vector env's contract, and clear errors for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode

from mbrl.cli import main as cli_main
from mbrl.data import TransitionBuffer
from mbrl.dyna import (
    SurrogateEnv,
    SurrogateVectorEnv,
    load_surrogate,
    load_surrogate_vector,
    read_surrogate_metadata,
    save_surrogate,
    space_from_dict,
    space_to_dict,
)
from mbrl.models import DeltaModelConfig, GaussianEnsemble, LearnedReward, MLPDynamics
from mbrl.models.base import DynamicsModel
from mbrl.task_fns import get_task_fns

sb3_env_checker = pytest.importorskip("stable_baselines3.common.env_checker")

PENDULUM_OBS = gym.spaces.Box(
    np.array([-1.0, -1.0, -8.0], np.float32), np.array([1.0, 1.0, 8.0], np.float32)
)
PENDULUM_ACT = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
TINY = DeltaModelConfig(ensemble_size=3, hidden_size=16, num_layers=2)


class ShiftModel(DynamicsModel):
    """Deterministic toy dynamics: ``next = obs * decay + action[:, :1] * gain`` (all dims)."""

    def __init__(
        self, obs_dim: int = 3, action_dim: int = 1, decay: float = 0.9, gain: float = 0.5
    ):
        super().__init__()
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.decay, self.gain = decay, gain

    def step(self, state, action, generator=None):
        return state * self.decay + action[:, :1] * self.gain


def first_coord_reward(obs, action, next_obs):
    return next_obs[:, 0] - 0.1 * action[:, 0].square()


def first_coord_termination(obs, action, next_obs):
    return next_obs[:, 0] > 0.8


def pendulum_env(model=None, starts=None, **kwargs) -> SurrogateEnv:
    fns = get_task_fns("Pendulum-v1")
    model = model if model is not None else GaussianEnsemble(3, 1, TINY)
    starts = starts if starts is not None else torch.rand(16, 3) * 2 - 1
    return SurrogateEnv(model, PENDULUM_OBS, PENDULUM_ACT, fns.reward, None, starts, **kwargs)


def both_checkers(env: gym.Env) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the non-normalised Box action space only warns
        gym_check_env(env.unwrapped if isinstance(env, gym.Wrapper) else env)
        sb3_env_checker.check_env(env, warn=True)


# ------------------------------------------------------------------------------------ single
def test_surrogate_env_passes_both_env_checkers():
    both_checkers(pendulum_env(max_episode_steps=20))


def test_discrete_action_surrogate_passes_both_checkers_and_one_hot_encodes():
    obs_space = gym.spaces.Box(-5.0, 5.0, (3,), np.float32)
    seen = []

    class Recorder(ShiftModel):
        def step(self, state, action, generator=None):
            seen.append(action.clone())
            return super().step(state, action, generator)

    env = SurrogateEnv(
        Recorder(3, 2),
        obs_space,
        gym.spaces.Discrete(2),
        first_coord_reward,
        None,
        torch.zeros(4, 3),
    )
    both_checkers(env)
    env.reset(seed=0)
    env.step(1)
    assert torch.equal(seen[-1], torch.tensor([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(2)


def test_reward_and_termination_are_the_given_functions():
    env = SurrogateEnv(
        ShiftModel(),
        gym.spaces.Box(-5.0, 5.0, (3,), np.float32),
        PENDULUM_ACT,
        first_coord_reward,
        first_coord_termination,
        torch.zeros(1, 3),
        max_episode_steps=50,
    )
    obs, _ = env.reset(seed=0)
    terminated, steps = False, 0
    while not terminated:
        action = np.array([1.5], np.float32)
        nxt, reward, terminated, truncated, _ = env.step(action)
        o, a, n = (torch.as_tensor(x).reshape(1, -1) for x in (obs, action, nxt))
        np.testing.assert_allclose(nxt, obs * 0.9 + 0.75, rtol=1e-6)
        assert reward == pytest.approx(float(first_coord_reward(o, a, n)[0]), rel=1e-6)
        assert terminated == bool(first_coord_termination(o, a, n)[0])
        assert isinstance(reward, float) and isinstance(terminated, bool)
        assert isinstance(truncated, bool) and not truncated
        assert nxt.dtype == np.float32 and nxt.shape == (3,)
        obs, steps = nxt, steps + 1
    assert steps == 2  # 0.75, then 1.425 > 0.8


def test_truncates_at_max_episode_steps_and_clips_observations():
    env = pendulum_env(ShiftModel(decay=3.0), max_episode_steps=4)
    env.reset(seed=0, options={"state": np.array([0.5, -0.5, 4.0], np.float32)})
    flags = []
    for _ in range(4):
        obs, _, terminated, truncated, _ = env.step(np.array([0.0], np.float32))
        assert PENDULUM_OBS.contains(obs)  # 3x growth is clipped to the bounds
        flags.append((terminated, truncated))
    assert flags == [(False, False)] * 3 + [(False, True)]
    np.testing.assert_allclose(obs, [1.0, -1.0, 8.0])


def test_seeding_reproduces_episodes_and_different_seeds_differ():
    env = pendulum_env()

    def episode(seed):
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for _ in range(5):
            out.append(env.step(np.array([0.3], np.float32))[0])
        return np.stack(out)

    a, b, c = episode(3), episode(3), episode(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_uncertainty_penalty_subtracts_member_disagreement():
    model = GaussianEnsemble(3, 1, TINY)
    plain, penalised = pendulum_env(model), pendulum_env(model, uncertainty_penalty=2.0)
    start = np.array([0.6, 0.8, 0.5], np.float32)
    action = np.array([1.0], np.float32)
    plain.reset(seed=1, options={"state": start})
    penalised.reset(seed=1, options={"state": start})
    _, r_plain, *_ = plain.step(action)
    _, r_pen, *_ = penalised.step(action)
    with torch.no_grad():
        dis = model.member_disagreement(torch.tensor(start).reshape(1, 3), torch.tensor([[1.0]]))
    assert r_pen == pytest.approx(r_plain - 2.0 * float(dis[0]), rel=1e-5, abs=1e-6)
    with pytest.raises(ValueError, match="member_disagreement"):
        pendulum_env(ShiftModel(), uncertainty_penalty=1.0)


def test_model_divergence_terminates_with_last_finite_observation():
    class Exploding(ShiftModel):
        def step(self, state, action, generator=None):
            return torch.full_like(state, float("nan"))

    env = pendulum_env(Exploding())
    obs, _ = env.reset(seed=0)
    nxt, _, terminated, _, info = env.step(np.array([0.0], np.float32))
    assert terminated and info["model_diverged"]
    np.testing.assert_array_equal(nxt, obs)


# ------------------------------------------------------------------------------------ errors
def test_model_observation_size_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"model observation size 4 does not match"):
        pendulum_env(GaussianEnsemble(4, 1, TINY))
    with pytest.raises(ValueError, match=r"model action size 2 does not match"):
        pendulum_env(GaussianEnsemble(3, 2, TINY))
    with pytest.raises(TypeError, match="DynamicsModel"):
        pendulum_env(model=torch.nn.Linear(3, 3))


def test_empty_or_malformed_start_states_are_clear_errors():
    with pytest.raises(ValueError, match="start_states buffer is empty"):
        pendulum_env(starts=TransitionBuffer(3, 1, capacity=10))
    with pytest.raises(ValueError, match="start_states is empty"):
        pendulum_env(starts=torch.zeros(0, 3))
    with pytest.raises(ValueError, match=r"start_states must have shape \(N, 3\)"):
        pendulum_env(starts=torch.zeros(5, 4))
    with pytest.raises(ValueError, match="NaN"):
        pendulum_env(starts=torch.full((2, 3), float("nan")))


def test_actions_outside_the_space_are_clear_errors():
    env = pendulum_env()
    env.reset(seed=0)
    with pytest.raises(
        ValueError,
        match=r"action \[2\.5\] is outside the action space bounds low=\[-2\.0\] high=\[2\.0\]",
    ):
        env.step(np.array([2.5], np.float32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.array([0.1, 0.2], np.float32))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([np.nan], np.float32))
    env.step(np.array([2.0 + 1e-7], np.float32))  # round-off is tolerated (and clipped)
    venv = SurrogateVectorEnv.from_env(env, 4)
    venv.reset(seed=0)
    bad = np.zeros((4, 1), np.float32)
    bad[2] = -3.0
    with pytest.raises(ValueError, match=r"rows \[2\].*outside the action space bounds"):
        venv.step(bad)
    with pytest.raises(RuntimeError, match="reset"):
        pendulum_env().step(np.array([0.0], np.float32))


def test_loading_a_directory_that_is_not_a_surrogate_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not a saved surrogate"):
        load_surrogate(tmp_path)
    (tmp_path / "surrogate.json").write_text("{}")
    with pytest.raises(ValueError, match="not an mbrl surrogate"):
        load_surrogate(tmp_path)


def test_space_round_trip():
    for space in (
        PENDULUM_OBS,
        gym.spaces.Discrete(5, start=1),
        gym.spaces.Box(-np.inf, np.inf, (2,)),
    ):
        assert space_from_dict(space_to_dict(space)) == space
    with pytest.raises(TypeError):
        space_to_dict(gym.spaces.MultiBinary(3))


# ------------------------------------------------------------------------------------ vector
def test_vector_env_contract_shapes_dtypes_and_same_step_autoreset():
    venv = SurrogateVectorEnv.from_env(pendulum_env(max_episode_steps=3), 5)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert venv.observation_space.shape == (5, 3) and venv.action_space.shape == (5, 1)
    assert venv.single_observation_space == PENDULUM_OBS
    obs, info = venv.reset(seed=0)
    assert obs.shape == (5, 3) and obs.dtype == np.float32 and info == {}
    venv.action_space.seed(0)
    for _ in range(3):
        obs, rew, term, trunc, info = venv.step(venv.action_space.sample())
        assert obs.shape == (5, 3) and obs.dtype == np.float32
        assert rew.shape == (5,) and term.shape == (5,) and trunc.shape == (5,)
        assert term.dtype == bool and trunc.dtype == bool and rew.dtype == np.float64
        assert venv.observation_space.contains(obs)
    assert trunc.all() and not term.any()
    assert info["_final_obs"].all() and info["final_obs"].shape == (5, 3)
    assert not np.array_equal(info["final_obs"], obs)  # obs are already the new start states
    _, _, _, trunc, info = venv.step(venv.action_space.sample())  # counters restarted
    assert not trunc.any() and "final_obs" not in info


def test_vector_env_equals_single_envs_for_a_deterministic_model():
    model = MLPDynamics(
        3, 1, DeltaModelConfig(ensemble_size=1, hidden_size=16, num_layers=2, probabilistic=False)
    )
    single = pendulum_env(model, max_episode_steps=100)
    venv = SurrogateVectorEnv.from_env(single, 4)
    starts = np.random.default_rng(0).uniform(-1, 1, (4, 3)).astype(np.float32)
    actions = np.random.default_rng(1).uniform(-2, 2, (6, 4, 1)).astype(np.float32)
    vobs, _ = venv.reset(seed=0, options={"states": starts})
    v_traj, v_rew = [vobs], []
    for t in range(6):
        vobs, r, *_ = venv.step(actions[t])
        v_traj.append(vobs)
        v_rew.append(r)
    for i in range(4):
        obs, _ = single.reset(seed=0, options={"state": starts[i]})
        for t in range(6):
            obs, r, *_ = single.step(actions[t, i])
            np.testing.assert_allclose(obs, v_traj[t + 1][i], rtol=1e-5, atol=1e-6)
            assert r == pytest.approx(v_rew[t][i], rel=1e-5, abs=1e-6)


def test_vector_env_seeding_and_partial_reset():
    venv = SurrogateVectorEnv.from_env(pendulum_env(), 6)
    a, _ = venv.reset(seed=7)
    s1 = venv.step(np.full((6, 1), 0.5, np.float32))[0]
    b, _ = venv.reset(seed=7)
    s2 = venv.step(np.full((6, 1), 0.5, np.float32))[0]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(s1, s2)
    mask = np.array([True, False, False, False, False, True])
    c, _ = venv.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(c[~mask], s2[~mask])


# ------------------------------------------------------------------------------------ saved
def test_save_load_round_trip_with_learned_reward(tmp_path):
    model = GaussianEnsemble(3, 1, TINY)
    reward = LearnedReward(3, 1, hidden_size=8, num_layers=1)
    starts = torch.rand(7, 3)
    save_surrogate(
        tmp_path,
        model,
        PENDULUM_OBS,
        PENDULUM_ACT,
        starts,
        env_id="Pendulum-v1",
        reward=reward,
        termination="none",
        max_episode_steps=11,
        info={"note": "x"},
    )
    meta = read_surrogate_metadata(tmp_path)
    assert meta["reward"] == "learned" and meta["termination"] == "none"
    assert meta["max_episode_steps"] == 11 and meta["info"] == {"note": "x"}
    env = load_surrogate(tmp_path)
    assert torch.equal(env.core.start_states, starts)
    obs, _ = env.reset(seed=0)
    nxt, r, *_ = env.step(np.array([0.5], np.float32))
    with torch.no_grad():
        expected = reward(*(torch.as_tensor(x).reshape(1, -1) for x in (obs, [0.5], nxt)))
    assert r == pytest.approx(float(expected[0]), rel=1e-5, abs=1e-6)
    venv = load_surrogate_vector(tmp_path, 3)
    assert venv.reset(seed=0)[0].shape == (3, 3)
    with pytest.raises(ValueError, match="no task functions are registered"):
        save_surrogate(tmp_path / "x", model, PENDULUM_OBS, PENDULUM_ACT, starts, env_id="Nope-v0")


def test_cli_surrogate_then_gymnasium_make_in_a_fresh_process(tmp_path, capsys):
    out = tmp_path / "sur"
    code = cli_main(
        [
            "surrogate",
            "--env",
            "Pendulum-v1",
            "--steps",
            "120",
            "--out",
            str(out),
            "--fit-steps",
            "20",
            "--model-opt",
            "hidden_size=16",
            "--model-opt",
            "num_layers=2",
            "--quiet",
        ]
    )
    assert code == 0 and "mbrl/Surrogate-v0" in capsys.readouterr().out
    assert {"surrogate.json", "model.pt", "start_states.pt", "buffer.pt"} <= {
        p.name for p in out.iterdir()
    }
    script = (
        "import warnings, gymnasium as gym\n"
        "warnings.simplefilter('ignore')\n"
        "from gymnasium.utils.env_checker import check_env\n"
        "from stable_baselines3.common.env_checker import check_env as sb3_check\n"
        f"env = gym.make('mbrl.dyna:mbrl/Surrogate-v0', path={str(out)!r})\n"
        "check_env(env.unwrapped); sb3_check(env)\n"
        "import mbrl\n"
        f"env2 = gym.make('mbrl/Surrogate-v0', path={str(out)!r}, max_episode_steps=5)\n"
        "env2.reset(seed=0)\n"
        "flags = [env2.step(env2.action_space.sample())[3] for _ in range(5)]\n"
        "print('ok', env.unwrapped.max_episode_steps, flags.index(True) + 1)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok 200 5")


def test_cli_surrogate_bad_input_exits_2(tmp_path, capsys):
    assert (
        cli_main(["surrogate", "--env", "NoSuchEnv-v9", "--steps", "10", "--out", str(tmp_path)])
        == 2
    )
    assert "unknown gymnasium env id" in capsys.readouterr().err
