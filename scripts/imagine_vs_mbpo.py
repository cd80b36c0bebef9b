"""Imagination actor-critic vs MBPO vs plain SAC at the same number of real env steps.

Each (algorithm, seed) runs once with ``--steps`` real steps and is evaluated the same way:
the deterministic policy (the actor's mean, SAC's deterministic action) on ``--eval-episodes``
episodes reset with seeds ``10000 + 100 * seed + i``. Finished runs are stored as JSON in
``--out`` and skipped when the script runs again; the table (mean +- std over seeds) is
printed at the end, and with ``--plot FILE`` a figure of the evaluation return against real
steps (mean over seeds, the band spans the seeds' min to max). Every algorithm is evaluated
every ``steps // 5`` real steps on the same episodes. MBPO and SAC need the sb3 extra.

    OMP_NUM_THREADS=1 python scripts/imagine_vs_mbpo.py --env Pendulum-v1 --steps 3000 \
        --seeds 0 1 2 --algos imagine sac mbpo --out /tmp/imagine_vs_mbpo

Per-env settings (``ENV_SETTINGS``): on ``mbrl/AwakeSteering-v0``, where an episode takes one
to a few corrections, the imagination horizon is 5 and every learner starts after 200
random steps.
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
LABELS = {"imagine": "imagination actor-critic", "mbpo": "MBPO", "sac": "SAC"}

# Settings that differ from the Pendulum ones below: (imagine overrides, MBPO overrides).
ENV_SETTINGS: dict[str, tuple[dict, dict]] = {
    "mbrl/AwakeSteering-v0": (
        {"seed_steps": 200, "steps_per_round": 100, "horizon": 5},
        {"init_steps": 200},
    ),
}


def run_one(algo: str, env_id: str, seed: int, steps: int, episodes: int) -> dict:
    """One run; returns ``{"final_return", "evals", "seconds"}`` (imagine adds ``returns``)."""
    imagine_over, mbpo_over = ENV_SETTINGS.get(env_id, ({}, {}))
    every = max(steps // 5, 1)
    if algo == "imagine":
        result = imagine_and_learn(
            env_id,
            ImagineLoopConfig(
                seed=seed,
                total_steps=steps,
                seed_steps=imagine_over.get("seed_steps", min(400, steps // 4)),
                steps_per_round=imagine_over.get("steps_per_round", 200),
                updates_per_round=100,
                model_options={"ensemble_size": 3, "num_layers": 2, "hidden_size": 128},
                fit=FitConfig(max_steps=300, batch_size=256, eval_every=50, patience=5),
                imagination=ImaginationConfig(
                    batch_size=128,
                    horizon=imagine_over.get("horizon", 15),
                    actor_lr=1e-3,
                    critic_lr=1e-3,
                ),
                eval_episodes=episodes,
                eval_every=every,
                progress=False,
            ),
        )
        return {
            "final_return": result.final_return,
            "eval_returns": result.eval_returns,
            "returns": result.returns,
            "evals": result.evals,
            "seconds": result.seconds,
        }
    result = run_mbpo(
        MBPOConfig(
            env_id=env_id,
            algo=algo,
            total_steps=steps,
            seed=seed,
            eval_every=every,
            eval_episodes=episodes,
            final_eval_episodes=episodes,
            progress=False,
            **mbpo_over,
        )
    )
    return {"final_return": result.final_return, "evals": result.evals, "seconds": result.seconds}


def plot(
    rows: dict[str, list[dict]], env_id: str, steps: int, file: str, symlog: bool = False
) -> None:
    """Evaluation return vs real env steps: per algorithm the mean over seeds, and a band
    from the seeds' min to max (evaluation points are the ones every seed has); ``symlog``
    draws the return axis linear within +-1 and logarithmic beyond (AWAKE's solved episodes
    score about -0.5, a lost beam hundreds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for algo, runs in rows.items():
        curves = [{e["env_steps"]: e["mean_return"] for e in r["evals"]} for r in runs]
        xs = sorted(set.intersection(*(set(c) for c in curves)))
        ys = np.array([[c[x] for x in xs] for c in curves])
        ax.plot(xs, ys.mean(axis=0), marker="o", label=f"{LABELS[algo]} ({len(runs)} seeds)")
        ax.fill_between(xs, ys.min(axis=0), ys.max(axis=0), alpha=0.2)
    if symlog:
        ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("real env steps")
    ax.set_ylabel("evaluation return (deterministic policy)")
    ax.set_title(f"{env_id}: learning from {steps} real steps")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(file, dpi=120)
    print(f"figure: {file}")


def main(argv: list[str] | None = None) -> int:
    """Run what is missing, print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--out", required=True)
    p.add_argument("--plot", default=None, help="write the learning-curve figure here")
    p.add_argument("--symlog", action="store_true", help="symmetric-log return axis")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table: dict[str, list[float]] = {}
    rows: dict[str, list[dict]] = {}
    for algo in args.algos:
        for seed in args.seeds:
            file = out / f"{args.env.replace('/', '_')}_{algo}_{args.steps}_{seed}.json"
            if not file.exists():
                row = run_one(algo, args.env, seed, args.steps, args.eval_episodes)
                file.write_text(json.dumps(row))
            row = json.loads(file.read_text())
            table.setdefault(algo, []).append(row["final_return"])
            rows.setdefault(algo, []).append(row)
            print(
                f"{algo} seed {seed}: {row['final_return']:.2f} ({row['seconds']:.0f} s)",
                flush=True,
            )
    print(f"\n{args.env}, {args.steps} real steps, {args.eval_episodes} eval episodes per seed")
    print("| algorithm | seeds | final return (mean +- std over seeds) | per seed |")
    print("| --- | --- | --- | --- |")
    f = ".2f"  # AWAKE's solved episodes score about -0.5
    for algo, values in table.items():
        v = np.asarray(values)
        per_seed = ", ".join(f"{x:{f}}" for x in v)
        print(f"| {algo} | {len(v)} | {v.mean():{f}} +- {v.std():{f}} | {per_seed} |")
    if args.plot:
        plot(rows, args.env, args.steps, args.plot, args.symlog)
    return 0


if __name__ == "__main__":
    sys.exit(main())
