#!/usr/bin/env python
"""Planning time per action of ``mbrl run``'s default route next to mbrl-lib's PETS CEM,
alternated in one run (A B A B) on one machine.

    bash ../shared/peers/setup_mbrllib.sh                # once: mbrl-lib 0.2.0 in its own venv
    python scripts/peer_default_route.py --rounds 5      # with this project's python

``../shared/peers/cem_side_by_side.py`` compares the two libraries at ONE workload (the PETS
shape on both sides). This script answers the other question a user asks: how long does the
route ``mbrl run`` takes by default on Pendulum-v1 (its preset: ensemble of 5 x 3 x 200, CEM
300 x 4, horizon 15, 5 particles) plan per step, next to mbrl-lib's PETS settings (ensemble
5 x 4 x 200, CEM 350 x 5, horizon 15, 20 particles), whose Pendulum return the default route
must match. The peer side is the shared ``cem_worker_mbrllib.py`` at its default shape; our
side is this file with ``--worker``: the agent of :func:`mbrl.agents.setup.build_run` for
``RunConfig()`` (untrained networks: the cost depends on shapes only), timing
``agent.act(obs)`` from random Pendulum states. Both sides run with ``--threads`` torch
threads; the ratio is peer s/act / ours s/act, per round, and its median is what to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PEERS = Path(__file__).resolve().parent.parent.parent / "shared" / "peers"


def _worker(args: argparse.Namespace) -> None:
    """Time the default route's ``agent.act``; print one JSON line."""
    import numpy as np
    import torch

    from mbrl.agents.config import RunConfig
    from mbrl.agents.setup import build_run

    torch.set_num_threads(args.threads)
    setup = build_run(RunConfig(progress=False, seed=args.seed))
    setup.env.close()
    counts = {"steps": 0}
    model = setup.model
    orig_step = model.step

    def counted_step(state, action, generator=None):  # type: ignore[no-untyped-def]
        counts["steps"] += state.shape[0]
        return orig_step(state, action, generator)

    model.step = counted_step  # the rollout core calls model.step(...)
    rng = np.random.default_rng(args.seed)

    def random_obs() -> np.ndarray:
        th = rng.uniform(-np.pi, np.pi)
        return np.array([np.cos(th), np.sin(th), rng.uniform(-1, 1)], dtype=np.float32)

    agent = setup.agent
    agent.reset()
    with torch.no_grad():
        for _ in range(args.warmup):
            agent.act(random_obs())
        times = []
        for _ in range(args.calls):
            obs = random_obs()
            start = time.perf_counter()
            agent.act(obs)
            times.append(time.perf_counter() - start)
    opt = setup.planner.optimizer.config
    row = {
        "library": "ours",
        "route": "mbrl-run-default",
        "population": opt.population,
        "iterations": opt.iterations,
        "horizon": setup.config.horizon,
        "particles": setup.config.n_particles,
        "threads": torch.get_num_threads(),
        "median_s_per_act": statistics.median(times),
        "model_steps_per_act": counts["steps"] / (args.warmup + args.calls),
    }
    print(json.dumps(row), flush=True)


def _run(cmd: list[str], threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env["PYTHONWARNINGS"] = "ignore"
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not rows:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"worker failed (rc {proc.returncode}): {' '.join(cmd)}")
    return rows[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10, help="timed act calls per worker")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--peer-python",
        default=str(
            Path(os.environ.get("MBRLLIB_VENV", Path.home() / ".cache" / "mbrllib-venv"))
            / "bin"
            / "python"
        ),
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("rounds", "calls", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.worker:
        _worker(args)
        return
    if not Path(args.peer_python).exists():
        parser.error(f"--peer-python {args.peer_python} not found; run setup_mbrllib.sh first")
    common = ["--calls", str(args.calls), "--warmup", str(args.warmup)]
    common += ["--threads", str(args.threads), "--seed", str(args.seed)]
    peer_cmd = [args.peer_python, str(PEERS / "cem_worker_mbrllib.py"), *common]
    ours_cmd = [sys.executable, __file__, "--worker", *common]
    print(
        f"# {args.rounds} rounds x ({args.warmup} warm-up + {args.calls} timed) act calls, "
        f"{args.threads} threads, load {os.getloadavg()[0]:.2f}"
    )
    print(
        "| round | first | mbrl-lib PETS s/act | ours default s/act | peer / ours | "
        "model steps per act (peer / ours) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    ratios, peers, ours = [], [], []
    for r in range(args.rounds):
        order = ("peer", "ours") if r % 2 == 0 else ("ours", "peer")
        res = {side: _run(peer_cmd if side == "peer" else ours_cmd, args.threads) for side in order}
        p, o = res["peer"]["median_s_per_act"], res["ours"]["median_s_per_act"]
        peers.append(p)
        ours.append(o)
        ratios.append(p / o)
        print(
            f"| {r + 1} | {order[0]} | {p:.3f} | {o:.3f} | {p / o:.2f} | "
            f"{res['peer']['model_steps_per_act']:.0f} / "
            f"{res['ours']['model_steps_per_act']:.0f} |",
            flush=True,
        )
    print(
        f"\nmedian over {args.rounds} rounds: mbrl-lib {statistics.median(peers):.3f} s/act, "
        f"ours {statistics.median(ours):.3f} s/act, ratio {statistics.median(ratios):.2f} "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f}); load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
