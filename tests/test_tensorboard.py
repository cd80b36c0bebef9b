"""TensorBoard event files of a run: one scalar per metric and episode, equal to metrics.jsonl;
a missing tensorboard package fails before any episode, naming the extra."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

import mbrl.agents.tensorboard as tb_module
from mbrl.agents.config import RunConfig
from mbrl.agents.loop import run
from mbrl.agents.tensorboard import TensorBoardMissing, TensorBoardWriter, record_scalars
from mbrl.cli import main as cli_main

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from test_resume import CLI_TINY, TINY  # noqa: E402


def _scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_a_run_writes_one_scalar_per_episode_equal_to_its_metrics(tmp_path):
    out, board = tmp_path / "run", tmp_path / "tb"
    result = run(RunConfig(out=str(out), tensorboard=str(board), **TINY))
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    scalars = _scalars(board)
    returns = scalars["episode/return"]
    assert [step for step, _ in returns] == [0, 1, 2, 3]
    assert [v for _, v in returns] == pytest.approx([d["return"] for d in lines], rel=1e-6)
    assert [v for _, v in scalars["episode/steps"]] == [d["steps"] for d in lines] == [10] * 4
    assert [v for _, v in scalars["plan/ms_mean"]] == pytest.approx(
        [d["plan_ms"] for d in lines], rel=1e-5
    )
    # the seed episode has no model score; the three MPC episodes have one each
    assert [s for s, _ in scalars["model/val_loss"]] == [1, 2, 3]
    assert [v for _, v in scalars["model/val_loss"]] == pytest.approx(
        [d["model_val_loss"] for d in lines[1:]], rel=1e-5
    )
    assert scalars["fit/seconds"][0] == (0, 0.0) and all(
        v > 0 for _, v in scalars["fit/seconds"][1:]
    )
    assert {"plan/ms_p99", "plan/deadline_misses", "episode/env_steps"} <= set(scalars)
    assert len(result.records) == 4


@dataclass(frozen=True)
class _PlanetLike:
    episode: int = 2
    kind: str = "plan"
    episode_return: float = 5.0
    steps: int = 7
    plan_ms: float = 1.5
    plan_ms_p99: float = 2.5
    deadline_misses: int = 1
    train_seconds: float = 0.25
    env_steps: int = 30
    losses: dict = field(default_factory=lambda: {"obs": 0.5, "kl": 1.0})
    openloop_mse: list = field(default_factory=lambda: [0.1, 0.3])
    fit_field: ClassVar[str] = "train_seconds"


def test_record_scalars_name_every_metric_and_skip_non_finite_ones():
    assert record_scalars(_PlanetLike()) == pytest.approx(
        {
            "episode/return": 5.0,
            "episode/steps": 7.0,
            "plan/ms_mean": 1.5,
            "plan/ms_p99": 2.5,
            "plan/deadline_misses": 1.0,
            "fit/seconds": 0.25,
            "episode/env_steps": 30.0,
            "model/loss_obs": 0.5,
            "model/loss_kl": 1.0,
            "model/openloop_mse": 0.2,
        }
    )
    nan_return = record_scalars(_PlanetLike(episode_return=math.nan))
    assert "episode/return" not in nan_return


def test_writer_flushes_after_every_episode(tmp_path):
    writer = TensorBoardWriter(tmp_path)
    writer.add_record(_PlanetLike(episode=0, episode_return=1.0))
    # read back while the writer is still open: flushed, not only at close
    assert _scalars(tmp_path)["episode/return"] == [(0, 1.0)]
    writer.close()


def test_missing_tensorboard_fails_before_any_episode_naming_the_extra(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(tb_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TensorBoardMissing, match=r'pip install "mbrl-toolkit\[tensorboard\]"'):
        run(RunConfig(out=str(tmp_path / "api"), tensorboard=str(tmp_path / "tb"), **TINY))
    assert not (tmp_path / "api" / "metrics.jsonl").exists()  # no episode ran
    out = tmp_path / "cli"
    assert cli_main(["run", *CLI_TINY, "--out", str(out), "--tensorboard", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mbrl run: error: tensorboard (--tensorboard)")
    assert 'pip install "mbrl-toolkit[tensorboard]"' in err[0]
    assert not out.exists()  # refused before any work


def test_tensorboard_must_be_a_path():
    with pytest.raises(TypeError, match="tensorboard must be a non-empty path"):
        RunConfig(tensorboard="")
