"""Crash-safe, resumable runs: a stopped run resumed from its directory gives the returns,
models and buffer of an uninterrupted run with the same seed; the directory is always a
consistent checkpoint; --out / --resume refuse what would mix runs."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import mbrl.agents.loop as loop_module
import mbrl.agents.writer as writer_module
from mbrl.agents.config import RunConfig, run_config_from_json
from mbrl.agents.loop import resume, run, saved_run_config
from mbrl.agents.mpc import MPCAgent
from mbrl.agents.writer import config_json
from mbrl.cli import main as cli_main
from mbrl.data import TransitionBuffer
from mbrl.models import FitConfig

TINY = dict(
    seed_episodes=1,
    episodes=3,
    max_episode_steps=10,
    min_seed_transitions=10,
    horizon=3,
    n_particles=1,
    model_options={"ensemble_size": 1, "hidden_size": 16, "num_layers": 1},
    planner_options={"population": 16, "iterations": 1},
    fit=FitConfig(max_steps=20, eval_every=10),
    use_preset=False,
    progress=False,
)
"""A 4-episode Pendulum run (1 seed + 3 MPC, 10 steps each) that takes a few seconds."""

CLI_TINY = [
    "--env", "Pendulum-v1", "--episodes", "4", "--seed-episodes", "1",
    "--max-episode-steps", "15", "--horizon", "3", "--particles", "1",
    "--model-opt", "ensemble_size=1", "--model-opt", "hidden_size=16",
    "--model-opt", "num_layers=1", "--planner-opt", "population=16",
    "--planner-opt", "iterations=1", "--fit-opt", "max_steps=20", "--fit-opt", "eval_every=10",
    "--no-preset", "--quiet",
]  # fmt: skip
"""``mbrl run`` flags of a 5-episode run (1 seed + 4 MPC, 15 steps each; 2 seconds of work)."""


def _returns(result) -> list[float]:
    return [r.episode_return for r in result.records]


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if ".next-" in p.name or p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted TINY run (and its directory)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    return run(RunConfig(out=str(out), **TINY)), out


def _metrics(out: Path) -> list[dict]:
    """The ``metrics.jsonl`` records without their timings."""
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [
        {**json.loads(x), "plan_ms": None, "plan_ms_p99": None, "fit_seconds": None} for x in lines
    ]


def _fail_on_fit_call(monkeypatch, n: int, exc: BaseException) -> None:
    calls = {"n": 0}
    real = loop_module.fit

    def fit(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(loop_module, "fit", fit)


def test_interrupted_run_resumes_to_the_uninterrupted_results(tmp_path, monkeypatch, reference):
    ref, ref_out = reference
    out = tmp_path / "run"
    _fail_on_fit_call(monkeypatch, 2, KeyboardInterrupt())  # before episode 2 (the 2nd MPC)
    with pytest.raises(KeyboardInterrupt) as info:
        run(RunConfig(out=str(out), **TINY))
    assert info.value.__notes__ == [
        f"the 20 transitions collected so far were saved to {out / 'buffer.pt'}; {out} holds "
        f"episodes 0-1 of 4; 'mbrl run --resume {out}' runs the rest"
    ]
    state = json.loads((out / "state.json").read_text())
    assert (state["next_episode"], state["count"]) == (2, 20)
    assert not (out / "summary.json").exists() and _leftovers(out) == []
    monkeypatch.undo()

    resumed = resume(out)
    assert _returns(resumed) == _returns(ref)  # the episodes it ran (2, 3) and the read-back
    assert _same_state(resumed.model, ref.model)
    assert torch.equal(resumed.buffer.all().obs, ref.buffer.all().obs)
    assert _metrics(out) == _metrics(ref_out)
    summary, ref_summary = (json.loads((d / "summary.json").read_text()) for d in (out, ref_out))
    untimed = lambda s: [{**e, "plan_ms": None, "plan_ms_p99": None} for e in s["episodes"]]  # noqa: E731
    assert untimed(summary) == untimed(ref_summary)
    with pytest.raises(ValueError, match="already finished"):
        resume(out)


def test_a_stop_mid_episode_keeps_the_unfinished_episode_and_resumes_exactly(
    tmp_path, monkeypatch, reference
):
    ref, _ = reference
    out = tmp_path / "run"
    calls = {"n": 0}
    real_act = MPCAgent.act

    def act(self, obs):
        calls["n"] += 1
        if calls["n"] == 14:  # step 4 of episode 2
            raise RuntimeError("sensor lost")
        return real_act(self, obs)

    monkeypatch.setattr(MPCAgent, "act", act)
    with pytest.raises(RuntimeError, match="sensor lost") as info:
        run(RunConfig(out=str(out), **TINY))
    partial = out / "buffer-interrupted.pt"
    assert f"the 23 transitions collected so far were saved to {partial}" in info.value.__notes__[0]
    assert (
        len(TransitionBuffer.load(partial)) == 23
        and len(TransitionBuffer.load(out / "buffer.pt")) == 20
    )
    monkeypatch.undo()
    assert _returns(resume(out)) == _returns(ref)


def test_a_commit_cut_after_state_json_is_finished_on_resume(tmp_path, monkeypatch, reference):
    ref, _ = reference
    out = tmp_path / "run"
    real_replace = os.replace
    seen = {"state": 0}

    def replace(src, dst):  # die right after the 2nd checkpoint's state.json is in place
        real_replace(src, dst)
        if Path(dst).name == "state.json":
            seen["state"] += 1
            if seen["state"] == 2:
                raise SystemExit("killed")

    monkeypatch.setattr(writer_module.os, "replace", replace)
    with pytest.raises(SystemExit):
        run(RunConfig(out=str(out), **TINY))
    monkeypatch.undo()
    assert sorted(p.name for p in out.glob("*.next-2")) == [
        "buffer.pt.next-2",
        "metrics.jsonl.next-2",
        "model.pt.next-2",
    ]
    assert _returns(resume(out)) == _returns(ref)


def test_recover_drops_an_uncommitted_checkpoint(tmp_path, monkeypatch, reference):
    ref, _ = reference
    out = tmp_path / "run"
    _fail_on_fit_call(monkeypatch, 2, SystemExit("killed"))
    with pytest.raises(SystemExit):
        run(RunConfig(out=str(out), **TINY))
    monkeypatch.undo()
    # What a SIGKILL while the next checkpoint was being written leaves behind.
    (out / "buffer.pt.next-3").write_bytes(b"half a buffer")
    (out / "model.pt.next-3.tmp").write_bytes(b"half a model")
    assert _returns(resume(out)) == _returns(ref)
    assert _leftovers(out) == []


def test_resume_of_a_run_killed_before_its_first_episode_starts_over(tmp_path, reference):
    ref, _ = reference
    out = tmp_path / "run"
    writer_module.RunWriter(out).start(
        loop_module.run_config_document(RunConfig(out=str(out), **TINY), RunConfig(**TINY))
    )
    assert _returns(resume(out, progress=False)) == _returns(ref)


def test_metrics_are_standard_json_and_summary_marks_a_finished_run(reference):
    _, out = reference
    lines = (out / "metrics.jsonl").read_text().splitlines()

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    records = [json.loads(line, parse_constant=refuse) for line in lines]
    assert records[0]["kind"] == "seed" and records[0]["model_val_loss"] is None  # NaN
    assert [r["episode"] for r in records] == [0, 1, 2, 3]
    assert sorted(p.name for p in out.iterdir()) == [
        "buffer.pt", "config.json", "metrics.jsonl", "model.pt", "state.json", "summary.json",
    ]  # fmt: skip
    json.loads((out / "summary.json").read_text(), parse_constant=refuse)


def test_config_json_round_trips_the_run_config(tmp_path):
    cfg = RunConfig(out=str(tmp_path), explicit=frozenset({"horizon"}), **TINY)
    assert run_config_from_json(config_json(cfg)) == cfg
    planet = RunConfig(
        env_id="mbrl/PendulumNoVel-v0", model="rssm", model_options={"action_repeat": 2}
    )
    assert run_config_from_json(config_json(planet)) == planet
    with pytest.raises(ValueError, match=r"unknown RunConfig field\(s\) \['colour'\]"):
        run_config_from_json({"colour": "red"})


def test_out_refuses_a_non_empty_directory_unless_overwrite(tmp_path, reference):
    _, ref_out = reference
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="already holds files; pass --overwrite"):
        run(RunConfig(out=str(out), **TINY))
    for name in ("summary.json", "metrics.jsonl", "model.pt", "config.json"):
        (out / name).write_bytes((ref_out / name).read_bytes())
    with pytest.raises(ValueError, match="already holds an mbrl run; pass --resume"):
        run(RunConfig(out=str(out), **TINY))
    short = dataclasses.replace(RunConfig(out=str(out), **TINY), episodes=1)
    run(short, overwrite=True)
    # the old run's files are replaced, not mixed in; files that are not a run's stay
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert len(json.loads((out / "summary.json").read_text())["episodes"]) == 2
    assert (out / "notes.txt").read_text() == "mine"


def test_out_at_a_file_or_under_one_fails_before_any_work(tmp_path, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")

    def no_set_up(*args, **kwargs):
        raise AssertionError("the run was set up")

    monkeypatch.setattr(loop_module, "build_run", no_set_up)
    with pytest.raises(ValueError, match="is a file, not a directory"):
        run(RunConfig(out=str(afile), **TINY))
    with pytest.raises(ValueError, match="'.*afile' is a file, not a directory"):
        run(RunConfig(out=str(afile / "sub"), **TINY))
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # root writes everywhere
    with pytest.raises(ValueError, match="is not writable"):
        run(RunConfig(out=str(tmp_path / "new"), **TINY))


def test_cli_resume_checks_flags_against_the_saved_config(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    _fail_on_fit_call(monkeypatch, 1, KeyboardInterrupt())
    assert cli_main(["run", *CLI_TINY, "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"mbrl run: interrupted; the 30 transitions collected so far were saved to "
        f"{out / 'buffer.pt'}; {out} holds episodes 0-1 of 6; 'mbrl run --resume {out}' runs "
        "the rest"
    ]  # 2 seed episodes: 15 steps are fewer than min_seed_transitions (20)
    monkeypatch.undo()
    assert cli_main(["run", "--resume", str(out), "--seed", "3", "--planner", "cem"]) == 2
    err = capsys.readouterr().err
    assert "these flags disagree with it: --seed 3 (the run has seed=0)" in err
    assert "--planner" not in err.split("disagree")[1]  # agrees with the saved config
    assert cli_main(["run", "--resume", str(out), "--overwrite"]) == 2
    assert "--overwrite cannot be combined with --resume" in capsys.readouterr().err
    saved = saved_run_config(out)
    assert saved.max_episode_steps == 15 and saved.out == str(out)
    # the flags the run was started with agree; --quiet may be added
    assert cli_main(["run", "--resume", str(out), *CLI_TINY, "--out", str(out)]) == 0
    assert f"outputs in {out}" in capsys.readouterr().out


def _poll(path: Path, lines: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= lines:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early: {proc.communicate()}")
        time.sleep(0.02)
    raise AssertionError(f"{path} never reached {lines} lines")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mbrl.cli", "run", *args]


def _metric_returns(out: Path) -> list[float]:
    return [json.loads(x)["return"] for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_sigkill_after_episode_2_then_cli_resume_matches_an_uninterrupted_run(tmp_path):
    """(Three CLI processes: about 30 s on 2 idle cores, more on a loaded machine.)"""
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_cli(*CLI_TINY, "--out", str(full)), check=True, capture_output=True)
    proc = subprocess.Popen(
        _cli(*CLI_TINY, "--out", str(killed)), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _poll(killed / "metrics.jsonl", 3, proc)  # episodes 0 (seed), 1 (seed), 2 (MPC) written
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (killed / "summary.json").exists()
    done = subprocess.run(_cli("--resume", str(killed)), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (killed / "summary.json").exists() and _leftovers(killed) == []
    ref, got = _metric_returns(full), _metric_returns(killed)
    assert len(ref) == 6 and got == ref  # episodes 3-5 re-run identically


def test_a_planet_run_resumes_with_its_optimiser_state(tmp_path, monkeypatch):
    from test_rssm import TINY_RUN

    from mbrl.models.rssm.training import RSSMTrainer

    cfg = dataclasses.replace(TINY_RUN, episodes=2).to_run_config()
    ref = run(dataclasses.replace(cfg, out=str(tmp_path / "ref")))
    out = tmp_path / "run"
    calls = {"n": 0}
    real_train = RSSMTrainer.train

    def train(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_train(self, *args, **kwargs)

    monkeypatch.setattr(RSSMTrainer, "train", train)
    with pytest.raises(KeyboardInterrupt):
        run(dataclasses.replace(cfg, out=str(out)))
    monkeypatch.undo()
    assert "loop_state.pt" in json.loads((out / "state.json").read_text())["files"]
    resumed = resume(out)
    assert [r.kind for r in resumed.records] == ["seed", "plan", "plan"]
    assert _returns(resumed) == _returns(ref)
    assert [r.losses for r in resumed.records] == [r.losses for r in ref.records]
    assert _same_state(resumed.model, ref.model)


def test_a_planners_own_state_is_part_of_the_checkpoint(tmp_path, monkeypatch):
    from mbrl.planners.sampling import SamplingPlanner

    real_plan, used = SamplingPlanner.plan, []

    def plan(self, obs):  # a planner that keeps a count across episodes
        self.plans = getattr(self, "plans", 0) + 1
        used.append(self)
        return real_plan(self, obs)

    def load_state_dict(self, state):
        self.plans = state["plans"]

    monkeypatch.setattr(SamplingPlanner, "plan", plan)
    monkeypatch.setattr(
        SamplingPlanner, "state_dict", lambda self: {"plans": getattr(self, "plans", 0)}, False
    )
    monkeypatch.setattr(SamplingPlanner, "load_state_dict", load_state_dict, False)
    run(RunConfig(**TINY))
    assert used[-1].plans == 30  # 3 MPC episodes of 10 steps
    out = tmp_path / "run"
    real_fit = loop_module.fit
    _fail_on_fit_call(monkeypatch, 2, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run(RunConfig(out=str(out), **TINY))
    monkeypatch.setattr(loop_module, "fit", real_fit)
    assert torch.load(out / "loop_state.pt", weights_only=True) == {"planner": {"plans": 10}}
    resume(out)
    assert used[-1].plans == 30
