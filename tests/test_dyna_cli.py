"""``mbrl dyna``: each ``--algo`` gets a default env it can run on."""

from __future__ import annotations

import json

import mbrl.commands.dyna as dyna_command
from mbrl.cli import main as cli_main
from mbrl.dyna import DYNA_MAZE_ENV_ID


def test_dynaq_without_env_runs_on_the_maze(tmp_path, capsys):
    # The README line `mbrl dyna --algo dynaq` (no --env) used to fail on MBPO's Pendulum-v1.
    rc = cli_main(["dyna", "--algo", "dynaq", "--steps", "3", "--quiet", "--out", str(tmp_path)])
    assert rc == 0
    assert DYNA_MAZE_ENV_ID in capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["env"] == DYNA_MAZE_ENV_ID
    assert len(summary["episode_lengths"]) == 3


def test_mbpo_without_env_keeps_pendulum(monkeypatch, capsys):
    seen = {}

    class _Result:
        final_return = 0.0
        seconds = 0.0

    def fake_run_mbpo(cfg):
        seen["env_id"] = cfg.env_id
        return _Result()

    monkeypatch.setattr(dyna_command, "run_mbpo", fake_run_mbpo)
    assert cli_main(["dyna", "--steps", "10", "--quiet"]) == 0
    assert seen["env_id"] == "Pendulum-v1"


def test_imagine_with_rssm_runs_the_planet_loop_with_the_actor(monkeypatch, capsys):
    import mbrl.agents.loop as loop_module

    seen = {}

    class _Planet:
        plan_returns = [-300.0, -100.0]

    class _Result:
        planet = _Planet()

    def fake_run(cfg):
        seen["cfg"] = cfg
        return _Result()

    monkeypatch.setattr(loop_module, "run", fake_run)
    argv = ["dyna", "--algo", "imagine", "--model", "rssm", "--env", "mbrl/PendulumNoVel-v0"]
    assert cli_main([*argv, "--steps", "7000", "--seed", "2", "--quiet"]) == 0
    cfg = seen["cfg"]
    # 7000 steps = 35 episodes of 200: the 5 random seed episodes and 30 with the actor.
    assert (cfg.model, cfg.policy, cfg.episodes, cfg.seed) == ("rssm", "imagine", 30, 2)
    out = capsys.readouterr().out
    assert "--policy imagine" in out and "mean return of the last 2: -200.0" in out
    assert cli_main([*argv, "--steps", "1000"]) == 2  # only the seed episodes
    assert "not more than the 5 random seed episodes" in capsys.readouterr().err
    assert cli_main(["dyna", "--algo", "mbpo", "--model", "rssm"]) == 2
    assert "works with --algo imagine only" in capsys.readouterr().err


def test_dyna_model_flag_reaches_mbpo(monkeypatch):
    seen = {}

    class _Result:
        final_return = 0.0
        seconds = 0.0

    monkeypatch.setattr(
        dyna_command, "run_mbpo", lambda cfg: seen.setdefault("cfg", cfg) and _Result()
    )
    assert cli_main(["dyna", "--steps", "10", "--model", "mlp", "--quiet"]) == 0
    assert seen["cfg"].model == "mlp"
