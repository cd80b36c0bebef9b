"""MCTS simulations per second: batched leaves vs one leaf at a time, on the same model.

Each configuration runs ``--sims`` simulations per search from CartPole-like start states, with
random-rollout evaluation of ``--rollout-depth`` steps, and reports simulations per second
(all roots together). ``leaves=1`` is classic one-leaf-at-a-time MCTS (one model call per
expansion and per rollout step for a single leaf); ``leaves=L`` expands and evaluates ``L``
leaves per model call (virtual loss); ``roots=B`` runs ``B`` independent searches at once.

Usage:
    OMP_NUM_THREADS=1 python scripts/bench_mcts.py [--model ensemble|known] [--sims 128]
        [--leaves 1,16,32] [--roots 1,16] [--rollout-depth 20] [--repeats 3]
        [--backend auto|torch|numpy] [--device cpu] [--propagation expectation|ts1|ts_inf]
        [--clock wall|cpu]

``--clock cpu`` times with the process's CPU time instead of the wall clock: on a machine
shared with other jobs it still compares configurations fairly (CPU runs only).
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import torch

from mbrl.models.base import DynamicsModel
from mbrl.models.delta_model import DeltaModelConfig
from mbrl.models.ensemble import GaussianEnsemble
from mbrl.models.known.cartpole import KnownCartPole
from mbrl.planners.mcts import MCTS, MCTSConfig
from mbrl.spaces import ActionCodec
from mbrl.task_fns.classic import cartpole_reward, cartpole_termination


def make_model(name: str, device: str) -> DynamicsModel:
    """The benchmark's model: PETS' default ensemble (5 x 4 x 200, untrained) or known physics."""
    if name == "known":
        return KnownCartPole().to(device)
    torch.manual_seed(0)
    return GaussianEnsemble(4, 2, DeltaModelConfig()).to(device).eval()


def bench(
    model: DynamicsModel,
    leaves: int,
    roots: int,
    args: argparse.Namespace,
) -> tuple[float, float]:
    """Best-of-``repeats`` simulations per second and the fraction of dropped descents."""
    codec = ActionCodec.from_space(gym.spaces.Discrete(2))
    cfg = MCTSConfig(
        num_simulations=args.sims,
        leaves_per_batch=leaves,
        rollout_depth=args.rollout_depth,
        backend=args.backend,
        propagation=args.propagation,
    )
    gen = torch.Generator(args.device).manual_seed(0)
    planner = MCTS(model, cartpole_reward, cartpole_termination, codec, cfg, generator=gen)
    obs = 0.05 * torch.randn(roots, 4, generator=torch.Generator().manual_seed(1))
    obs = obs.to(args.device)
    planner.search(obs)  # warm-up
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    best, waste = 0.0, 0.0
    for _ in range(args.repeats):
        start = clock()
        out = planner.search(obs)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        rate = int(out.simulations.sum()) / (clock() - start)
        if rate > best:
            best, waste = rate, out.collisions / max(out.descents, 1)
    return best, waste


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["ensemble", "known"], default="ensemble")
    parser.add_argument("--sims", type=int, default=128, help="simulations per search")
    parser.add_argument("--leaves", default="1,16,32", help="leaves per model call to compare")
    parser.add_argument("--roots", default="1,16", help="independent searches at once")
    parser.add_argument("--rollout-depth", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "numpy"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--propagation",
        default="expectation",
        choices=["expectation", "ts1", "ts_inf"],
        help="ensemble propagation during search (default expectation: mean of the members)",
    )
    parser.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="wall clock (default) or this process's CPU time (fair on a shared machine)",
    )
    args = parser.parse_args()
    if args.clock == "cpu" and args.device != "cpu":
        parser.error("--clock cpu times CPU runs only")
    torch.set_num_threads(1)
    model = make_model(args.model, args.device)
    leaves = [int(x) for x in args.leaves.split(",")]
    roots = [int(x) for x in args.roots.split(",")]
    print(
        f"model={args.model} sims/search={args.sims} rollout_depth={args.rollout_depth} "
        f"backend={args.backend} device={args.device} threads={torch.get_num_threads()} "
        f"propagation={args.propagation} clock={args.clock}"
    )
    print(f"{'roots':>5} {'leaves':>6} {'sims/s':>10} {'vs 1 leaf':>10} {'dropped':>8}")
    for b in roots:
        base = None
        for leaf in leaves:
            rate, waste = bench(model, leaf, b, args)
            base = rate if base is None else base
            print(f"{b:>5} {leaf:>6} {rate:>10.0f} {rate / base:>9.1f}x {100 * waste:>7.1f}%")
    if 1 in roots and 1 in leaves:
        print(
            "ratio = simulations/s of that row / one leaf at a time with the same roots "
            "(first row of each block)"
        )


if __name__ == "__main__":
    main()
