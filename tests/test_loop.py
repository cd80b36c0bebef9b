import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import mbrl.agents.loop as loop_module
from mbrl.agents import MPCAgent, RunConfig, make_env, run
from mbrl.cli import main as cli_main
from mbrl.data import TransitionBuffer
from mbrl.models import FitConfig, load_checkpoint
from mbrl.planners import CEMConfig, CEMOptimizer, SamplingPlanner
from mbrl.spaces import ActionCodec

TINY = dict(
    seed_episodes=1,
    episodes=1,
    max_episode_steps=25,
    horizon=5,
    n_particles=2,
    model_options={"ensemble_size": 2, "hidden_size": 32, "num_layers": 2},
    planner_options={"population": 40, "iterations": 2},
    fit=FitConfig(max_steps=50, eval_every=25),
    progress=False,
)


def test_run_writes_outputs_that_load_back(tmp_path):
    out = tmp_path / "run"
    result = run(RunConfig(out=str(out), **TINY))
    assert [r.kind for r in result.records] == ["seed", "mpc"]
    assert all(r.steps == 25 for r in result.records)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and {"return", "steps", "plan_ms", "model_val_loss", "env_steps"} <= set(
        json.loads(lines[1])
    )
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["env"] == "Pendulum-v1"
        and summary["model"] == "ensemble"
        and summary["planner"] == "cem"
    )
    assert summary["seed"] == 0 and len(summary["episodes"]) == 2
    assert {"return", "steps", "plan_ms"} <= set(summary["episodes"][1])
    assert summary["episodes"][1]["plan_ms"] > 0
    model, meta = load_checkpoint(out / "model.pt")
    assert meta["env"] == "Pendulum-v1"
    obs = torch.randn(4, 3)
    assert torch.equal(
        model.predict(obs, torch.zeros(4, 1))[0], result.model.predict(obs, torch.zeros(4, 1))[0]
    )
    buf = TransitionBuffer.load(out / "buffer.pt")
    assert len(buf) == 50 and torch.equal(buf.all().obs, result.buffer.all().obs)


def test_same_seed_same_returns_and_different_seed_differs():
    a = run(RunConfig(seed=3, **TINY))
    b = run(RunConfig(seed=3, **TINY))
    c = run(RunConfig(seed=4, **TINY))
    ra = [r.episode_return for r in a.records]
    assert ra == [r.episode_return for r in b.records]
    assert ra != [r.episode_return for r in c.records]


def test_learned_reward_path_runs_and_saves_task_models(tmp_path):
    result = run(RunConfig(reward="learned", out=str(tmp_path), **TINY))
    assert (tmp_path / "reward_model.pt").exists()
    assert not (tmp_path / "termination_model.pt").exists()  # Pendulum never terminates
    assert result.records[-1].steps == 25


