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
