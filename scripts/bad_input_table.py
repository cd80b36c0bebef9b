#!/usr/bin/env python
"""Run every bad-input case of issue 17 and print a Markdown table: case, message, exit code.

    python scripts/bad_input_table.py > bad_input.md

Each case runs in its own process from a scratch directory (CLI cases as ``mbrl ...``, API
cases as ``python -c``); the message is the last line the process wrote to stderr (for an
uncaught API error, the exception line). Every case must fail fast: the script exits 1 if any
case exits 0 or takes longer than ``--timeout`` seconds (work was done before the check).
``tests/test_bad_input.py`` and ``tests/test_run_errors.py`` assert the same messages.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_SETUP = (
    "import torch, json, pathlib; from mbrl.models import GaussianEnsemble, MLPDynamics, "
    "DeltaModelConfig, save_checkpoint; from mbrl.dyna.surrogate import save_surrogate; "
    "import gymnasium as gym; import numpy as np; "
)
_SURROGATE = (
    _SETUP + "m = GaussianEnsemble(3, 1, DeltaModelConfig(hidden_size=8, num_layers=1)); "
    "o = gym.spaces.Box(-8, 8, (3,), np.float32); a = gym.spaces.Box(-2, 2, (1,), np.float32); "
    "p = save_surrogate('sur', m, o, a, torch.zeros(2, 3), env_id='Pendulum-v1'); "
)
_BUFFER = (
    "import torch; from mbrl.data import TransitionBuffer; b = TransitionBuffer(3, 1, 10); "
    "b.add(torch.zeros(4, 3), torch.zeros(4, 1), torch.zeros(4), torch.zeros(4, 3), "
    "torch.zeros(4, dtype=torch.bool), torch.zeros(4, dtype=torch.bool)); b.save('buf.pt'); "
    "s = torch.load('buf.pt', weights_only=True); "
)

CASES: list[tuple[str, list[str]]] = [
    ("`--out` at a file", ["mbrl", "run", "--out", "afile"]),
    ("`--out` under a file", ["mbrl", "run", "--out", "afile/run"]),
    ("`--out` unwritable", ["mbrl", "run", "--out", "/proc/mbrl-run"]),
    ("`--out` at a finished run", ["mbrl", "run", "--out", "done"]),
    ("`mbrl surrogate --out afile`", ["mbrl", "surrogate", "--out", "afile"]),
    ("`--seed -1`", ["mbrl", "run", "--seed", "-1"]),
    ("`--planner-opt population`", ["mbrl", "run", "--planner-opt", "population"]),
    ("`--max-episode-steps 0`", ["mbrl", "run", "--max-episode-steps", "0"]),
    ("`--max-episode-steps -5`", ["mbrl", "run", "--max-episode-steps=-5"]),
    ("`return_best=maybe`", ["mbrl", "run", "--planner-opt", "return_best=maybe"]),
    ("`--termination box --reward known`", ["mbrl", "run", "--termination", "box"]),
    ("`init_std=abc`", ["mbrl", "run", "--planner-opt", "init_std=abc"]),
    (
        "`temperature=abc` (mppi)",
        ["mbrl", "run", "--planner", "mppi", "--planner-opt", "temperature=abc"],
    ),
    ("`--episodes 2.5`", ["mbrl", "run", "--episodes", "2.5"]),
    ("unknown env id", ["mbrl", "run", "--env", "NoSuchEnv-v9"]),
    ("`--resume` of no run", ["mbrl", "run", "--resume", "empty"]),
    (
        "`FitConfig(lr=nan)`",
        ["python", "-c", "from mbrl.models import FitConfig; FitConfig(lr=float('nan'))"],
    ),
    (
        "`fit()` obs_dim mismatch",
        [
            "python",
            "-c",
            "import torch; from mbrl.models import GaussianEnsemble, FitConfig, fit; "
            "from mbrl.data import TransitionBuffer; b = TransitionBuffer(3, 1, 8); "
            "b.add(torch.zeros(8, 3), torch.zeros(8, 1), torch.zeros(8), torch.zeros(8, 3), "
            "torch.zeros(8, dtype=torch.bool), torch.zeros(8, dtype=torch.bool)); "
            "fit(GaussianEnsemble(5, 1), b, FitConfig(max_steps=2))",
        ],
    ),
    (
        '`planner.plan("abc")`',
        [
            "python",
            "-c",
            "from mbrl.agents.config import RunConfig; from mbrl.agents.setup import build_run; "
            "s = build_run(RunConfig(progress=False)); s.planner.plan('abc')",
        ],
    ),
    (
        "buffer file missing a key",
        [
            "python",
            "-c",
            _BUFFER + "del s['obs']; torch.save(s, 'buf.pt'); TransitionBuffer.load('buf.pt')",
        ],
    ),
    (
        "buffer file claiming `size=1e9`",
        [
            "python",
            "-c",
            _BUFFER + "s['size'] = 10**9; torch.save(s, 'buf.pt'); TransitionBuffer.load('buf.pt')",
        ],
    ),
    (
        "`surrogate.json` missing a key",
        [
            "python",
            "-c",
            _SURROGATE + "j = p / 'surrogate.json'; d = json.loads(j.read_text()); "
            "del d['env_id']; j.write_text(json.dumps(d)); "
            "gym.make('mbrl/Surrogate-v0', path=str(p))",
        ],
    ),
    (
        "surrogate whose `model.pt` class differs from its json",
        [
            "python",
            "-c",
            _SURROGATE + "save_checkpoint(p / 'model.pt', MLPDynamics(3, 1), {}); "
            "gym.make('mbrl/Surrogate-v0', path=str(p))",
        ],
    ),
]


def _scratch(root: Path) -> None:
    (root / "afile").write_text("not a directory\n")
    (root / "done").mkdir()
    (root / "done" / "summary.json").write_text(json.dumps({"finished": True}))
    (root / "empty").mkdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per case")
    args = parser.parse_args()
    failures = 0
    print("| case | message (last stderr line) | exit code | seconds |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _scratch(root)
        for name, argv in CASES:
            if argv[0] == "python":
                argv = [sys.executable, *argv[1:]]
            start = time.perf_counter()
            try:
                proc = subprocess.run(
                    argv, cwd=root, capture_output=True, text=True, timeout=args.timeout
                )
            except subprocess.TimeoutExpired:
                print(f"| {name} | (still running after {args.timeout:.0f} s) | - | - |")
                failures += 1
                continue
            seconds = time.perf_counter() - start
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            message = (lines[-1] if lines else "(nothing on stderr)").replace("|", "\\|")
            failures += proc.returncode == 0
            print(f"| {name} | {message} | {proc.returncode} | {seconds:.1f} |", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