def test_crash_mid_run_saves_the_buffer_first(tmp_path, monkeypatch):
    def broken_fit(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(loop_module, "fit", broken_fit)
    with pytest.raises(RuntimeError, match="simulated failure") as info:
        run(RunConfig(out=str(tmp_path), **TINY))
    buf = TransitionBuffer.load(tmp_path / "buffer.pt")
    assert len(buf) == 25  # the seed episode survived
    assert any("were saved to" in note for note in info.value.__notes__)


def test_bad_configs_fail_before_any_env_step():
    with pytest.raises(ValueError, match="unknown gymnasium env id 'NoSuchEnv-v9'"):
        run(RunConfig(env_id="NoSuchEnv-v9", **TINY))
    with pytest.raises(TypeError, match=r"continuous \(Box\) action spaces only.*Discrete\(2\)"):
        run(RunConfig(env_id="CartPole-v1", **TINY))
    with pytest.raises(ValueError, match="unknown planner 'magic'"):
        run(RunConfig(planner="magic", **TINY))
    with pytest.raises(ValueError, match="unknown model 'magic'"):
        run(RunConfig(model="magic", **TINY))
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['populaton'\]"):
        run(RunConfig(**{**TINY, "planner_options": {"populaton": 3}}))
    with pytest.raises(ValueError, match="reward must be"):
        RunConfig(reward="guess")


def test_module_env_ids_are_imported(tmp_path):
    env = make_env("gymnasium.envs.classic_control:Pendulum-v1")
    assert env.observation_space.shape == (3,)
    with pytest.raises(ValueError, match="could not import"):
        make_env("no_such_module_xyz:Thing-v0")


def test_agent_rejects_bad_observations(point_mass):
    codec = ActionCodec.from_space(gym.spaces.Box(-1.0, 1.0, (1,), np.float32))
    opt = CEMOptimizer(CEMConfig(population=20, iterations=1), *codec.bounds(), torch.Generator())
    agent = MPCAgent(
        SamplingPlanner(point_mass, lambda o, a, n: -n.square().sum(1), None, opt, 3), codec, 2
    )
    action = agent.act(np.array([0.5, 0.0], np.float32))
    assert action.shape == (1,) and action.dtype == np.float32 and -1 <= action[0] <= 1
    with pytest.raises(ValueError, match=r"obs must have shape \(2,\), got \(3,\)"):
        agent.act(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        agent.act(np.array([np.nan, 0.0]))
    assert len(agent.plan_seconds) == 1


def test_unsupported_spaces_get_clear_errors():
    with pytest.raises(TypeError, match="1-D Box"):
        ActionCodec.from_space(gym.spaces.Box(-1, 1, (2, 2)))
    with pytest.raises(TypeError, match="not supported"):
        ActionCodec.from_space(gym.spaces.MultiBinary(3))
    codec = ActionCodec.from_space(gym.spaces.Discrete(3, start=1))
    assert (
        codec.encode(2).tolist() == [0.0, 1.0, 0.0]
        and codec.decode(torch.tensor([0.1, 0.2, 0.9])) == 3
    )


def test_cli_reports_bad_input_with_exit_code_2(capsys):
    assert cli_main(["run", "--env", "NoSuchEnv-v9", "--quiet"]) == 2
    assert "unknown gymnasium env id" in capsys.readouterr().err
    assert (
        cli_main(
            [
                "run",
                "--planner-opt",
                "population=20",
                "--planner-opt",
                "iterations=1",
                "--episodes",
                "0",
                "--max-episode-steps",
                "5",
                "--quiet",
            ]
        )
        == 0
    )


def test_presets_fill_only_what_the_user_left_default():
    from mbrl.agents.presets import apply_preset

    cfg = apply_preset(RunConfig(model_options={"hidden_size": 64}, horizon=7), "Pendulum-v1")
    assert cfg.model_options == {"num_layers": 3, "hidden_size": 64}
    assert cfg.horizon == 7 and cfg.planner_options["population"] == 300
    user = apply_preset(RunConfig(planner_options={"population": 99}), "Pendulum-v1")
    assert user.planner_options == {"population": 99, "iterations": 4}
    assert apply_preset(RunConfig(), "Unknown-v0") == RunConfig()
    # CEM's preset options never leak into another planner's config
    assert apply_preset(RunConfig(planner="shooting"), "Pendulum-v1").planner_options == {}
    assert apply_preset(RunConfig(model="known"), "Pendulum-v1").model_options == {}


def test_typed_flags_beat_presets_even_at_default_values():
    import argparse

    from mbrl.agents.presets import apply_preset
    from mbrl.commands import run as run_command

    parser = argparse.ArgumentParser()
    run_command.register(parser.add_subparsers())
    env = "InvertedPendulum-v5"  # preset: horizon 25, 1 particle, 5 seed episodes
    typed = run_command.config_from_args(
        parser.parse_args(["run", "--env", env, "--horizon", "15", "--particles", "5"])
    )
    assert typed.explicit == {"horizon", "n_particles"}
    cfg = apply_preset(typed, env)
    assert (cfg.horizon, cfg.n_particles, cfg.seed_episodes) == (15, 5, 5)
    untyped = apply_preset(
        run_command.config_from_args(parser.parse_args(["run", "--env", env])), env
    )
    assert (untyped.horizon, untyped.n_particles, untyped.episodes) == (25, 1, RunConfig().episodes)
    with pytest.raises(ValueError, match="explicit"):
        RunConfig(explicit=frozenset({"horizn"}))


def test_min_seed_transitions_flag_beats_the_awake_preset():
    import argparse

    from mbrl.agents.presets import apply_preset
    from mbrl.commands import run as run_command

    parser = argparse.ArgumentParser()
    run_command.register(parser.add_subparsers())
    env = "mbrl/AwakeSteering-v0"  # preset: min_seed_transitions 50
    args = ["run", "--env", env, "--min-seed-transitions", "1"]
    typed = apply_preset(run_command.config_from_args(parser.parse_args(args)), env)
    assert typed.min_seed_transitions == 1
    untyped = apply_preset(run_command.config_from_args(parser.parse_args(args[:3])), env)
    assert untyped.min_seed_transitions == 50
    default = ["run", "--env", env, "--min-seed-transitions", "20"]  # typed at the default
    assert (
        apply_preset(
            run_command.config_from_args(parser.parse_args(default)), env
        ).min_seed_transitions
        == 20
    )


def test_seed_phase_collects_what_a_gp_needs_to_fit():
    cfg = RunConfig(
        **{
            **TINY,
            "model": "gp",
            "model_options": {},
            "max_episode_steps": 2,
            "min_seed_transitions": 1,
            "explicit": {"min_seed_transitions"},
        }
    )
    records = run(cfg).records
    seed_steps = sum(r.steps for r in records if r.kind == "seed")
    assert seed_steps >= 4 > 2  # Pendulum's GP input: 3 observation + 1 action
    assert [r.kind for r in records][-1] == "mpc"


def test_seed_phase_collects_until_enough_transitions():
    cfg = RunConfig(**{**TINY, "max_episode_steps": 5, "episodes": 1, "min_seed_transitions": 12})
    kinds = [r.kind for r in run(cfg).records]
    assert kinds == ["seed", "seed", "seed", "mpc"]  # 3 x 5 random steps >= 12


def test_sigterm_mid_run_saves_the_buffer(tmp_path, monkeypatch):
    import os
    import signal

    from mbrl.agents.loop import Terminated

    def fit_then_sigterm(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(loop_module, "fit", fit_then_sigterm)
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated):
        run(RunConfig(out=str(tmp_path), **TINY))
    assert len(TransitionBuffer.load(tmp_path / "buffer.pt")) == 25
    assert signal.getsignal(signal.SIGTERM) == previous  # the handler is restored


def _tiny_cem_planner():
    from mbrl.agents.setup import build_run

    return build_run(RunConfig(**TINY), dry=True).planner


def test_rollout_backend_is_measured_on_cuda_only_and_the_fastest_is_used():
    from mbrl.agents.backend import choose_rollout_backend
    from mbrl.planners.registry import PlannerContext, build_planner

    def must_not_measure(*args):
        raise AssertionError("measured on CPU")

    planner = _tiny_cem_planner()
    original = planner.objective
    cpu = choose_rollout_backend(planner, "auto", torch.device("cpu"), measure=must_not_measure)
    assert cpu.backend == "eager" and "cpu" in cpu.reason and planner.objective == original
    seen = []

    def fake(rollout_fn, obs, candidates):  # compile fastest, graph slowest
        seen.append((tuple(obs.shape), tuple(candidates.shape), rollout_fn.n_particles))
        return {"eager": 2e-3, "graph": 3e-3, "compile": 1e-3}

    choice = choose_rollout_backend(planner, "auto", torch.device("cuda"), measure=fake)
    assert seen == [((3,), (40, 5, 1), 2)]  # the planner's shape: population x H x A
    assert choice.backend == "compile" and choice.seconds["compile"] == 1e-3
    assert planner.objective != original  # now scored by a CompiledRollout
    slow = lambda *a: {"eager": 1e-3, "graph": 3e-3, "compile": 2e-3}  # noqa: E731
    kept = _tiny_cem_planner()
    before = kept.objective
    assert choose_rollout_backend(kept, "auto", torch.device("cuda"), measure=slow).backend == (
        "eager"
    )
    assert kept.objective == before
    forced = choose_rollout_backend(
        _tiny_cem_planner(), "eager", torch.device("cuda"), measure=fake
    )
    assert forced.backend == "eager" and not forced.seconds
    # planners without a rollout objective stay as they are
    ctx = PlannerContext(planner.model, planner.reward_fn, None, ActionCodec.from_space(
        gym.spaces.Box(-2.0, 2.0, (1,), np.float32)), torch.Generator(), 5, 1)  # fmt: skip
    ilqr = build_planner("ilqr", ctx)
    assert choose_rollout_backend(ilqr, "auto", torch.device("cuda"), measure=fake).backend == (
        "eager"
    )


def test_run_records_the_backend_in_config_and_summary(tmp_path):
    result = run(RunConfig(**{**TINY, "episodes": 0}, out=str(tmp_path)))
    assert result.config.rollout_backend == "eager"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["rollout_backend"]["backend"] == "eager"
    assert summary["config"]["rollout_backend"] == "eager"
    with pytest.raises(ValueError, match="rollout_backend must be one of"):
        RunConfig(rollout_backend="fast")


def test_build_run_checks_everything_before_any_env_step(monkeypatch):
    import mbrl.agents.setup as setup_module

    made = []

    def recording_make_env(env_id):
        made.append(make_env(env_id))
        return made[-1]

    monkeypatch.setattr(setup_module, "make_env", recording_make_env)
    setup = setup_module.build_run(RunConfig(**TINY))
    assert setup.config.rollout_backend == "eager" and setup.env is made[0]
    dry = setup_module.build_run(RunConfig(**TINY), dry=True)
    assert dry.env is None and dry.device == torch.device("cpu")
    for bad, match in [
        ({"value": "learned", "gamma": 0.9, "planner": "ilqr"}, "planner 'ilqr' does not"),
        ({"policy": "learned", "planner": "ilqr"}, "planner 'ilqr' does not"),
        ({"model": "rssm", "env_id": "CartPole-v1", "model_options": {}}, "Discrete"),
        ({"model": "rssm", "model_options": {"chunk_length": 99}}, "chunk_length 99 is longer"),
    ]:
        with pytest.raises((ValueError, TypeError), match=match):
            setup_module.build_run(RunConfig(**{**TINY, **bad}))
    assert len(made) == 6 and not any(e.get_wrapper_attr("_has_reset") for e in made)
    setup.env.close()
