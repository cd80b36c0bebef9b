"""Imagination actor-critic vs MBPO vs plain SAC at the same number of real env steps.

Each (algorithm, seed) runs once with ``--steps`` real steps and is evaluated the same way:
the deterministic policy (the actor's mean, SAC's deterministic action) on ``--eval-episodes``
episodes reset with seeds ``10000 + 100 * seed + i``. Finished runs are stored as JSON in
``--out`` and skipped when the script runs again; the table (mean +- std over seeds) is
printed at the end. MBPO and SAC need the sb3 extra.

    OMP_NUM_THREADS=1 python scripts/imagine_vs_mbpo.py --env Pendulum-v1 --steps 3000 \
        --seeds 0 1 2 --algos imagine sac mbpo --out /tmp/imagine_vs_mbpo
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from mbrl.dyna import MBPOConfig, run_mbpo
from mbrl.imagination import ImaginationConfig, ImagineLoopConfig, imagine_and_learn
from mbrl.models.training import FitConfig

ALGOS = ("imagine", "mbpo", "sac")


def run_one(algo: str, env_id: str, seed: int, steps: int, episodes: int) -> dict:
    """One run; returns ``{"final_return", "returns", "seconds"}``."""
    if algo == "imagine":
        result = imagine_and_learn(
            env_id,
            ImagineLoopConfig(
                seed=seed,
                total_steps=steps,
                seed_steps=min(400, steps // 4),
                steps_per_round=200,
                updates_per_round=100,
                model_options={"ensemble_size": 3, "num_layers": 2, "hidden_size": 128},
                fit=FitConfig(max_steps=300, batch_size=256, eval_every=50, patience=5),
                imagination=ImaginationConfig(
                    batch_size=128, horizon=15, actor_lr=1e-3, critic_lr=1e-3
                ),
                eval_episodes=episodes,
                progress=False,
            ),
        )
        return {
            "final_return": result.final_return,
            "eval_returns": result.eval_returns,
            "returns": result.returns,
            "seconds": result.seconds,
        }
    result = run_mbpo(
        MBPOConfig(
            env_id=env_id,
            algo=algo,
            total_steps=steps,
            seed=seed,
            eval_every=max(steps // 5, 1),
            final_eval_episodes=episodes,
            progress=False,
        )
    )
    return {"final_return": result.final_return, "evals": result.evals, "seconds": result.seconds}


def main(argv: list[str] | None = None) -> int:
    """Run what is missing, print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table: dict[str, list[float]] = {}
    for algo in args.algos:
        for seed in args.seeds:
            file = out / f"{args.env.replace('/', '_')}_{algo}_{args.steps}_{seed}.json"
            if not file.exists():
                row = run_one(algo, args.env, seed, args.steps, args.eval_episodes)
                file.write_text(json.dumps(row))
            row = json.loads(file.read_text())
            table.setdefault(algo, []).append(row["final_return"])
            print(
                f"{algo} seed {seed}: {row['final_return']:.1f} ({row['seconds']:.0f} s)",
                flush=True,
            )
    print(f"\n{args.env}, {args.steps} real steps, {args.eval_episodes} eval episodes per seed")
    print("| algorithm | seeds | final return (mean +- std over seeds) | per seed |")
    print("| --- | --- | --- | --- |")
    for algo, values in table.items():
        v = np.asarray(values)
        per_seed = ", ".join(f"{x:.1f}" for x in v)
        print(f"| {algo} | {len(v)} | {v.mean():.1f} +- {v.std():.1f} | {per_seed} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
