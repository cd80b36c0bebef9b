"""Signals: SIGTERM on ``mbrl run`` exits 143 with one line, Ctrl-C says where the data went
(also without --out), ``mbrl bench`` ends its worker processes on SIGTERM, and a checkpoint
being committed is never cut in half by a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_resume import CLI_TINY

from mbrl.bench.executors import LocalExecutor
from mbrl.data import TransitionBuffer
from mbrl.util.signals import Terminated, signals_deferred, sigterm_raises

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _default_sigint() -> None:
    # A pytest started in the background (nohup, `cmd &`) inherits an ignored SIGINT, which
    # Python keeps: give the child the default so that Ctrl-C reaches it as in a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _mbrl(*args: str, **kwargs) -> subprocess.Popen:
    kwargs.setdefault("env", ENV)
    return subprocess.Popen(
        [sys.executable, "-m", "mbrl.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
        **kwargs,
    )


@pytest.fixture
def python_sigint():
    """SIGINT raising KeyboardInterrupt in this process, as in a terminal, for the test."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _wait_for(ready, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"ended early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.05)


def _lines(text: str) -> list[str]:
    # progress bars redraw with \r; messages end with \n
    return [line for line in text.split("\n") if line.strip()]


def test_signals_are_held_while_a_block_must_not_be_cut(python_sigint):
    with pytest.raises(Terminated), sigterm_raises():
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # a handler would have run by now
            reached = True
        pytest.fail("SIGTERM was not delivered after the block")  # pragma: no cover
    assert reached
    with pytest.raises(KeyboardInterrupt), signals_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_on_mbrl_run_exits_143_with_one_line(tmp_path):
    out = tmp_path / "run"
    proc = _mbrl("run", *CLI_TINY, "--out", str(out))
    metrics = out / "metrics.jsonl"
    _wait_for(lambda: metrics.exists() and metrics.read_text().count("\n") >= 1, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143
    lines = _lines(err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("mbrl run: terminated by SIGTERM; the ")
    assert f"'mbrl run --resume {out}' runs the rest" in lines[0]
    assert not any(p.name.endswith(".tmp") or ".next-" in p.name for p in out.iterdir())


def test_ctrl_c_without_out_says_where_the_buffer_went(tmp_path):
    env = {**ENV, "TMPDIR": str(tmp_path)}
    proc = _mbrl("run", *[a for a in CLI_TINY if a != "--quiet"], cwd=tmp_path, env=env)
    seen: list[str] = []

    def first_episode_logged() -> bool:
        seen.append(proc.stdout.readline())
        return "episode   0 [seed]" in seen[-1]

    _wait_for(first_episode_logged, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    lines = [line for line in _lines(err) if line.startswith("mbrl run:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    head, _, where = lines[0].partition(" collected so far were saved to ")
    assert head.startswith("mbrl run: interrupted; the ") and head.endswith(" transitions")
    saved = Path(where)
    assert saved.parent.name.startswith("mbrl-crash-") and saved.parent.parent == tmp_path
    assert len(TransitionBuffer.load(saved)) >= 15


def test_a_pool_closed_after_an_error_kills_its_running_workers():
    pool = LocalExecutor(workers=2)
    start = time.monotonic()
    results = pool.map_unordered(time.sleep, [0, 120])
    assert next(results) == (0, None)  # the other worker now sleeps
    workers = list(pool._pool._processes.values())
    assert len(workers) == 2 and all(w.is_alive() for w in workers)
    pool.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)
    assert not any(w.is_alive() for w in workers) and time.monotonic() - start < 60


def _workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = []
    for child in children.read_text().split() if children.exists() else []:
        cmdline = Path(f"/proc/{child}/cmdline")
        if cmdline.exists() and b"--multiprocessing-fork" in cmdline.read_bytes():
            found.append(int(child))
    return found


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_sigterm_on_mbrl_bench_ends_its_workers(tmp_path):
    suite = tmp_path / "long.toml"
    suite.write_text(
        'name = "long"\nseeds = [0, 1]\nthreads = 1\n[defaults]\nuse_preset = false\n'
        "episodes = 500\nmax_episode_steps = 200\n"
        '[[grid]]\nenvs = ["Pendulum-v1"]\nmodels = ["ensemble"]\nplanners = ["cem"]\n'
    )
    proc = _mbrl("bench", "--suite", str(suite), "--out", str(tmp_path / "r"), "--workers", "2")
    workers: list[int] = []

    def two_workers() -> bool:
        workers[:] = _workers_of(proc.pid)
        return len(workers) == 2

    _wait_for(two_workers, proc)
    time.sleep(3)  # into their cells
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert [line for line in _lines(err) if line.startswith("mbrl bench:")] == [
        f"mbrl bench: terminated by SIGTERM; worker processes ended; finished cells are kept "
        f"in {tmp_path / 'r'}: re-run to resume"
    ]
    assert not any(Path(f"/proc/{w}").exists() for w in workers)
