"""Speed routes of CEM at mbrl-lib's PETS default shape, and what each does to the returns.

mbrl-lib's PETS default plans with CEM (population 350, 5 iterations, horizon 15, 20 particles,
TS-inf) over an ensemble of 4 x 200 MLPs. This script fits one such ensemble (5 members) on
the transitions of an earlier Pendulum run, then drives the *same* seeded Pendulum-v1 episodes
with each route and prints, in one run, the mean return and the measured ms per action:

- ``cem-fp32``: the baseline (float32);
- ``cem-bf16``: the same CEM with the networks in bfloat16 (AMX on recent x86, tensor cores
  on GPUs); states and returns stay float32;
- ``icem-fp32`` / ``icem-bf16``: iCEM (coloured noise, kept elites, population 300 decaying
  by half per iteration, 3 iterations).

Usage: python scripts/planner_routes.py --buffer DIR/buffer.pt [--episodes 3] [--routes ...]
(``DIR`` from ``mbrl run --out DIR`` on Pendulum-v1).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mbrl.agents import MPCAgent, make_env, run_episode
from mbrl.bench.speed import MBRL_LIB_SHAPE
from mbrl.data import TransitionBuffer
from mbrl.models import DeltaModelConfig, FitConfig, GaussianEnsemble, fit
from mbrl.planners.registry import PlannerContext, build_planner
from mbrl.spaces import ActionCodec
from mbrl.task_fns import get_task_fns

ROUTES = {
    "cem-fp32": ("cem", {"population": MBRL_LIB_SHAPE.candidates, "iterations": 5}, torch.float32),
    "cem-bf16": ("cem", {"population": MBRL_LIB_SHAPE.candidates, "iterations": 5}, torch.bfloat16),
    "icem-fp32": ("icem", {}, torch.float32),
    "icem-bf16": ("icem", {}, torch.bfloat16),
}


def fitted_model(buffer_path: str, seed: int) -> GaussianEnsemble:
    """A PETS-size ensemble ``(5 x 4 x 200)`` fitted on the Pendulum transitions at ``buffer_path``."""
    buffer = TransitionBuffer.load(buffer_path)
    shape = MBRL_LIB_SHAPE
    cfg = DeltaModelConfig(
        ensemble_size=shape.ensemble_size,
        hidden_size=shape.hidden_size,
        num_layers=shape.num_layers,
    )
    model = GaussianEnsemble(buffer.obs_dim, buffer.action_dim, cfg)
    torch.manual_seed(seed)
    report = fit(model, buffer, FitConfig(), torch.Generator().manual_seed(seed))
    print(f"fitted on {len(buffer)} transitions: validation score {report.best_val_score:.5f}")
    return model.eval()


def run_route(
    name: str, model: GaussianEnsemble, episodes: int, seed: int
) -> tuple[list[float], float]:
    """Returns of ``episodes`` seeded Pendulum episodes and mean ms per action for route ``name``."""
    planner_name, options, dtype = ROUTES[name]
    env = make_env("Pendulum-v1")
    codec = ActionCodec.from_space(env.action_space)
    task = get_task_fns("Pendulum-v1")
    model.set_compute_dtype(dtype)
    gen = torch.Generator().manual_seed(seed)
    ctx = PlannerContext(
        model,
        task.planner_reward,
        task.termination,
        codec,
        gen,
        MBRL_LIB_SHAPE.horizon,
        MBRL_LIB_SHAPE.particles,
        1.0,
        dict(options),
    )
    agent = MPCAgent(build_planner(planner_name, ctx), codec, model.obs_dim)
    returns = []
    for ep in range(episodes):
        agent.reset()
        stats = run_episode(env, agent.act, codec, seed=seed + ep)
        returns.append(stats.episode_return)
    env.close()
    return returns, 1e3 * float(np.mean(agent.plan_seconds))


def main() -> None:
    """Fit once, run every route on the same episodes, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buffer", required=True, help="buffer.pt of a Pendulum-v1 run")
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--routes", default=",".join(ROUTES), help=f"subset of {list(ROUTES)}")
    args = parser.parse_args()
    routes = args.routes.split(",")
    unknown = [r for r in routes if r not in ROUTES]
    if unknown:
        parser.error(f"unknown routes {unknown}; choose from {list(ROUTES)}")
    model = fitted_model(args.buffer, args.seed)
    base_ms = None
    print(f"{'route':10s} {'returns':>40s} {'mean':>8s} {'ms/action':>10s} {'speedup':>8s}")
    for name in routes:
        start = time.perf_counter()
        returns, ms = run_route(name, model, args.episodes, args.seed)
        base_ms = base_ms or ms
        shown = " ".join(f"{r:8.1f}" for r in returns)
        print(
            f"{name:10s} {shown:>40s} {np.mean(returns):8.1f} {ms:10.1f} {base_ms / ms:7.2f}x"
            f"   ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
