"""Dyna-Q on Sutton & Barto's Dyna maze: planning steps n vs episodes to the optimal path.

For each n and seed, trains Dyna-Q (alpha 0.1, gamma 0.95, epsilon 0.1, Q = 0 initially, as
Sutton & Barto's Example 8.1) for ``--episodes`` episodes. After every episode the greedy policy
is run; **episodes to optimal** is the first episode after which the greedy path has the
shortest length (14 steps) and keeps it after every later episode of the run. Runs that never
get there are reported as ``>E`` and counted as ``E + 1`` in the means (a lower bound). Also
prints the behaviour policy's mean steps per episode (the quantity of the book's Figure 8.2).

    python scripts/dyna_q_maze.py                    # n = 0, 5, 50; 5 seeds; ~1 min
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from mbrl.dyna import DynaMazeEnv, DynaQConfig, train_dyna_q


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[0, 5, 50], help="planning steps")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    optimal = DynaMazeEnv().shortest_path_length()
    cap = args.episodes + 1
    rows, table = [], {}
    for n in args.n:
        needed, lengths = [], []
        for seed in range(args.seeds):
            res = train_dyna_q(
                DynaMazeEnv(),
                args.episodes,
                DynaQConfig(planning_steps=n),
                seed,
                eval_env=DynaMazeEnv(),
            )
            needed.append(res.episodes_to_optimal(optimal))
            lengths.append(res.episode_lengths)
        counted = [cap if e is None else e for e in needed]
        mean_len = np.mean(np.asarray(lengths, dtype=float), axis=0)
        table[n] = {
            "episodes_to_optimal": needed,
            "mean": float(np.mean(counted)),
            "median": float(np.median(counted)),
            "never": sum(e is None for e in needed),
            "steps_per_episode": {
                k: float(mean_len[k - 1]) for k in (2, 5, 10, 20, 50) if k <= args.episodes
            },
        }
        rows.append(n)
    print(
        f"Dyna maze (6 x 9, shortest path {optimal}), {args.seeds} seeds, {args.episodes} episodes each"
    )
    print(
        f"{'n':>4} | {'episodes to optimal (per seed)':<34} | {'mean':>6} | {'median':>6} | steps/episode at 2, 5, 10, 20, 50"
    )
    for n in rows:
        t = table[n]
        per_seed = ", ".join(
            f">{args.episodes}" if e is None else str(e) for e in t["episodes_to_optimal"]
        )
        spe = ", ".join(f"{v:.0f}" for v in t["steps_per_episode"].values())
        print(f"{n:>4} | {per_seed:<34} | {t['mean']:6.1f} | {t['median']:6.1f} | {spe}")
    if 0 in table and 50 in table:
        ratio = table[50]["mean"] / table[0]["mean"]
        print(
            f"n=50 needs {ratio:.2f}x the episodes of n=0 (mean; n=0's censored runs count as "
            f"{cap}, so the true ratio is at most this): {'PASS' if ratio <= 1 / 3 else 'FAIL'} (<= 1/3)"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({str(k): v for k, v in table.items()}, fh, indent=2)


if __name__ == "__main__":
    main()
