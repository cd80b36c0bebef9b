"""Benchmark: iLQR vs CEM on Pendulum-v1 with the known (true) torch model.

Both planners are built through :mod:`mbrl.planners.registry` with the same model, reward,
horizon and seeded start states, and run full MPC episodes (replanning every step) in the real
env. Prints one table row per planner: mean/std/min return over the episodes and the mean
wall time per planned action. A last section times iLQR's batched solver on all start states at
once (one batched cold solve vs. one solve per start state).

Run (2-core CPU, about 3 minutes with the defaults)::

    OMP_NUM_THREADS=1 python scripts/bench_ilqr_vs_cem.py --episodes 10
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

import mbrl  # noqa: F401  (registers the "known" model and the "ilqr" planner)
from mbrl.models.registry import build_model
from mbrl.planners.base import Planner
from mbrl.planners.ilqr import ILQR
from mbrl.planners.registry import PlannerContext, build_planner
from mbrl.spaces import ActionCodec
from mbrl.task_fns import get_task_fns

ENV_ID = "Pendulum-v1"


@dataclass(frozen=True)
class Row:
    """One planner's results: returns ``(N,)`` and mean planning milliseconds per action."""

    name: str
    returns: np.ndarray
    plan_ms: float


def start_states(n: int, seed0: int) -> list[int]:
    """Env reset seeds of the ``n`` episodes (identical for every planner)."""
    return [seed0 + i for i in range(n)]


def make_planner(name: str, horizon: int, seed: int, options: dict) -> Planner:
    """Build ``name`` with the known Pendulum model through the planner registry."""
    env = gym.make(ENV_ID)
    codec = ActionCodec.from_space(env.action_space)
    env.close()
    model = build_model("known", 3, 1, env_id=ENV_ID)
    task = get_task_fns(ENV_ID)
    ctx = PlannerContext(
        model,
        task.reward,
        task.termination,
        codec,
        torch.Generator().manual_seed(seed),
        horizon=horizon,
        n_particles=1,  # the model is deterministic
        options=options,
    )
    return build_planner(name, ctx)


def run_planner(name: str, horizon: int, seeds: list[int], options: dict) -> Row:
    """MPC episodes from each seeded start state; returns the row for the table."""
    returns, times = [], []
    for seed in seeds:
        planner = make_planner(name, horizon, seed, options)
        env = gym.make(ENV_ID)
        obs, _ = env.reset(seed=seed)
        planner.reset()
        total, done = 0.0, False
        while not done:
            start = time.perf_counter()
            action = planner.plan(torch.as_tensor(obs))[0].numpy()
            times.append(time.perf_counter() - start)
            obs, reward, terminated, truncated, _ = env.step(action)
            planner.advance(1)  # one action executed: the next warm start begins one step on
            total += float(reward)
            done = terminated or truncated
        env.close()
        returns.append(total)
        print(f"  {name:5s} seed {seed:3d}: return {total:8.1f}", flush=True)
    return Row(name, np.asarray(returns), 1e3 * float(np.mean(times)))


def batched_timing(horizon: int, seeds: list[int]) -> tuple[float, float, float, float]:
    """Cold iLQR solves from every start state: batched in one call vs one call each.

    Returns ``(batched_ms, sequential_ms, batched_mean_cost, sequential_mean_cost)``.
    """
    planner = make_planner("ilqr", horizon, 0, {})
    assert isinstance(planner, ILQR)
    env = gym.make(ENV_ID)
    obs = torch.stack([torch.as_tensor(env.reset(seed=s)[0]) for s in seeds])
    env.close()
    start = time.perf_counter()
    batched = planner.solve(obs)
    batched_ms = 1e3 * (time.perf_counter() - start)
    start = time.perf_counter()
    singles = [planner.solve(obs[i : i + 1]) for i in range(len(seeds))]
    sequential_ms = 1e3 * (time.perf_counter() - start)
    seq_cost = float(torch.cat([s.cost for s in singles]).mean())
    return batched_ms, sequential_ms, float(batched.cost.mean()), seq_cost


def main() -> None:
    """Parse flags, run both planners on the same start states, print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=10, help="episodes per planner (default 10)")
    p.add_argument("--seed", type=int, default=0, help="first env reset seed (default 0)")
    p.add_argument("--horizon", type=int, default=30, help="planning horizon (default 30)")
    p.add_argument(
        "--cem-population", type=int, default=500, help="CEM candidates per iteration (500)"
    )
    p.add_argument("--cem-iterations", type=int, default=5, help="CEM iterations (default 5)")
    args = p.parse_args()
    torch.set_num_threads(1)
    seeds = start_states(args.episodes, args.seed)
    print(f"{ENV_ID}, known model, horizon {args.horizon}, start seeds {seeds}", flush=True)
    rows = [
        run_planner("ilqr", args.horizon, seeds, {}),
        run_planner(
            "cem",
            args.horizon,
            seeds,
            {"population": args.cem_population, "iterations": args.cem_iterations},
        ),
    ]
    print()
    print(f"| planner | mean return | std | min | plan ms/action |  (N = {len(seeds)})")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        r = row.returns
        print(
            f"| {row.name} | {r.mean():.1f} | {r.std():.1f} | {r.min():.1f} | {row.plan_ms:.1f} |"
        )
    b_ms, s_ms, b_cost, s_cost = batched_timing(args.horizon, seeds)
    print()
    print(
        f"iLQR cold solve of all {len(seeds)} start states: batched {b_ms:.0f} ms "
        f"(mean model cost {b_cost:.2f}) vs one at a time {s_ms:.0f} ms "
        f"(mean model cost {s_cost:.2f})"
    )


if __name__ == "__main__":
    main()
